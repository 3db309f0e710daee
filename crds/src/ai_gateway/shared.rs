//! Types shared by several AI Gateway kinds.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::refs::HttpHeader;

/// The API schema a client speaks or a backend serves.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ApiSchemaName {
    /// OpenAI's API (and OpenAI-compatible servers such as vLLM).
    OpenAI,
    /// Cohere's API.
    Cohere,
    /// AWS Bedrock's Converse API.
    AWSBedrock,
    /// Azure OpenAI.
    AzureOpenAI,
    /// GCP Vertex AI (Gemini).
    GCPVertexAI,
    /// Anthropic models on GCP Vertex AI.
    GCPAnthropic,
    /// Anthropic's Messages API.
    Anthropic,
    /// Anthropic models on AWS Bedrock.
    AWSAnthropic,
}

/// An API schema plus optional version and path prefix.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionedApiSchema {
    /// The schema name.
    pub name: ApiSchemaName,
    /// Provider API version (for example the Azure OpenAI `api-version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Path prefix of the backend's API (for example `/v1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// Which usage number becomes a request cost.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum LlmRequestCostType {
    /// Prompt tokens.
    InputToken,
    /// Prompt tokens served from the provider's cache.
    CachedInputToken,
    /// Prompt tokens written to the provider's cache.
    CacheCreationInputToken,
    /// Envoy AI Gateway's newer name for `CacheCreationInputToken`.
    CachedWriteInputToken,
    /// Completion tokens.
    OutputToken,
    /// Prompt plus completion tokens.
    TotalToken,
    /// Reasoning tokens.
    ReasoningToken,
    /// A CEL expression over the usage numbers (see `cel`).
    #[serde(rename = "CEL")]
    Cel,
}

/// A cost computed from a response's token usage, stored as dynamic metadata for rate limiting.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LlmRequestCost {
    /// Key under the `io.envoy.ai_gateway` metadata namespace.
    pub metadata_key: String,
    /// Which number to use.
    #[serde(rename = "type")]
    pub type_: LlmRequestCostType,
    /// CEL expression, when `type` is `CEL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cel: Option<String>,
}

/// Header changes applied to upstream requests.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpHeaderMutation {
    /// Headers to set, overwriting existing values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<HttpHeader>,
    /// Header names to remove.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// JSON body changes applied to upstream requests.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpBodyMutation {
    /// Top-level fields to set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<HttpBodyField>,
    /// Top-level field names to remove.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// One body field to set; `value` is JSON text (`"0.7"`, `"\"text\""`, `"{}"`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpBodyField {
    /// Top-level field name.
    pub path: String,
    /// JSON-encoded value.
    pub value: String,
}
