//! The service in-process on port 0, called exactly as Envoy's `ratelimit` filter calls it.

#[path = "support/envoy.rs"]
mod envoy;
#[path = "support/redis_server.rs"]
mod redis_server;

use std::net::SocketAddr;
use std::time::Duration;

use envoy::{call, client, descriptor, http_get};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{Code, rate_limit};
use ratelimit::{Options, Running, Server, StorageOptions, keys};
use redis_server::RedisServer;

fn ephemeral() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

async fn start(storage: StorageOptions) -> Running {
    Server::start(Options {
        grpc_addr: ephemeral(),
        admin_addr: ephemeral(),
        storage,
    })
    .await
    .expect("starting ratelimit")
}

const OK: i32 = Code::Ok as i32;
const OVER: i32 = Code::OverLimit as i32;

#[tokio::test]
async fn statuses_carry_limit_remaining_and_reset_for_envoys_headers() {
    let running = start(StorageOptions::Memory).await;
    assert_ne!(running.bound().grpc.port(), 0);
    let mut client = client(running.bound().grpc).await;
    let tokens = |hits| {
        descriptor(
            &[
                (keys::RULE, "default/tokens/0"),
                ("x-user-id", "alice"),
                (keys::LIMIT, "1000/minute"),
                (keys::MODE, keys::MODE_RESERVE),
            ],
            Some(hits),
        )
    };
    let requests = descriptor(
        &[
            (keys::RULE, "default/requests/0"),
            ("x-user-id", "alice"),
            (keys::LIMIT, "2/hour"),
        ],
        None,
    );

    let first = call(&mut client, vec![tokens(600), requests.clone()])
        .await
        .expect("answer");
    assert_eq!(first.overall_code, OK);
    assert_eq!(first.statuses.len(), 2);
    let status = &first.statuses[0];
    assert_eq!(status.code, OK);
    let limit = status.current_limit.as_ref().expect("limit");
    assert_eq!(limit.requests_per_unit, 1000);
    assert_eq!(limit.unit, rate_limit::Unit::Minute as i32);
    assert_eq!(limit.name, "default/tokens/0");
    assert_eq!(status.limit_remaining, 400);
    let reset = status.duration_until_reset.as_ref().expect("reset");
    assert!(
        (0..=60).contains(&reset.seconds) && (reset.seconds, reset.nanos) != (0, 0),
        "{reset:?}"
    );
    assert_eq!(first.statuses[1].limit_remaining, 1);
    assert_eq!(
        first.statuses[1]
            .current_limit
            .as_ref()
            .map(|limit| limit.unit),
        Some(rate_limit::Unit::Hour as i32)
    );

    // The second request: tokens 600 < 1000 so admitted (overshoot), requests 2 of 2.
    let second = call(&mut client, vec![tokens(600), requests.clone()])
        .await
        .expect("answer");
    assert_eq!(second.overall_code, OK);
    assert_eq!(second.statuses[0].limit_remaining, 0);
    assert_eq!(second.statuses[1].limit_remaining, 0);

    // The third: both over; nothing added.
    let third = call(&mut client, vec![tokens(1), requests])
        .await
        .expect("answer");
    assert_eq!(third.overall_code, OVER);
    assert_eq!(
        third.statuses.iter().map(|s| s.code).collect::<Vec<_>>(),
        [OVER, OVER]
    );
    assert_eq!(third.statuses[0].limit_remaining, 0);
}

#[tokio::test]
async fn settle_at_stream_end_returns_unused_budget() {
    let running = start(StorageOptions::Memory).await;
    let mut client = client(running.bound().grpc).await;
    let at = ratelimit::window::now().as_secs();
    let entries = |mode| {
        vec![
            (keys::RULE, "default/tokens/0"),
            ("x-ai-eg-model", "gpt-4o"),
            (keys::LIMIT, "100/hour"),
            (keys::MODE, mode),
        ]
    };
    let reserved = call(
        &mut client,
        vec![descriptor(&entries(keys::MODE_RESERVE), Some(90))],
    )
    .await
    .expect("answer");
    assert_eq!(reserved.statuses[0].limit_remaining, 10);
    let reservation = format!("90:{at}");
    let mut settle = entries(keys::MODE_SETTLE);
    settle.push((keys::RESERVED, &reservation));
    let settled = call(&mut client, vec![descriptor(&settle, Some(25))])
        .await
        .expect("answer");
    assert_eq!(settled.overall_code, OK);
    assert_eq!(settled.statuses[0].limit_remaining, 75);
}

