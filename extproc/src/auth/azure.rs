//! `AzureCredentials`: an Entra ID application's client secret minting tokens for Azure
//! OpenAI (the client-credentials grant, scope `cognitiveservices.azure.com`).

use crate::config::AzureCredential;

/// The scope Azure OpenAI tokens need.
pub const SCOPE: &str = "https://cognitiveservices.azure.com/.default";

/// The token endpoint and form of a client-credentials grant for `credential`.
pub fn token_request(credential: &AzureCredential) -> (String, Vec<(&'static str, String)>) {
    let url = credential.token_url.clone().unwrap_or_else(|| {
        format!(
            "https://login.microsoftonline.com/{}/oauth2/v2.0/token",
            crate::translate::azure::encode(&credential.tenant_id)
        )
    });
    let form = vec![
        ("grant_type", "client_credentials".to_string()),
        ("client_id", credential.client_id.clone()),
        ("client_secret", credential.client_secret.clone()),
        ("scope", SCOPE.to_string()),
    ];
    (url, form)
}
