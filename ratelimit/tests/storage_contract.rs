//! One storage contract, run against [`MemoryStorage`] and [`RedisStorage`] (a real
//! `redis-server` per test): every behaviour of `src/decision.rs`, through the storage.

#[path = "support/redis_server.rs"]
mod redis_server;

use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::google::protobuf::UInt64Value;
use ratelimit::decision::{Decision, Op};
use ratelimit::descriptor::Descriptor;
use ratelimit::{MemoryStorage, RedisStorage, Storage, keys, window};
use redis_server::RedisServer;

/// A storage under test, with the Redis it talks to (if any) kept alive.
struct Fixture {
    storage: Arc<dyn Storage>,
    redis: Option<RedisServer>,
}

impl Fixture {
    fn memory() -> Fixture {
        Fixture {
            storage: Arc::new(MemoryStorage::new()),
            redis: None,
        }
    }

    fn redis() -> Fixture {
        let server = RedisServer::start();
        let storage = RedisStorage::new(&server.url(), Duration::from_secs(2)).expect("redis url");
        Fixture {
            storage: Arc::new(storage),
            redis: Some(server),
        }
    }
}

/// A descriptor as Envoy sends it: `rule`, `limit`, extra entries (mode, selectors…), hits.
fn descriptor(rule: &str, limit: &str, extra: &[(&str, &str)], hits: u64) -> Descriptor {
    let mut entries = vec![
        Entry {
            key: keys::RULE.into(),
            value: rule.into(),
        },
        Entry {
            key: keys::LIMIT.into(),
            value: limit.into(),
        },
    ];
    entries.extend(extra.iter().map(|(key, value)| Entry {
        key: (*key).into(),
        value: (*value).into(),
    }));
    let raw = RateLimitDescriptor {
        entries,
        hits_addend: Some(UInt64Value { value: hits }),
        ..Default::default()
    };
    Descriptor::parse("infergate", &raw, 0).expect("valid descriptor")
}

fn op(rule: &str, limit: &str, extra: &[(&str, &str)], hits: u64, now: Duration) -> Op {
    Op::new(&descriptor(rule, limit, extra, hits), now)
}

async fn decide(storage: &dyn Storage, ops: &[Op]) -> Decision {
    storage.decide(ops).await.expect("storage answers")
}

/// `(over_limit, used of op 0)`.
async fn one(storage: &dyn Storage, op: Op) -> (bool, u64) {
    let decision = decide(storage, &[op]).await;
    (decision.over_limit, decision.outcomes[0].used)
}

const RESERVE: (&str, &str) = (keys::MODE, keys::MODE_RESERVE);
const SETTLE: (&str, &str) = (keys::MODE, keys::MODE_SETTLE);

async fn plain_limit_admits_up_to_the_limit_and_rejects_past_it(storage: &dyn Storage) {
    let now = window::now();
    let plain = |hits| op("t/plain/0", "5/hour", &[], hits, now);
    assert_eq!(one(storage, plain(2)).await, (false, 2));
    assert_eq!(one(storage, plain(2)).await, (false, 4));
    assert_eq!(one(storage, plain(2)).await, (true, 4), "4 + 2 > 5");
    assert_eq!(one(storage, plain(1)).await, (false, 5));
    let decision = decide(storage, &[plain(1)]).await;
    assert!(decision.over_limit);
    assert_eq!(decision.outcomes[0].remaining(&plain(1)), 0);
}

async fn distinct_keys_are_independent(storage: &dyn Storage) {
    let now = window::now();
    let user = |name| op("t/users/0", "3/hour", &[("x-user-id", name)], 3, now);
    assert_eq!(one(storage, user("alice")).await, (false, 3));
    assert_eq!(one(storage, user("alice")).await, (true, 3));
    assert_eq!(one(storage, user("bob")).await, (false, 3));
    let other_rule = op("t/users/1", "3/hour", &[("x-user-id", "alice")], 3, now);
    assert_eq!(one(storage, other_rule).await, (false, 3));
}

async fn changing_the_limit_keeps_the_counter(storage: &dyn Storage) {
    let now = window::now();
    assert_eq!(
        one(storage, op("t/change/0", "10/hour", &[], 8, now)).await,
        (false, 8)
    );
    assert_eq!(
        one(storage, op("t/change/0", "20/hour", &[], 8, now)).await,
        (false, 16)
    );
}

async fn reserve_admits_while_under_and_rejects_once_spent(storage: &dyn Storage) {
    let now = window::now();
    let reserve = |hits| op("t/reserve/0", "100/hour", &[RESERVE], hits, now);
    assert_eq!(one(storage, reserve(60)).await, (false, 60));
    assert_eq!(
        one(storage, reserve(60)).await,
        (false, 120),
        "under the limit when it arrived, so admitted past it"
    );
    assert_eq!(one(storage, reserve(1)).await, (true, 120), "budget spent");
}

