//! OpenTelemetry GenAI instruments as Prometheus metrics, with Envoy AI Gateway's names and
//! buckets so its dashboards work: `gen_ai_client_token_usage`,
//! `gen_ai_server_request_duration_seconds`, `gen_ai_server_time_to_first_token_seconds`,
//! `gen_ai_server_time_per_output_token_seconds`.
//!
//! With [`Metrics::with_otlp`] the same instruments (dotted names, same attributes and
//! buckets) are also pushed over OTLP ([`crate::otlp`]).
//!
//! Only responses from a configured backend are recorded, so a client cannot grow the label
//! sets by asking for arbitrary model names.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::otlp::{Instruments, OtlpMetrics};
use crate::usage::TokenUsage;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Labels {
    pub gen_ai_operation_name: String,
    pub gen_ai_provider_name: String,
    pub gen_ai_request_model: String,
    pub gen_ai_response_model: String,
}

/// The duration's labels: [`Labels`] plus OTel's `error.type` (empty for a success).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DurationLabels {
    gen_ai_operation_name: String,
    gen_ai_provider_name: String,
    gen_ai_request_model: String,
    gen_ai_response_model: String,
    error_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    gen_ai_operation_name: String,
    gen_ai_provider_name: String,
    gen_ai_request_model: String,
    gen_ai_response_model: String,
    gen_ai_token_type: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LegLabels {
    /// `router` or `upstream`.
    leg: &'static str,
}

#[derive(Clone)]
pub struct Metrics {
    /// ext_proc streams Envoy opened, by leg: the router leg once per request, the upstream leg
    /// once per attempt (a failover retry is a second one).
    streams: Family<LegLabels, Counter>,
    token_usage: HistogramFamily<TokenLabels>,
    request_duration: HistogramFamily<DurationLabels>,
    time_to_first_token: HistogramFamily<Labels>,
    time_per_output_token: HistogramFamily<Labels>,
    /// The same instruments over OTLP, when it is on.
    otlp: Option<Instruments>,
}

pub(crate) const TOKEN_BUCKETS: [f64; 14] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];

pub(crate) const DURATION_BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];

pub(crate) const FIRST_TOKEN_BUCKETS: [f64; 21] = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    15.0, 20.0, 30.0, 45.0, 60.0,
];

pub(crate) const PER_TOKEN_BUCKETS: [f64; 13] = [
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
];

fn token_buckets() -> Histogram {
    Histogram::new(TOKEN_BUCKETS)
}

fn duration_buckets() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

fn first_token_buckets() -> Histogram {
    Histogram::new(FIRST_TOKEN_BUCKETS)
}

fn per_token_buckets() -> Histogram {
    Histogram::new(PER_TOKEN_BUCKETS)
}

impl Metrics {
    pub fn new(registry: &mut Registry) -> Metrics {
        let metrics = Metrics {
            streams: Family::default(),
            token_usage: Family::new_with_constructor(token_buckets),
            request_duration: Family::new_with_constructor(duration_buckets),
            time_to_first_token: Family::new_with_constructor(first_token_buckets),
            time_per_output_token: Family::new_with_constructor(per_token_buckets),
            otlp: None,
        };
        registry.register(
            crate::keys::METRIC_STREAMS,
            "ext_proc streams Envoy opened, by leg (router: one per request; upstream: one per attempt)",
            metrics.streams.clone(),
        );
        registry.register(
            "gen_ai_client_token_usage",
            "Number of tokens processed",
            metrics.token_usage.clone(),
        );
        registry.register_with_unit(
            "gen_ai_server_request_duration",
            "Generative AI server request duration such as time-to-last byte or last output token",
            Unit::Seconds,
            metrics.request_duration.clone(),
        );
        registry.register_with_unit(
            "gen_ai_server_time_to_first_token",
            "Time to receive first token in streaming responses",
            Unit::Seconds,
            metrics.time_to_first_token.clone(),
        );
        registry.register_with_unit(
            "gen_ai_server_time_per_output_token",
            "Time per output token generated after the first token for successful responses",
            Unit::Seconds,
            metrics.time_per_output_token.clone(),
        );
        metrics
    }

