//! A fake OpenAI upstream that checks what the real API would and records what it received.
//!
//! [`FakeOpenAi::start`] serves `POST /v1/chat/completions` (JSON, or SSE when `stream` is true),
//! `/v1/completions` and `/v1/embeddings` on `127.0.0.1:<ephemeral>` (HTTP/1.1 and h2c). Like the
//! real API it answers 401 without `Authorization: Bearer <expected key>`, 400 for a body that is
//! not JSON, has no `model`, misses the endpoint's input or sets `stream_options` without
//! `stream`, and 404 for other paths, always with OpenAI's error shape. Token usage is fixed
//! ([`CHAT_USAGE`], [`COMPLETION_USAGE`], [`EMBEDDING_TOKENS`]); a stream carries its usage chunk
//! only when `stream_options.include_usage` is true. The answered `model` is the requested one
//! plus [`RESPONSE_MODEL_SUFFIX`], as providers answer with a dated snapshot.
//!
//! Failure modes ([`Failure`]): a 500 with an HTML body, and a response cut mid-way (a stream
//! after [`CUT_AFTER_CHUNKS`] content chunks, a JSON body after half its bytes). [`FakeOpenAi::stop`]
//! closes the port. [`FakeOpenAi::hold_streams`] pauses every stream after its first content chunk
//! until [`FakeOpenAi::release_streams`], so a test can see that chunks are not buffered.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

/// Appended to the requested model in every answer (`gpt-4o` → `gpt-4o-2025-01-01`).
pub const RESPONSE_MODEL_SUFFIX: &str = "-2025-01-01";
/// The assistant's answer; streams send it in [`STREAM_PIECES`].
pub const CHAT_CONTENT: &str = "Hello from the fake upstream.";
pub const STREAM_PIECES: [&str; 5] = ["Hello", " from", " the", " fake", " upstream."];
/// Content chunks sent before a cut stream ends.
pub const CUT_AFTER_CHUNKS: usize = 2;
pub const COMPLETION_TEXT: &str = "Once upon a time";
/// The embedding vector (exact in f32, so base64 and float answers agree).
pub const EMBEDDING: [f32; 4] = [0.5, -0.25, 0.125, 1.0];
pub const EMBEDDING_TOKENS: u64 = 5;

/// Token counts an answer reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub prompt: u64,
    pub completion: u64,
    pub cached: u64,
    pub reasoning: u64,
}

impl Usage {
    pub const fn total(&self) -> u64 {
        self.prompt + self.completion
    }

    fn json(&self) -> Value {
        json!({
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.total(),
            "prompt_tokens_details": {"cached_tokens": self.cached, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": self.reasoning,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0
            }
        })
    }
}

/// Usage of every chat completion, streamed or not.
pub const CHAT_USAGE: Usage = Usage {
    prompt: 11,
    completion: 6,
    cached: 3,
    reasoning: 2,
};

/// Usage of every text completion.
pub const COMPLETION_USAGE: Usage = Usage {
    prompt: 4,
    completion: 3,
    cached: 0,
    reasoning: 0,
};

/// How the upstream answers valid requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Answer normally.
    None,
    /// 500 with an HTML page, as a broken proxy in front of a provider would.
    Html500,
    /// Cut the response mid-way: headers and part of the body, then the connection drops.
    Cut,
}

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    /// Path and query.
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// What the upstream answered.
    pub status: StatusCode,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The `model` of the body.
    pub fn model(&self) -> Option<String> {
        self.json()?.get("model")?.as_str().map(str::to_owned)
    }

    /// Every header and the body as text, to search for a secret.
    pub fn dump(&self) -> String {
        let mut out = format!("{} {}\n", self.method, self.path);
        for (name, value) in &self.headers {
            out.push_str(&format!(
                "{name}: {}\n",
                String::from_utf8_lossy(value.as_bytes())
            ));
        }
        out.push_str(&String::from_utf8_lossy(&self.body));
        out
    }
}

