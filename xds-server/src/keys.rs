//! Every header name, metadata namespace and well-known value the control plane writes, in one place.

/// Header the router-leg ext_proc sets from the request body; AIGatewayRoute rules match on it.
pub const MODEL_HEADER: &str = "x-ai-eg-model";

/// Dynamic and endpoint metadata namespace shared with Envoy AI Gateway (costs, backend name…).
pub const AI_GATEWAY_METADATA_NAMESPACE: &str = "io.envoy.ai_gateway";

/// Endpoint (host) metadata namespace naming the backend a host belongs to; the extproc
/// upstream leg reads it through `xds.upstream_host_metadata`.
pub const BACKEND_METADATA_NAMESPACE: &str = "infergate.backend";
/// Key under [`BACKEND_METADATA_NAMESPACE`]: `namespace/name` of the AIServiceBackend or Backend.
pub const BACKEND_METADATA_NAME: &str = "backend";
/// Key under [`BACKEND_METADATA_NAMESPACE`]: `namespace/name` of the route the host serves.
pub const BACKEND_METADATA_ROUTE: &str = "route";
/// Key under [`BACKEND_METADATA_NAMESPACE`]: index of the rule in that route.
pub const BACKEND_METADATA_RULE: &str = "rule";

/// Endpoint metadata namespace Envoy reads to pick one of a cluster's `transport_socket_matches`.
pub const TRANSPORT_SOCKET_MATCH_NAMESPACE: &str = "envoy.transport_socket_match";

/// GatewayClass controller names this gateway accepts by default: ours and Envoy Gateway's, so
/// manifests written for Envoy Gateway / Envoy AI Gateway work unchanged.
pub const DEFAULT_CONTROLLER_NAMES: &[&str] = &[
    "infergate.io/gateway-controller",
    "gateway.envoyproxy.io/gatewayclass-controller",
];

/// Envoy node `cluster` that asks for every Gateway's config.
pub const NODE_CLUSTER_ALL: &str = "infergate";

/// Default request timeout of an AIGatewayRoute rule (Envoy AI Gateway's default).
pub const DEFAULT_AI_ROUTE_TIMEOUT_SECS: u64 = 60;

/// CA bundle used when a Backend asks for the system's well-known CAs.
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Name of the router-leg ext_proc filter in the HTTP connection manager (per-route config key).
pub const EXTPROC_ROUTER_FILTER: &str = "infergate.extproc.router";
/// Name of the upstream-leg ext_proc filter in AI rule clusters.
pub const EXTPROC_UPSTREAM_FILTER: &str = "infergate.extproc.upstream";
/// Cluster Envoy reaches the extproc through.
pub const EXTPROC_CLUSTER: &str = "infergate/extproc";
/// ext_proc request attribute carrying the picked host's metadata to the upstream leg.
pub const UPSTREAM_HOST_METADATA_ATTRIBUTE: &str = "xds.upstream_host_metadata";
