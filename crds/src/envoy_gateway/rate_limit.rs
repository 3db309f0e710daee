//! Rate limit settings of a `BackendTrafficPolicy`, including token costs for AI traffic.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Rate limiting: global (shared counters in the rate limit service) or local (per Envoy).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitSpec {
    /// Deprecated selector between `global` and `local`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<RateLimitType>,
    /// Limits counted by the rate limit service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global: Option<RateLimitRules>,
    /// Limits counted in each Envoy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<RateLimitRules>,
}

/// Global or local rate limiting.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RateLimitType {
    /// Shared counters.
    Global,
    /// Per-proxy counters.
    Local,
}

/// A list of rate limit rules.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitRules {
    /// Rules, each counted independently.
    pub rules: Vec<RateLimitRule>,
}

/// One limit for the clients its selectors match.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitRule {
    /// Which requests count; all requests when empty. Conditions are ANDed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_selectors: Vec<RateLimitSelectCondition>,
    /// The limit.
    pub limit: RateLimitValue,
    /// What a request costs; 1 per request when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<RateLimitCost>,
    /// Share one counter across all targets of the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared: Option<bool>,
    /// Count but never reject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow_mode: Option<bool>,
    /// `Off` or `DraftVersion03` (`x-ratelimit-*` response headers).
    #[serde(
        default,
        rename = "xRateLimitHeaders",
        skip_serializing_if = "Option::is_none"
    )]
    pub x_rate_limit_headers: Option<String>,
}

/// Conditions selecting the requests a rule counts.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitSelectCondition {
    /// Header conditions; `Distinct` keeps one counter per header value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<RateLimitHeaderMatch>,
    /// HTTP method conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<RateLimitMethodMatch>,
    /// Path condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<RateLimitPathMatch>,
    /// Client address condition.
    #[serde(
        default,
        rename = "sourceCIDR",
        skip_serializing_if = "Option::is_none"
    )]
    pub source_cidr: Option<SourceMatch>,
    /// Query parameter conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query_params: Vec<RateLimitHeaderMatch>,
}

/// How a header (or query parameter) condition compares.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum RateLimitMatchType {
    /// Equality with `value` (the default).
    #[default]
    Exact,
    /// Regular expression `value`.
    RegularExpression,
    /// One counter per distinct value; `value` is not set.
    Distinct,
}

/// A header or query parameter condition.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitHeaderMatch {
    /// How to compare; `Exact` when unset.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<RateLimitMatchType>,
    /// Header (or parameter) name.
    pub name: String,
    /// Value or pattern; unset for `Distinct`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Match when the condition is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invert: Option<bool>,
}

/// An HTTP method condition.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitMethodMatch {
    /// Method, such as `GET`.
    pub value: String,
    /// Match when the condition is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invert: Option<bool>,
}

/// A path condition.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitPathMatch {
    /// `Exact`, `PathPrefix` (the default) or `RegularExpression`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Path or pattern.
    pub value: String,
    /// Match when the condition is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invert: Option<bool>,
}

/// A client address condition.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceMatch {
    /// `Exact` (one counter for the range, the default) or `Distinct` (one per address).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<SourceMatchType>,
    /// CIDR, such as `10.0.0.0/8`.
    pub value: String,
    /// Match when the condition is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invert: Option<bool>,
}

/// How a client address condition counts.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum SourceMatchType {
    /// One counter for the whole range.
    #[default]
    Exact,
    /// One counter per client address.
    Distinct,
}

/// A number of requests (or cost units) per time unit.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitValue {
    /// Allowed units per `unit`.
    pub requests: u32,
    /// The time unit.
    pub unit: RateLimitUnit,
    /// Take the limit from dynamic metadata instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_metadata: Option<MetadataKey>,
}

/// The time unit of a limit.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum RateLimitUnit {
    /// Per second.
    Second,
    /// Per minute.
    #[default]
    Minute,
    /// Per hour.
    Hour,
    /// Per day.
    Day,
    /// Per week.
    Week,
    /// Per month.
    Month,
    /// Per year.
    Year,
}

/// What a request costs, charged on the request and/or on the response.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitCost {
    /// Charged (and checked) when the request arrives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<RateLimitCostSpecifier>,
    /// Charged after the response, without rejecting it (token usage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<RateLimitCostSpecifier>,
}

/// A fixed cost or one read from dynamic metadata.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitCostSpecifier {
    /// Where the cost comes from.
    pub from: RateLimitCostFrom,
    /// The fixed cost, when `from` is `Number`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<u64>,
    /// The metadata key, when `from` is `Metadata`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<MetadataKey>,
}

/// Where a cost comes from.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum RateLimitCostFrom {
    /// A fixed number.
    #[default]
    Number,
    /// A dynamic metadata value (such as `io.envoy.ai_gateway` / `llm_total_token`).
    Metadata,
}

/// A dynamic metadata namespace and key.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetadataKey {
    /// Metadata namespace (a filter name).
    pub namespace: String,
    /// Key within the namespace.
    pub key: String,
}
