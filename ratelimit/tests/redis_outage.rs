//! Redis going away must never hang a request: calls fail `UNAVAILABLE` within the timeout,
//! `/readyz` says so, and everything recovers once Redis is back on the same address.

#[path = "support/envoy.rs"]
mod envoy;
#[path = "support/redis_server.rs"]
mod redis_server;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use envoy::{call, client, descriptor, http_get};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use ratelimit::{Options, Server, StorageOptions, keys};
use redis_server::RedisServer;

#[tokio::test]
async fn calls_fail_unavailable_promptly_while_redis_is_down_and_recover_after() {
    let mut redis = RedisServer::start();
    let ephemeral = SocketAddr::from(([127, 0, 0, 1], 0));
    let running = Server::start(Options {
        grpc_addr: ephemeral,
        admin_addr: ephemeral,
        storage: StorageOptions::Redis {
            url: redis.url(),
            timeout: Duration::from_millis(100),
        },
    })
    .await
    .expect("starting");
    let mut client = client(running.bound().grpc).await;
    let request = || {
        vec![descriptor(
            &[(keys::RULE, "default/outage/0"), (keys::LIMIT, "1000/hour")],
            Some(1),
        )]
    };
    let answer = call(&mut client, request()).await.expect("redis up");
    assert_eq!(answer.overall_code, Code::Ok as i32);

    redis.stop();
    for _ in 0..5 {
        let started = Instant::now();
        let status = call(&mut client, request()).await.expect_err("redis down");
        let took = started.elapsed();
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        assert!(
            status.message().contains("rate-limit storage"),
            "{status:?}"
        );
        assert!(took < Duration::from_secs(1), "took {took:?}");
    }
    let (code, body) = http_get(running.bound().admin, "/readyz").await;
    assert_eq!(code, 503, "{body}");
    let (_, metrics) = http_get(running.bound().admin, "/metrics").await;
    assert!(
        metrics.contains("infergate_ratelimit_storage_errors_total{reason="),
        "{metrics}"
    );

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match call(&mut client, request()).await {
            Ok(answer) => {
                // A fresh (empty) Redis: the counter starts again.
                assert_eq!(answer.overall_code, Code::Ok as i32);
                assert_eq!(answer.statuses[0].limit_remaining, 999);
                break;
            }
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::Unavailable);
                assert!(Instant::now() < deadline, "never recovered: {status:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    assert_eq!(http_get(running.bound().admin, "/readyz").await.0, 200);
}

async fn start_on(url: String) -> ratelimit::Running {
    let ephemeral = SocketAddr::from(([127, 0, 0, 1], 0));
    Server::start(Options {
        grpc_addr: ephemeral,
        admin_addr: ephemeral,
        storage: StorageOptions::Redis {
            url,
            timeout: Duration::from_millis(100),
        },
    })
    .await
    .expect("an unreachable Redis is not a start-up error")
}

fn one_descriptor()
-> Vec<envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor> {
    vec![descriptor(
        &[(keys::RULE, "default/outage/1"), (keys::LIMIT, "10/hour")],
        Some(1),
    )]
}

#[tokio::test]
async fn a_service_started_before_redis_serves_once_redis_is_up() {
    let mut redis = RedisServer::start();
    redis.stop();
    let running = start_on(redis.url()).await;
    let mut client = client(running.bound().grpc).await;
    let started = Instant::now();
    let status = call(&mut client, one_descriptor())
        .await
        .expect_err("redis not there yet");
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(http_get(running.bound().admin, "/readyz").await.0, 503);

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    while call(&mut client, one_descriptor()).await.is_err() {
        assert!(Instant::now() < deadline, "never connected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(http_get(running.bound().admin, "/readyz").await.0, 200);
}

#[tokio::test]
async fn a_redis_that_accepts_but_never_answers_times_out() {
    // A listener that accepts connections and never replies: a hung Redis.
    let blackhole = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = blackhole.local_addr().expect("addr");
    let _accepting = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = blackhole.accept().await {
            held.push(socket);
        }
    });
    let running = start_on(format!("redis://{addr}/0")).await;
    let mut client = client(running.bound().grpc).await;
    for _ in 0..3 {
        let started = Instant::now();
        let status = call(&mut client, one_descriptor())
            .await
            .expect_err("hung redis");
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert!(
            status.message().contains("timed out after 100ms"),
            "{status:?}"
        );
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
    }
}
