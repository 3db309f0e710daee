//! Where counters live: [`MemoryStorage`] (one replica) or [`RedisStorage`] (shared by every
//! replica). Both apply a request's [`Op`]s atomically with the math of [`crate::decision`].

pub mod memory;
pub mod redis;

use std::sync::Arc;
use std::time::Duration;

pub use self::memory::MemoryStorage;
pub use self::redis::RedisStorage;
use crate::Result;
use crate::decision::{Decision, Op};
use crate::keys;

#[tonic::async_trait]
pub trait Storage: Send + Sync + 'static {
    /// Decides one request, all ops together and all-or-nothing (see [`crate::decision`]).
    async fn decide(&self, ops: &[Op]) -> Result<Decision>;

    /// Ok when the storage can serve requests (Redis answers a PING in time).
    async fn ready(&self) -> Result<()>;
}

/// Which storage to use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum StorageOptions {
    /// In-process counters: exact for one replica, lost on restart.
    #[default]
    Memory,
    /// Counters in Redis, shared by every replica using the same URL.
    Redis {
        /// `redis://[:password@]host:port[/db]`.
        url: String,
        /// Bound on one Redis call, reconnecting included; past it the call is `UNAVAILABLE`.
        timeout: Duration,
    },
}

impl StorageOptions {
    /// Redis at `url` with the default timeout.
    pub fn redis(url: impl Into<String>) -> StorageOptions {
        StorageOptions::Redis {
            url: url.into(),
            timeout: Duration::from_millis(keys::DEFAULT_REDIS_TIMEOUT_MS),
        }
    }

    /// Builds the storage. Redis connects lazily: an unreachable Redis is not a start-up error,
    /// it makes `/readyz` fail and calls `UNAVAILABLE` until it answers.
    pub fn build(&self) -> Result<Arc<dyn Storage>> {
        Ok(match self {
            StorageOptions::Memory => Arc::new(MemoryStorage::new()),
            StorageOptions::Redis { url, timeout } => Arc::new(RedisStorage::new(url, *timeout)?),
        })
    }
}
