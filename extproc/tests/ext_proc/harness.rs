//! An extproc on 127.0.0.1:0 and a small Envoy stand-in that drives both legs as Envoy does:
//! headers, buffered request body, response headers, streamed response chunks, applying every
//! header/body mutation and honouring mode overrides and immediate responses.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::processing_mode::BodySendMode;
use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_client::ExternalProcessorClient;
use envoy_types::pb::envoy::service::ext_proc::v3::{
    CommonResponse, HttpBody, HttpHeaders, ImmediateResponse, ProcessingRequest,
    ProcessingResponse, body_mutation, processing_request, processing_response,
};
use envoy_types::pb::google::protobuf::{Struct, Value, value};
use extproc::config::{Config, ConfigStore};
use extproc::{Options, OtlpConfig, Running, Server, keys};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::transport::Channel;

const STEP: Duration = Duration::from_secs(5);

pub fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

/// The token every golden GCP credential mints (from [`token_endpoint`]).
pub const GOLDEN_GCP_TOKEN: &str = "ya29.golden-token";

pub fn golden_config() -> Config {
    let text = std::fs::read_to_string(testdata().join("config.json")).expect("read config.json");
    // GCP credentials mint their tokens at a local endpoint with a test key.
    let key_file = serde_json::json!({
        "type": "service_account",
        "client_email": "golden@infergate-test.iam.gserviceaccount.com",
        "private_key": std::fs::read_to_string(testdata().join("gcp-test-service-account-key.pem"))
            .expect("test key"),
    })
    .to_string();
    let text = text.replace("${TOKEN_URL}", &token_endpoint()).replace(
        "\"${GCP_KEY_FILE}\"",
        &serde_json::Value::String(key_file).to_string(),
    );
    Config::from_json(text.as_bytes()).expect("parse config.json")
}

/// A token endpoint for the whole test process (a plain thread, so it outlives each test's
/// runtime) answering every request with [`GOLDEN_GCP_TOKEN`].
fn token_endpoint() -> String {
    static URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    URL.get_or_init(|| {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind token endpoint");
        let url = format!("http://{}/token", listener.local_addr().expect("addr"));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut stream = stream;
                let mut buf = [0u8; 8192];
                let _ = stream.read(&mut buf);
                let body = format!(
                    r#"{{"access_token":"{GOLDEN_GCP_TOKEN}","expires_in":3600,"token_type":"Bearer"}}"#
                );
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        url
    })
    .clone()
}

pub struct Harness {
    pub running: Running,
    client: ExternalProcessorClient<Channel>,
}

impl Harness {
    /// An extproc with the golden config, trusting backend headers as tests without Envoy need.
    pub async fn start() -> Harness {
        Harness::with_config(&golden_config()).await
    }

    pub async fn with_config(config: &Config) -> Harness {
        Harness::with_otlp(config, None).await
    }

    /// As [`Harness::with_config`], also pushing metrics over OTLP when `otlp` is given.
    pub async fn with_otlp(config: &Config, otlp: Option<OtlpConfig>) -> Harness {
        let store = ConfigStore::new();
        let errors = store.update(config);
        assert!(errors.is_empty(), "config errors: {errors:?}");
        // Minted tokens first, so no case races its credential.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let runtime = store.load();
        for credential in runtime
            .backends
            .values()
            .filter_map(|b| b.credential.as_ref())
        {
            if !matches!(
                credential,
                extproc::config::Credential::Gcp(_) | extproc::config::Credential::Azure(_)
            ) {
                continue;
            }
            while store.tokens().token(credential).is_none() {
                assert!(std::time::Instant::now() < deadline, "no token minted");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
        let options = Options {
            grpc_addr: "127.0.0.1:0".parse().expect("addr"),
            admin_addr: "127.0.0.1:0".parse().expect("addr"),
            trust_backend_header: true,
            ..Default::default()
        };
        let running = Server::start_with_otlp(options, store, otlp)
            .await
            .expect("start extproc");
        let url = format!("http://{}", running.bound().grpc);
        let client = ExternalProcessorClient::connect(url)
            .await
            .expect("connect")
            .max_decoding_message_size(64 * 1024 * 1024)
            .max_encoding_message_size(64 * 1024 * 1024);
        Harness { running, client }
    }

    /// Opens a `Process` stream for `leg` (`router` / `upstream`), named in gRPC metadata as
    /// the filter config does.
    pub async fn open(&self, leg: &str) -> LegStream {
        let (tx, rx) = mpsc::channel(16);
        let mut request = tonic::Request::new(ReceiverStream::new(rx));
        request.metadata_mut().insert(
            keys::LEG_GRPC_METADATA,
            leg.parse().expect("metadata value"),
        );
        let inbound = tokio::time::timeout(STEP, self.client.clone().process(request))
            .await
            .expect("open stream in time")
            .expect("open stream")
            .into_inner();
        LegStream { tx, inbound }
    }

    /// GET on the admin port, returning status and body.
    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(self.running.bound().admin)
            .await
            .expect("connect admin");
        let request = format!("GET {path} HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read");
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }
}

pub struct LegStream {
    tx: mpsc::Sender<ProcessingRequest>,
    inbound: Streaming<ProcessingResponse>,
}

impl LegStream {
    pub async fn send(&mut self, request: ProcessingRequest) -> ProcessingResponse {
        self.tx.send(request).await.expect("send to extproc");
        tokio::time::timeout(STEP, self.inbound.message())
            .await
            .expect("answer in time")
            .expect("answer")
            .expect("stream still open")
    }

