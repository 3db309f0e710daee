//! A fake Anthropic Messages API that checks what the real one would and records what it got.
//!
//! `POST /v1/messages` needs `x-api-key: <key>` and an `anthropic-version` header, a JSON body
//! with `model`, `max_tokens` and non-empty `messages` whose roles alternate starting with
//! `user`; otherwise it answers Anthropic's error shape (401 / 400). It answers
//! [`REPLY_PIECES`] as one message, or as Anthropic's SSE events when `stream` is true, with
//! [`USAGE`] (input tokens in `message_start`, output tokens in `message_delta`).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// The answer, streamed one piece per `content_block_delta`.
pub const REPLY_PIECES: [&str; 3] = ["Hello", " from", " Claude."];
/// `(input_tokens, output_tokens)` of every answer.
pub const USAGE: (u64, u64) = (12, 7);

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

pub struct FakeAnthropic {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    server: JoinHandle<()>,
}

impl FakeAnthropic {
    pub async fn start(key: &str) -> Result<FakeAnthropic> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("bind fake Anthropic")?;
        let addr = listener.local_addr()?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let server = tokio::spawn(serve(listener, key.to_string(), seen.clone()));
        Ok(FakeAnthropic { addr, seen, server })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for FakeAnthropic {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve(listener: TcpListener, key: String, seen: Arc<Mutex<Vec<Seen>>>) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let (key, seen) = (key.clone(), seen.clone());
        connections.spawn(async move {
            let service = service_fn(move |req| handle(key.clone(), seen.clone(), req));
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(
    key: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let path = parts.uri.path().to_string();
    let response = answer(&key, &path, &parts.headers, &body);
    if let Ok(mut seen) = seen.lock() {
        seen.push(Seen {
            path,
            headers: parts.headers,
            body,
        });
    }
    Ok(response)
}

fn answer(key: &str, path: &str, headers: &HeaderMap, body: &[u8]) -> Response<Full<Bytes>> {
    if path != "/v1/messages" {
        return error(StatusCode::NOT_FOUND, "not_found_error", "no such endpoint");
    }
    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(key) {
        return error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid x-api-key",
        );
    }
    if headers.get("anthropic-version").is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "anthropic-version header is required",
        );
    }
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "body is not JSON",
        );
    };
    if let Err(message) = validate(&request) {
        return error(StatusCode::BAD_REQUEST, "invalid_request_error", &message);
    }
    let model = request["model"].as_str().unwrap_or_default().to_string();
    if request["stream"] == true {
        return stream(&model);
    }
    let text: String = REPLY_PIECES.concat();
    json_response(
        StatusCode::OK,
        json!({
            "id": "msg_fake", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": USAGE.0, "output_tokens": USAGE.1}
        }),
    )
}

fn validate(request: &Value) -> Result<(), String> {
    if !request["model"].is_string() {
        return Err("model: field required".into());
    }
    if !request["max_tokens"].is_u64() {
        return Err("max_tokens: field required".into());
    }
    let messages = request["messages"]
        .as_array()
        .ok_or("messages: field required")?;
    if messages.is_empty() {
        return Err("messages: at least one message is required".into());
    }
    for (i, message) in messages.iter().enumerate() {
        let expected = if i % 2 == 0 { "user" } else { "assistant" };
        if message["role"] != expected {
            return Err(format!(
                "messages.{i}.role: roles must alternate, starting with user"
            ));
        }
    }
    Ok(())
}

fn stream(model: &str) -> Response<Full<Bytes>> {
    let mut events = vec![
        (
            "message_start",
            json!({"type": "message_start", "message": {
            "id": "msg_fake", "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": null,
            "usage": {"input_tokens": USAGE.0, "output_tokens": 1}}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "text", "text": ""}}),
        ),
    ];
    for piece in REPLY_PIECES {
        events.push((
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": piece}}),
        ));
    }
    events.extend([
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            "message_delta",
            json!({"type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": null},
            "usage": {"output_tokens": USAGE.1}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ]);
    let body: String = events
        .iter()
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect();
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/event-stream")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response<Full<Bytes>> {
    json_response(
        status,
        json!({"type": "error", "error": {"type": kind, "message": message}}),
    )
}

fn json_response(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_default()
}