async fn settle_replaces_the_estimate_down_and_up(storage: &dyn Storage) {
    let now = window::now();
    let at = now.as_secs().to_string();
    let reserve = |hits| op("t/settle/0", "100/hour", &[RESERVE], hits, now);
    let settle = |reserved: &str, hits| {
        op(
            "t/settle/0",
            "100/hour",
            &[SETTLE, (keys::RESERVED, reserved)],
            hits,
            now,
        )
    };
    assert_eq!(one(storage, reserve(60)).await, (false, 60));
    // Real usage 20 < estimate 60: the counter goes down.
    assert_eq!(
        one(storage, settle(&format!("60:{at}"), 20)).await,
        (false, 20)
    );
    assert_eq!(one(storage, reserve(50)).await, (false, 70));
    // Real usage 90 > estimate 50: up, past the limit; settles never reject.
    assert_eq!(
        one(storage, settle(&format!("50:{at}"), 90)).await,
        (false, 110)
    );
    assert_eq!(one(storage, reserve(1)).await, (true, 110));
    // A settle larger than the counter (its window's reservation already gone) floors at zero.
    let fresh = op(
        "t/settle/1",
        "100/hour",
        &[SETTLE, (keys::RESERVED, &format!("500:{at}"))],
        10,
        now,
    );
    assert_eq!(one(storage, fresh).await, (false, 0));
}

async fn settle_after_a_window_roll_adds_to_the_current_window(storage: &dyn Storage) {
    let now = window::now();
    let last_hour = (now.as_secs() - 3_600).to_string();
    let reserve = op("t/roll/0", "100/hour", &[RESERVE], 30, now);
    assert_eq!(one(storage, reserve).await, (false, 30));
    let settle = op(
        "t/roll/0",
        "100/hour",
        &[SETTLE, (keys::RESERVED, &format!("50:{last_hour}"))],
        40,
        now,
    );
    assert_eq!(
        one(storage, settle).await,
        (false, 70),
        "nothing to refund here"
    );
    let malformed = op(
        "t/roll/0",
        "100/hour",
        &[SETTLE, (keys::RESERVED, "garbage")],
        5,
        now,
    );
    assert_eq!(one(storage, malformed).await, (false, 75));
}

async fn a_rejected_request_adds_nothing_to_its_other_descriptors(storage: &dyn Storage) {
    let now = window::now();
    let wide = |hits| op("t/all/wide", "100/hour", &[], hits, now);
    let narrow = |hits| op("t/all/narrow", "2/hour", &[], hits, now);
    let reserve = |hits| op("t/all/tokens", "10/hour", &[RESERVE], hits, now);
    let decision = decide(storage, &[wide(3), reserve(4), narrow(3)]).await;
    assert!(decision.over_limit);
    assert_eq!(
        decision
            .outcomes
            .iter()
            .map(|o| (o.over, o.used))
            .collect::<Vec<_>>(),
        [(false, 0), (false, 0), (true, 0)]
    );
    // Nothing was consumed: each still starts from zero.
    assert_eq!(one(storage, wide(3)).await, (false, 3));
    assert_eq!(one(storage, reserve(4)).await, (false, 4));
    assert_eq!(one(storage, narrow(2)).await, (false, 2));
    let both = decide(storage, &[wide(1), reserve(1)]).await;
    assert!(!both.over_limit);
    assert_eq!(both.outcomes[0].used, 4);
    assert_eq!(both.outcomes[1].used, 5);
}

async fn shadow_descriptors_count_but_never_reject(storage: &dyn Storage) {
    let now = window::now();
    let shadow = |hits| op("t/shadow/0", "2/hour", &[(keys::SHADOW, "true")], hits, now);
    let decision = decide(storage, &[shadow(3)]).await;
    assert!(!decision.over_limit);
    assert!(decision.outcomes[0].over, "reported as over");
    assert_eq!(decision.outcomes[0].used, 3, "and counted");
    let enforced = op("t/shadow/1", "100/hour", &[], 1, now);
    let mixed = decide(storage, &[shadow(1), enforced]).await;
    assert!(!mixed.over_limit);
    assert_eq!(
        mixed.outcomes.iter().map(|o| o.used).collect::<Vec<_>>(),
        [4, 1]
    );
}

