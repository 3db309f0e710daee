//! Filters: narrow the candidates before scoring. Every filter fails open: when it would leave
//! no candidate it returns its input, so a busy pool still gets the least bad endpoint.
//!
//! | type | keeps |
//! |---|---|
//! | (built in, always first) | endpoints with fresh metrics, when there is at least one |
//! | `utilization-detector` | fresh endpoints under `threshold × (1 + headroom)` (see [`super::saturation`]) |
//! | `low-queue-filter` | endpoints whose waiting queue is below `threshold` (default 128) |

use serde::Deserialize;

use super::saturation::UtilizationDetector;
use crate::datastore::Candidate;

pub const LOW_QUEUE: &str = "low-queue-filter";

/// `parameters` of `low-queue-filter`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LowQueueParameters {
    pub threshold: u64,
}

impl Default for LowQueueParameters {
    fn default() -> Self {
        LowQueueParameters { threshold: 128 }
    }
}

/// A configured filter.
#[derive(Debug)]
pub enum Filter {
    Utilization(UtilizationDetector),
    LowQueue(LowQueueParameters),
}

impl Filter {
    pub fn filter<'a>(&self, candidates: Vec<&'a Candidate>) -> Vec<&'a Candidate> {
        match self {
            Filter::Utilization(d) => d.filter(candidates),
            Filter::LowQueue(p) => keep_or_all(candidates, |c| c.metrics.waiting < p.threshold),
        }
    }
}

/// The built-in first step: stale or never-scraped endpoints are unknown, so they are only
/// picked when no endpoint has fresh metrics.
pub fn prefer_fresh(candidates: Vec<&Candidate>) -> Vec<&Candidate> {
    keep_or_all(candidates, |c| c.fresh)
}

fn keep_or_all(candidates: Vec<&Candidate>, keep: impl Fn(&Candidate) -> bool) -> Vec<&Candidate> {
    if candidates.iter().any(|c| keep(c)) {
        candidates.into_iter().filter(|c| keep(c)).collect()
    } else {
        candidates
    }
}
