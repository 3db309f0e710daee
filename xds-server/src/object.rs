//! Identity of a configuration object (kind, namespace, name) and where it came from.

use std::fmt;
use std::path::PathBuf;

/// The kinds the gateway acts on. Anything else is skipped by the sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Kind {
    GatewayClass,
    Gateway,
    HTTPRoute,
    ReferenceGrant,
    BackendTLSPolicy,
    AIGatewayRoute,
    AIServiceBackend,
    BackendSecurityPolicy,
    GatewayConfig,
    Backend,
    BackendTrafficPolicy,
    InferencePool,
    InferenceObjective,
    Secret,
    Service,
    Pod,
    EndpointSlice,
}

/// What the sources decide about a document's `apiVersion` + `kind`.
#[derive(Debug, PartialEq, Eq)]
pub enum TypeMatch {
    /// A kind we act on, in a version we serve.
    Known(Kind),
    /// A kind we act on, in a version we do not serve: an error naming the served versions.
    WrongVersion {
        kind: Kind,
        served: &'static [&'static str],
    },
    /// Not ours (Deployment, ConfigMap, RBAC…): skipped.
    Skipped,
}

const AIGW: &[&str] = &[
    "aigateway.envoyproxy.io/v1beta1",
    "aigateway.envoyproxy.io/v1alpha1",
];
const GWAPI: &[&str] = &["gateway.networking.k8s.io/v1"];
const GWAPI_BETA: &[&str] = &[
    "gateway.networking.k8s.io/v1",
    "gateway.networking.k8s.io/v1beta1",
];
const GWAPI_ALPHA3: &[&str] = &[
    "gateway.networking.k8s.io/v1",
    "gateway.networking.k8s.io/v1alpha3",
];
const EG: &[&str] = &["gateway.envoyproxy.io/v1alpha1"];
const POOL: &[&str] = &["inference.networking.k8s.io/v1"];
const OBJECTIVE: &[&str] = &["inference.networking.x-k8s.io/v1alpha2"];
const CORE: &[&str] = &["v1"];
const DISCOVERY: &[&str] = &["discovery.k8s.io/v1"];

