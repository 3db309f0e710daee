//! Every header name, metadata namespace and key the endpoint picker reads or writes, in one
//! place. Spellings follow the Endpoint Picker Protocol of the Gateway API Inference Extension
//! (`docs/proposals/004-endpoint-picker-protocol`), so any conformant data plane works with it.

/// Request header carrying the picked endpoint(s): `ip:port[,ip:port…]`, primary first.
pub const DESTINATION_ENDPOINT: &str = "x-gateway-destination-endpoint";
/// Dynamic metadata namespace of the picked endpoint (response) and of the served endpoint
/// (request `metadata_context`).
pub const DESTINATION_ENDPOINT_NAMESPACE: &str = "envoy.lb";
/// Key under [`DESTINATION_ENDPOINT_NAMESPACE`] the data plane reports the endpoint that served
/// the request with.
pub const DESTINATION_ENDPOINT_SERVED: &str = "x-gateway-destination-endpoint-served";
/// Request metadata namespace of the subset hint.
pub const SUBSET_HINT_NAMESPACE: &str = "envoy.lb.subset_hint";
/// Key under [`SUBSET_HINT_NAMESPACE`]: list of `ip:port` the pick must come from.
pub const SUBSET_HINT: &str = "x-gateway-destination-endpoint-subset";
/// Request header naming the InferenceObjective of a request.
pub const OBJECTIVE_HEADER: &str = "x-gateway-inference-objective";
/// Request header set when the pick rewrote the body length (the body is re-sent unchanged,
/// so the value is the body's own length).
pub const CONTENT_LENGTH_HEADER: &str = "content-length";
/// Pseudo-header with the request method.
pub const METHOD_HEADER: &str = ":method";
/// Content type of the immediate responses' JSON bodies.
pub const CONTENT_TYPE_HEADER: &str = "content-type";

/// gRPC health service: the process is up.
pub const HEALTH_LIVENESS: &str = "liveness";
/// gRPC health service: the picker has endpoints and metrics to pick with.
pub const HEALTH_READINESS: &str = "readiness";
/// gRPC health service the Inference Extension's manifests probe (same as readiness).
pub const HEALTH_INFERENCE_EXTENSION: &str = "inference-extension";
/// gRPC health service named after the ext_proc service itself (same as readiness).
pub const HEALTH_EXT_PROC: &str = "envoy.service.ext_proc.v3.ExternalProcessor";
