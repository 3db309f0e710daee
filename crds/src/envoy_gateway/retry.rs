//! Retry settings of a `BackendTrafficPolicy`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::refs::DURATION_PATTERN;

/// When and how often to retry.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Retry {
    /// Maximum number of retries (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub num_retries: Option<i32>,
    /// Attempts per priority level before moving to the next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_attempts_per_priority: Option<i32>,
    /// Conditions that trigger a retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_on: Option<RetryOn>,
    /// Per-attempt timeout and back-off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_retry: Option<PerRetryPolicy>,
}

/// Conditions that trigger a retry.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryOn {
    /// Envoy retry triggers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<RetryTrigger>,
    /// Response status codes that are retried.
    #[serde(
        default,
        rename = "httpStatusCodes",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub http_status_codes: Vec<u16>,
}

/// An Envoy retry trigger (`x-envoy-retry-on` / `x-envoy-retry-grpc-on` values).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RetryTrigger {
    /// Any 5xx response, connect failure or reset.
    #[serde(rename = "5xx")]
    Error5xx,
    /// 502, 503 or 504.
    GatewayError,
    /// The upstream reset the stream.
    Reset,
    /// Reset before any request bytes were sent.
    ResetBeforeRequest,
    /// Connection failure.
    ConnectFailure,
    /// 409.
    #[serde(rename = "retriable-4xx")]
    Retriable4xx,
    /// REFUSED_STREAM from the upstream.
    RefusedStream,
    /// Status codes listed in `httpStatusCodes`.
    RetriableStatusCodes,
    /// gRPC CANCELLED.
    Cancelled,
    /// gRPC DEADLINE_EXCEEDED.
    DeadlineExceeded,
    /// gRPC INTERNAL.
    Internal,
    /// gRPC RESOURCE_EXHAUSTED.
    ResourceExhausted,
    /// gRPC UNAVAILABLE.
    Unavailable,
}

/// Per-attempt settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PerRetryPolicy {
    /// Timeout of each attempt (Gateway API duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub timeout: Option<String>,
    /// Exponential back-off between attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub back_off: Option<BackOffPolicy>,
}

/// Exponential back-off.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackOffPolicy {
    /// First interval (Gateway API duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub base_interval: Option<String>,
    /// Upper bound of the interval (Gateway API duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub max_interval: Option<String>,
}
