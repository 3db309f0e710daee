//! Every descriptor entry key, Redis key shape, metric name and default of the rate-limit
//! service, in one place.
//!
//! The entry keys are the wire contract with the route config the xds-server generates: each
//! descriptor carries its own rule id and limit, so the service holds no configuration.

/// Entry key: the opaque rule id (`default/my-policy/0`). Required.
pub const RULE: &str = "infergate.rule";
/// Entry key: `<requests>/<unit>`, unit one of [`crate::window::Unit`]'s names. Required.
pub const LIMIT: &str = "infergate.limit";
/// Entry key: [`MODE_RESERVE`] or [`MODE_SETTLE`]; absent = plain counting.
pub const MODE: &str = "infergate.mode";
/// Entry key: `true` = counted and reported, never OVER_LIMIT.
pub const SHADOW: &str = "infergate.shadow";
/// Entry key (mode settle only): `<n>:<unix_seconds>`, the amount reserved and when.
pub const RESERVED: &str = "infergate.reserved";

/// [`MODE`] value: admit while the budget is not spent, adding the request's estimate.
pub const MODE_RESERVE: &str = "reserve";
/// [`MODE`] value: replace the reservation with the real usage; never rejects.
pub const MODE_SETTLE: &str = "settle";
/// [`SHADOW`] values.
pub const SHADOW_TRUE: &str = "true";
pub const SHADOW_FALSE: &str = "false";

/// Entry keys that configure a descriptor; every other entry is a selector of its counter.
pub const CONTROL_KEYS: &[&str] = &[RULE, LIMIT, MODE, SHADOW, RESERVED];

/// Redis key prefix: `infergate:rl:<counter-hash-hex>:<window_start>`.
pub const REDIS_KEY_PREFIX: &str = "infergate:rl:";
/// How long a Redis counter outlives its window (clock skew between replicas, late settles).
pub const REDIS_EXPIRY_MARGIN_MS: u64 = 1_000;

/// Default gRPC address (`envoy.service.ratelimit.v3.RateLimitService`).
pub const DEFAULT_GRPC_PORT: u16 = 8081;
/// Default admin HTTP address (`/healthz`, `/readyz`, `/metrics`).
pub const DEFAULT_ADMIN_PORT: u16 = 8082;
/// Default bound on one Redis call, connection included.
pub const DEFAULT_REDIS_TIMEOUT_MS: u64 = 100;

/// Metric names (prometheus-client appends `_total` to counters and `_seconds` to the unit).
pub const METRIC_DECISIONS: &str = "infergate_ratelimit_decisions";
pub const METRIC_DECISION_DURATION: &str = "infergate_ratelimit_decision_duration";
pub const METRIC_STORAGE_ERRORS: &str = "infergate_ratelimit_storage_errors";
pub const METRIC_INVALID_DESCRIPTORS: &str = "infergate_ratelimit_invalid_descriptors";
