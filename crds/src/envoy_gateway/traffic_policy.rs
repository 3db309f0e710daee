//! `BackendTrafficPolicy`: rate limits, retries and timeouts for traffic to the targeted routes or gateways.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::{RateLimitSpec, Retry};
use crate::refs::{DURATION_PATTERN, LocalPolicyTargetReferenceWithSectionName, PolicyStatus};

/// Spec of a `BackendTrafficPolicy`.
///
/// Rate limits, retries and timeouts are typed; the other Envoy Gateway cluster settings
/// (load balancer, health checks, circuit breakers, ...) are accepted and carried as written.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "gateway.envoyproxy.io",
    version = "v1alpha1",
    kind = "BackendTrafficPolicy",
    doc = "BackendTrafficPolicy sets rate limits, retries and timeouts for traffic to its targets.",
    plural = "backendtrafficpolicies",
    shortname = "btp",
    namespaced,
    status = "PolicyStatus",
    derive = "Default",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct BackendTrafficPolicySpec {
    /// Deprecated single target; use `targetRefs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<LocalPolicyTargetReferenceWithSectionName>,
    /// Gateways, routes or route rules this policy applies to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<LocalPolicyTargetReferenceWithSectionName>,
    /// Targets chosen by label.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_selectors: Vec<TargetSelector>,
    /// Rate limiting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSpec>,
    /// Retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
    /// Timeouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Timeout>,
    /// How this policy merges with a gateway-level one: `StrategicMerge`, `JSONMerge`, `Replace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge_type: Option<String>,
    /// Use the downstream HTTP protocol version upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_client_protocol: Option<bool>,
    /// `Service` or `Endpoint` routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_type: Option<String>,
    /// Load balancer settings; carried, not interpreted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::opaque::object")]
    pub load_balancer: Option<serde_json::Value>,
    /// PROXY protocol settings; carried, not interpreted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::opaque::object")]
    pub proxy_protocol: Option<serde_json::Value>,
    /// TCP keepalive settings; carried, not interpreted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::opaque::object")]
    pub tcp_keepalive: Option<serde_json::Value>,
    /// Health checks; carried, not interpreted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::opaque::object")]
    pub health_check: Option<serde_json::Value>,
    /// Circuit breaker thresholds; carried, not interpreted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::opaque::object")]
    pub circuit_breaker: Option<serde_json::Value>,
    /// Connection settings; carried, not interpreted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::opaque::object")]
    pub connection: Option<serde_json::Value>,
    /// DNS settings; carried, not interpreted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::opaque::object")]
    pub dns: Option<serde_json::Value>,
    /// HTTP/2 settings; carried, not interpreted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::opaque::object")]
    pub http2: Option<serde_json::Value>,
    /// Bandwidth limit; carried, not interpreted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::opaque::object")]
    pub bandwidth_limit: Option<serde_json::Value>,
    /// Fault injection; carried, not interpreted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::opaque::object")]
    pub fault_injection: Option<serde_json::Value>,
    /// Admission control; carried, not interpreted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::opaque::object")]
    pub admission_control: Option<serde_json::Value>,
    /// Deprecated response compression; carried, not interpreted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::opaque::object_list")]
    pub compression: Option<serde_json::Value>,
    /// Response compression; carried, not interpreted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::opaque::object_list")]
    pub compressor: Option<serde_json::Value>,
    /// Custom responses; carried, not interpreted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::opaque::object_list")]
    pub response_override: Option<serde_json::Value>,
    /// Protocol upgrades; carried, not interpreted.
    #[serde(
        default,
        rename = "httpUpgrade",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "crate::opaque::object_list")]
    pub http_upgrade: Option<serde_json::Value>,
    /// Request buffering; carried, not interpreted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::opaque::object")]
    pub request_buffer: Option<serde_json::Value>,
    /// Per-backend telemetry; carried, not interpreted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::opaque::object")]
    pub telemetry: Option<serde_json::Value>,
}

/// Selects policy targets by kind and labels.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetSelector {
    /// API group; `gateway.networking.k8s.io` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind of the targets.
    pub kind: String,
    /// Labels the targets must carry.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// Label expressions the targets must satisfy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
    /// Namespaces to select targets from (the policy's own when unset); carried, not interpreted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::opaque::object")]
    pub namespaces: Option<serde_json::Value>,
}

/// Connection and request timeouts.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Timeout {
    /// TCP timeouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpTimeout>,
    /// HTTP timeouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpTimeout>,
}

/// TCP timeouts (Gateway API durations).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TcpTimeout {
    /// Connect timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub connect_timeout: Option<String>,
}

/// HTTP timeouts (Gateway API durations).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpTimeout {
    /// Idle time before an upstream connection is closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub connection_idle_timeout: Option<String>,
    /// Maximum lifetime of an upstream connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub max_connection_duration: Option<String>,
    /// Deadline for the whole request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub request_timeout: Option<String>,
    /// Maximum lifetime of an upstream stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub max_stream_duration: Option<String>,
    /// Idle time before a stream is reset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub stream_idle_timeout: Option<String>,
}
