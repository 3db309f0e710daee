//! Prometheus metrics of the service (served on the admin `/metrics`).
//!
//! Labels are closed sets (results, modes, reasons), never rule ids or selector values, so a
//! client cannot grow them.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::keys;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    /// `ok`, `over_limit` or `shadow_over` (a shadow descriptor that would have been over).
    result: &'static str,
    /// `plain`, `reserve` or `settle`.
    mode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone)]
pub struct Metrics {
    decisions: Family<DecisionLabels, Counter>,
    duration: Histogram,
    storage_errors: Family<ReasonLabels, Counter>,
    invalid: Family<ReasonLabels, Counter>,
}

/// Per-descriptor result label.
pub const RESULT_OK: &str = "ok";
pub const RESULT_OVER_LIMIT: &str = "over_limit";
pub const RESULT_SHADOW_OVER: &str = "shadow_over";

impl Metrics {
    pub fn new(registry: &mut Registry) -> Metrics {
        let metrics = Metrics {
            decisions: Family::default(),
            // 50µs … ~0.8s.
            duration: Histogram::new(exponential_buckets(0.00005, 2.0, 15)),
            storage_errors: Family::default(),
            invalid: Family::default(),
        };
        registry.register(
            keys::METRIC_DECISIONS,
            "Descriptors decided, by result and mode",
            metrics.decisions.clone(),
        );
        registry.register_with_unit(
            keys::METRIC_DECISION_DURATION,
            "Time to decide one ShouldRateLimit request, storage included",
            Unit::Seconds,
            metrics.duration.clone(),
        );
        registry.register(
            keys::METRIC_STORAGE_ERRORS,
            "Requests answered UNAVAILABLE because the storage failed, by reason",
            metrics.storage_errors.clone(),
        );
        registry.register(
            keys::METRIC_INVALID_DESCRIPTORS,
            "Descriptors answered OK without a limit (or a settle without a readable reservation), by reason",
            metrics.invalid.clone(),
        );
        metrics
    }

    pub fn decision(&self, result: &'static str, mode: &'static str) {
        self.decisions
            .get_or_create(&DecisionLabels { result, mode })
            .inc();
    }

    pub fn duration(&self, took: Duration) {
        self.duration.observe(took.as_secs_f64());
    }

    pub fn storage_error(&self, reason: &'static str) {
        self.storage_errors
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    pub fn invalid(&self, reason: &'static str) {
        self.invalid.get_or_create(&ReasonLabels { reason }).inc();
    }
}
