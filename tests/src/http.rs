//! A plain HTTP/1.1 client for tests.
//!
//! Each [`get`]/[`post`] uses a fresh client (one connection per call), so nothing pooled outlives the
//! test's runtime; keep one [`http_client`] when sending many requests.

use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http::Request;
pub use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as LegacyClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// The client [`http_client`] builds.
pub type Client = LegacyClient<HttpConnector, Full<Bytes>>;

/// A request that gets no response in this time fails.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A response with its body read.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl HttpResponse {
    /// The header's value, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body)
            .with_context(|| format!("response body is not JSON: {}", self.text()))
    }
}

/// An HTTP/1.1 client over plain TCP.
pub fn http_client() -> Client {
    LegacyClient::builder(TokioExecutor::new()).build_http()
}

/// `GET url` with `headers`.
pub async fn get(url: &str, headers: &[(&str, &str)]) -> Result<HttpResponse> {
    send(
        &http_client(),
        request(Method::GET, url, headers, Bytes::new())?,
    )
    .await
}

/// `POST url` with `headers` and `body`.
pub async fn post(
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Result<HttpResponse> {
    send(
        &http_client(),
        request(Method::POST, url, headers, body.into())?,
    )
    .await
}

/// Builds a request.
pub fn request(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Result<Request<Full<Bytes>>> {
    let mut builder = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder
        .body(Full::new(body))
        .with_context(|| format!("build request to {url}"))
}

/// Sends `request` and reads the whole response, within [`REQUEST_TIMEOUT`].
pub async fn send(client: &Client, request: Request<Full<Bytes>>) -> Result<HttpResponse> {
    let target = format!("{} {}", request.method(), request.uri());
    let exchange = async {
        let response = client.request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        anyhow::Ok(HttpResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .with_context(|| format!("{target}: no response in {REQUEST_TIMEOUT:?}"))?
        .with_context(|| target)
}
