//! Counters in process memory, sharded: a request locks the shards of its counters in shard
//! order (so two requests never deadlock), decides with [`decide`] and writes back while still
//! holding them, which makes the request atomic.
//!
//! Each counter is one window of one key; a background sweep drops counters whose window has
//! ended, so memory holds only live windows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::Result;
use crate::decision::{Counter, Decision, Op, decide};
use crate::storage::Storage;
use crate::window;

const SHARDS: usize = 16;
/// How often ended windows are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
struct Entry {
    used: u64,
    /// End of the counter's window (Unix seconds); swept after it.
    ends: u64,
}

type Shard = HashMap<Counter, Entry>;

pub struct MemoryStorage {
    shards: Arc<[Mutex<Shard>; SHARDS]>,
    sweeper: Option<JoinHandle<()>>,
}

impl Default for MemoryStorage {
    fn default() -> Self {
        MemoryStorage::new()
    }
}

impl MemoryStorage {
    /// Empty storage; sweeps ended windows every second when created inside a Tokio runtime
    /// (otherwise call [`MemoryStorage::sweep`]).
    pub fn new() -> MemoryStorage {
        let shards: Arc<[Mutex<Shard>; SHARDS]> =
            Arc::new(std::array::from_fn(|_| Mutex::new(HashMap::new())));
        let sweeper = tokio::runtime::Handle::try_current()
            .ok()
            .map(|runtime| runtime.spawn(sweep_forever(Arc::downgrade(&shards))));
        MemoryStorage { shards, sweeper }
    }

    /// Drops every counter whose window ended at or before `now` (time since the Unix epoch).
    pub fn sweep(&self, now: Duration) {
        sweep(&self.shards, now.as_secs());
    }

    /// Number of live counters.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|shard| lock(shard).len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Decides synchronously (the [`Storage`] impl is this, without waiting).
    pub fn decide_now(&self, ops: &[Op]) -> Decision {
        let mut guards: [Option<MutexGuard<'_, Shard>>; SHARDS] = std::array::from_fn(|_| None);
        let mut wanted = [false; SHARDS];
        for op in ops {
            wanted[shard_of(op)] = true;
        }
        // Ascending shard order: every request locks in the same order.
        for (i, guard) in guards.iter_mut().enumerate() {
            if wanted[i] {
                *guard = Some(lock(&self.shards[i]));
            }
        }
        let mut stored = Vec::with_capacity(ops.len());
        for op in ops {
            let used = guards[shard_of(op)]
                .as_ref()
                .and_then(|shard| shard.get(&op.counter()))
                .map_or(0, |entry| entry.used);
            stored.push(used);
        }
        let decision = decide(ops, &stored);
        if !decision.over_limit {
            for (op, outcome) in ops.iter().zip(&decision.outcomes) {
                if let Some(shard) = guards[shard_of(op)].as_mut() {
                    shard.insert(
                        op.counter(),
                        Entry {
                            used: outcome.used,
                            ends: op.window.end(),
                        },
                    );
                }
            }
        }
        decision
    }
}

impl Drop for MemoryStorage {
    fn drop(&mut self) {
        if let Some(sweeper) = &self.sweeper {
            sweeper.abort();
        }
    }
}

#[tonic::async_trait]
impl Storage for MemoryStorage {
    async fn decide(&self, ops: &[Op]) -> Result<Decision> {
        Ok(self.decide_now(ops))
    }

    async fn ready(&self) -> Result<()> {
        Ok(())
    }
}

fn shard_of(op: &Op) -> usize {
    // The key is a hash already; its low bits spread evenly.
    (op.key.0 % SHARDS as u128) as usize
}

/// A poisoned shard still holds valid counters (every write is one insert).
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

fn sweep(shards: &[Mutex<Shard>; SHARDS], now_secs: u64) {
    for shard in shards {
        lock(shard).retain(|_, entry| entry.ends > now_secs);
    }
}

async fn sweep_forever(shards: Weak<[Mutex<Shard>; SHARDS]>) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(shards) = shards.upgrade() else {
            return;
        };
        sweep(&shards, window::now().as_secs());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::{Apply, Check};
    use crate::descriptor::CounterKey;
    use crate::window::{Unit, Window};

    fn op(key: u128, at: Duration) -> Op {
        Op {
            key: CounterKey(key),
            window: Window::at(Unit::Second, at),
            check: Check::Plain,
            apply: Apply::Add,
            blocking: true,
            limit: 10,
            hits: 1,
        }
    }

    #[test]
    fn ended_windows_are_swept_and_live_ones_kept() {
        let storage = MemoryStorage::new();
        let t = Duration::from_secs(1_000);
        storage.decide_now(&[op(1, t), op(2, t + Duration::from_secs(5))]);
        assert_eq!(storage.len(), 2);
        storage.sweep(t + Duration::from_millis(999));
        assert_eq!(storage.len(), 2);
        storage.sweep(t + Duration::from_secs(1));
        assert_eq!(storage.len(), 1);
        storage.sweep(t + Duration::from_secs(6));
        assert!(storage.is_empty());
    }

    #[test]
    fn a_new_window_starts_from_zero() {
        let storage = MemoryStorage::new();
        let t = Duration::from_secs(1_000);
        for _ in 0..3 {
            storage.decide_now(&[op(1, t)]);
        }
        let later = storage.decide_now(&[op(1, t + Duration::from_secs(1))]);
        assert_eq!(later.outcomes[0].used, 1);
    }
}
