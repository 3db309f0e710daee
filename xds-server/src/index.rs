//! The index: a pure `apply(object)` / `delete(key)` state machine over typed objects.
//!
//! It never does I/O and knows nothing of Envoy. An object whose new version fails to parse
//! keeps its last good version in the index (so the translator keeps serving it) and carries the
//! error, which becomes an `Accepted=False` condition on it.

mod parse;
mod secret_refs;

use std::collections::BTreeMap;
use std::sync::Arc;

use gateway_api::backendtlspolicies::BackendTlsPolicy;
use gateway_api::gatewayclasses::GatewayClass;
use gateway_api::gateways::Gateway;
use gateway_api::httproutes::HttpRoute;
use gateway_api::referencegrants::ReferenceGrant;
use infergate_crds::{
    AIGatewayRoute, AIServiceBackend, Backend, BackendSecurityPolicy, BackendTrafficPolicy,
    GatewayConfig, InferenceObjective, InferencePool,
};
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::object::{Kind, ObjectKey, Origin, RawObject};
use crate::source::SourceError;

/// A typed object.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum Body {
    GatewayClass(GatewayClass),
    Gateway(Gateway),
    HTTPRoute(HttpRoute),
    ReferenceGrant(ReferenceGrant),
    BackendTLSPolicy(BackendTlsPolicy),
    AIGatewayRoute(AIGatewayRoute),
    AIServiceBackend(AIServiceBackend),
    BackendSecurityPolicy(BackendSecurityPolicy),
    GatewayConfig(GatewayConfig),
    Backend(Backend),
    BackendTrafficPolicy(BackendTrafficPolicy),
    InferencePool(InferencePool),
    InferenceObjective(InferenceObjective),
    Secret(Secret),
    Service(Service),
    Pod(Pod),
    EndpointSlice(EndpointSlice),
}

/// An object's state in the index.
#[derive(Debug, Clone)]
struct Entry {
    origin: Option<Origin>,
    raw: serde_json::Value,
    last_good: Option<Arc<Body>>,
    error: Option<String>,
}

/// Why an object is not (or not fully) in the config.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Invalid {
    pub message: String,
    /// True when an earlier good version of the object is still being served.
    pub serving_last_good: bool,
}

/// The state machine.
#[derive(Debug, Default)]
pub struct Index {
    entries: BTreeMap<ObjectKey, Entry>,
    source_errors: Vec<SourceError>,
}

impl Index {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces an object. Returns whether anything changed.
    pub fn apply(&mut self, raw: RawObject) -> bool {
        if let Some(entry) = self.entries.get_mut(&raw.key)
            && entry.raw == raw.value
        {
            let moved = entry.origin != raw.origin;
            entry.origin = raw.origin;
            return moved;
        }
        let parsed = parse::parse(&raw).map(Arc::new);
        let previous = self.entries.remove(&raw.key).and_then(|e| e.last_good);
        let entry = match parsed {
            Ok(body) => Entry {
                origin: raw.origin,
                raw: raw.value,
                last_good: Some(body),
                error: None,
            },
            Err(error) => {
                tracing::warn!(object = %raw.key, %error, "object rejected");
                Entry {
                    origin: raw.origin,
                    raw: raw.value,
                    last_good: previous,
                    error: Some(error),
                }
            }
        };
        self.entries.insert(raw.key, entry);
        true
    }

    /// Removes an object. Returns whether it was there.
    pub fn delete(&mut self, key: &ObjectKey) -> bool {
        self.entries.remove(key).is_some()
    }

    /// Replaces the document-level errors of the source (bad YAML, duplicates…).
    pub fn set_source_errors(&mut self, errors: Vec<SourceError>) -> bool {
        let changed = self.source_errors != errors;
        self.source_errors = errors;
        changed
    }

    /// Makes the index hold exactly `objects` (a source with a full view, like a folder).
    pub fn sync(&mut self, objects: BTreeMap<ObjectKey, RawObject>) -> bool {
        let gone: Vec<ObjectKey> = self
            .entries
            .keys()
            .filter(|k| !objects.contains_key(*k))
            .cloned()
            .collect();
        let mut changed = false;
        for key in gone {
            changed |= self.delete(&key);
        }
        for (_, raw) in objects {
            changed |= self.apply(raw);
        }
        changed
    }

