//! The picker's own Prometheus metrics (served on the metrics port, 9090 by default) and the
//! `/metrics` HTTP endpoint.
//!
//! Endpoint labels are `ip:port` of pool members only (a served endpoint outside the pool is
//! counted as `other`), so clients cannot grow label sets.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    /// HTTP status of the immediate response.
    pub code: u16,
    pub reason: &'static str,
}

/// Handles to every metric; cheap to clone.
#[derive(Clone, Debug)]
pub struct Metrics {
    picks: Family<EndpointLabels, Counter>,
    served: Family<EndpointLabels, Counter>,
    served_fallback: Counter,
    rejected: Family<RejectLabels, Counter>,
    shed: Counter,
    pick_duration: Histogram,
    scrape_errors: Family<EndpointLabels, Counter>,
    endpoints: Gauge,
    pool_saturation: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl Metrics {
    pub fn new(registry: &mut Registry) -> Metrics {
        let metrics = Metrics {
            picks: Family::default(),
            served: Family::default(),
            served_fallback: Counter::default(),
            rejected: Family::default(),
            shed: Counter::default(),
            pick_duration: Histogram::new([
                0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.0025, 0.005, 0.01, 0.025,
                0.05, 0.1,
            ]),
            scrape_errors: Family::default(),
            endpoints: Gauge::default(),
            pool_saturation: Gauge::default(),
        };
        let r = registry.sub_registry_with_prefix("epp");
        r.register(
            "picks",
            "Requests sent to each endpoint (primary pick)",
            metrics.picks.clone(),
        );
        r.register(
            "served",
            "Requests the data plane reported as served by each endpoint",
            metrics.served.clone(),
        );
        r.register(
            "served_fallback",
            "Requests served by an endpoint other than the primary pick",
            metrics.served_fallback.clone(),
        );
        r.register(
            "rejected",
            "Requests answered with an immediate response, by status and reason",
            metrics.rejected.clone(),
        );
        r.register(
            "shed",
            "Sheddable requests rejected with 429 because the pool was saturated",
            metrics.shed.clone(),
        );
        r.register_with_unit(
            "pick_duration",
            "Time to schedule one request (admission, filters, scorers, picker)",
            Unit::Seconds,
            metrics.pick_duration.clone(),
        );
        r.register(
            "scrape_errors",
            "Failed metric scrapes per endpoint",
            metrics.scrape_errors.clone(),
        );
        r.register(
            "endpoints",
            "Endpoints in the pool",
            metrics.endpoints.clone(),
        );
        r.register(
            "pool_saturation",
            "Saturation of the pool at the last pick (1 = saturated)",
            metrics.pool_saturation.clone(),
        );
        metrics
    }

    /// Metrics recorded nowhere (tests, benches).
    pub fn unregistered() -> Metrics {
        Metrics::new(&mut Registry::default())
    }

    pub fn record_pick(&self, primary: &str, took: Duration, saturation: f64) {
        self.picks
            .get_or_create(&EndpointLabels {
                endpoint: primary.to_owned(),
            })
            .inc();
        self.pick_duration.observe(took.as_secs_f64());
        self.pool_saturation.set(saturation);
    }

    pub fn record_reject(&self, code: u16, reason: &'static str) {
        self.rejected
            .get_or_create(&RejectLabels { code, reason })
            .inc();
        if code == 429 {
            self.shed.inc();
        }
    }

    pub fn record_served(&self, endpoint: &str, fallback: bool) {
        self.served
            .get_or_create(&EndpointLabels {
                endpoint: endpoint.to_owned(),
            })
            .inc();
        if fallback {
            self.served_fallback.inc();
        }
    }

    pub fn record_scrape_error(&self, endpoint: &str) {
        self.scrape_errors
            .get_or_create(&EndpointLabels {
                endpoint: endpoint.to_owned(),
            })
            .inc();
    }

    pub fn set_endpoints(&self, n: usize) {
        self.endpoints.set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}

/// `GET /metrics` (Prometheus/OpenMetrics text) and `GET /healthz`.
pub fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(serve_metrics))
        .with_state(registry)
}

async fn serve_metrics(State(registry): State<Arc<Registry>>) -> Response {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(err) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding metrics: {err}\n"),
        )
            .into_response(),
    }
}