/// The fake provider; stops on drop.
#[derive(Debug)]
pub struct FakeOpenAi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    key: String,
    failure: Mutex<Failure>,
    seen: Mutex<Vec<Seen>>,
    /// True while streams pause after their first content chunk.
    hold: watch::Sender<bool>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = BoxBody<Bytes, BoxError>;

impl FakeOpenAi {
    /// Starts answering requests that carry `Authorization: Bearer <key>`.
    pub async fn start(key: &str) -> Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("bind fake OpenAI upstream")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            key: key.to_owned(),
            failure: Mutex::new(Failure::None),
            seen: Mutex::new(Vec::new()),
            hold: watch::channel(false).0,
        });
        let server = tokio::spawn(serve(listener, shared.clone()));
        Ok(Self {
            addr,
            shared,
            server: Some(server),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn set_failure(&self, failure: Failure) {
        *lock(&self.shared.failure) = failure;
    }

    /// Every request received so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.shared.seen).clone()
    }

    pub fn requests(&self) -> usize {
        lock(&self.shared.seen).len()
    }

    pub fn last(&self) -> Option<Seen> {
        lock(&self.shared.seen).last().cloned()
    }

    /// Waits until at least `n` requests arrived.
    pub async fn wait_requests(&self, n: usize, timeout: Duration) -> Result<()> {
        let what = format!("{n} requests at the fake OpenAI upstream");
        crate::wait::until_true(&what, timeout, || self.requests() >= n).await
    }

    /// Streams pause after their first content chunk until [`FakeOpenAi::release_streams`].
    pub fn hold_streams(&self) {
        self.shared.hold.send_replace(true);
    }

    pub fn release_streams(&self) {
        self.shared.hold.send_replace(false);
    }

    /// Stops listening and drops every connection; the port refuses connections afterwards.
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
            let _ = server.await;
        }
    }
}