    /// Makes the index hold exactly `objects` among the objects of `kind` (a source that lists
    /// one kind at a time, like a Kubernetes watcher after a relist). Objects of other kinds
    /// are untouched.
    pub fn sync_kind(&mut self, kind: Kind, objects: Vec<RawObject>) -> bool {
        let listed: std::collections::BTreeSet<ObjectKey> =
            objects.iter().map(|o| o.key.clone()).collect();
        let gone: Vec<ObjectKey> = self
            .entries
            .keys()
            .filter(|k| k.kind == kind && !listed.contains(*k))
            .cloned()
            .collect();
        let mut changed = false;
        for key in gone {
            changed |= self.delete(&key);
        }
        for raw in objects {
            changed |= self.apply(raw);
        }
        changed
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A consistent, cheap-to-clone view for the translator.
    pub fn snapshot(&self) -> IndexSnapshot {
        let mut snap = IndexSnapshot {
            source_errors: self.source_errors.clone(),
            ..Default::default()
        };
        for (key, entry) in &self.entries {
            if let Some(origin) = &entry.origin {
                snap.origins.insert(key.clone(), origin.clone());
            }
            if let Some(message) = &entry.error {
                let serving_last_good = entry.last_good.is_some();
                snap.invalid.insert(
                    key.clone(),
                    Invalid {
                        message: message.clone(),
                        serving_last_good,
                    },
                );
            }
            if let Some(body) = &entry.last_good {
                snap.objects.insert(key.clone(), body.clone());
            }
        }
        snap
    }
}

/// What the translator sees: the last good version of every object, plus what is wrong.
#[derive(Debug, Clone, Default)]
pub struct IndexSnapshot {
    pub objects: BTreeMap<ObjectKey, Arc<Body>>,
    pub invalid: BTreeMap<ObjectKey, Invalid>,
    pub origins: BTreeMap<ObjectKey, Origin>,
    pub source_errors: Vec<SourceError>,
}

macro_rules! accessors {
    ($($variant:ident => $all:ident, $get:ident: $ty:ty;)*) => {
        impl IndexSnapshot {
            $(
                /// Every object of this kind, in key order.
                pub fn $all(&self) -> impl Iterator<Item = (&ObjectKey, &$ty)> + '_ {
                    let start = ObjectKey::new(Kind::$variant, "", "");
                    self.objects
                        .range(start..)
                        .take_while(|(k, _)| k.kind == Kind::$variant)
                        .filter_map(|(k, body)| match body.as_ref() {
                            Body::$variant(object) => Some((k, object)),
                            _ => None,
                        })
                }

                /// The object of this kind named `namespace/name`, if present.
                pub fn $get(&self, namespace: &str, name: &str) -> Option<&$ty> {
                    match self.objects.get(&ObjectKey::new(Kind::$variant, namespace, name))?.as_ref() {
                        Body::$variant(object) => Some(object),
                        _ => None,
                    }
                }
            )*
        }
    };
}

accessors! {
    GatewayClass => gateway_classes, gateway_class: GatewayClass;
    Gateway => gateways, gateway: Gateway;
    HTTPRoute => http_routes, http_route: HttpRoute;
    ReferenceGrant => reference_grants, reference_grant: ReferenceGrant;
    BackendTLSPolicy => backend_tls_policies, backend_tls_policy: BackendTlsPolicy;
    AIGatewayRoute => ai_gateway_routes, ai_gateway_route: AIGatewayRoute;
    AIServiceBackend => ai_service_backends, ai_service_backend: AIServiceBackend;
    BackendSecurityPolicy => backend_security_policies, backend_security_policy: BackendSecurityPolicy;
    GatewayConfig => gateway_configs, gateway_config: GatewayConfig;
    Backend => backends, backend: Backend;
    BackendTrafficPolicy => backend_traffic_policies, backend_traffic_policy: BackendTrafficPolicy;
    InferencePool => inference_pools, inference_pool: InferencePool;
    InferenceObjective => inference_objectives, inference_objective: InferenceObjective;
    Secret => secrets, secret: Secret;
    Service => services, service: Service;
    Pod => pods, pod: Pod;
    EndpointSlice => endpoint_slices, endpoint_slice: EndpointSlice;
}

#[cfg(test)]
mod tests;
