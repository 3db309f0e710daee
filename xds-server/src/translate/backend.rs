//! Backend references → endpoints and upstream TLS.
//!
//! Kinds: `gateway.envoyproxy.io/Backend` (FQDN and IP endpoints), core `Service` (the ready
//! addresses of its EndpointSlices when there are any, as in a cluster; else its Pods' IPs
//! when the folder has Pods it selects; else the cluster DNS name), and
//! `aigateway.envoyproxy.io/AIServiceBackend` (followed to its own backendRef). InferencePools
//! are resolved in `pool.rs`.

use std::collections::BTreeSet;

use infergate_crds::Backend;
use k8s_openapi::api::core::v1::Service;

use super::Cx;
use super::endpoint_slices;
use super::ir::{CaIr, TlsIr};
use super::refs::{self, From};
use crate::object::{Kind, ObjectKey};
use crate::status::{Condition, reason};

/// What a backendRef resolved to.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The object the endpoints belong to (Backend or Service).
    pub target: ObjectKey,
    /// The AIServiceBackend in front of it, if the ref went through one.
    pub ai_backend: Option<ObjectKey>,
    /// Cluster name when the target gets a cluster of its own (HTTPRoute backends).
    pub cluster: String,
    pub endpoints: Vec<(String, u16)>,
    pub tls: Option<TlsIr>,
}

/// A reference, normalised.
pub struct BackendRef<'a> {
    pub group: &'a str,
    pub kind: &'a str,
    pub name: &'a str,
    pub namespace: &'a str,
    pub port: Option<i32>,
}

pub type RefError = (&'static str, String);

pub fn resolve(cx: &mut Cx<'_>, from: &From<'_>, r: &BackendRef<'_>) -> Result<Resolved, RefError> {
    if !refs::permitted(cx, from, r.group, r.kind, r.namespace, r.name) {
        let message = format!(
            "{} {}/{} is in another namespace and no ReferenceGrant there permits {} from namespace {}",
            r.kind, r.namespace, r.name, from.kind, from.namespace
        );
        return Err((reason::REF_NOT_PERMITTED, message));
    }
    match (r.group, r.kind) {
        ("gateway.envoyproxy.io", "Backend") => backend(cx, r),
        ("" | "core", "Service") => service(cx, r),
        ("aigateway.envoyproxy.io", "AIServiceBackend") => ai_service_backend(cx, r),
        // Route rules take pools before they get here (`pool::translate_rule`); an
        // AIServiceBackend in front of a pool has no endpoint picker to ask.
        ("inference.networking.k8s.io", "InferencePool") => Err((
            reason::INVALID_KIND,
            format!(
                "InferencePool {}/{}: a pool can only be a route rule's one backendRef",
                r.namespace, r.name
            ),
        )),
        (group, kind) => Err((
            reason::INVALID_KIND,
            format!("backend kind {group}/{kind} is not supported"),
        )),
    }
}

fn not_found(r: &BackendRef<'_>) -> RefError {
    (
        reason::BACKEND_NOT_FOUND,
        format!("{} {}/{} not found", r.kind, r.namespace, r.name),
    )
}

fn backend(cx: &mut Cx<'_>, r: &BackendRef<'_>) -> Result<Resolved, RefError> {
    let Some(object) = cx.snapshot.backend(r.namespace, r.name) else {
        return Err(not_found(r));
    };
    let key = ObjectKey::new(Kind::Backend, r.namespace, r.name);
    let endpoints = backend_endpoints(object).map_err(|m| {
        (
            reason::UNSUPPORTED_VALUE,
            format!("Backend {}: {m}", key.namespaced_name()),
        )
    })?;
    let first_host = endpoints
        .first()
        .map(|(h, _)| h.clone())
        .filter(|h| h.parse::<std::net::IpAddr>().is_err());
    let tls = object
        .spec
        .tls
        .as_ref()
        .map(|tls| TlsIr {
            name: tls_name(&key),
            sni: tls.sni.clone().or(first_host.clone()),
            ca: tls
                .well_known_ca_certificates
                .as_ref()
                .map(|_| CaIr::System),
            insecure_skip_verify: tls.insecure_skip_verify.unwrap_or(false),
        })
        .or_else(|| tls_from_policy(cx, &key, "gateway.envoyproxy.io"))
        .or_else(|| {
            // An FQDN on 443 is an HTTPS API (every hosted provider): verify against system CAs.
            endpoints.iter().any(|(_, p)| *p == 443).then(|| TlsIr {
                name: tls_name(&key),
                sni: first_host.clone(),
                ca: Some(CaIr::System),
                insecure_skip_verify: false,
            })
        });
    Ok(Resolved {
        cluster: format!("backend/{}", key.namespaced_name()),
        target: key,
        ai_backend: None,
        endpoints,
        tls,
    })
}

/// Endpoints of a Backend, or why it has none we can use.
pub fn backend_endpoints(object: &Backend) -> Result<Vec<(String, u16)>, String> {
    let mut endpoints = Vec::new();
    for endpoint in &object.spec.endpoints {
        let (host, port) = match (&endpoint.fqdn, &endpoint.ip) {
            (Some(fqdn), _) => (fqdn.hostname.clone(), fqdn.port),
            (None, Some(ip)) => (ip.address.clone(), ip.port),
            (None, None) => return Err("only fqdn and ip endpoints are supported".into()),
        };
        let port = u16::try_from(port)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("port {port} is out of range"))?;
        endpoints.push((host, port));
    }
    if endpoints.is_empty() {
        return Err("no endpoints".into());
    }
    Ok(endpoints)
}

