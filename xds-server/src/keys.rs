//! Every header name, metadata namespace and well-known value the control plane writes, in one place.

/// Header the router-leg ext_proc sets from the request body; AIGatewayRoute rules match on it.
pub const MODEL_HEADER: &str = "x-ai-eg-model";

// The contract with the extproc lives in its crate: host metadata naming the backend, the
// attributes its upstream leg asks Envoy for, the cost metadata namespace, the leg marker.
pub use extproc::keys::{
    AI_GATEWAY_METADATA_NAMESPACE, ATTR_HOST_BACKEND, ATTR_HOST_ROUTE, ATTR_HOST_RULE,
    BACKEND_HEADER, BACKEND_METADATA_NAME, BACKEND_METADATA_NAMESPACE, BACKEND_METADATA_ROUTE,
    BACKEND_METADATA_RULE, CLIENT_CREDENTIAL_HEADERS, INTERNAL_HEADERS, LEG_GRPC_METADATA,
    LEG_ROUTER, LEG_UPSTREAM, METADATA_RESERVE_SUFFIX, METADATA_RESERVED_SUFFIX,
    ORIGINAL_PATH_HEADER, ROUTE_HEADER, RULE_HEADER,
};

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
/// Header mutation and credential filters of clusters that need no upstream leg for OpenAI
/// requests.
pub const NATIVE_HEADERS_FILTER: &str = "infergate.upstream.headers";
pub const NATIVE_CREDENTIAL_FILTER: &str = "infergate.upstream.credential";
/// SDS name of a backend's injected credential: this prefix and the backend's `namespace/name`.
pub const CREDENTIAL_SECRET_PREFIX: &str = "infergate/credential/";
/// Path prefix of the OpenAI API; requests with another original path still go through the
/// upstream leg on a native cluster (they need translating).
pub const OPENAI_PATH_PREFIX: &str = "/v1/";
/// Cluster Envoy reaches the extproc through.
pub const EXTPROC_CLUSTER: &str = "infergate/extproc";

/// Name of the rate limit HTTP filter (per-route config key for the route's descriptors).
pub const RATELIMIT_FILTER: &str = "envoy.filters.http.ratelimit";
/// Cluster Envoy reaches the rate limit service through.
pub const RATELIMIT_CLUSTER: &str = "infergate/ratelimit";
/// Rate limit domain of every descriptor we generate.
pub const RATELIMIT_DOMAIN: &str = "infergate";
// The descriptor entry keys are the rate limit service's wire contract: they live in its crate.
pub use ratelimit::keys::{
    LIMIT as RATELIMIT_ENTRY_LIMIT, MODE as RATELIMIT_ENTRY_MODE,
    MODE_RESERVE as RATELIMIT_MODE_RESERVE, MODE_SETTLE as RATELIMIT_MODE_SETTLE,
    RESERVED as RATELIMIT_ENTRY_RESERVED, RULE as RATELIMIT_ENTRY_RULE,
    SHADOW as RATELIMIT_ENTRY_SHADOW, SHADOW_TRUE as RATELIMIT_SHADOW_TRUE,
};
