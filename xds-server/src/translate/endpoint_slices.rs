//! A Service's endpoints from its EndpointSlices (`discovery.k8s.io/v1`), as kube-proxy reads
//! them: the slices labelled `kubernetes.io/service-name: <service>` in its namespace, their
//! ready addresses, on the slice port named like the Service port the backendRef chose (the
//! slice controller has already resolved a named `targetPort` per Pod).
//!
//! A Service with slices gets IP endpoints, so its Envoy cluster is EDS and follows Pods
//! coming and going without a DNS refresh; with none (a folder of manifests, which has no
//! slices) the caller falls back to the Pods it selects, then to the cluster DNS name.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Service;

use crate::index::IndexSnapshot;
use crate::object::ObjectKey;

/// The label tying a slice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Ready `(ip, port)`s of `service` (`key`) for its port `port`; `None` when no slice belongs
/// to the Service or the Service has no such port. An empty list means no ready endpoint.
pub(crate) fn endpoints(
    snapshot: &IndexSnapshot,
    key: &ObjectKey,
    service: &Service,
    port: u16,
) -> Option<Vec<(String, u16)>> {
    let service_port = service
        .spec
        .as_ref()?
        .ports
        .as_ref()?
        .iter()
        .find(|p| p.port == i32::from(port))?;
    let port_name = service_port.name.as_deref().unwrap_or("");
    let mut slices = snapshot
        .endpoint_slices()
        .filter(|(k, _)| k.namespace == key.namespace)
        .filter(|(_, slice)| {
            slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
                == Some(&key.name)
        })
        .peekable();
    slices.peek()?;
    let mut found = BTreeSet::new();
    for (_, slice) in slices {
        if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
            continue;
        }
        let Some(target) = slice
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref().unwrap_or("") == port_name)
            .and_then(|p| u16::try_from(p.port?).ok())
        else {
            continue;
        };
        for endpoint in &slice.endpoints {
            // Unset readiness means ready (the API's rule).
            let ready = endpoint
                .conditions
                .as_ref()
                .and_then(|c| c.ready)
                .unwrap_or(true);
            if ready {
                found.extend(endpoint.addresses.iter().map(|a| (a.clone(), target)));
            }
        }
    }
    Some(found.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::index::Index;
    use crate::object::{Kind, RawObject};

    fn raw(kind: Kind, value: serde_json::Value) -> RawObject {
        let name = value["metadata"]["name"]
            .as_str()
            .expect("name")
            .to_string();
        RawObject {
            key: ObjectKey::new(kind, "default", name),
            api_version: kind.served_versions()[0].to_string(),
            origin: None,
            value,
        }
    }

    fn service() -> RawObject {
        raw(
            Kind::Service,
            json!({"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": "llm", "namespace": "default"},
                   "spec": {"selector": {"app": "llm"},
                            "ports": [{"name": "http", "port": 80, "targetPort": "web"},
                                      {"name": "metrics", "port": 9090}]}}),
        )
    }

    fn slice(name: &str, service: &str, endpoints: serde_json::Value) -> RawObject {
        raw(
            Kind::EndpointSlice,
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                   "metadata": {"name": name, "namespace": "default",
                                "labels": {SERVICE_NAME_LABEL: service}},
                   "addressType": "IPv4",
                   "ports": [{"name": "http", "port": 8000}, {"name": "metrics", "port": 9090}],
                   "endpoints": endpoints}),
        )
    }

    fn resolve(index: &Index, port: u16) -> Option<Vec<(String, u16)>> {
        let snapshot = index.snapshot();
        let key = ObjectKey::new(Kind::Service, "default", "llm");
        let service = snapshot.service("default", "llm").expect("service");
        endpoints(&snapshot, &key, service, port)
    }

    #[test]
    fn ready_addresses_of_every_slice_on_the_named_target_port() {
        let mut index = Index::new();
        index.apply(service());
        assert_eq!(resolve(&index, 80), None, "no slice: the caller falls back");
        index.apply(slice(
            "llm-a",
            "llm",
            json!([{"addresses": ["10.0.0.1"], "conditions": {"ready": true}},
                   {"addresses": ["10.0.0.2"], "conditions": {"ready": false}},
                   {"addresses": ["10.0.0.3"]}]),
        ));
        index.apply(slice(
            "llm-b",
            "llm",
            json!([{"addresses": ["10.0.0.4"], "conditions": {"ready": true, "serving": true}}]),
        ));
        index.apply(slice(
            "other",
            "not-llm",
            json!([{"addresses": ["10.9.9.9"]}]),
        ));
        let want = |ips: &[&str], port| {
            ips.iter()
                .map(|ip| (ip.to_string(), port))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            resolve(&index, 80),
            Some(want(&["10.0.0.1", "10.0.0.3", "10.0.0.4"], 8000))
        );
        assert_eq!(
            resolve(&index, 9090),
            Some(want(&["10.0.0.1", "10.0.0.3", "10.0.0.4"], 9090))
        );
        assert_eq!(resolve(&index, 81), None, "not a port of the Service");
    }

    #[test]
    fn a_service_whose_slices_have_no_ready_endpoint_has_none() {
        let mut index = Index::new();
        index.apply(service());
        index.apply(slice(
            "llm-a",
            "llm",
            json!([{"addresses": ["10.0.0.2"], "conditions": {"ready": false}}]),
        ));
        assert_eq!(resolve(&index, 80), Some(Vec::new()));
    }
}
