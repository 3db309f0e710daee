//! The OTLP sink of the metrics: a fake OTLP/gRPC collector in-process receives the GenAI
//! instruments the `Metrics` API records, with their attributes and sums, also for requests
//! driven through both legs as in `tests/ext_proc`.

// The Envoy stand-in of `tests/ext_proc`; this file uses only part of it.
#[allow(dead_code)]
#[path = "ext_proc/exchange.rs"]
mod exchange;
#[allow(dead_code)]
#[path = "ext_proc/harness.rs"]
mod harness;

use std::collections::BTreeMap;
use std::time::Duration;

use extproc::config::ConfigStore;
use extproc::metrics::{Labels, Metrics};
use extproc::otlp::{OtlpConfig, OtlpMetrics};
use extproc::usage::TokenUsage;
use extproc::{Options, Server};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;

/// Bound on every wait; the waits end on what the collector receives, not on this.
const WAIT: Duration = Duration::from_secs(20);

/// One histogram data point as the collector received it.
#[derive(Debug, Clone)]
struct Point {
    service: Option<String>,
    metric: String,
    unit: String,
    attributes: BTreeMap<String, String>,
    count: u64,
    sum: Option<f64>,
    bounds: Vec<f64>,
}

struct Collector {
    points: mpsc::UnboundedSender<Point>,
}

fn strings(attributes: &[KeyValue]) -> BTreeMap<String, String> {
    attributes
        .iter()
        .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some((kv.key.clone(), s.clone())),
            _ => None,
        })
        .collect()
}

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        for resource_metrics in request.into_inner().resource_metrics {
            let service = resource_metrics
                .resource
                .as_ref()
                .and_then(|r| strings(&r.attributes).remove("service.name"));
            for scope in resource_metrics.scope_metrics {
                for metric in scope.metrics {
                    let Some(Data::Histogram(histogram)) = metric.data else {
                        continue;
                    };
                    for point in histogram.data_points {
                        let _ = self.points.send(Point {
                            service: service.clone(),
                            metric: metric.name.clone(),
                            unit: metric.unit.clone(),
                            attributes: strings(&point.attributes),
                            count: point.count,
                            sum: point.sum,
                            bounds: point.explicit_bounds,
                        });
                    }
                }
            }
        }
        Ok(tonic::Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

/// A fake collector on 127.0.0.1:0: its endpoint, the points it receives, its task.
async fn collector() -> (String, Points, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(MetricsServiceServer::new(Collector { points: tx }))
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await
            .expect("collector");
    });
    (
        endpoint,
        Points {
            rx,
            seen: Vec::new(),
        },
        task,
    )
}

/// What the collector received so far, and what it will.
struct Points {
    rx: mpsc::UnboundedReceiver<Point>,
    seen: Vec<Point>,
}