fn service(cx: &mut Cx<'_>, r: &BackendRef<'_>) -> Result<Resolved, RefError> {
    let Some(object) = cx.snapshot.service(r.namespace, r.name) else {
        return Err(not_found(r));
    };
    let key = ObjectKey::new(Kind::Service, r.namespace, r.name);
    let Some(port) = r.port.and_then(|p| u16::try_from(p).ok()) else {
        return Err((
            reason::UNSUPPORTED_VALUE,
            format!(
                "backendRef to Service {} needs a port",
                key.namespaced_name()
            ),
        ));
    };
    let endpoints = endpoint_slices::endpoints(cx.snapshot, &key, object, port)
        .or_else(|| pod_endpoints(cx, object, &key, port))
        .unwrap_or_else(|| {
            vec![(
                format!("{}.{}.svc.cluster.local", r.name, r.namespace),
                port,
            )]
        });
    let tls = tls_from_policy(cx, &key, "");
    Ok(Resolved {
        cluster: format!("service/{}/{port}", key.namespaced_name()),
        target: key,
        ai_backend: None,
        endpoints,
        tls,
    })
}

/// Ready Pods of the folder that the Service selects, on the Service port's targetPort.
fn pod_endpoints(
    cx: &Cx<'_>,
    service: &Service,
    key: &ObjectKey,
    port: u16,
) -> Option<Vec<(String, u16)>> {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let spec = service.spec.as_ref()?;
    let selector = spec.selector.as_ref().filter(|s| !s.is_empty())?;
    let service_port = spec
        .ports
        .as_ref()?
        .iter()
        .find(|p| p.port == i32::from(port))?;
    let target = match &service_port.target_port {
        Some(IntOrString::Int(p)) => u16::try_from(*p).ok()?,
        _ => port,
    };
    let endpoints: BTreeSet<(String, u16)> = cx
        .snapshot
        .pods()
        .filter(|(k, _)| k.namespace == key.namespace)
        .filter(|(_, pod)| {
            let labels = pod.metadata.labels.as_ref();
            selector
                .iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        })
        .filter_map(|(_, pod)| pod.status.as_ref()?.pod_ip.clone())
        .map(|ip| (ip, target))
        .collect();
    (!endpoints.is_empty()).then(|| endpoints.into_iter().collect())
}

fn ai_service_backend(cx: &mut Cx<'_>, r: &BackendRef<'_>) -> Result<Resolved, RefError> {
    let Some(object) = cx.snapshot.ai_service_backend(r.namespace, r.name) else {
        return Err(not_found(r));
    };
    let key = ObjectKey::new(Kind::AIServiceBackend, r.namespace, r.name);
    let target = &object.spec.backend_ref;
    let inner = BackendRef {
        group: target.group.as_deref().unwrap_or("gateway.envoyproxy.io"),
        kind: target.kind.as_deref().unwrap_or("Backend"),
        name: &target.name,
        namespace: target.namespace.as_deref().unwrap_or(r.namespace),
        port: target.port,
    };
    let from = From {
        group: "aigateway.envoyproxy.io",
        kind: "AIServiceBackend",
        namespace: r.namespace,
    };
    let mut resolved = resolve(cx, &from, &inner).map_err(|(why, message)| {
        (
            why,
            format!("AIServiceBackend {}: {message}", key.namespaced_name()),
        )
    })?;
    resolved.ai_backend = Some(key);
    Ok(resolved)
}