    /// Closes our side, as Envoy does when the downstream or upstream goes away.
    pub async fn close(self) {
        drop(self.tx);
        let mut inbound = self.inbound;
        let _ = tokio::time::timeout(STEP, inbound.message()).await;
    }
}

pub type Headers = Vec<(String, String)>;

pub fn headers(pairs: &[(&str, &str)]) -> Headers {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn get<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn header_map(headers: &Headers) -> HeaderMap {
    HeaderMap {
        headers: headers
            .iter()
            .map(|(k, v)| HeaderValue {
                key: k.clone(),
                raw_value: v.as_bytes().to_vec(),
                ..HeaderValue::default()
            })
            .collect(),
    }
}

pub fn request_headers(headers: &Headers, end_of_stream: bool) -> ProcessingRequest {
    message(processing_request::Request::RequestHeaders(HttpHeaders {
        headers: Some(header_map(headers)),
        end_of_stream,
        ..HttpHeaders::default()
    }))
}

pub fn request_body(body: &[u8], end_of_stream: bool) -> ProcessingRequest {
    message(processing_request::Request::RequestBody(HttpBody {
        body: body.to_vec(),
        end_of_stream,
        ..HttpBody::default()
    }))
}

pub fn response_headers(headers: &Headers, end_of_stream: bool) -> ProcessingRequest {
    message(processing_request::Request::ResponseHeaders(HttpHeaders {
        headers: Some(header_map(headers)),
        end_of_stream,
        ..HttpHeaders::default()
    }))
}

pub fn response_body(body: &[u8], end_of_stream: bool) -> ProcessingRequest {
    message(processing_request::Request::ResponseBody(HttpBody {
        body: body.to_vec(),
        end_of_stream,
        ..HttpBody::default()
    }))
}

fn message(request: processing_request::Request) -> ProcessingRequest {
    ProcessingRequest {
        request: Some(request),
        ..ProcessingRequest::default()
    }
}

/// Request attributes as the upstream-leg filter sends them (host metadata paths).
pub fn host_attributes(backend: &str, route: &str, rule: usize) -> HashMap<String, Struct> {
    let string = |s: &str| Value {
        kind: Some(value::Kind::StringValue(s.to_string())),
    };
    HashMap::from([(
        keys::EXT_PROC_ATTRIBUTES_KEY.to_string(),
        Struct {
            fields: HashMap::from([
                (keys::ATTR_HOST_BACKEND.to_string(), string(backend)),
                (keys::ATTR_HOST_ROUTE.to_string(), string(route)),
                (keys::ATTR_HOST_RULE.to_string(), string(&rule.to_string())),
            ]),
        },
    )])
}

/// The part of an answer that changes the message, whichever phase it answers.
pub fn common(response: &ProcessingResponse) -> Option<&CommonResponse> {
    use processing_response::Response;
    match response.response.as_ref()? {
        Response::RequestHeaders(h) | Response::ResponseHeaders(h) => h.response.as_ref(),
        Response::RequestBody(b) | Response::ResponseBody(b) => b.response.as_ref(),
        _ => None,
    }
}

pub fn immediate(response: &ProcessingResponse) -> Option<&ImmediateResponse> {
    match response.response.as_ref()? {
        processing_response::Response::ImmediateResponse(i) => Some(i),
        _ => None,
    }
}

/// Applies an answer's header changes as Envoy does.
pub fn apply_headers(headers: &mut Headers, response: &ProcessingResponse) {
    let Some(mutation) = common(response).and_then(|c| c.header_mutation.as_ref()) else {
        return;
    };
    for name in &mutation.remove_headers {
        headers.retain(|(k, _)| k != name);
    }
    for option in &mutation.set_headers {
        let Some(h) = &option.header else { continue };
        // OVERWRITE_IF_EXISTS_OR_ADD: every earlier value goes.
        let value = String::from_utf8_lossy(&h.raw_value).into_owned();
        match headers.iter().position(|(k, _)| *k == h.key) {
            Some(i) => {
                headers[i].1 = value;
                let key = h.key.clone();
                let mut seen = 0;
                headers.retain(|(k, _)| {
                    if *k != key {
                        return true;
                    }
                    seen += 1;
                    seen == 1
                });
            }
            None => headers.push((h.key.clone(), value)),
        }
    }
}

/// The body after an answer's body mutation (unchanged without one).
pub fn apply_body(body: &[u8], response: &ProcessingResponse) -> Vec<u8> {
    match common(response)
        .and_then(|c| c.body_mutation.as_ref())
        .and_then(|m| m.mutation.as_ref())
    {
        Some(body_mutation::Mutation::Body(new)) => new.clone(),
        Some(body_mutation::Mutation::ClearBody(true)) => Vec::new(),
        _ => body.to_vec(),
    }
}

/// Whether an answer asks Envoy to stop sending `request` / `response` bodies.
pub fn skips_body(response: &ProcessingResponse, request: bool) -> bool {
    response.mode_override.as_ref().is_some_and(|m| {
        let mode = if request {
            m.request_body_mode
        } else {
            m.response_body_mode
        };
        mode == BodySendMode::None as i32
    })
}

/// Dynamic metadata as JSON (`null` when absent).
pub fn metadata_json(response: &ProcessingResponse) -> serde_json::Value {
    response
        .dynamic_metadata
        .as_ref()
        .map(struct_json)
        .unwrap_or(serde_json::Value::Null)
}

fn struct_json(s: &Struct) -> serde_json::Value {
    let mut fields: Vec<_> = s.fields.iter().collect();
    fields.sort_by(|a, b| a.0.cmp(b.0));
    serde_json::Value::Object(
        fields
            .into_iter()
            .map(|(k, v)| (k.clone(), value_json(v)))
            .collect(),
    )
}

fn value_json(v: &Value) -> serde_json::Value {
    match &v.kind {
        Some(value::Kind::StringValue(s)) => json!(s),
        Some(value::Kind::NumberValue(n)) => json!(n),
        Some(value::Kind::BoolValue(b)) => json!(b),
        Some(value::Kind::StructValue(s)) => struct_json(s),
        Some(value::Kind::ListValue(l)) => {
            serde_json::Value::Array(l.values.iter().map(value_json).collect())
        }
        Some(value::Kind::NullValue(_)) | None => serde_json::Value::Null,
    }
}

pub fn immediate_json(i: &ImmediateResponse) -> serde_json::Value {
    let mut headers: Vec<(String, String)> = i
        .headers
        .iter()
        .flat_map(|m| m.set_headers.iter())
        .filter_map(|o| o.header.as_ref())
        .map(|h| {
            (
                h.key.clone(),
                String::from_utf8_lossy(&h.raw_value).into_owned(),
            )
        })
        .collect();
    headers.sort();
    json!({
        "status": i.status.as_ref().map(|s| s.code).unwrap_or(0),
        "headers": headers
            .into_iter()
            .map(|(k, v)| (k, json!(v)))
            .collect::<serde_json::Map<_, _>>(),
        "body": body_json(&i.body),
    })
}

/// A body as JSON when it is JSON, else as text.
pub fn body_json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(body).into_owned()))
}