impl Points {
    /// The first point, received before or until it arrives, that `matches` accepts.
    async fn wait_for(&mut self, what: &str, matches: impl Fn(&Point) -> bool) -> Point {
        if let Some(point) = self.seen.iter().find(|p| matches(p)) {
            return point.clone();
        }
        let found = tokio::time::timeout(WAIT, async {
            while let Some(point) = self.rx.recv().await {
                self.seen.push(point.clone());
                if matches(&point) {
                    return Some(point);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(point)) => point,
            Ok(None) => panic!("collector stopped before {what}"),
            Err(_) => panic!("no {what} within {WAIT:?}"),
        }
    }
}

fn labels() -> Labels {
    Labels {
        gen_ai_operation_name: "chat".to_string(),
        gen_ai_provider_name: "openai".to_string(),
        gen_ai_request_model: "gpt-4o-mini".to_string(),
        gen_ai_response_model: "gpt-4o-mini-2024-07-18".to_string(),
    }
}

fn token_attributes(token_type: &str) -> BTreeMap<String, String> {
    [
        ("gen_ai.operation.name", "chat"),
        ("gen_ai.provider.name", "openai"),
        ("gen_ai.request.model", "gpt-4o-mini"),
        ("gen_ai.response.model", "gpt-4o-mini-2024-07-18"),
        ("gen_ai.token.type", token_type),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn usage(input: u64, output: u64) -> TokenUsage {
    TokenUsage {
        input: Some(input),
        output: Some(output),
        total: Some(input + output),
        ..TokenUsage::default()
    }
}

fn config(endpoint: &str, interval: Duration) -> OtlpConfig {
    OtlpConfig {
        interval,
        ..OtlpConfig::new(endpoint)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_collector_receives_token_usage_with_its_attributes_and_sum_every_interval() {
    let (endpoint, mut points, collector) = collector().await;
    let otlp = OtlpMetrics::start(&config(&endpoint, Duration::from_millis(100))).expect("otlp");
    let mut registry = Registry::default();
    let metrics = Metrics::new(&mut registry).with_otlp(&otlp);

    metrics.record(
        &labels(),
        None,
        Duration::from_millis(300),
        &usage(10, 5),
        None,
    );
    metrics.record(
        &labels(),
        Some("503"),
        Duration::from_millis(50),
        &TokenUsage::default(),
        None,
    );
    metrics.record(
        &labels(),
        None,
        Duration::from_millis(500),
        &usage(32, 7),
        Some(Duration::from_millis(100)),
    );

    let input = points
        .wait_for("input token usage of both requests", |p| {
            p.metric == "gen_ai.client.token.usage"
                && p.attributes == token_attributes("input")
                && p.count == 2
        })
        .await;
    assert_eq!(input.sum, Some(42.0));
    assert_eq!(input.unit, "{token}");
    assert_eq!(input.service.as_deref(), Some("infergate-extproc"));
    assert_eq!(input.bounds.first(), Some(&1.0));
    assert_eq!(input.bounds.last(), Some(&67108864.0));
    let output = points
        .wait_for("output token usage of both requests", |p| {
            p.metric == "gen_ai.client.token.usage"
                && p.attributes == token_attributes("output")
                && p.count == 2
        })
        .await;
    assert_eq!(output.sum, Some(12.0));

    // A failed request's duration carries `error.type`; the successes' do not.
    let failed = points
        .wait_for("the failed request's duration", |p| {
            p.metric == "gen_ai.server.request.duration"
                && p.attributes.get("error.type").map(String::as_str) == Some("503")
        })
        .await;
    assert_eq!(failed.count, 1);
    let ok = points
        .wait_for("the successful requests' duration", |p| {
            p.metric == "gen_ai.server.request.duration" && !p.attributes.contains_key("error.type")
        })
        .await;
    assert_eq!(ok.count, 2);

    let first_token = points
        .wait_for("time to first token", |p| {
            p.metric == "gen_ai.server.time_to_first_token"
        })
        .await;
    assert_eq!(first_token.unit, "s");
    assert_eq!(first_token.count, 1);
    assert!(!first_token.attributes.contains_key("gen_ai.token.type"));
    assert_eq!(
        first_token
            .attributes
            .get("gen_ai.request.model")
            .map(String::as_str),
        Some("gpt-4o-mini")
    );

    drop(otlp);
    collector.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_exporter_flushes_what_was_recorded_before_the_interval() {
    let (endpoint, mut points, collector) = collector().await;
    let otlp = OtlpMetrics::start(&OtlpConfig {
        service_name: "otlp-test".to_string(),
        ..config(&endpoint, Duration::from_secs(3600))
    })
    .expect("otlp");
    let mut registry = Registry::default();
    let metrics = Metrics::new(&mut registry).with_otlp(&otlp);
    metrics.record(
        &labels(),
        None,
        Duration::from_millis(200),
        &usage(7, 3),
        None,
    );

    drop(otlp);

    let input = points
        .wait_for("input token usage flushed on drop", |p| {
            p.metric == "gen_ai.client.token.usage" && p.attributes == token_attributes("input")
        })
        .await;
    assert_eq!(input.sum, Some(7.0));
    assert_eq!(input.service.as_deref(), Some("otlp-test"));
    collector.abort();
}

fn gpt_4o_attributes(token_type: &str) -> BTreeMap<String, String> {
    [
        ("gen_ai.operation.name", "chat"),
        ("gen_ai.provider.name", "openai"),
        ("gen_ai.request.model", "gpt-4o"),
        ("gen_ai.response.model", "gpt-4o-2024-08-06"),
        ("gen_ai.token.type", token_type),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn case(name: &str) -> exchange::Case {
    let path = harness::testdata().join(format!("in/{name}.json"));
    serde_json::from_slice(&std::fs::read(path).expect("case")).expect("parse case")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_through_both_legs_reach_the_collector_when_the_server_is_dropped() {
    let (endpoint, mut points, collector) = collector().await;
    // An interval far past the test: only the flush on drop can deliver.
    let otlp = config(&endpoint, Duration::from_secs(3600));
    let harness = harness::Harness::with_otlp(&harness::golden_config(), Some(otlp)).await;
    let chat = case("chat");
    for _ in 0..3 {
        let _ = exchange::run(&harness, &chat).await;
    }
    let _ = exchange::run(&harness, &case("chat_stream")).await;

    drop(harness);

    // 3 × 12 input tokens (non-streamed) + 9 (streamed), as Prometheus counts them.
    let input = points
        .wait_for("input token usage of four requests", |p| {
            p.metric == "gen_ai.client.token.usage" && p.attributes == gpt_4o_attributes("input")
        })
        .await;
    assert_eq!((input.count, input.sum), (4, Some(45.0)));
    let output = points
        .wait_for("output token usage of four requests", |p| {
            p.metric == "gen_ai.client.token.usage" && p.attributes == gpt_4o_attributes("output")
        })
        .await;
    assert_eq!((output.count, output.sum), (4, Some(27.0)));
    collector.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_started_with_otlp_serves_and_stops_when_dropped() {
    let (endpoint, _points, collector) = collector().await;
    let options = Options {
        grpc_addr: "127.0.0.1:0".parse().expect("addr"),
        admin_addr: "127.0.0.1:0".parse().expect("addr"),
        trust_backend_header: true,
        ..Default::default()
    };
    let running = Server::start_with_otlp(
        options,
        ConfigStore::new(),
        Some(config(&endpoint, Duration::from_secs(3600))),
    )
    .await
    .expect("start extproc with otlp");
    let admin = running.bound().admin;
    tokio::net::TcpStream::connect(admin)
        .await
        .expect("admin port open");
    drop(running);
    collector.abort();
}

#[test]
fn the_otlp_config_comes_from_the_otel_variables_and_is_off_without_an_endpoint() {
    let env = |vars: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    };
    assert_eq!(OtlpConfig::from_lookup(env(&[])), None);
    assert_eq!(
        OtlpConfig::from_lookup(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "")])),
        None
    );
    assert_eq!(
        OtlpConfig::from_lookup(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317")])),
        Some(OtlpConfig {
            endpoint: "http://c:4317".to_string(),
            interval: Duration::from_secs(60),
            service_name: "infergate-extproc".to_string(),
        })
    );
    assert_eq!(
        OtlpConfig::from_lookup(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "5000"),
            ("OTEL_SERVICE_NAME", "gw"),
        ])),
        Some(OtlpConfig {
            endpoint: "http://c:4317".to_string(),
            interval: Duration::from_secs(5),
            service_name: "gw".to_string(),
        })
    );
}
