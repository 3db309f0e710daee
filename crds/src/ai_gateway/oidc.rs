//! Envoy Gateway's `OIDC` client settings, as embedded by BackendSecurityPolicy token exchanges.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::refs::{DURATION_PATTERN, SecretObjectReference};

/// An OIDC client.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Oidc {
    /// The identity provider.
    pub provider: OidcProvider,
    /// Client ID.
    #[serde(default, rename = "clientID", skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Secret holding the client ID (key `client-id`).
    #[serde(
        default,
        rename = "clientIDRef",
        skip_serializing_if = "Option::is_none"
    )]
    pub client_id_ref: Option<SecretObjectReference>,
    /// Secret holding the client secret (key `client-secret`).
    pub client_secret: SecretObjectReference,
    /// Scopes to request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Resource indicators to request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// Browser-login settings (cookie names); carried, not interpreted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::opaque::object")]
    pub cookie_names: Option<serde_json::Value>,
    /// Browser-login settings (cookie config); carried, not interpreted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::opaque::object")]
    pub cookie_config: Option<serde_json::Value>,
    /// Browser-login cookie domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie_domain: Option<String>,
    /// Browser-login redirect URL.
    #[serde(
        default,
        rename = "redirectURL",
        skip_serializing_if = "Option::is_none"
    )]
    pub redirect_url: Option<String>,
    /// Browser-login deny-redirect rules; carried, not interpreted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::opaque::object")]
    pub deny_redirect: Option<serde_json::Value>,
    /// Browser-login logout path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logout_path: Option<String>,
    /// Forward the access token upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_access_token: Option<bool>,
    /// Forward the ID token upstream in a header; carried, not interpreted.
    #[serde(
        default,
        rename = "forwardIDToken",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "crate::opaque::object")]
    pub forward_id_token: Option<serde_json::Value>,
    /// Token lifetime when the provider does not say.
    #[serde(
        default,
        rename = "defaultTokenTTL",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub default_token_ttl: Option<String>,
    /// Use refresh tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<bool>,
    /// Refresh-token lifetime when the provider does not say.
    #[serde(
        default,
        rename = "defaultRefreshTokenTTL",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub default_refresh_token_ttl: Option<String>,
    /// CSRF token lifetime.
    #[serde(
        default,
        rename = "csrfTokenTTL",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub csrf_token_ttl: Option<String>,
    /// Disable encryption of stored tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_token_encryption: Option<bool>,
    /// Pass an existing `Authorization` header through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass_through_auth_header: Option<bool>,
}

impl Oidc {
    /// The Secrets the client's id and secret are read from.
    pub fn secret_refs(&self) -> impl Iterator<Item = &SecretObjectReference> {
        self.client_id_ref
            .iter()
            .chain(std::iter::once(&self.client_secret))
    }
}

/// An OIDC identity provider.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OidcProvider {
    /// Issuer URL; endpoints are discovered from it when not given.
    pub issuer: String,
    /// Authorization endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<String>,
    /// Token endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    /// End-session endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_session_endpoint: Option<String>,
    /// Cluster used to reach the provider; carried, not interpreted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::opaque::object")]
    pub backend_ref: Option<serde_json::Value>,
    /// Clusters used to reach the provider; carried, not interpreted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::opaque::object_list")]
    pub backend_refs: Option<serde_json::Value>,
    /// Settings of that cluster; carried, not interpreted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::opaque::object")]
    pub backend_settings: Option<serde_json::Value>,
}