    /// Envoy opened a stream for `leg` (`router` or `upstream`).
    pub fn stream_opened(&self, leg: &'static str) {
        self.streams.get_or_create(&LegLabels { leg }).inc();
    }

    /// Also records every observation on `otlp`'s instruments (two sinks, one API).
    pub fn with_otlp(mut self, otlp: &OtlpMetrics) -> Metrics {
        self.otlp = Some(otlp.instruments());
        self
    }

    /// One finished response: duration always (with `error_type` when it failed: the HTTP
    /// status, or `incomplete` for a stream cut before its end), token counts that were
    /// reported, and for streams the time to first token and per output token.
    pub fn record(
        &self,
        labels: &Labels,
        error_type: Option<&str>,
        duration: Duration,
        usage: &TokenUsage,
        first_token: Option<Duration>,
    ) {
        self.request_duration
            .get_or_create(&DurationLabels {
                gen_ai_operation_name: labels.gen_ai_operation_name.clone(),
                gen_ai_provider_name: labels.gen_ai_provider_name.clone(),
                gen_ai_request_model: labels.gen_ai_request_model.clone(),
                gen_ai_response_model: labels.gen_ai_response_model.clone(),
                error_type: error_type.unwrap_or_default().to_string(),
            })
            .observe(duration.as_secs_f64());
        if let Some(otlp) = &self.otlp {
            otlp.request_duration(labels, error_type, duration.as_secs_f64());
        }
        for (kind, count) in [
            ("input", usage.input),
            ("cached_input", usage.cached_input),
            ("cache_creation_input", usage.cache_creation_input),
            ("output", usage.output),
            ("reasoning", usage.reasoning),
        ] {
            if let Some(count) = count {
                self.token_usage
                    .get_or_create(&TokenLabels {
                        gen_ai_operation_name: labels.gen_ai_operation_name.clone(),
                        gen_ai_provider_name: labels.gen_ai_provider_name.clone(),
                        gen_ai_request_model: labels.gen_ai_request_model.clone(),
                        gen_ai_response_model: labels.gen_ai_response_model.clone(),
                        gen_ai_token_type: kind,
                    })
                    .observe(count as f64);
                if let Some(otlp) = &self.otlp {
                    otlp.token_usage(labels, kind, count);
                }
            }
        }
        if let Some(first) = first_token {
            self.time_to_first_token
                .get_or_create(labels)
                .observe(first.as_secs_f64());
            if let Some(otlp) = &self.otlp {
                otlp.time_to_first_token(labels, first.as_secs_f64());
            }
            if let Some(output) = usage.output.filter(|&o| o > 1) {
                let after_first = duration.saturating_sub(first).as_secs_f64();
                let per_token = after_first / (output - 1) as f64;
                self.time_per_output_token
                    .get_or_create(labels)
                    .observe(per_token);
                if let Some(otlp) = &self.otlp {
                    otlp.time_per_output_token(labels, per_token);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_requests_duration_carries_its_error_type() {
        let mut registry = Registry::default();
        let metrics = Metrics::new(&mut registry);
        let labels = Labels {
            gen_ai_operation_name: "chat".into(),
            gen_ai_provider_name: "openai".into(),
            gen_ai_request_model: "m".into(),
            gen_ai_response_model: "m".into(),
        };
        let none = TokenUsage::default();
        metrics.record(&labels, None, Duration::from_millis(10), &none, None);
        metrics.record(&labels, Some("429"), Duration::from_millis(10), &none, None);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        let count = |error: &str| {
            text.lines()
                .find(|l| {
                    l.starts_with("gen_ai_server_request_duration_seconds_count")
                        && l.contains(&format!("error_type=\"{error}\""))
                })
                .and_then(|l| l.rsplit(' ').next())
                .map(str::to_string)
        };
        assert_eq!(count("429").as_deref(), Some("1"), "{text}");
        assert_eq!(count("").as_deref(), Some("1"), "{text}");
    }
}