impl Kind {
    pub const ALL: &'static [Kind] = &[
        Kind::GatewayClass,
        Kind::Gateway,
        Kind::HTTPRoute,
        Kind::ReferenceGrant,
        Kind::BackendTLSPolicy,
        Kind::AIGatewayRoute,
        Kind::AIServiceBackend,
        Kind::BackendSecurityPolicy,
        Kind::GatewayConfig,
        Kind::Backend,
        Kind::BackendTrafficPolicy,
        Kind::InferencePool,
        Kind::InferenceObjective,
        Kind::Secret,
        Kind::Service,
        Kind::Pod,
        Kind::EndpointSlice,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::GatewayClass => "GatewayClass",
            Kind::Gateway => "Gateway",
            Kind::HTTPRoute => "HTTPRoute",
            Kind::ReferenceGrant => "ReferenceGrant",
            Kind::BackendTLSPolicy => "BackendTLSPolicy",
            Kind::AIGatewayRoute => "AIGatewayRoute",
            Kind::AIServiceBackend => "AIServiceBackend",
            Kind::BackendSecurityPolicy => "BackendSecurityPolicy",
            Kind::GatewayConfig => "GatewayConfig",
            Kind::Backend => "Backend",
            Kind::BackendTrafficPolicy => "BackendTrafficPolicy",
            Kind::InferencePool => "InferencePool",
            Kind::InferenceObjective => "InferenceObjective",
            Kind::Secret => "Secret",
            Kind::Service => "Service",
            Kind::Pod => "Pod",
            Kind::EndpointSlice => "EndpointSlice",
        }
    }

    /// The `apiVersion`s we serve for this kind; the first is the preferred one.
    pub fn served_versions(self) -> &'static [&'static str] {
        match self {
            Kind::GatewayClass | Kind::Gateway | Kind::HTTPRoute => GWAPI,
            Kind::ReferenceGrant => GWAPI_BETA,
            Kind::BackendTLSPolicy => GWAPI_ALPHA3,
            Kind::AIGatewayRoute
            | Kind::AIServiceBackend
            | Kind::BackendSecurityPolicy
            | Kind::GatewayConfig => AIGW,
            Kind::Backend | Kind::BackendTrafficPolicy => EG,
            Kind::InferencePool => POOL,
            Kind::InferenceObjective => OBJECTIVE,
            Kind::Secret | Kind::Service | Kind::Pod => CORE,
            Kind::EndpointSlice => DISCOVERY,
        }
    }

    /// API group of the kind ("" for the core group).
    pub fn group(self) -> &'static str {
        let version = self.served_versions()[0];
        version
            .rsplit_once('/')
            .map(|(group, _)| group)
            .unwrap_or("")
    }

    /// Cluster-scoped kinds have an empty namespace in their [`ObjectKey`].
    pub fn is_namespaced(self) -> bool {
        !matches!(self, Kind::GatewayClass)
    }

    /// Classifies a document by its `apiVersion` and `kind`.
    pub fn classify(api_version: &str, kind: &str) -> TypeMatch {
        let Some(known) = Kind::ALL.iter().copied().find(|k| k.as_str() == kind) else {
            return TypeMatch::Skipped;
        };
        let served = known.served_versions();
        if served.contains(&api_version) {
            return TypeMatch::Known(known);
        }
        let group = api_version
            .rsplit_once('/')
            .map(|(group, _)| group)
            .unwrap_or("");
        if group == known.group() {
            TypeMatch::WrongVersion {
                kind: known,
                served,
            }
        } else {
            // Same kind name in somebody else's API group (e.g. a different `Backend`).
            TypeMatch::Skipped
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The identity of an object: what the index is keyed by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct ObjectKey {
    pub kind: Kind,
    /// Empty for cluster-scoped kinds.
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(kind: Kind, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        let namespace = if kind.is_namespaced() {
            namespace.into()
        } else {
            String::new()
        };
        ObjectKey {
            kind,
            namespace,
            name: name.into(),
        }
    }

    /// `namespace/name` (or `name` when cluster-scoped), as used in names and messages.
    pub fn namespaced_name(&self) -> String {
        if self.namespace.is_empty() {
            self.name.clone()
        } else {
            format!("{}/{}", self.namespace, self.name)
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.namespaced_name())
    }
}

/// Where a document was read from: file and 0-based document index within it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Origin {
    pub file: PathBuf,
    pub doc: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (document {})", self.file.display(), self.doc + 1)
    }
}

/// An object as a source hands it to the index: identity, origin and its JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct RawObject {
    pub key: ObjectKey,
    pub api_version: String,
    pub origin: Option<Origin>,
    pub value: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1alpha1_ai_gateway_kinds_are_accepted_like_v1beta1() {
        assert_eq!(
            Kind::classify("aigateway.envoyproxy.io/v1alpha1", "AIGatewayRoute"),
            TypeMatch::Known(Kind::AIGatewayRoute)
        );
        assert_eq!(
            Kind::classify("aigateway.envoyproxy.io/v1beta1", "AIServiceBackend"),
            TypeMatch::Known(Kind::AIServiceBackend)
        );
    }

    #[test]
    fn an_unserved_version_of_a_known_group_is_an_error_not_a_skip() {
        assert!(matches!(
            Kind::classify("aigateway.envoyproxy.io/v9", "AIGatewayRoute"),
            TypeMatch::WrongVersion {
                kind: Kind::AIGatewayRoute,
                ..
            }
        ));
    }

    #[test]
    fn kinds_we_do_not_act_on_are_skipped() {
        assert_eq!(Kind::classify("apps/v1", "Deployment"), TypeMatch::Skipped);
        assert_eq!(Kind::classify("v1", "ConfigMap"), TypeMatch::Skipped);
        assert_eq!(
            Kind::classify("example.com/v1", "Backend"),
            TypeMatch::Skipped
        );
    }

    #[test]
    fn cluster_scoped_keys_drop_the_namespace() {
        let key = ObjectKey::new(Kind::GatewayClass, "default", "eg");
        assert_eq!(key.namespaced_name(), "eg");
    }
}
