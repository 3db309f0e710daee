//! Every header name, metadata namespace and key the extproc reads or writes, in one place.
//!
//! Names shared with Envoy AI Gateway keep its spelling so route matches, access-log formats and
//! rate-limit policies written for it carry over.

/// Request header the router leg sets from the body's `model`; routes match on it.
pub const MODEL_HEADER: &str = "x-ai-eg-model";
/// Request header the router leg sets to the path the client asked for, before any rewrite.
pub const ORIGINAL_PATH_HEADER: &str = "x-ai-eg-original-path";

/// Prefix of the headers the extproc uses between its own legs. The router leg removes every
/// client-sent copy it knows of, and the upstream leg removes them before the request leaves.
pub const INTERNAL_HEADER_PREFIX: &str = "x-infergate-";
/// Request header (router → upstream leg): the client streams without asking for usage, so the
/// upstream leg may add `stream_options.include_usage` when the route has costs.
pub const STREAM_WITHOUT_USAGE_HEADER: &str = "x-infergate-stream-without-usage";
/// Request header naming the backend (`namespace/name`) when Envoy sends no attributes; only
/// honoured when [`crate::server::Options::trust_backend_header`] is set (tests).
/// Also a response header (upstream → router leg) naming the backend that answered.
pub const BACKEND_HEADER: &str = "x-infergate-backend";
/// Request/response header carrying the route (`namespace/name`), like [`BACKEND_HEADER`].
pub const ROUTE_HEADER: &str = "x-infergate-route";
/// Request/response header carrying the rule index, like [`BACKEND_HEADER`].
pub const RULE_HEADER: &str = "x-infergate-rule";
/// Response header (upstream → router leg): the model the upstream was asked for, when the
/// backend overrides it.
pub const MODEL_OVERRIDE_HEADER: &str = "x-infergate-model-override";
/// Response header (upstream → router leg): the upstream leg added
/// `stream_options.include_usage`, so the final usage-only chunk is not for the client.
pub const USAGE_INJECTED_HEADER: &str = "x-infergate-usage-injected";
/// Every internal header, removed from what clients send and from what leaves the gateway.
pub const INTERNAL_HEADERS: &[&str] = &[
    STREAM_WITHOUT_USAGE_HEADER,
    BACKEND_HEADER,
    ROUTE_HEADER,
    RULE_HEADER,
    MODEL_OVERRIDE_HEADER,
    USAGE_INJECTED_HEADER,
];

/// gRPC request metadata (set in the ext_proc filter's `grpc_service.initial_metadata`) naming
/// the leg a stream serves: [`LEG_ROUTER`] or [`LEG_UPSTREAM`].
pub const LEG_GRPC_METADATA: &str = "x-infergate-leg";
pub const LEG_ROUTER: &str = "router";
pub const LEG_UPSTREAM: &str = "upstream";
/// Counter of ext_proc streams by `leg` (Prometheus adds `_total`).
pub const METRIC_STREAMS: &str = "infergate_extproc_streams";

/// Client credential headers, removed before the gateway's own credential is injected.
pub const CLIENT_CREDENTIAL_HEADERS: &[&str] = &["authorization", "api-key", "x-api-key"];
pub const AUTHORIZATION_HEADER: &str = "authorization";
/// SigV4 headers a client may not pass to an `AWSCredentials` backend (the gateway signs).
pub const AWS_SIGNING_HEADERS: &[&str] =
    &["x-amz-date", "x-amz-security-token", "x-amz-content-sha256"];
pub const X_API_KEY_HEADER: &str = "x-api-key";
/// Azure OpenAI's key header.
pub const AZURE_API_KEY_HEADER: &str = "api-key";
pub const CONTENT_TYPE_HEADER: &str = "content-type";
pub const CONTENT_LENGTH_HEADER: &str = "content-length";
pub const CONTENT_ENCODING_HEADER: &str = "content-encoding";
pub const HOST_HEADER: &str = "host";
pub const PATH_PSEUDO_HEADER: &str = ":path";
pub const METHOD_PSEUDO_HEADER: &str = ":method";
pub const AUTHORITY_PSEUDO_HEADER: &str = ":authority";
pub const STATUS_PSEUDO_HEADER: &str = ":status";

