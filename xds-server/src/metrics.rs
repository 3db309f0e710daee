//! The control plane's own Prometheus metrics (the ADS registry adds push/NACK/proxy metrics).

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

pub struct Metrics {
    pub translate_seconds: Histogram,
    pub objects: Gauge,
    pub objects_with_errors: Gauge,
}

impl Metrics {
    pub fn new(registry: &mut Registry) -> Self {
        let metrics = Metrics {
            translate_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            objects: Gauge::default(),
            objects_with_errors: Gauge::default(),
        };
        registry.register(
            "xds_translate_seconds",
            "Time to translate and encode a config snapshot",
            metrics.translate_seconds.clone(),
        );
        registry.register(
            "xds_config_objects",
            "Objects in the index",
            metrics.objects.clone(),
        );
        registry.register(
            "xds_config_objects_with_errors",
            "Objects (and documents) with an error condition",
            metrics.objects_with_errors.clone(),
        );
        metrics
    }
}
