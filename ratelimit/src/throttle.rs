//! At most one log line per reason per interval, so an outage (Redis down, every request
//! failing) logs about once a second with a count of what it held back, instead of flooding.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

pub struct LogThrottle {
    every: Duration,
    state: Mutex<HashMap<&'static str, Slot>>,
}

struct Slot {
    last: Instant,
    suppressed: u64,
}

impl LogThrottle {
    pub fn new(every: Duration) -> LogThrottle {
        LogThrottle {
            every,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(n)` when a line for `reason` may be logged now, `n` being how many were held back
    /// since the last one; `None` when it should be dropped.
    pub fn allow(&self, reason: &'static str) -> Option<u64> {
        self.allow_at(reason, Instant::now())
    }

    fn allow_at(&self, reason: &'static str, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match state.get_mut(reason) {
            Some(slot) if now.saturating_duration_since(slot.last) < self.every => {
                slot.suppressed += 1;
                None
            }
            Some(slot) => {
                let suppressed = std::mem::take(&mut slot.suppressed);
                slot.last = now;
                Some(suppressed)
            }
            None => {
                state.insert(
                    reason,
                    Slot {
                        last: now,
                        suppressed: 0,
                    },
                );
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_reason_per_interval_with_the_held_back_count() {
        let throttle = LogThrottle::new(Duration::from_secs(1));
        let t = Instant::now();
        assert_eq!(throttle.allow_at("timeout", t), Some(0));
        assert_eq!(
            throttle.allow_at("timeout", t + Duration::from_millis(10)),
            None
        );
        assert_eq!(
            throttle.allow_at("timeout", t + Duration::from_millis(20)),
            None
        );
        assert_eq!(throttle.allow_at("connection", t), Some(0));
        assert_eq!(
            throttle.allow_at("timeout", t + Duration::from_millis(1_000)),
            Some(2)
        );
    }
}
