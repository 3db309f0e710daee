//! A fake HTTP upstream (HTTP/1.1 and h2c) that tells who answered and records what it got.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// The response header naming the upstream that answered.
pub const UPSTREAM_HEADER: &str = "x-upstream";

/// How the upstream answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behavior {
    /// 200 with the JSON echo.
    Ok,
    /// This status with the JSON echo.
    Status(StatusCode),
    /// Drop new connections and abort requests without a response.
    Close,
}

/// A request the upstream received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: Method,
    /// Path and query.
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// An HTTP server on `127.0.0.1:<ephemeral>` that answers every request with
/// `{"upstream": name, "method": …, "path": …, "headers": {…}}` and header `x-upstream: name`.
/// Stops on drop.
#[derive(Debug)]
pub struct FakeUpstream {
    name: String,
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    name: String,
    behavior: Mutex<Behavior>,
    requests: AtomicU64,
    last: Mutex<Option<RecordedRequest>>,
}

impl FakeUpstream {
    pub async fn start(name: &str) -> Result<Self> {
        http::HeaderValue::from_str(name)
            .with_context(|| format!("fake upstream name {name:?} is not a header value"))?;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .with_context(|| format!("bind fake upstream {name}"))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            behavior: Mutex::new(Behavior::Ok),
            requests: AtomicU64::new(0),
            last: Mutex::new(None),
        });
        let server = tokio::spawn(serve(listener, shared.clone()));
        Ok(Self {
            name: name.to_owned(),
            addr,
            shared,
            server: Some(server),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests received so far (including those answered with an error or aborted).
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    pub fn last_request(&self) -> Option<RecordedRequest> {
        lock(&self.shared.last).clone()
    }

    pub fn set_behavior(&self, behavior: Behavior) {
        *lock(&self.shared.behavior) = behavior;
    }

    /// Answer every request with `status` (e.g. 503).
    pub fn fail_with(&self, status: StatusCode) {
        self.set_behavior(Behavior::Status(status));
    }

    /// Drop new connections and abort requests on open ones.
    pub fn close_connections(&self) {
        self.set_behavior(Behavior::Close);
    }

    /// Answer 200 again.
    pub fn recover(&self) {
        self.set_behavior(Behavior::Ok);
    }

    /// Stops listening and closes every connection; the port is free when this returns.
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
            let _ = server.await;
        }
    }

    /// Waits until at least `n` requests arrived.
    pub async fn wait_requests(&self, n: u64, timeout: Duration) -> Result<()> {
        let what = format!("{n} requests at upstream {}", self.name);
        crate::wait::until_true(&what, timeout, || self.requests() >= n).await
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// Accepts until aborted; aborting drops the listener and the `JoinSet`, which aborts every
/// connection.
async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of file descriptors and the like: back off instead of spinning.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if *lock(&shared.behavior) == Behavior::Close {
            drop(stream);
            continue;
        }
        let shared = shared.clone();
        connections.spawn(async move {
            let service = service_fn(move |req| handle(shared.clone(), req));
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// An error here makes hyper abort the connection without a response.
#[derive(Debug)]
struct Aborted;

impl std::fmt::Display for Aborted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fake upstream closes the connection")
    }
}

impl std::error::Error for Aborted {}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Aborted> {
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
    let recorded = RecordedRequest {
        method: parts.method,
        path,
        headers: parts.headers,
        body,
    };
    let echo = echo(&shared.name, &recorded);
    *lock(&shared.last) = Some(recorded);
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let status = match *lock(&shared.behavior) {
        Behavior::Ok => StatusCode::OK,
        Behavior::Status(status) => status,
        Behavior::Close => return Err(Aborted),
    };
    let response = Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(UPSTREAM_HEADER, shared.name.as_str())
        .body(Full::new(Bytes::from(echo.to_string())));
    // Cannot fail: `start` checked that the name is a valid header value.
    response.map_err(|_| Aborted)
}

fn echo(name: &str, request: &RecordedRequest) -> serde_json::Value {
    let mut headers = serde_json::Map::new();
    for key in request.headers.keys() {
        let values: Vec<&str> = request
            .headers
            .get_all(key)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        headers.insert(key.as_str().to_owned(), values.join(", ").into());
    }
    serde_json::json!({
        "upstream": name,
        "method": request.method.as_str(),
        "path": request.path,
        "headers": headers,
    })
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
