//! `BackendSecurityPolicy`: how the gateway authenticates to an AI provider.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::oidc::Oidc;
use crate::refs::{ConditionsStatus, LocalPolicyTargetReference, SecretObjectReference};

/// Which credential block of a [`BackendSecurityPolicySpec`] is in effect.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum BackendSecurityPolicyType {
    /// `Authorization: Bearer <key>` (`apiKey`).
    APIKey,
    /// Azure OpenAI `api-key` header (`azureAPIKey`).
    AzureAPIKey,
    /// Anthropic `x-api-key` header (`anthropicAPIKey`).
    AnthropicAPIKey,
    /// AWS SigV4 signing (`awsCredentials`).
    AWSCredentials,
    /// Azure Entra ID tokens (`azureCredentials`).
    AzureCredentials,
    /// GCP access tokens (`gcpCredentials`).
    GCPCredentials,
}

/// Spec of a `BackendSecurityPolicy`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "aigateway.envoyproxy.io",
    version = "v1beta1",
    kind = "BackendSecurityPolicy",
    doc = "BackendSecurityPolicy says how the gateway authenticates to the AI providers it targets.",
    plural = "backendsecuritypolicies",
    namespaced,
    status = "BackendSecurityPolicyStatus",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct BackendSecurityPolicySpec {
    /// AIServiceBackends (or InferencePools) this policy applies to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<LocalPolicyTargetReference>,
    /// Which of the credential blocks below is used.
    #[serde(rename = "type")]
    pub type_: BackendSecurityPolicyType,
    /// Bearer API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<SecretRefCredential>,
    /// Azure OpenAI API key.
    #[serde(
        default,
        rename = "azureAPIKey",
        skip_serializing_if = "Option::is_none"
    )]
    pub azure_api_key: Option<SecretRefCredential>,
    /// Anthropic API key.
    #[serde(
        default,
        rename = "anthropicAPIKey",
        skip_serializing_if = "Option::is_none"
    )]
    pub anthropic_api_key: Option<SecretRefCredential>,
    /// AWS credentials for SigV4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_credentials: Option<AwsCredentials>,
    /// Azure Entra ID credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_credentials: Option<AzureCredentials>,
    /// GCP credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcp_credentials: Option<GcpCredentials>,
    /// Let clients bring their own credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_override: Option<CredentialOverride>,
}

/// Status of a `BackendSecurityPolicy`.
pub type BackendSecurityPolicyStatus = ConditionsStatus;

/// A credential held in a Secret (key `apiKey` for the API key kinds).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRefCredential {
    /// The Secret holding the credential.
    pub secret_ref: SecretObjectReference,
}

/// AWS credentials: a credentials file in a Secret, or an OIDC token exchanged for a role.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsCredentials {
    /// AWS region used for signing.
    pub region: String,
    /// An AWS shared credentials file stored in a Secret (key `credentials`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<AwsCredentialsFile>,
    /// OIDC token exchanged through STS `AssumeRoleWithWebIdentity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc_exchange_token: Option<AwsOidcExchangeToken>,
}

/// An AWS shared credentials file.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsCredentialsFile {
    /// The Secret holding the file.
    pub secret_ref: SecretObjectReference,
    /// Profile within the file; `default` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

/// OIDC settings for exchanging an identity token (shared by AWS, Azure and GCP).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackendSecurityPolicyOidc {
    /// The OIDC client used to obtain the identity token.
    pub oidc: Oidc,
    /// OAuth grant type; `client_credentials` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_type: Option<String>,
    /// Audience of the requested token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

/// AWS OIDC exchange: the OIDC settings plus the role to assume.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsOidcExchangeToken {
    /// The OIDC client used to obtain the identity token.
    pub oidc: Oidc,
    /// OAuth grant type; `client_credentials` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_type: Option<String>,
    /// Audience of the requested token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// ARN of the role to assume.
    pub aws_role_arn: String,
}

/// Azure Entra ID credentials: a client secret or an exchanged OIDC token.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureCredentials {
    /// Application (client) ID.
    #[serde(rename = "clientID")]
    pub client_id: String,
    /// Directory (tenant) ID.
    #[serde(rename = "tenantID")]
    pub tenant_id: String,
    /// Secret holding the client secret (key `client-secret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_ref: Option<SecretObjectReference>,
    /// OIDC token exchanged for an Entra ID token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc_exchange_token: Option<BackendSecurityPolicyOidc>,
}

/// GCP credentials: a service-account key file or workload identity federation.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcpCredentials {
    /// GCP project that hosts the model.
    pub project_name: String,
    /// GCP region of the model endpoint.
    pub region: String,
    /// A service-account key file in a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<SecretRefCredential>,
    /// Workload identity federation settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_identity_federation_config: Option<GcpWorkloadIdentityFederationConfig>,
}

/// GCP workload identity federation.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcpWorkloadIdentityFederationConfig {
    /// Project that owns the workload identity pool.
    #[serde(rename = "projectID")]
    pub project_id: String,
    /// Name of the workload identity provider.
    pub workload_identity_provider_name: String,
    /// OIDC token exchanged at GCP STS.
    pub oidc_exchange_token: BackendSecurityPolicyOidc,
    /// Name of the workload identity pool.
    pub workload_identity_pool_name: String,
    /// Optional service account to impersonate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_impersonation: Option<GcpServiceAccountImpersonation>,
}

/// A GCP service account to impersonate.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcpServiceAccountImpersonation {
    /// Service account name (without the domain).
    pub service_account_name: String,
}

/// Where a client-supplied credential may come from.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialOverride {
    /// Take the credential from a request header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_request_headers: Option<CredentialFromRequestHeaders>,
    /// Take the credential from dynamic metadata set by an earlier filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_dynamic_metadata: Option<CredentialFromDynamicMetadata>,
}

/// A credential taken from a request header.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialFromRequestHeaders {
    /// Header name; the provider's own auth header when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// Use the configured credential when the header is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_to_configured: Option<bool>,
}

/// A credential taken from dynamic metadata.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialFromDynamicMetadata {
    /// Metadata namespace.
    pub namespace: String,
    /// Metadata key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Use the configured credential when the metadata is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_to_configured: Option<bool>,
}

impl BackendSecurityPolicySpec {
    /// Every Secret the policy names, in any credential block (set or not in effect): what a
    /// control plane must read to resolve it, and nothing else.
    pub fn secret_refs(&self) -> Vec<&SecretObjectReference> {
        let mut refs: Vec<&SecretObjectReference> =
            [&self.api_key, &self.azure_api_key, &self.anthropic_api_key]
                .into_iter()
                .flatten()
                .map(|c| &c.secret_ref)
                .collect();
        if let Some(aws) = &self.aws_credentials {
            refs.extend(aws.credentials_file.as_ref().map(|f| &f.secret_ref));
            if let Some(oidc) = &aws.oidc_exchange_token {
                refs.extend(oidc.oidc.secret_refs());
            }
        }
        if let Some(azure) = &self.azure_credentials {
            refs.extend(azure.client_secret_ref.as_ref());
            if let Some(oidc) = &azure.oidc_exchange_token {
                refs.extend(oidc.oidc.secret_refs());
            }
        }
        if let Some(gcp) = &self.gcp_credentials {
            refs.extend(gcp.credentials_file.as_ref().map(|f| &f.secret_ref));
            if let Some(wif) = &gcp.workload_identity_federation_config {
                refs.extend(wif.oidc_exchange_token.oidc.secret_refs());
            }
        }
        refs
    }
}
