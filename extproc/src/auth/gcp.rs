//! `GCPCredentials`: a service-account key file minting OAuth access tokens (the JWT bearer
//! grant: a JWT signed RS256 with the account's key, exchanged at the token endpoint for a
//! `cloud-platform` token). The token endpoint is the credential's `token_url`, else the key
//! file's `token_uri`, else Google's.

use serde::Deserialize;
use serde_json::json;

use super::token::TokenError;
use crate::config::GcpCredential;

/// Google's token endpoint, when neither the credential nor the key file names one.
pub const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
/// The scope Vertex AI needs.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// The fields of a service-account key file the grant needs.
#[derive(Deserialize)]
struct KeyFile {
    client_email: String,
    private_key: String,
    #[serde(default)]
    private_key_id: Option<String>,
    #[serde(default)]
    token_uri: Option<String>,
}

/// A token endpoint and the form to POST there.
pub type TokenRequest = (String, Vec<(&'static str, String)>);

/// The token endpoint and form of a JWT bearer grant for `credential`, signed now.
pub fn token_request(credential: &GcpCredential) -> Result<TokenRequest, TokenError> {
    let unusable = |m: &str| TokenError::Credential(format!("GCPCredentials: {m}"));
    let text = credential
        .service_account_key
        .as_deref()
        .ok_or_else(|| unusable("no service-account key file"))?;
    let key: KeyFile = serde_json::from_str(text)
        .map_err(|_| unusable("the key file is not a service-account key"))?;
    let url = credential
        .token_url
        .clone()
        .or(key.token_uri.clone())
        .unwrap_or_else(|| DEFAULT_TOKEN_URL.to_string());
    let now = jiff::Timestamp::now().as_second();
    let mut header = json!({"alg": "RS256", "typ": "JWT"});
    if let Some(kid) = &key.private_key_id {
        header["kid"] = json!(kid);
    }
    let claims = json!({
        "iss": key.client_email,
        "sub": key.client_email,
        "scope": SCOPE,
        "aud": url,
        "iat": now,
        "exp": now + 3600,
    });
    let signing_input = format!(
        "{}.{}",
        base64url(header.to_string().as_bytes()),
        base64url(claims.to_string().as_bytes())
    );
    let signature = sign(&key.private_key, signing_input.as_bytes()).map_err(|m| unusable(&m))?;
    let assertion = format!("{signing_input}.{}", base64url(&signature));
    Ok((
        url,
        vec![
            ("grant_type", JWT_BEARER_GRANT.to_string()),
            ("assertion", assertion),
        ],
    ))
}

/// Unpadded base64url.
fn base64url(bytes: &[u8]) -> String {
    aws_smithy_types::base64::encode(bytes)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

/// The DER of a PKCS#8 PEM private key.
fn pem_der(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("-----"))
        .collect();
    aws_smithy_types::base64::decode(body).ok()
}

/// RS256 over `message` with the PEM key.
fn sign(pem: &str, message: &[u8]) -> Result<Vec<u8>, String> {
    let der = pem_der(pem).ok_or("the private key is not PEM")?;
    let key = ring::signature::RsaKeyPair::from_pkcs8(&der)
        .map_err(|_| "the private key is not a PKCS#8 RSA key".to_string())?;
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        message,
        &mut signature,
    )
    .map_err(|_| "signing failed".to_string())?;
    Ok(signature)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A throwaway 2048-bit key made for these tests only.
    pub(crate) fn test_key_file(token_uri: &str) -> String {
        let pem = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("testdata/gcp-test-service-account-key.pem"),
        )
        .expect("test key");
        json!({
            "type": "service_account",
            "project_id": "infergate-test",
            "private_key_id": "test-key-1",
            "private_key": pem,
            "client_email": "gateway@infergate-test.iam.gserviceaccount.com",
            "token_uri": token_uri,
        })
        .to_string()
    }

    fn decode64url(text: &str) -> Vec<u8> {
        let mut std = text.replace('-', "+").replace('_', "/");
        while !std.len().is_multiple_of(4) {
            std.push('=');
        }
        aws_smithy_types::base64::decode(std).expect("base64url")
    }

    #[test]
    fn the_assertion_is_a_jwt_signed_with_the_accounts_key_for_the_token_endpoint() {
        let credential = GcpCredential {
            project: "p".into(),
            region: "us-east5".into(),
            service_account_key: Some(test_key_file("http://127.0.0.1:9/token")),
            token_url: None,
        };
        let (url, form) = token_request(&credential).expect("request");
        assert_eq!(url, "http://127.0.0.1:9/token");
        assert_eq!(form[0], ("grant_type", JWT_BEARER_GRANT.to_string()));
        let jwt = &form[1].1;
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&decode64url(parts[0])).expect("header");
        let claims: serde_json::Value =
            serde_json::from_slice(&decode64url(parts[1])).expect("claims");
        assert_eq!(
            header,
            json!({"alg": "RS256", "typ": "JWT", "kid": "test-key-1"})
        );
        assert_eq!(claims["aud"], "http://127.0.0.1:9/token");
        assert_eq!(claims["scope"], SCOPE);
        assert_eq!(
            claims["iss"],
            "gateway@infergate-test.iam.gserviceaccount.com"
        );
        assert_eq!(
            claims["exp"].as_i64().unwrap_or(0) - claims["iat"].as_i64().unwrap_or(0),
            3600
        );
        // The signature verifies with the key's public half.
        let pem = json!(
            serde_json::from_str::<serde_json::Value>(
                credential.service_account_key.as_deref().unwrap_or("{}")
            )
            .expect("key")["private_key"]
        )
        .as_str()
        .unwrap_or_default()
        .to_string();
        let der = pem_der(&pem).expect("der");
        let pair = ring::signature::RsaKeyPair::from_pkcs8(&der).expect("key");
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            pair.public().as_ref(),
        );
        public
            .verify(
                format!("{}.{}", parts[0], parts[1]).as_bytes(),
                &decode64url(parts[2]),
            )
            .expect("the signature verifies");
    }

    #[test]
    fn an_unusable_key_file_is_an_error_without_the_secret() {
        let credential = GcpCredential {
            project: "p".into(),
            region: "r".into(),
            service_account_key: Some(
                r#"{"client_email":"a","private_key":"secret-bytes"}"#.into(),
            ),
            token_url: None,
        };
        let err = token_request(&credential)
            .expect_err("unusable")
            .to_string();
        assert!(err.contains("PEM"), "{err}");
        assert!(!err.contains("secret-bytes"), "{err}");
    }
}
