//! The decision math, pure and shared by every storage: the memory storage runs
//! [`decide`] under its locks, and the Redis script (`storage/redis.lua`) is the same steps in
//! Lua over the same [`Op`]s, checked by one contract test suite run against both.
//!
//! One request is all-or-nothing: the ops are applied in order to tentative values (so two
//! descriptors on one counter see each other), and if any blocking op is over, no counter
//! changes at all — a rejected request consumes no budget.

use std::collections::HashMap;
use std::time::Duration;

use crate::descriptor::{CounterKey, Descriptor, Mode, Reservation};
use crate::window::Window;

/// What one descriptor does to its counter in this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {
    pub key: CounterKey,
    /// The current window; with `key`, names the counter.
    pub window: Window,
    pub check: Check,
    pub apply: Apply,
    /// Over makes the request OVER_LIMIT (false for shadow descriptors).
    pub blocking: bool,
    pub limit: u64,
    pub hits: u64,
}

/// When an op is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Settles are never over.
    Never,
    /// Over if `used + hits > limit`.
    Plain,
    /// Over if `used >= limit`.
    Reserve,
}

/// How an admitted op changes its counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Apply {
    /// `used += hits`.
    Add,
    /// `used = max(0, used + hits - reserved)`: the real usage replaces the estimate reserved
    /// in this same window.
    Replace { reserved: u64 },
}

/// A counter: a descriptor's key in one window.
pub type Counter = (CounterKey, u64);

impl Op {
    /// The op of `descriptor` at `now` (time since the Unix epoch).
    pub fn new(descriptor: &Descriptor, now: Duration) -> Op {
        let window = Window::at(descriptor.limit.unit, now);
        let (check, apply) = match descriptor.mode {
            Mode::Plain => (Check::Plain, Apply::Add),
            Mode::Reserve => (Check::Reserve, Apply::Add),
            Mode::Settle(Reservation::At { amount, at })
                if Window::at_secs(descriptor.limit.unit, at) == window =>
            {
                (Check::Never, Apply::Replace { reserved: amount })
            }
            // The window rolled since the reservation (its budget is gone with it), or the
            // reservation is unreadable: the real usage counts in the current window.
            Mode::Settle(_) => (Check::Never, Apply::Add),
        };
        Op {
            key: descriptor.key,
            window,
            check,
            apply,
            blocking: !descriptor.shadow,
            limit: descriptor.limit.requests,
            hits: descriptor.hits,
        }
    }

    pub fn counter(&self) -> Counter {
        (self.key, self.window.start)
    }

    /// Would this op be over with its counter at `used`?
    pub fn is_over(&self, used: u64) -> bool {
        match self.check {
            Check::Never => false,
            Check::Plain => used.saturating_add(self.hits) > self.limit,
            Check::Reserve => used >= self.limit,
        }
    }

    /// The counter after this op, from `used`.
    pub fn applied(&self, used: u64) -> u64 {
        match self.apply {
            Apply::Add => used.saturating_add(self.hits),
            Apply::Replace { reserved } => used.saturating_add(self.hits).saturating_sub(reserved),
        }
    }
}

/// The answer for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Some blocking op was over; no counter changed.
    pub over_limit: bool,
    /// One per op, in order.
    pub outcomes: Vec<Outcome>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// This op was over (a shadow op may be over while the request is admitted).
    pub over: bool,
    /// Its counter once the request is done: after every op if admitted, unchanged if not.
    pub used: u64,
}

impl Outcome {
    /// What is left of `op`'s limit.
    pub fn remaining(&self, op: &Op) -> u64 {
        op.limit.saturating_sub(self.used)
    }
}

