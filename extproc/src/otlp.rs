//! The GenAI instruments of [`crate::metrics`] also pushed over OTLP/gRPC, when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set: same names (with dots), attributes and buckets, a
//! periodic exporter every `OTEL_METRIC_EXPORT_INTERVAL` ms (60 s by default), resource
//! `service.name` from `OTEL_SERVICE_NAME` (`infergate-extproc` by default). When the endpoint
//! is unset nothing OTel is created.

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, MeterProvider as _};
use opentelemetry_otlp::{MetricExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};

use crate::metrics::{self, Labels};

pub const ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
pub const INTERVAL_ENV: &str = "OTEL_METRIC_EXPORT_INTERVAL";
pub const SERVICE_NAME_ENV: &str = "OTEL_SERVICE_NAME";
pub const DEFAULT_SERVICE_NAME: &str = "infergate-extproc";
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// Where and how often to push; read once at start ([`OtlpConfig::from_env`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpConfig {
    /// OTLP/gRPC collector, e.g. `http://otel-collector:4317`.
    pub endpoint: String,
    pub interval: Duration,
    pub service_name: String,
}

impl OtlpConfig {
    pub fn new(endpoint: impl Into<String>) -> OtlpConfig {
        OtlpConfig {
            endpoint: endpoint.into(),
            interval: DEFAULT_INTERVAL,
            service_name: DEFAULT_SERVICE_NAME.to_string(),
        }
    }

    /// From the process environment; `None` when `OTEL_EXPORTER_OTLP_ENDPOINT` is unset or empty.
    pub fn from_env() -> Option<OtlpConfig> {
        OtlpConfig::from_lookup(|name| std::env::var(name).ok())
    }

    /// As [`OtlpConfig::from_env`] with `lookup` standing in for the environment. An interval
    /// that is not a positive number of milliseconds falls back to 60 s.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Option<OtlpConfig> {
        let endpoint = lookup(ENDPOINT_ENV).filter(|e| !e.trim().is_empty())?;
        let interval = lookup(INTERVAL_ENV)
            .and_then(|ms| ms.trim().parse::<u64>().ok())
            .filter(|&ms| ms > 0)
            .map_or(DEFAULT_INTERVAL, Duration::from_millis);
        let service_name = lookup(SERVICE_NAME_ENV)
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_string());
        Some(OtlpConfig {
            endpoint: endpoint.trim().to_string(),
            interval,
            service_name,
        })
    }
}

/// The OTel instruments, recorded next to the Prometheus ones by [`crate::metrics::Metrics`].
#[derive(Clone)]
pub(crate) struct Instruments {
    token_usage: Histogram<u64>,
    request_duration: Histogram<f64>,
    time_to_first_token: Histogram<f64>,
    time_per_output_token: Histogram<f64>,
}

fn attributes(labels: &Labels) -> Vec<KeyValue> {
    vec![
        KeyValue::new(
            "gen_ai.operation.name",
            labels.gen_ai_operation_name.clone(),
        ),
        KeyValue::new("gen_ai.provider.name", labels.gen_ai_provider_name.clone()),
        KeyValue::new("gen_ai.request.model", labels.gen_ai_request_model.clone()),
        KeyValue::new(
            "gen_ai.response.model",
            labels.gen_ai_response_model.clone(),
        ),
    ]
}

impl Instruments {
    pub(crate) fn request_duration(&self, labels: &Labels, error_type: Option<&str>, seconds: f64) {
        let mut attrs = attributes(labels);
        if let Some(error_type) = error_type {
            attrs.push(KeyValue::new("error.type", error_type.to_string()));
        }
        self.request_duration.record(seconds, &attrs);
    }

    pub(crate) fn token_usage(&self, labels: &Labels, token_type: &'static str, count: u64) {
        let mut attrs = attributes(labels);
        attrs.push(KeyValue::new("gen_ai.token.type", token_type));
        self.token_usage.record(count, &attrs);
    }

