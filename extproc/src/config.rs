//! What the control plane delivers to the extproc (JSON), and its compiled form.
//!
//! [`Config`] is the wire model: routes with their rules, backends with schema, mutations and
//! credentials, already resolved by the xds-server (Secrets read, references followed).
//! [`Config::build`] validates and compiles it into a [`RuntimeConfig`]. The policy is the
//! translator's: a bad route or backend becomes a [`ConfigError`] naming it and is left out;
//! it never fails the whole config.

mod build;
mod store;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use build::{
    AwsCredential, AzureCredential, Backend, BackendRef, BodyMutation, BuildOutput, ConfigError,
    Credential, CredentialOverride, GcpCredential, HeaderMutation, ListedModel, ObjectKind, Route,
    Rule, RuntimeConfig, SUPPORTED_SCHEMAS, Schema,
};
pub use store::ConfigStore;

/// Everything the extproc needs, as the control plane sends it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// Opaque version chosen by the control plane (a content hash), echoed in logs.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// Largest request body accepted, in bytes; 32 MiB when absent. Envoy's buffer limit on the
    /// router-leg listener is set to match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body_limit_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<BackendConfig>,
}

/// One AIGatewayRoute.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteConfig {
    /// `namespace/name`.
    pub name: String,
    /// Hostnames the route serves (`*.example.com` allowed); empty serves every host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    /// Creation time of the route; the default `created` of its listed models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<jiff::Timestamp>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RuleConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub llm_request_costs: Vec<CostConfig>,
}

/// One rule of a route, in the route's order (the index is the `rule` of host metadata).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleConfig {
    /// Exact `x-ai-eg-model` matches of the rule: the models it serves and lists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models_owned_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models_created_at: Option<jiff::Timestamp>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backend_refs: Vec<BackendRefConfig>,
}

/// A rule's reference to a backend, with what it changes for that backend.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendRefConfig {
    /// `namespace/name` of the backend.
    pub name: String,
    /// Model the upstream is asked for instead of the client's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_name_override: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_mutation: Option<HeaderMutationConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_mutation: Option<BodyMutationConfig>,
}

/// One AIServiceBackend with its security policy resolved.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendConfig {
    /// `namespace/name`.
    pub name: String,
    pub schema: SchemaConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_mutation: Option<HeaderMutationConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_mutation: Option<BodyMutationConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<CredentialConfig>,
    /// Clients may bring their own credential (`credentialOverride.fromRequestHeaders`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_override: Option<CredentialOverrideConfig>,
}

/// Where a client's own credential comes from, and whether the configured one stands in
/// when the client sends none.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CredentialOverrideConfig {
    /// The request header; the provider's own credential header when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    #[serde(default)]
    pub fallback_to_configured: bool,
}

/// The API a backend speaks. `name` is a string so an unsupported schema is an error on that
/// backend, not on the whole config.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SchemaConfig {
    /// `OpenAI`, `Anthropic` or `AzureOpenAI`.
    pub name: String,
    /// Path prefix of the API on the upstream (`v1` when absent): `/v1/chat/completions` goes to
    /// `/{prefix}/chat/completions`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// `api-version` of `AzureOpenAI` (required), `anthropic-version` of `Anthropic` when
    /// chat completions are translated to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderMutationConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<HeaderConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderConfig {
    pub name: String,
    pub value: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BodyMutationConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<BodyFieldConfig>,
    /// Field paths to remove (`a.b` reaches into objects).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// `value` is JSON text (`"\"scale\""`, `42`, `{"a":1}`); text that is not JSON is taken as a
/// plain string, as Envoy AI Gateway does.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BodyFieldConfig {
    /// Field path (`a.b` reaches into objects, creating them).
    pub path: String,
    pub value: String,
}

/// Upstream credential, with the secret value already read by the control plane.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq)]
#[serde(tag = "kind", deny_unknown_fields)]
pub enum CredentialConfig {
    /// `Authorization: Bearer <key>` (OpenAI schema), `x-api-key: <key>` (Anthropic schema) or
    /// `api-key: <key>` (AzureOpenAI schema).
    #[serde(rename = "APIKey")]
    ApiKey { key: String },
    /// SigV4 (AWSBedrock schema) with static keys, from a BackendSecurityPolicy's
    /// `awsCredentials` (region) and its credentials file.
    #[serde(rename = "AWSCredentials", rename_all = "camelCase")]
    AwsCredentials {
        region: String,
        access_key_id: String,
        secret_access_key: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_token: Option<String>,
    },
    /// GCP OAuth tokens for `GCPVertexAI` and `GCPAnthropic` backends, minted from a
    /// service-account key; `projectName` and `region` also place the model in Vertex's path.
    #[serde(rename = "GCPCredentials", rename_all = "camelCase")]
    GcpCredentials {
        project_name: String,
        region: String,
        /// The service-account key file (JSON) as the Secret holds it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service_account_key: Option<String>,
        /// Token endpoint; the key file's `token_uri` when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token_url: Option<String>,
    },
    /// Entra ID tokens (client credentials) for `AzureOpenAI` backends.
    #[serde(rename = "AzureCredentials", rename_all = "camelCase")]
    AzureCredentials {
        tenant_id: String,
        client_id: String,
        client_secret: String,
        /// Token endpoint; `https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token` when
        /// absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token_url: Option<String>,
    },
}

impl fmt::Debug for CredentialConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialConfig::ApiKey { .. } => f.write_str("ApiKey { key: <redacted> }"),
            CredentialConfig::AwsCredentials { region, .. } => write!(
                f,
                "AwsCredentials {{ region: {region:?}, keys: <redacted> }}"
            ),
            CredentialConfig::GcpCredentials {
                project_name,
                region,
                ..
            } => write!(
                f,
                "GcpCredentials {{ project_name: {project_name:?}, region: {region:?}, key: <redacted> }}"
            ),
            CredentialConfig::AzureCredentials {
                tenant_id,
                client_id,
                ..
            } => write!(
                f,
                "AzureCredentials {{ tenant_id: {tenant_id:?}, client_id: {client_id:?}, secret: <redacted> }}"
            ),
        }
    }
}

/// One `llmRequestCosts` entry of a route.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CostConfig {
    pub metadata_key: String,
    #[serde(rename = "type")]
    pub kind: CostKind,
    /// The expression, for `type: CEL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cel: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CostKind {
    InputToken,
    CachedInputToken,
    #[serde(alias = "CachedWriteInputToken")]
    CacheCreationInputToken,
    OutputToken,
    TotalToken,
    ReasoningToken,
    #[serde(rename = "CEL")]
    Cel,
}

impl Config {
    /// Parses the JSON the control plane sends.
    pub fn from_json(bytes: &[u8]) -> crate::Result<Config> {
        serde_json::from_slice(bytes).map_err(|source| crate::Error::ParseConfig { source })
    }

    /// Validates and compiles; bad routes and backends are reported and left out.
    pub fn build(&self) -> BuildOutput {
        build::build(self)
    }
}