impl Drop for FakeOpenAi {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let shared = shared.clone();
        connections.spawn(async move {
            let service = service_fn(move |req| handle(shared.clone(), req));
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Chat,
    Completions,
    Embeddings,
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let failure = *lock(&shared.failure);
    let (status, response) = answer(
        &shared,
        &parts.method,
        &path,
        &parts.headers,
        &body,
        failure,
    );
    lock(&shared.seen).push(Seen {
        method: parts.method,
        path,
        headers: parts.headers,
        body,
        status,
    });
    Ok(response)
}

/// Validates like the real API, then answers.
fn answer(
    shared: &Arc<Shared>,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    failure: Failure,
) -> (StatusCode, Response<Body>) {
    let endpoint = match path.split('?').next().unwrap_or_default() {
        "/v1/chat/completions" => Endpoint::Chat,
        "/v1/completions" => Endpoint::Completions,
        "/v1/embeddings" => Endpoint::Embeddings,
        other => {
            return error(
                StatusCode::NOT_FOUND,
                &format!("Invalid URL ({method} {other})"),
                "invalid_request_error",
                None,
            );
        }
    };
    if method != Method::POST {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("Invalid method {method} for {path}"),
            "invalid_request_error",
            None,
        );
    }
    let authorized = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|key| key == shared.key);
    if !authorized {
        // The real API echoes a masked key; this one echoes nothing, so no test can mistake the
        // fake's own answer for a leak.
        return error(
            StatusCode::UNAUTHORIZED,
            "Incorrect API key provided.",
            "invalid_request_error",
            Some("invalid_api_key"),
        );
    }
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("application/json") {
        return error(
            StatusCode::BAD_REQUEST,
            "Content-Type must be application/json",
            "invalid_request_error",
            None,
        );
    }
    let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "We could not parse the JSON body of your request.",
            "invalid_request_error",
            None,
        );
    };
    let Some(model) = request.get("model").and_then(Value::as_str) else {
        return error(
            StatusCode::BAD_REQUEST,
            "you must provide a model parameter",
            "invalid_request_error",
            None,
        );
    };
    let input = match endpoint {
        Endpoint::Chat => "messages",
        Endpoint::Completions => "prompt",
        Endpoint::Embeddings => "input",
    };
    let has_input = match request.get(input) {
        Some(Value::Array(items)) => !items.is_empty(),
        Some(Value::String(_)) => endpoint != Endpoint::Chat,
        _ => false,
    };
    if !has_input {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("Missing required parameter: '{input}'."),
            "invalid_request_error",
            Some("missing_required_parameter"),
        );
    }
    let stream = request.get("stream").and_then(Value::as_bool) == Some(true);
    if request.contains_key("stream_options") && !stream {
        return error(
            StatusCode::BAD_REQUEST,
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "invalid_request_error",
            None,
        );
    }
    if failure == Failure::Html500 {
        let html = "<html><head><title>500 Internal Server Error</title></head>\
                    <body><h1>Internal Server Error</h1></body></html>";
        return respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/html",
            full(html.to_owned()),
        );
    }
    let answered = format!("{model}{RESPONSE_MODEL_SUFFIX}");
    let include_usage = request
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        == Some(true);
    let cut = failure == Failure::Cut;
    match endpoint {
        Endpoint::Chat if stream => respond(
            StatusCode::OK,
            "text/event-stream",
            chat_stream(shared, answered, include_usage, cut),
        ),
        Endpoint::Chat => json_answer(chat_body(&answered), cut),
        Endpoint::Completions if stream => error(
            StatusCode::BAD_REQUEST,
            "this fake does not stream completions",
            "invalid_request_error",
            None,
        ),
        Endpoint::Completions => json_answer(completion_body(&answered), cut),
        Endpoint::Embeddings => {
            let base64 = request.get("encoding_format").and_then(Value::as_str) == Some("base64");
            json_answer(embedding_body(&answered, base64), cut)
        }
    }
}

fn chat_body(model: &str) -> Value {
    json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": CHAT_CONTENT, "refusal": null},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": CHAT_USAGE.json(),
    })
}

fn completion_body(model: &str) -> Value {
    json!({
        "id": "cmpl-fake",
        "object": "text_completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{"text": COMPLETION_TEXT, "index": 0, "logprobs": null, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": COMPLETION_USAGE.prompt,
            "completion_tokens": COMPLETION_USAGE.completion,
            "total_tokens": COMPLETION_USAGE.total()
        },
    })
}

fn embedding_body(model: &str, base64: bool) -> Value {
    let embedding = if base64 {
        let bytes: Vec<u8> = EMBEDDING.iter().flat_map(|f| f.to_le_bytes()).collect();
        Value::String(base64_encode(&bytes))
    } else {
        json!(EMBEDDING)
    };
    json!({
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": embedding}],
        "model": model,
        "usage": {"prompt_tokens": EMBEDDING_TOKENS, "total_tokens": EMBEDDING_TOKENS},
    })
}

fn chunk(model: &str, delta: Value, finish: Option<&str>, include_usage: bool) -> Value {
    let mut chunk = json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
    });
    if include_usage {
        // With include_usage every chunk carries `"usage": null`, as the real API sends.
        chunk["usage"] = Value::Null;
    }
    chunk
}