async fn counters_reset_when_the_window_ends(storage: &dyn Storage) {
    let per_second = |now| op("t/reset/0", "2/second", &[], 2, now);
    // Spend a one-second window, then wait for one where the same request is admitted.
    let start = window::now();
    assert!(!one(storage, per_second(start)).await.0);
    assert!(one(storage, per_second(start)).await.0, "spent");
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let now = window::now();
        let (over, used) = one(storage, per_second(now)).await;
        if now.as_secs() == start.as_secs() {
            assert!(over, "still the spent window");
        } else {
            assert_eq!((over, used), (false, 2), "a new window starts from zero");
            break;
        }
        assert!(Instant::now() < deadline, "the window never rolled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn concurrent_reservations_admit_exactly_while_under_the_limit(storage: Arc<dyn Storage>) {
    let now = window::now();
    let reserve = |hits| op("t/race/0", "100/hour", &[RESERVE], hits, now);
    assert_eq!(one(&*storage, reserve(75)).await, (false, 75));
    // 20 at once, 10 each: admitted at 75, 85, 95 — then the budget is spent.
    let calls = (0..20).map(|_| {
        let storage = storage.clone();
        let op = reserve(10);
        tokio::spawn(async move { storage.decide(&[op]).await.expect("storage answers") })
    });
    let mut admitted = 0;
    for call in calls.collect::<Vec<_>>() {
        if !call.await.expect("task").over_limit {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 3);
    assert_eq!(one(&*storage, reserve(0)).await, (true, 105));
}

macro_rules! contract {
    ($backend:ident) => {
        mod $backend {
            use super::*;

            #[tokio::test]
            async fn plain_limit_admits_up_to_the_limit_and_rejects_past_it() {
                let f = Fixture::$backend();
                super::plain_limit_admits_up_to_the_limit_and_rejects_past_it(&*f.storage).await;
            }

            #[tokio::test]
            async fn distinct_keys_are_independent() {
                let f = Fixture::$backend();
                super::distinct_keys_are_independent(&*f.storage).await;
            }

            #[tokio::test]
            async fn changing_the_limit_keeps_the_counter() {
                let f = Fixture::$backend();
                super::changing_the_limit_keeps_the_counter(&*f.storage).await;
            }

            #[tokio::test]
            async fn reserve_admits_while_under_and_rejects_once_spent() {
                let f = Fixture::$backend();
                super::reserve_admits_while_under_and_rejects_once_spent(&*f.storage).await;
            }

            #[tokio::test]
            async fn settle_replaces_the_estimate_down_and_up() {
                let f = Fixture::$backend();
                super::settle_replaces_the_estimate_down_and_up(&*f.storage).await;
            }

            #[tokio::test]
            async fn settle_after_a_window_roll_adds_to_the_current_window() {
                let f = Fixture::$backend();
                super::settle_after_a_window_roll_adds_to_the_current_window(&*f.storage).await;
            }

            #[tokio::test]
            async fn a_rejected_request_adds_nothing_to_its_other_descriptors() {
                let f = Fixture::$backend();
                super::a_rejected_request_adds_nothing_to_its_other_descriptors(&*f.storage).await;
            }

            #[tokio::test]
            async fn shadow_descriptors_count_but_never_reject() {
                let f = Fixture::$backend();
                super::shadow_descriptors_count_but_never_reject(&*f.storage).await;
            }

            #[tokio::test]
            async fn counters_reset_when_the_window_ends() {
                let f = Fixture::$backend();
                super::counters_reset_when_the_window_ends(&*f.storage).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_reservations_admit_exactly_while_under_the_limit() {
                let f = Fixture::$backend();
                super::concurrent_reservations_admit_exactly_while_under_the_limit(
                    f.storage.clone(),
                )
                .await;
                drop(f.redis);
            }
        }
    };
}

contract!(memory);
contract!(redis);

/// Redis counters carry an expiry of their window length plus a margin, set by the script.
#[tokio::test]
async fn redis_counters_expire_after_their_window() {
    let server = RedisServer::start();
    let storage = RedisStorage::new(&server.url(), Duration::from_secs(2)).expect("url");
    let now = window::now();
    let per_second = op("t/ttl/0", "5/second", &[], 1, now);
    let per_hour = op("t/ttl/1", "5/hour", &[], 1, now);
    decide(&storage, &[per_second, per_hour]).await;
    let client = ::redis::Client::open(server.url()).expect("url");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let pttl = |key: String| {
        let mut connection = connection.clone();
        async move {
            ::redis::cmd("PTTL")
                .arg(key)
                .query_async::<i64>(&mut connection)
                .await
                .expect("PTTL")
        }
    };
    let second_ttl = pttl(RedisStorage::key(&per_second)).await;
    assert!(
        (1..=1_000 + keys::REDIS_EXPIRY_MARGIN_MS as i64).contains(&second_ttl),
        "{second_ttl}"
    );
    let hour_ttl = pttl(RedisStorage::key(&per_hour)).await;
    assert!(hour_ttl > 3_000_000, "{hour_ttl}");
    // And it is gone once expired.
    let deadline = Instant::now() + Duration::from_secs(5);
    while ::redis::cmd("EXISTS")
        .arg(RedisStorage::key(&per_second))
        .query_async::<i64>(&mut connection)
        .await
        .expect("EXISTS")
        == 1
    {
        assert!(Instant::now() < deadline, "the counter never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(RedisStorage::key(&per_second).starts_with("infergate:rl:"));
}

/// Memory counters of ended windows are swept in the background.
#[tokio::test]
async fn memory_counters_of_ended_windows_are_swept() {
    let storage = MemoryStorage::new();
    decide(
        &storage,
        &[op("t/sweep/0", "5/second", &[], 1, window::now())],
    )
    .await;
    assert_eq!(storage.len(), 1);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !storage.is_empty() {
        assert!(Instant::now() < deadline, "never swept");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
