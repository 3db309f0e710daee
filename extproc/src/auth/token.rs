//! OAuth access tokens minted from a credential (`GCPCredentials`, `AzureCredentials`), cached
//! per credential and refreshed in the background before they expire.
//!
//! The config store keeps one [`TokenSource`] per distinct credential of the current config
//! (see [`Tokens::sync`]); each runs a task that fetches a token, sleeps until a fifth of its
//! lifetime is left (at most five minutes before expiry), and fetches again; a failed fetch is
//! retried with backoff while the last good token is served until it expires. Requests read the
//! current token without waiting: before the first token arrives, or once one expired without a
//! successful refresh, a request gets the extproc's `missing_upstream_credential` error.
//!
//! Nothing here logs a secret or a token; errors name the token endpoint and the HTTP status.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use tokio::task::JoinHandle;

use super::{azure, gcp};
use crate::config::{Credential, RuntimeConfig};

/// One access token and when it stops being valid.
#[derive(Clone)]
pub struct Token {
    pub value: String,
    pub expires_at: Instant,
}

/// A token endpoint's answer.
#[derive(Debug, serde::Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// Why a token could not be minted (never carries a secret).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the credential is unusable: {0}")]
    Credential(String),
    #[error("token endpoint {url}: {message}")]
    Endpoint { url: String, message: String },
}

/// What mints a credential's tokens.
#[derive(Clone)]
enum Minter {
    Gcp(crate::config::GcpCredential),
    Azure(crate::config::AzureCredential),
}

impl Minter {
    fn of(credential: &Credential) -> Option<Minter> {
        match credential {
            Credential::Gcp(gcp) => Some(Minter::Gcp(gcp.clone())),
            Credential::Azure(azure) => Some(Minter::Azure(azure.clone())),
            _ => None,
        }
    }

    /// Identifies the credential without holding its secret in a map key.
    fn fingerprint(&self) -> String {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        match self {
            Minter::Gcp(c) => ("gcp", &c.service_account_key, &c.token_url).hash(&mut hasher),
            Minter::Azure(c) => (
                "azure",
                &c.tenant_id,
                &c.client_id,
                &c.client_secret,
                &c.token_url,
            )
                .hash(&mut hasher),
        }
        format!("{:x}", hasher.finish())
    }

    async fn mint(&self, http: &Http) -> Result<Token, TokenError> {
        let (url, form) = match self {
            Minter::Gcp(c) => gcp::token_request(c)?,
            Minter::Azure(c) => azure::token_request(c),
        };
        let body = http
            .post_form(&url, &form)
            .await
            .map_err(|message| TokenError::Endpoint {
                url: url.clone(),
                message,
            })?;
        let answer: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| TokenError::Endpoint {
                url: url.clone(),
                message: format!("the answer is not a token: {e}"),
            })?;
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(3600).max(1));
        Ok(Token {
            value: answer.access_token,
            expires_at: Instant::now() + lifetime,
        })
    }
}

/// One credential's current token and the task keeping it fresh.
pub struct TokenSource {
    current: Arc<ArcSwapOption<Token>>,
    task: Option<JoinHandle<()>>,
}

impl TokenSource {
    fn start(minter: Minter, http: Http) -> TokenSource {
        let current = Arc::new(ArcSwapOption::empty());
        // Outside a runtime (a config built by a plain unit test) nothing is minted.
        let task = tokio::runtime::Handle::try_current()
            .ok()
            .map(|handle| handle.spawn(refresh(minter, http, current.clone())));
        TokenSource { current, task }
    }

    /// The token, if one is valid now.
    pub fn token(&self) -> Option<String> {
        self.current
            .load_full()
            .filter(|t| t.expires_at > Instant::now())
            .map(|t| t.value.clone())
    }
}

impl Drop for TokenSource {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// When to fetch again: a fifth of the lifetime before expiry, at most five minutes before.
fn refresh_in(token: &Token) -> Duration {
    let left = token.expires_at.saturating_duration_since(Instant::now());
    left.saturating_sub((left / 5).min(Duration::from_secs(300)))
}

async fn refresh(minter: Minter, http: Http, current: Arc<ArcSwapOption<Token>>) {
    let mut backoff = Duration::from_millis(200);
    loop {
        match minter.mint(&http).await {
            Ok(token) => {
                let wait = refresh_in(&token);
                current.store(Some(Arc::new(token)));
                backoff = Duration::from_millis(200);
                tokio::time::sleep(wait).await;
            }
            Err(err) => {
                tracing::warn!(error = %err, retry_in = ?backoff, "token not minted");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// The token sources of the current config, by credential.
#[derive(Default)]
pub struct Tokens {
    sources: Mutex<HashMap<String, Arc<TokenSource>>>,
    http: Http,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens").finish_non_exhaustive()
    }
}

impl Tokens {
    /// Keeps a source for every token credential of `config` (an unchanged credential keeps
    /// its token and task) and stops the others.
    pub fn sync(&self, config: &RuntimeConfig) {
        let wanted: HashMap<String, Minter> = config
            .backends
            .values()
            .filter_map(|b| b.credential.as_ref().and_then(Minter::of))
            .map(|m| (m.fingerprint(), m))
            .collect();
        let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        sources.retain(|key, _| wanted.contains_key(key));
        for (key, minter) in wanted {
            sources
                .entry(key)
                .or_insert_with(|| Arc::new(TokenSource::start(minter, self.http.clone())));
        }
    }

    /// The current token of `credential`, if it mints tokens and has a valid one.
    pub fn token(&self, credential: &Credential) -> Option<String> {
        let key = Minter::of(credential)?.fingerprint();
        let sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        sources.get(&key)?.token()
    }
}

/// HTTPS (or plain HTTP, for local token endpoints) POSTs of forms.
#[derive(Clone, Default)]
struct Http;

impl Http {
    async fn post_form(&self, url: &str, form: &[(&str, String)]) -> Result<Vec<u8>, String> {
        use http_body_util::{BodyExt, Full};
        let body: String = form
            .iter()
            .map(|(k, v)| format!("{k}={}", crate::translate::azure::encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| format!("no TLS roots: {e}"))?
            .https_or_http()
            .enable_http1()
            .build();
        let client: hyper_util::client::legacy::Client<_, Full<bytes::Bytes>> =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(connector);
        let request = http::Request::post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(Full::new(bytes::Bytes::from(body)))
            .map_err(|e| format!("bad request: {e}"))?;
        let response = tokio::time::timeout(Duration::from_secs(10), client.request(request))
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|e| format!("unreachable: {e}"))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        if !status.is_success() {
            return Err(format!("answered {status}"));
        }
        Ok(bytes.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_refreshed_a_fifth_of_its_life_before_expiry_at_most_five_minutes() {
        let token = |secs| Token {
            value: String::new(),
            expires_at: Instant::now() + Duration::from_secs(secs),
        };
        let hour = refresh_in(&token(3600)).as_secs();
        assert!((3299..=3300).contains(&hour), "{hour}");
        let minute = refresh_in(&token(60)).as_secs();
        assert!((47..=48).contains(&minute), "{minute}");
    }
}
