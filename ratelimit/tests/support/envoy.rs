//! Calling the service as Envoy's `ratelimit` filter does: domain `infergate`, descriptors of
//! entries with a `hits_addend`, over a tonic channel; and a bare HTTP GET for the admin port.

#![allow(dead_code)]

use std::net::SocketAddr;

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use envoy_types::pb::google::protobuf::UInt64Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::Channel;

pub type Client = RateLimitServiceClient<Channel>;

pub async fn client(addr: SocketAddr) -> Client {
    RateLimitServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connecting to the rate-limit service")
}

/// A descriptor of `entries` in order, with `hits` as its `hits_addend` when given.
pub fn descriptor(entries: &[(&str, &str)], hits: Option<u64>) -> RateLimitDescriptor {
    RateLimitDescriptor {
        entries: entries
            .iter()
            .map(|(key, value)| Entry {
                key: (*key).into(),
                value: (*value).into(),
            })
            .collect(),
        hits_addend: hits.map(|value| UInt64Value { value }),
        ..Default::default()
    }
}

pub fn request(descriptors: Vec<RateLimitDescriptor>) -> RateLimitRequest {
    RateLimitRequest {
        domain: "infergate".into(),
        descriptors,
        hits_addend: 0,
    }
}

pub async fn call(
    client: &mut Client,
    descriptors: Vec<RateLimitDescriptor>,
) -> Result<RateLimitResponse, tonic::Status> {
    client
        .should_rate_limit(request(descriptors))
        .await
        .map(tonic::Response::into_inner)
}

/// `(status code, body)` of `GET path` on `addr`.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connecting to the admin port");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("writing");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("reading");
    let code = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (code, body)
}