/// The SSE events of a streamed chat completion, sent as separate body chunks.
fn chat_stream(shared: &Arc<Shared>, model: String, include_usage: bool, cut: bool) -> Body {
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, BoxError>>(16);
    let mut hold = shared.hold.subscribe();
    tokio::spawn(async move {
        let event = |value: Value| Ok(Frame::data(Bytes::from(format!("data: {value}\n\n"))));
        let mut events = vec![chunk(
            &model,
            json!({"role": "assistant", "content": ""}),
            None,
            include_usage,
        )];
        for piece in STREAM_PIECES {
            events.push(chunk(
                &model,
                json!({"content": piece}),
                None,
                include_usage,
            ));
        }
        events.push(chunk(&model, json!({}), Some("stop"), include_usage));
        if include_usage {
            let mut last = chunk(&model, json!({}), None, false);
            last["choices"] = json!([]);
            last["usage"] = CHAT_USAGE.json();
            events.push(last);
        }
        for (i, value) in events.into_iter().enumerate() {
            // Event 0 is the role; content chunks are 1..=STREAM_PIECES.len().
            if cut && i == CUT_AFTER_CHUNKS + 1 {
                cut_after_flush(&tx).await;
                return;
            }
            if tx.send(event(value)).await.is_err() {
                return;
            }
            if i == 1 {
                let _ = hold.wait_for(|held| !held).await;
            }
        }
        let _ = tx
            .send(Ok(Frame::data(Bytes::from_static(b"data: [DONE]\n\n"))))
            .await;
    });
    channel_body(rx)
}

/// 200 with `value`; when `cut`, half the bytes under the full `content-length`, then the
/// connection drops.
fn json_answer(value: Value, cut: bool) -> (StatusCode, Response<Body>) {
    let bytes = Bytes::from(value.to_string());
    if !cut {
        return respond(StatusCode::OK, "application/json", full(bytes));
    }
    let length = bytes.len();
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1);
    tokio::spawn(async move {
        if tx
            .send(Ok(Frame::data(bytes.slice(..length / 2))))
            .await
            .is_ok()
        {
            cut_after_flush(&tx).await;
        }
    });
    let (status, mut response) = respond(StatusCode::OK, "application/json", channel_body(rx));
    response.headers_mut().insert(
        http::header::CONTENT_LENGTH,
        http::HeaderValue::from(length),
    );
    (status, response)
}

/// Drops the connection once what was sent is on the wire. hyper discards written but
/// unflushed bytes when a body fails, and flushes only when the body has nothing ready: so wait
/// until it took every frame, give it a moment to flush, then fail the body.
async fn cut_after_flush(tx: &mpsc::Sender<Result<Frame<Bytes>, BoxError>>) {
    while tx.capacity() < tx.max_capacity() && !tx.is_closed() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let _ = tx.send(Err("fake upstream cuts the response".into())).await;
}

fn channel_body(rx: mpsc::Receiver<Result<Frame<Bytes>, BoxError>>) -> Body {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|frame| (frame, rx))
    });
    BodyExt::boxed(StreamBody::new(stream))
}

/// An error in OpenAI's shape.
fn error(
    status: StatusCode,
    message: &str,
    kind: &str,
    code: Option<&str>,
) -> (StatusCode, Response<Body>) {
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
    respond(status, "application/json", full(body.to_string()))
}

/// Sent with every answer, as a hostile or confused provider might: the gateway must neither
/// take them for its own (the route overwrites them with the real backend) nor pass them on.
pub const SPOOFED_INTERNAL_HEADERS: [(&str, &str); 3] = [
    ("x-infergate-backend", "default/spoofed"),
    ("x-infergate-route", "default/spoofed"),
    ("x-infergate-rule", "9"),
];

fn respond(status: StatusCode, content_type: &str, body: Body) -> (StatusCode, Response<Body>) {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    for (name, value) in SPOOFED_INTERNAL_HEADERS {
        response
            .headers_mut()
            .insert(name, http::HeaderValue::from_static(value));
    }
    if let Ok(value) = http::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(http::header::CONTENT_TYPE, value);
    }
    (status, response)
}

fn full(body: impl Into<Bytes>) -> Body {
    BodyExt::boxed(Full::new(body.into()).map_err(|never| match never {}))
}

/// Standard base64 with padding (what the API sends for `encoding_format: base64`).
fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let n = group
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= group.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet_with_padding() {
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foo"), "Zm9v");
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
    }
}