#[tokio::test]
async fn request_hits_addend_applies_when_the_descriptor_has_none() {
    let running = start(StorageOptions::Memory).await;
    let mut client = client(running.bound().grpc).await;
    let mut request = envoy::request(vec![descriptor(
        &[(keys::RULE, "default/r/0"), (keys::LIMIT, "10/hour")],
        None,
    )]);
    request.hits_addend = 7;
    let answer = client
        .should_rate_limit(request)
        .await
        .expect("answer")
        .into_inner();
    assert_eq!(answer.statuses[0].limit_remaining, 3);
}

#[tokio::test]
async fn bad_descriptors_are_answered_ok_without_a_limit_and_counted() {
    let running = start(StorageOptions::Memory).await;
    let mut client = client(running.bound().grpc).await;
    let answer = call(
        &mut client,
        vec![
            descriptor(&[("x-user-id", "alice"), (keys::LIMIT, "1/hour")], None),
            descriptor(&[(keys::RULE, "r"), (keys::LIMIT, "lots/hour")], None),
            descriptor(&[(keys::RULE, "r"), (keys::LIMIT, "1/fortnight")], None),
            descriptor(&[(keys::RULE, "ok"), (keys::LIMIT, "0/hour")], Some(1)),
        ],
    )
    .await
    .expect("bad descriptors are not errors");
    assert_eq!(answer.overall_code, OVER, "the valid one still applies");
    assert_eq!(
        answer.statuses.iter().map(|s| s.code).collect::<Vec<_>>(),
        [OK, OK, OK, OVER]
    );
    assert!(
        answer.statuses[..3]
            .iter()
            .all(|s| s.current_limit.is_none())
    );

    let (code, metrics) = http_get(running.bound().admin, "/metrics").await;
    assert_eq!(code, 200);
    assert!(
        metrics
            .contains("infergate_ratelimit_invalid_descriptors_total{reason=\"missing_rule\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("infergate_ratelimit_invalid_descriptors_total{reason=\"bad_limit\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "infergate_ratelimit_decisions_total{result=\"over_limit\",mode=\"plain\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("infergate_ratelimit_decision_duration_seconds_count 1"),
        "{metrics}"
    );
    assert_eq!(http_get(running.bound().admin, "/healthz").await.0, 200);
    assert_eq!(http_get(running.bound().admin, "/readyz").await.0, 200);
}

#[tokio::test]
async fn shadow_over_is_ok_on_the_wire_and_counted_as_shadow_over() {
    let running = start(StorageOptions::Memory).await;
    let mut client = client(running.bound().grpc).await;
    let shadow = descriptor(
        &[
            (keys::RULE, "default/shadow/0"),
            (keys::LIMIT, "1/hour"),
            (keys::SHADOW, "true"),
        ],
        Some(5),
    );
    let answer = call(&mut client, vec![shadow]).await.expect("answer");
    assert_eq!(answer.overall_code, OK);
    assert_eq!(answer.statuses[0].code, OK);
    assert_eq!(answer.statuses[0].limit_remaining, 0);
    let (_, metrics) = http_get(running.bound().admin, "/metrics").await;
    assert!(
        metrics.contains(
            "infergate_ratelimit_decisions_total{result=\"shadow_over\",mode=\"plain\"} 1"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn two_replicas_sharing_one_redis_enforce_one_budget() {
    let redis = RedisServer::start();
    let storage = StorageOptions::Redis {
        url: redis.url(),
        timeout: Duration::from_secs(1),
    };
    let a = start(storage.clone()).await;
    let b = start(storage).await;
    let mut clients = [client(a.bound().grpc).await, client(b.bound().grpc).await];
    let tokens = |hits| {
        descriptor(
            &[
                (keys::RULE, "default/shared/0"),
                ("x-user-id", "alice"),
                (keys::LIMIT, "100/hour"),
                (keys::MODE, keys::MODE_RESERVE),
            ],
            Some(hits),
        )
    };
    // 10 requests of 20, alternating replicas: admitted at 0, 20, 40, 60, 80 — five in all.
    let mut admitted = 0;
    for i in 0..10 {
        let answer = call(&mut clients[i % 2], vec![tokens(20)])
            .await
            .expect("answer");
        if answer.overall_code == OK {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 5);
    let answer = call(&mut clients[1], vec![tokens(1)])
        .await
        .expect("answer");
    assert_eq!(answer.overall_code, OVER);
    assert_eq!(answer.statuses[0].limit_remaining, 0);
    assert_eq!(http_get(a.bound().admin, "/readyz").await.0, 200);
}