/// Decides a request given `stored[i]`, the value of `ops[i]`'s counter before it (ops on the
/// same counter get the same stored value). When not [`Decision::over_limit`], each counter's
/// new value is the `used` of any of its outcomes.
pub fn decide(ops: &[Op], stored: &[u64]) -> Decision {
    let mut tentative: HashMap<Counter, u64> = HashMap::with_capacity(ops.len());
    let mut over_limit = false;
    let mut over = Vec::with_capacity(ops.len());
    for (op, stored) in ops.iter().zip(stored) {
        let used = tentative.entry(op.counter()).or_insert(*stored);
        let is_over = op.is_over(*used);
        over_limit |= is_over && op.blocking;
        over.push(is_over);
        *used = op.applied(*used);
    }
    let outcomes = ops
        .iter()
        .zip(stored)
        .zip(over)
        .map(|((op, stored), over)| Outcome {
            over,
            used: if over_limit {
                *stored
            } else {
                tentative.get(&op.counter()).copied().unwrap_or(*stored)
            },
        })
        .collect();
    Decision {
        over_limit,
        outcomes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::descriptor::Limit;
    use crate::window::Unit;

    const NOW: Duration = Duration::from_secs(1_700_000_030);

    fn op(check: Check, limit: u64, hits: u64) -> Op {
        Op {
            key: CounterKey(1),
            window: Window::at(Unit::Minute, NOW),
            check,
            apply: Apply::Add,
            blocking: true,
            limit,
            hits,
        }
    }

    fn with_key(mut op: Op, key: u128) -> Op {
        op.key = CounterKey(key);
        op
    }

    #[test]
    fn plain_is_over_when_the_hits_would_pass_the_limit() {
        let plain = op(Check::Plain, 10, 3);
        assert!(!plain.is_over(7));
        assert!(plain.is_over(8));
        assert!(!op(Check::Plain, 10, 0).is_over(10));
        assert!(op(Check::Plain, 0, 1).is_over(0));
    }

    #[test]
    fn reserve_is_over_only_once_the_budget_is_spent() {
        let reserve = op(Check::Reserve, 100, 500);
        assert!(!reserve.is_over(99), "an estimate may overshoot");
        assert!(reserve.is_over(100));
        assert!(reserve.is_over(150));
    }

    #[test]
    fn settle_replaces_the_estimate_and_never_goes_below_zero() {
        let settle = Op {
            check: Check::Never,
            apply: Apply::Replace { reserved: 100 },
            ..op(Check::Never, 10, 30)
        };
        assert!(!settle.is_over(u64::MAX - 1));
        assert_eq!(settle.applied(250), 180);
        assert_eq!(settle.applied(50), 0);
        let up = Op {
            hits: 400,
            ..settle
        };
        assert_eq!(up.applied(250), 550);
    }

    #[test]
    fn settle_in_a_later_window_adds_the_usage_to_the_current_window() {
        let limit = Limit {
            requests: 1_000,
            unit: Unit::Minute,
        };
        let descriptor = |at| Descriptor {
            rule: "r".into(),
            limit,
            mode: Mode::Settle(Reservation::At { amount: 100, at }),
            shadow: false,
            hits: 30,
            key: CounterKey(7),
        };
        let same = Op::new(&descriptor(NOW.as_secs() - 10), NOW);
        assert_eq!(same.apply, Apply::Replace { reserved: 100 });
        assert_eq!(same.check, Check::Never);
        let rolled = Op::new(&descriptor(NOW.as_secs() - 60), NOW);
        assert_eq!(rolled.apply, Apply::Add);
        let malformed = Op::new(
            &Descriptor {
                mode: Mode::Settle(Reservation::Malformed),
                ..descriptor(0)
            },
            NOW,
        );
        assert_eq!(malformed.apply, Apply::Add);
        assert_eq!(malformed.check, Check::Never);
    }

    #[test]
    fn an_admitted_request_applies_every_op() {
        let ops = [
            with_key(op(Check::Plain, 10, 2), 1),
            with_key(op(Check::Reserve, 100, 40), 2),
        ];
        let decision = decide(&ops, &[5, 70]);
        assert!(!decision.over_limit);
        assert_eq!(
            decision.outcomes,
            [
                Outcome {
                    over: false,
                    used: 7
                },
                Outcome {
                    over: false,
                    used: 110
                }
            ]
        );
        assert_eq!(decision.outcomes[0].remaining(&ops[0]), 3);
        assert_eq!(decision.outcomes[1].remaining(&ops[1]), 0);
    }

    #[test]
    fn one_blocking_op_over_rejects_the_request_and_changes_nothing() {
        let ops = [
            with_key(op(Check::Plain, 10, 2), 1),
            with_key(op(Check::Reserve, 100, 40), 2),
        ];
        let decision = decide(&ops, &[5, 100]);
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
                    used: 100
                }
            ]
        );
    }

    #[test]
    fn a_shadow_op_over_is_reported_and_counted_but_admits() {
        let shadow = Op {
            blocking: false,
            ..with_key(op(Check::Plain, 10, 5), 3)
        };
        let decision = decide(&[shadow], &[8]);
        assert!(!decision.over_limit);
        assert_eq!(
            decision.outcomes,
            [Outcome {
                over: true,
                used: 13
            }]
        );
    }

    #[test]
    fn ops_on_the_same_counter_see_each_other() {
        let ops = [op(Check::Plain, 10, 6), op(Check::Plain, 10, 6)];
        let decision = decide(&ops, &[0, 0]);
        assert!(decision.over_limit);
        assert_eq!(
            decision.outcomes.iter().map(|o| o.over).collect::<Vec<_>>(),
            [false, true]
        );
        assert!(decision.outcomes.iter().all(|o| o.used == 0));
        let admitted = decide(&[op(Check::Plain, 20, 6), op(Check::Plain, 20, 6)], &[1, 1]);
        assert!(admitted.outcomes.iter().all(|o| o.used == 13));
    }

    #[test]
    fn counters_saturate_instead_of_overflowing() {
        let huge = op(Check::Plain, u64::MAX, u64::MAX);
        assert!(!huge.is_over(0));
        assert_eq!(huge.applied(5), u64::MAX);
    }
}