/// Key of `ProcessingRequest.attributes` under which Envoy puts the requested attributes.
pub const EXT_PROC_ATTRIBUTES_KEY: &str = "envoy.filters.http.ext_proc";
/// Host metadata namespace naming the backend a host belongs to (written by the xds-server).
pub const BACKEND_METADATA_NAMESPACE: &str = "infergate.backend";
/// Keys under [`BACKEND_METADATA_NAMESPACE`].
pub const BACKEND_METADATA_NAME: &str = "backend";
pub const BACKEND_METADATA_ROUTE: &str = "route";
pub const BACKEND_METADATA_RULE: &str = "rule";
/// Attributes the ext_proc filters list in `request_attributes` (upstream leg) and
/// `response_attributes` (router leg), as Envoy names them in `ProcessingRequest.attributes`.
pub const ATTR_HOST_BACKEND: &str =
    "xds.upstream_host_metadata.filter_metadata['infergate.backend']['backend']";
pub const ATTR_HOST_ROUTE: &str =
    "xds.upstream_host_metadata.filter_metadata['infergate.backend']['route']";
pub const ATTR_HOST_RULE: &str =
    "xds.upstream_host_metadata.filter_metadata['infergate.backend']['rule']";
/// The whole host metadata, when a filter lists `xds.upstream_host_metadata` itself.
pub const ATTR_HOST_METADATA: &str = "xds.upstream_host_metadata";

/// Dynamic metadata namespace of costs and request facts (Envoy AI Gateway's).
pub const AI_GATEWAY_METADATA_NAMESPACE: &str = "io.envoy.ai_gateway";
pub const METADATA_MODEL_NAME_OVERRIDE: &str = "model_name_override";
pub const METADATA_BACKEND_NAME: &str = "backend_name";
pub const METADATA_ROUTE_NAME: &str = "route_name";
pub const METADATA_RESPONSE_MODEL: &str = "response_model";
/// Suffix of a cost key whose value (a decimal string) is the request-time estimate of that
/// cost, written by the router leg before the rate limit filter reserves it:
/// `llm_total_token.reserve`.
pub const METADATA_RESERVE_SUFFIX: &str = ".reserve";
/// Suffix of a cost key whose value, `<estimate>:<unix seconds>`, tells the rate limit service
/// at stream end what was reserved and when, so it charges the real cost in its place:
/// `llm_total_token.reserved`.
pub const METADATA_RESERVED_SUFFIX: &str = ".reserved";

/// Type URL of the extproc config the xds-server publishes over ADS; the resource's
/// `google.protobuf.Any.value` is the JSON of [`crate::config::Config`].
pub const CONFIG_TYPE_URL: &str = "type.infergate.io/infergate.extproc.Config";
/// Name of the one resource of type [`CONFIG_TYPE_URL`].
pub const CONFIG_RESOURCE_NAME: &str = "extproc-config";
/// `node.cluster` the extproc sends on its ADS stream (not a Gateway: it gets the snapshot for
/// every proxy).
pub const XDS_NODE_CLUSTER: &str = "infergate-extproc";

/// Default request body limit (bytes).
pub const DEFAULT_REQUEST_BODY_LIMIT: u64 = 32 * 1024 * 1024;
/// `owned_by` of listed models when a rule does not say (Envoy AI Gateway's default).
pub const DEFAULT_MODELS_OWNED_BY: &str = "Envoy AI Gateway";
/// Default OpenAI path prefix of an upstream.
pub const DEFAULT_OPENAI_PREFIX: &str = "v1";
/// Default Anthropic path prefix of an upstream.
pub const DEFAULT_ANTHROPIC_PREFIX: &str = "v1";
