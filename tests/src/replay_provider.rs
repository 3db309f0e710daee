//! A provider fake that answers with the provider replies of the extproc's golden cases
//! (`extproc/testdata/in/<case>.json`, field `upstream`), so the e2e tests and the golden tests
//! share one set of realistic provider answers: JSON, SSE, or AWS event streams encoded frame
//! by frame.
//!
//! Each request is matched against rules in order (first match answers) and recorded, so a test
//! can check what the provider got (path, credentials, body).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use futures::StreamExt as _;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

pub use crate::fake_anthropic::Seen;

/// A provider's answer: status, headers and the body as it is sent, chunk by chunk.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub chunks: Vec<Vec<u8>>,
}

impl Reply {
    /// The `upstream` of a golden case.
    pub fn from_case(case: &str) -> Result<Reply> {
        let path = crate::workspace::root()
            .join("extproc/testdata/in")
            .join(format!("{case}.json"));
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        let value: Value = serde_json::from_str(&text).context("parse case")?;
        let Some(upstream) = value.get("upstream") else {
            bail!("case {case} has no upstream reply");
        };
        let status = upstream["status"].as_u64().unwrap_or(200) as u16;
        let headers = upstream["headers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|pair| {
                Some((
                    pair.get(0)?.as_str()?.to_string(),
                    pair.get(1)?.as_str()?.to_string(),
                ))
            })
            // Hyper sets the framing itself.
            .filter(|(name, _)| {
                !name.eq_ignore_ascii_case("content-length")
                    && !name.eq_ignore_ascii_case("transfer-encoding")
            })
            .collect();
        let chunks = match upstream.get("eventstream").and_then(Value::as_array) {
            Some(frames) if !frames.is_empty() => vec![eventstream(frames)?],
            _ => upstream["chunks"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|c| c.as_bytes().to_vec())
                .collect(),
        };
        Ok(Reply {
            status,
            headers,
            chunks,
        })
    }

    /// An error answer with a JSON body.
    pub fn error(status: u16, headers: &[(&str, &str)], body: Value) -> Reply {
        let mut all = vec![("content-type".to_string(), "application/json".to_string())];
        all.extend(headers.iter().map(|(n, v)| (n.to_string(), v.to_string())));
        Reply {
            status,
            headers: all,
            chunks: vec![body.to_string().into_bytes()],
        }
    }
}

/// AWS event-stream frames (`{"event"|"exception": type, "payload": json}`) as bytes.
fn eventstream(frames: &[Value]) -> Result<Vec<u8>> {
    use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
    let mut bytes = Vec::new();
    for frame in frames {
        let string = |s: &str| HeaderValue::String(s.to_string().into());
        let payload = frame["payload"].to_string().into_bytes();
        let message = match (frame["event"].as_str(), frame["exception"].as_str()) {
            (Some(event), _) => Message::new(payload)
                .add_header(Header::new(":message-type", string("event")))
                .add_header(Header::new(":event-type", string(event))),
            (None, Some(exception)) => Message::new(payload)
                .add_header(Header::new(":message-type", string("exception")))
                .add_header(Header::new(":exception-type", string(exception))),
            (None, None) => bail!("an event-stream frame needs an event or an exception"),
        }
        .add_header(Header::new(":content-type", string("application/json")));
        aws_smithy_eventstream::frame::write_message_to(&message, &mut bytes)
            .map_err(|e| anyhow::anyhow!("encode frame: {e}"))?;
    }
    Ok(bytes)
}

/// Which requests a reply answers.
pub type Matcher = Box<dyn Fn(&Seen) -> bool + Send + Sync>;

pub struct ReplayProvider {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    server: JoinHandle<()>,
}

impl ReplayProvider {
    /// Serves `rules` in order; a request no rule matches gets a 404.
    pub async fn start(rules: Vec<(Matcher, Reply)>) -> Result<ReplayProvider> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("bind replay provider")?;
        let addr = listener.local_addr()?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let server = tokio::spawn(serve(listener, Arc::new(rules), seen.clone()));
        Ok(ReplayProvider { addr, seen, server })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The requests received, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for ReplayProvider {
    fn drop(&mut self) {
        self.server.abort();
    }
}

type Rules = Arc<Vec<(Matcher, Reply)>>;

async fn serve(listener: TcpListener, rules: Rules, seen: Arc<Mutex<Vec<Seen>>>) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (rules, seen) = (rules.clone(), seen.clone());
        connections.spawn(async move {
            let service = service_fn(move |req| handle(rules.clone(), seen.clone(), req));
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

type Body = BoxBody<Bytes, std::convert::Infallible>;

async fn handle(
    rules: Rules,
    seen: Arc<Mutex<Vec<Seen>>>,
    req: Request<Incoming>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let request = Seen {
        path: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_string(), |p| p.to_string()),
        headers: parts.headers,
        body,
    };
    let reply = rules
        .iter()
        .find(|(matches, _)| matches(&request))
        .map(|(_, reply)| reply.clone());
    if let Ok(mut seen) = seen.lock() {
        seen.push(request);
    }
    let reply = reply.unwrap_or_else(|| {
        Reply::error(
            404,
            &[],
            serde_json::json!({"error": "no replay rule matches"}),
        )
    });
    let mut response = Response::builder()
        .status(StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    for (name, value) in &reply.headers {
        response = response.header(name, value);
    }
    let frames = futures::stream::iter(reply.chunks)
        .map(|chunk| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(chunk))));
    let body: Body = BodyExt::boxed(StreamBody::new(frames));
    Ok(response.body(body).unwrap_or_else(|_| {
        let mut fallback = Response::new(BodyExt::boxed(http_body_util::Empty::new()));
        *fallback.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        fallback
    }))
}

/// Matches requests whose JSON body has (or lacks) a key: `tools`, `toolConfig`, `stream`.
pub fn body_has(key: &'static str, present: bool) -> impl Fn(&Seen) -> bool {
    move |seen| {
        let has = seen.json().is_some_and(|b| {
            b.get(key)
                .is_some_and(|v| !v.is_null() && v != &Value::Bool(false))
        });
        has == present
    }
}
