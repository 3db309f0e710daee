//! The saturation detector (`utilization-detector`, the Inference Extension's default).
//!
//! Each endpoint's load is the larger of `waiting / queueDepthThreshold` and
//! `kv_cache_usage / kvCacheUtilThreshold`; an endpoint without fresh metrics counts as 1 (fully
//! loaded). The pool's saturation is the mean over the candidates (1 when there are none), and
//! the pool is *saturated* at 1 or more: then sheddable requests (priority < 0) get 429.
//!
//! As a filter it drops candidates over `threshold × (1 + headroom)` or without fresh metrics,
//! and returns them all when that would leave none (so the scorers pick the least bad).

use std::time::Duration;

use serde::Deserialize;

use super::config::GoDuration;
use crate::datastore::Candidate;

pub const UTILIZATION_DETECTOR: &str = "utilization-detector";

/// Upstream defaults.
pub const DEFAULT_QUEUE_DEPTH_THRESHOLD: u64 = 5;
pub const DEFAULT_KV_CACHE_UTIL_THRESHOLD: f64 = 0.8;

/// `parameters` of `utilization-detector`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DetectorParameters {
    pub queue_depth_threshold: Option<i64>,
    pub kv_cache_util_threshold: Option<f64>,
    /// Metrics older than this count as stale; without it the datastore's threshold applies.
    pub metrics_staleness_threshold: Option<GoDuration>,
    pub headroom: Option<f64>,
}

/// A validated detector.
#[derive(Debug, Clone, PartialEq)]
pub struct UtilizationDetector {
    pub queue_depth_threshold: u64,
    pub kv_cache_util_threshold: f64,
    pub staleness: Option<Duration>,
    pub headroom: f64,
}

impl Default for UtilizationDetector {
    fn default() -> Self {
        UtilizationDetector {
            queue_depth_threshold: DEFAULT_QUEUE_DEPTH_THRESHOLD,
            kv_cache_util_threshold: DEFAULT_KV_CACHE_UTIL_THRESHOLD,
            staleness: None,
            headroom: 0.0,
        }
    }
}

impl UtilizationDetector {
    pub fn from_parameters(p: &DetectorParameters) -> Result<Self, String> {
        let d = UtilizationDetector::default();
        let queue_depth_threshold = match p.queue_depth_threshold {
            None => d.queue_depth_threshold,
            Some(q) if q > 0 => q.unsigned_abs(),
            Some(q) => return Err(format!("queueDepthThreshold must be > 0, got {q}")),
        };
        let kv_cache_util_threshold = match p.kv_cache_util_threshold {
            None => d.kv_cache_util_threshold,
            Some(k) if k > 0.0 && k <= 1.0 => k,
            Some(k) => return Err(format!("kvCacheUtilThreshold must be in (0, 1], got {k}")),
        };
        let headroom = match p.headroom {
            None => 0.0,
            Some(h) if h >= 0.0 && h.is_finite() => h,
            Some(h) => return Err(format!("headroom must be >= 0, got {h}")),
        };
        let staleness = match &p.metrics_staleness_threshold {
            None => None,
            Some(GoDuration(d)) if !d.is_zero() => Some(*d),
            Some(_) => return Err("metricsStalenessThreshold must be > 0".to_owned()),
        };
        Ok(UtilizationDetector {
            queue_depth_threshold,
            kv_cache_util_threshold,
            staleness,
            headroom,
        })
    }

    fn fresh(&self, c: &Candidate) -> bool {
        match self.staleness {
            Some(limit) => c.age.is_some_and(|age| age <= limit),
            None => c.fresh,
        }
    }

    /// Load of one endpoint: 1 means at its ideal capacity.
    pub fn endpoint_load(&self, c: &Candidate) -> f64 {
        if !self.fresh(c) {
            return 1.0;
        }
        let q = c.metrics.waiting as f64 / self.queue_depth_threshold as f64;
        let kv = c.metrics.kv_cache_usage / self.kv_cache_util_threshold;
        q.max(kv)
    }

    /// Mean load over `candidates`; 1 when there are none.
    pub fn saturation<'a>(&self, candidates: impl IntoIterator<Item = &'a Candidate>) -> f64 {
        let (mut sum, mut n) = (0.0, 0usize);
        for c in candidates {
            sum += self.endpoint_load(c);
            n += 1;
        }
        if n == 0 { 1.0 } else { sum / n as f64 }
    }

    pub fn is_saturated<'a>(&self, candidates: impl IntoIterator<Item = &'a Candidate>) -> bool {
        self.saturation(candidates) >= 1.0
    }

    /// Candidates under the burst limits with fresh metrics; all of them when none is.
    pub fn filter<'a>(&self, candidates: Vec<&'a Candidate>) -> Vec<&'a Candidate> {
        let q_limit = self.queue_depth_threshold as f64 * (1.0 + self.headroom);
        let kv_limit = (self.kv_cache_util_threshold * (1.0 + self.headroom)).min(1.0);
        let kept: Vec<&Candidate> = candidates
            .iter()
            .copied()
            .filter(|c| {
                self.fresh(c)
                    && (c.metrics.waiting as f64) < q_limit
                    && c.metrics.kv_cache_usage < kv_limit
            })
            .collect();
        if kept.is_empty() { candidates } else { kept }
    }
}
