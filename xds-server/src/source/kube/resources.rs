//! The Kubernetes resources the source watches, one per [`Kind`], in the kind's preferred
//! (first served) version.

use kube::api::{Api, ApiResource, DynamicObject};

use crate::object::Kind;

/// Every kind the index knows is watched.
pub const WATCHED: &[Kind] = Kind::ALL;

/// The plural resource name of a kind, as in the API path.
pub fn plural(kind: Kind) -> &'static str {
    match kind {
        Kind::GatewayClass => "gatewayclasses",
        Kind::Gateway => "gateways",
        Kind::HTTPRoute => "httproutes",
        Kind::ReferenceGrant => "referencegrants",
        Kind::BackendTLSPolicy => "backendtlspolicies",
        Kind::AIGatewayRoute => "aigatewayroutes",
        Kind::AIServiceBackend => "aiservicebackends",
        Kind::BackendSecurityPolicy => "backendsecuritypolicies",
        Kind::GatewayConfig => "gatewayconfigs",
        Kind::Backend => "backends",
        Kind::BackendTrafficPolicy => "backendtrafficpolicies",
        Kind::InferencePool => "inferencepools",
        Kind::InferenceObjective => "inferenceobjectives",
        Kind::Secret => "secrets",
        Kind::Service => "services",
        Kind::Pod => "pods",
        Kind::EndpointSlice => "endpointslices",
    }
}

/// The API resource of a kind in its preferred version.
pub fn api_resource(kind: Kind) -> ApiResource {
    let api_version = kind.served_versions()[0];
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    ApiResource {
        group: group.to_string(),
        version: version.to_string(),
        api_version: api_version.to_string(),
        kind: kind.as_str().to_string(),
        plural: plural(kind).to_string(),
    }
}

/// The API to list and watch `kind` with: in `namespace` when given and the kind is
/// namespaced, cluster-wide otherwise.
pub fn api(client: kube::Client, kind: Kind, namespace: Option<&str>) -> Api<DynamicObject> {
    let resource = api_resource(kind);
    match namespace {
        Some(ns) if kind.is_namespaced() => Api::namespaced_with(client, ns, &resource),
        _ => Api::all_with(client, &resource),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_use_the_preferred_version_and_group() {
        let pool = api_resource(Kind::InferencePool);
        assert_eq!(pool.group, "inference.networking.k8s.io");
        assert_eq!(pool.version, "v1");
        let secret = api_resource(Kind::Secret);
        assert_eq!(
            (secret.group.as_str(), secret.api_version.as_str()),
            ("", "v1")
        );
        assert_eq!(
            api_resource(Kind::AIGatewayRoute).api_version,
            "aigateway.envoyproxy.io/v1beta1"
        );
    }
}
