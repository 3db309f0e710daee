//! BackendSecurityPolicy credentials the extproc turns into OAuth tokens: `gcpCredentials` (a
//! service-account key file) and `azureCredentials` (an Entra ID client secret). The secrets
//! are read here; the extproc mints and refreshes the tokens. Messages name the missing field,
//! never a value.

use extproc::config::CredentialConfig;
use infergate_crds::BackendSecurityPolicy;

use super::Cx;
use super::extproc_config::secret;
use crate::object::ObjectKey;
use crate::status::reason;

/// Secret keys tried, in order, for a GCP service-account key file (else the Secret's only
/// key).
const GCP_KEY_FILE_SECRET_KEYS: [&str; 2] = ["service_account.json", "credentials.json"];
/// Secret key of an Entra ID client secret.
const AZURE_CLIENT_SECRET_KEY: &str = "client-secret";

type Failure = (&'static str, String);

pub(super) fn gcp_credential(
    cx: &Cx<'_>,
    policy_key: &ObjectKey,
    policy: &BackendSecurityPolicy,
) -> Result<CredentialConfig, Failure> {
    let Some(gcp) = policy.spec.gcp_credentials.as_ref() else {
        return Err((
            reason::INVALID,
            "type GCPCredentials needs gcpCredentials set".into(),
        ));
    };
    if gcp.project_name.trim().is_empty() || gcp.region.trim().is_empty() {
        return Err((
            reason::INVALID,
            "gcpCredentials needs projectName and region".into(),
        ));
    }
    let Some(file) = gcp.credentials_file.as_ref() else {
        let why = if gcp.workload_identity_federation_config.is_some() {
            "gcpCredentials.workloadIdentityFederationConfig is not supported yet; use credentialsFile"
        } else {
            "gcpCredentials needs credentialsFile"
        };
        return Err((reason::UNSUPPORTED_VALUE, why.into()));
    };
    let secret = secret(cx, policy_key, &file.secret_ref)?;
    let key_file = GCP_KEY_FILE_SECRET_KEYS
        .iter()
        .find_map(|k| secret.get(k))
        .or_else(|| match secret.values.len() {
            1 => secret.values.values().next().map(String::as_str),
            _ => None,
        })
        .ok_or_else(|| {
            (
                reason::INVALID,
                format!(
                    "Secret {} has no service-account key file (key {})",
                    secret.name, GCP_KEY_FILE_SECRET_KEYS[0]
                ),
            )
        })?;
    Ok(CredentialConfig::GcpCredentials {
        project_name: gcp.project_name.trim().to_string(),
        region: gcp.region.trim().to_string(),
        service_account_key: Some(key_file.to_string()),
        token_url: None,
    })
}

pub(super) fn azure_credential(
    cx: &Cx<'_>,
    policy_key: &ObjectKey,
    policy: &BackendSecurityPolicy,
) -> Result<CredentialConfig, Failure> {
    let Some(azure) = policy.spec.azure_credentials.as_ref() else {
        return Err((
            reason::INVALID,
            "type AzureCredentials needs azureCredentials set".into(),
        ));
    };
    let Some(secret_ref) = azure.client_secret_ref.as_ref() else {
        let why = if azure.oidc_exchange_token.is_some() {
            "azureCredentials.oidcExchangeToken is not supported yet; use clientSecretRef"
        } else {
            "azureCredentials needs clientSecretRef"
        };
        return Err((reason::UNSUPPORTED_VALUE, why.into()));
    };
    let secret = secret(cx, policy_key, secret_ref)?;
    let client_secret = secret
        .get(AZURE_CLIENT_SECRET_KEY)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            (
                reason::INVALID,
                format!(
                    "Secret {} has no {AZURE_CLIENT_SECRET_KEY:?} key",
                    secret.name
                ),
            )
        })?;
    Ok(CredentialConfig::AzureCredentials {
        tenant_id: azure.tenant_id.clone(),
        client_id: azure.client_id.clone(),
        client_secret: client_secret.to_string(),
        token_url: None,
    })
}
