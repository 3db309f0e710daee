//! Prometheus metrics of the ADS server.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The `type` label: a bounded xDS short name (`cds`, `eds`, `lds`, `rds`, `sds`, `other`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TypeLabel {
    r#type: &'static str,
}

impl TypeLabel {
    pub(crate) fn new(type_url: &str) -> Self {
        Self {
            r#type: crate::type_url::metric_label(type_url),
        }
    }
}

fn push_ack_histogram() -> Histogram {
    // 1 ms .. ~16 s
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

#[derive(Clone, Debug)]
pub(crate) struct Metrics {
    pub(crate) pushes: Family<TypeLabel, Counter>,
    pub(crate) nacks: Family<TypeLabel, Counter>,
    pub(crate) connected: Gauge,
    pub(crate) push_ack_seconds: Family<TypeLabel, Histogram, fn() -> Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            pushes: Family::default(),
            nacks: Family::default(),
            connected: Gauge::default(),
            push_ack_seconds: Family::new_with_constructor(push_ack_histogram),
        }
    }
}

impl Metrics {
    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register(
            "xds_pushes",
            "Discovery responses sent to proxies",
            self.pushes.clone(),
        );
        registry.register(
            "xds_nacks",
            "Discovery responses rejected by proxies",
            self.nacks.clone(),
        );
        registry.register(
            "xds_connected_proxies",
            "Open ADS streams",
            self.connected.clone(),
        );
        registry.register(
            "xds_push_ack_seconds",
            "Time from sending a discovery response to its ACK",
            self.push_ack_seconds.clone(),
        );
    }
}