    pub(crate) fn time_to_first_token(&self, labels: &Labels, seconds: f64) {
        self.time_to_first_token
            .record(seconds, &attributes(labels));
    }

    pub(crate) fn time_per_output_token(&self, labels: &Labels, seconds: f64) {
        self.time_per_output_token
            .record(seconds, &attributes(labels));
    }
}

/// The meter provider with its periodic OTLP exporter. Dropping it flushes and shuts down.
pub struct OtlpMetrics {
    provider: SdkMeterProvider,
    instruments: Instruments,
}

impl std::fmt::Debug for OtlpMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpMetrics").finish_non_exhaustive()
    }
}

impl OtlpMetrics {
    /// Builds the exporter (connecting lazily) and the provider. Call within a Tokio runtime:
    /// the gRPC channel lives on it.
    pub fn start(config: &OtlpConfig) -> crate::Result<OtlpMetrics> {
        let exporter = MetricExporter::builder()
            .with_tonic()
            .with_endpoint(config.endpoint.clone())
            .with_temporality(Temporality::Cumulative)
            .build()
            .map_err(|source| crate::Error::Otlp {
                endpoint: config.endpoint.clone(),
                source,
            })?;
        let reader = PeriodicReader::builder(exporter)
            .with_interval(config.interval)
            .build();
        let resource = Resource::builder()
            .with_service_name(config.service_name.clone())
            .build();
        let provider = SdkMeterProvider::builder()
            .with_reader(reader)
            .with_resource(resource)
            .build();
        let meter = provider.meter("infergate-extproc");
        let instruments = Instruments {
            token_usage: meter
                .u64_histogram("gen_ai.client.token.usage")
                .with_description("Number of tokens processed")
                .with_unit("{token}")
                .with_boundaries(metrics::TOKEN_BUCKETS.to_vec())
                .build(),
            request_duration: meter
                .f64_histogram("gen_ai.server.request.duration")
                .with_description(
                    "Generative AI server request duration such as time-to-last byte or last \
                     output token",
                )
                .with_unit("s")
                .with_boundaries(metrics::DURATION_BUCKETS.to_vec())
                .build(),
            time_to_first_token: meter
                .f64_histogram("gen_ai.server.time_to_first_token")
                .with_description("Time to receive first token in streaming responses")
                .with_unit("s")
                .with_boundaries(metrics::FIRST_TOKEN_BUCKETS.to_vec())
                .build(),
            time_per_output_token: meter
                .f64_histogram("gen_ai.server.time_per_output_token")
                .with_description(
                    "Time per output token generated after the first token for successful \
                     responses",
                )
                .with_unit("s")
                .with_boundaries(metrics::PER_TOKEN_BUCKETS.to_vec())
                .build(),
        };
        tracing::info!(endpoint = %config.endpoint, interval = ?config.interval,
            service = %config.service_name, "OTLP metrics export on");
        Ok(OtlpMetrics {
            provider,
            instruments,
        })
    }

    pub(crate) fn instruments(&self) -> Instruments {
        self.instruments.clone()
    }

    /// Pushes what was recorded now (blocking; the exporter runs on its own thread).
    pub fn force_flush(&self) -> anyhow::Result<()> {
        Ok(self.provider.force_flush()?)
    }
}

impl Drop for OtlpMetrics {
    fn drop(&mut self) {
        // The export blocks until the gRPC channel, served by the runtime, answers: on a
        // multi-thread runtime let the others run; on a current-thread one finish it off-thread
        // once this returns; outside a runtime just wait.
        let provider = self.provider.clone();
        let shutdown = move || {
            if let Err(err) = provider.shutdown() {
                tracing::warn!(error = %err, "OTLP metrics shutdown");
            }
        };
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(shutdown),
            Ok(_) => {
                std::thread::spawn(shutdown);
            }
            Err(_) => shutdown(),
        }
    }
}
