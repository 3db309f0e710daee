//! Minted tokens against a local token endpoint: the form a provider's identity service would
//! check, the bearer header the upstream leg sends, and refresh before expiry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::routing::post;
use extproc::config::{BackendConfig, Config, ConfigStore, CredentialConfig, SchemaConfig};
use serde_json::{Value, json};

#[derive(Default)]
struct Endpoint {
    forms: Mutex<Vec<HashMap<String, String>>>,
}

/// A token endpoint answering `tok-<n>` valid for `lifetime` seconds.
async fn token_endpoint(lifetime: u64) -> (String, Arc<Endpoint>) {
    let endpoint = Arc::new(Endpoint::default());
    let app = axum::Router::new()
        .route(
            "/token",
            post(
                move |State(e): State<Arc<Endpoint>>, body: String| async move {
                    let form = parse_form(&body);
                    let mut forms = e.forms.lock().expect("forms");
                    forms.push(form);
                    axum::Json(json!({"access_token": format!("tok-{}", forms.len()),
                                      "expires_in": lifetime, "token_type": "Bearer"}))
                },
            ),
        )
        .with_state(endpoint.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/token", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, endpoint)
}

/// `a=b&c=d` with percent-decoding.
fn parse_form(body: &str) -> HashMap<String, String> {
    let decode = |s: &str| {
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("00");
                    out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                    i += 3;
                }
                b'+' => {
                    out.push(b' ');
                    i += 1;
                }
                b => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    body.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn azure_config(token_url: &str) -> Config {
    Config {
        version: "tokens".into(),
        backends: vec![BackendConfig {
            name: "default/azure".into(),
            schema: SchemaConfig {
                name: "AzureOpenAI".into(),
                version: Some("2024-10-21".into()),
                ..SchemaConfig::default()
            },
            credential: Some(CredentialConfig::AzureCredentials {
                tenant_id: "tenant-1".into(),
                client_id: "client-1".into(),
                client_secret: "entra-secret".into(),
                token_url: Some(token_url.into()),
            }),
            ..BackendConfig::default()
        }],
        ..Config::default()
    }
}

async fn wait_for_token(store: &ConfigStore, want: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let config = store.load();
        let token = config
            .backends
            .get("default/azure")
            .and_then(|b| b.credential.as_ref())
            .and_then(|c| store.tokens().token(c));
        if token.as_deref() == Some(want) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no token {want} (have {token:?})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_entra_id_token_is_minted_with_the_client_credentials_grant_and_refreshed() {
    // Two-second tokens: the refresh comes a fifth of the lifetime before expiry.
    let (url, endpoint) = token_endpoint(2).await;
    let store = ConfigStore::new();
    let errors = store.update(&azure_config(&url));
    assert!(errors.is_empty(), "{errors:?}");
    wait_for_token(&store, "tok-1").await;
    let form = endpoint.forms.lock().expect("forms")[0].clone();
    assert_eq!(
        form.get("grant_type").map(String::as_str),
        Some("client_credentials")
    );
    assert_eq!(form.get("client_id").map(String::as_str), Some("client-1"));
    assert_eq!(
        form.get("client_secret").map(String::as_str),
        Some("entra-secret")
    );
    assert_eq!(
        form.get("scope").map(String::as_str),
        Some("https://cognitiveservices.azure.com/.default")
    );
    wait_for_token(&store, "tok-2").await;

    // The same credential in a new config version keeps its token (no new fetch).
    let fetched = endpoint.forms.lock().expect("forms").len();
    store.update(&Config {
        version: "tokens-2".into(),
        ..azure_config(&url)
    });
    let config = store.load();
    let credential = config.backends["default/azure"]
        .credential
        .clone()
        .expect("credential");
    assert!(store.tokens().token(&credential).is_some());
    assert!(endpoint.forms.lock().expect("forms").len() <= fetched + 1);
}

#[tokio::test]
async fn the_credential_never_shows_in_debug_output() {
    let config = azure_config("http://127.0.0.1:9/token");
    let text = format!("{config:?}");
    assert!(!text.contains("entra-secret"), "{text}");
    let value: Value = serde_json::to_value(&config).expect("json");
    assert_eq!(
        value["backends"][0]["credential"]["kind"],
        "AzureCredentials"
    );
}
