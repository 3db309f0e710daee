//! Counters in Redis, shared by every replica: one request is one `EVALSHA` of
//! `redis.lua` (loaded once; `redis::Script` falls back to loading it on `NOSCRIPT`) with every
//! counter as a key, so the decision is atomic across replicas. Each written counter gets
//! `PX` = its window length + [`keys::REDIS_EXPIRY_MARGIN_MS`].
//!
//! Every call is bounded by the configured timeout, connecting included; a failed call is an
//! error (the service answers `UNAVAILABLE`) and the connection manager reconnects in the
//! background when Redis comes back. A single Redis node (or a primary behind a proxy) is
//! supported, not Redis Cluster (the keys of one request would span slots).
//!
//! Counts travel as Lua numbers (doubles), exact up to 2^53: limits and hits are capped there.

use std::time::Duration;

use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::decision::{Apply, Check, Decision, Op, Outcome};
use crate::error::redact_url;
use crate::storage::Storage;
use crate::{Error, Result, keys};

const SCRIPT: &str = include_str!("redis.lua");
/// Largest count exact in a Lua number.
const MAX_COUNT: u64 = 1 << 53;
/// Connection attempts get at least this long, so a slow link can connect in the background
/// while calls keep failing fast.
const MIN_CONNECTION_TIMEOUT: Duration = Duration::from_secs(1);

pub struct RedisStorage {
    manager: ConnectionManager,
    script: Script,
    timeout: Duration,
}

impl RedisStorage {
    /// A storage on `url` (`redis://host:port/db`); connects lazily, on the first call.
    pub fn new(url: &str, timeout: Duration) -> Result<RedisStorage> {
        let client = redis::Client::open(url).map_err(|source| Error::RedisUrl {
            url: redact_url(url),
            source,
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout.max(MIN_CONNECTION_TIMEOUT)))
            .set_response_timeout(Some(timeout))
            // Give up a reconnect quickly; the next call starts another.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(250));
        let manager = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|source| Error::Storage { source })?;
        Ok(RedisStorage {
            manager,
            script: Script::new(SCRIPT),
            timeout,
        })
    }

    /// Redis key of `op`'s counter.
    pub fn key(op: &Op) -> String {
        format!("{}{}:{}", keys::REDIS_KEY_PREFIX, op.key, op.window.start)
    }

    async fn bounded<T>(&self, call: impl Future<Output = redis::RedisResult<T>>) -> Result<T> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(source)) => Err(Error::Storage { source }),
            Err(_) => Err(Error::StorageTimeout {
                after: self.timeout,
            }),
        }
    }
}

#[tonic::async_trait]
impl Storage for RedisStorage {
    async fn decide(&self, ops: &[Op]) -> Result<Decision> {
        if ops.is_empty() {
            return Ok(Decision {
                over_limit: false,
                outcomes: Vec::new(),
            });
        }
        let mut invocation = self.script.prepare_invoke();
        for op in ops {
            let (replace, reserved) = match op.apply {
                Apply::Add => (0, 0),
                Apply::Replace { reserved } => (1, reserved.min(MAX_COUNT)),
            };
            let check = match op.check {
                Check::Never => 0,
                Check::Plain => 1,
                Check::Reserve => 2,
            };
            invocation
                .key(RedisStorage::key(op))
                .arg(check)
                .arg(u8::from(op.blocking))
                .arg(op.limit.min(MAX_COUNT))
                .arg(op.hits.min(MAX_COUNT))
                .arg(replace)
                .arg(reserved)
                .arg(
                    op.window
                        .len_ms()
                        .saturating_add(keys::REDIS_EXPIRY_MARGIN_MS),
                );
        }
        let mut connection = self.manager.clone();
        let answer: Vec<i64> = self
            .bounded(invocation.invoke_async(&mut connection))
            .await?;
        parse_answer(&answer, ops.len())
    }

    async fn ready(&self) -> Result<()> {
        let mut connection = self.manager.clone();
        let pong: String = self
            .bounded(redis::cmd("PING").query_async(&mut connection))
            .await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(Error::StorageAnswer { answer: pong })
        }
    }
}

/// `{over_limit, over_1, used_1, …}` → a [`Decision`].
fn parse_answer(answer: &[i64], ops: usize) -> Result<Decision> {
    let bad = || Error::StorageAnswer {
        answer: format!("{answer:?} for {ops} ops"),
    };
    let (&over_limit, pairs) = answer.split_first().ok_or_else(bad)?;
    if pairs.len() != ops * 2 {
        return Err(bad());
    }
    let outcomes = pairs
        .chunks_exact(2)
        .map(|pair| Outcome {
            over: pair[0] == 1,
            used: u64::try_from(pair[1]).unwrap_or(0),
        })
        .collect();
    Ok(Decision {
        over_limit: over_limit == 1,
        outcomes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_of_the_wrong_shape_are_errors() {
        assert!(parse_answer(&[], 1).is_err());
        assert!(parse_answer(&[0, 0], 1).is_err());
        let decision = parse_answer(&[1, 0, 5, 1, 9], 2).expect("shape");
        assert!(decision.over_limit);
        assert_eq!(
            decision.outcomes,
            [
                Outcome {
                    over: false,
                    used: 5
                },
                Outcome {
                    over: true,
                    used: 9
                }
            ]
        );
    }
}