fn tls_name(target: &ObjectKey) -> String {
    format!("{}/{}", target.kind, target.namespaced_name())
}

/// TLS from a BackendTLSPolicy that targets `target` (a Backend or Service).
fn tls_from_policy(cx: &Cx<'_>, target: &ObjectKey, group: &str) -> Option<TlsIr> {
    let (_, policy) = cx.snapshot.backend_tls_policies().find(|(key, policy)| {
        key.namespace == target.namespace
            && policy.spec.target_refs.iter().any(|t| {
                t.name == target.name
                    && t.kind == target.kind.as_str()
                    && (t.group == group || (group.is_empty() && t.group == "core"))
            })
    })?;
    let validation = &policy.spec.validation;
    Some(TlsIr {
        name: tls_name(target),
        sni: Some(validation.hostname.clone()),
        ca: Some(CaIr::System),
        insecure_skip_verify: false,
    })
}

/// Objects nothing else reports on get a condition saying what we did with them.
pub fn report_unattached(cx: &mut Cx<'_>) {
    let snapshot = cx.snapshot;
    for (key, object) in snapshot.backends() {
        if cx
            .status
            .objects
            .get(key)
            .is_some_and(|s| !s.conditions.is_empty())
        {
            continue;
        }
        match backend_endpoints(object) {
            Ok(_) => cx.status.push(
                key,
                Condition::ok(reason::ACCEPTED, reason::ACCEPTED, "backend accepted"),
            ),
            Err(message) => cx.status.push(
                key,
                Condition::fail(reason::ACCEPTED, reason::UNSUPPORTED_VALUE, message),
            ),
        }
    }
    for (key, object) in snapshot.ai_service_backends() {
        let target = &object.spec.backend_ref;
        let reference = BackendRef {
            group: target.group.as_deref().unwrap_or("gateway.envoyproxy.io"),
            kind: target.kind.as_deref().unwrap_or("Backend"),
            name: &target.name,
            namespace: target.namespace.as_deref().unwrap_or(&key.namespace),
            port: target.port,
        };
        let from = From {
            group: "aigateway.envoyproxy.io",
            kind: "AIServiceBackend",
            namespace: &key.namespace,
        };
        let condition = match resolve(cx, &from, &reference) {
            Ok(_) => Condition::ok(
                reason::RESOLVED_REFS,
                reason::RESOLVED_REFS,
                format!(
                    "{} {}/{} resolved",
                    reference.kind, reference.namespace, reference.name
                ),
            ),
            Err((why, message)) => Condition::fail(reason::RESOLVED_REFS, why, message),
        };
        cx.status.push(
            key,
            Condition::ok(reason::ACCEPTED, reason::ACCEPTED, "backend accepted"),
        );
        cx.status.push(key, condition);
    }
    let not_yet = [
        (
            Kind::BackendSecurityPolicy,
            if cx.options.extproc.is_some() {
                "loaded; no AIServiceBackend uses this policy"
            } else {
                "loaded; credentials are injected by the extproc, which is not configured"
            },
        ),
        (
            Kind::InferenceObjective,
            "loaded; read by its pool's endpoint picker (a negative priority is sheddable)",
        ),
        (
            Kind::GatewayConfig,
            "loaded; not applied by this version yet",
        ),
    ];
    let keys: Vec<(ObjectKey, &str)> = snapshot
        .objects
        .keys()
        .filter_map(|k| {
            not_yet
                .iter()
                .find(|(kind, _)| *kind == k.kind)
                .map(|(_, m)| (k.clone(), *m))
        })
        .collect();
    for (key, message) in keys {
        if !cx.status.objects.contains_key(&key) {
            cx.status.push(
                &key,
                Condition::ok(reason::ACCEPTED, reason::ACCEPTED, message),
            );
        }
    }
}
