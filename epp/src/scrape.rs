//! Scraping each endpoint's vLLM metrics.
//!
//! One loop per endpoint (started and stopped as the pod list changes) fetches
//! `http://ip:port/metrics` every [`ScrapeConfig::interval`] (50 ms by default) with a timeout,
//! parses the Prometheus text forgivingly and records the result in the [`Datastore`]: a
//! response carrying at least one load gauge refreshes the endpoint's last good values; a
//! failure (connect error, timeout, non-200, no load gauge) only counts, so the endpoint's
//! metrics age and it turns stale after the datastore's staleness threshold.

pub mod prometheus;
pub mod vllm;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

pub use vllm::{LoraInfo, ScrapedMetrics};

use crate::datastore::Datastore;
use crate::metrics::Metrics;

/// How to scrape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeConfig {
    /// Time between the starts of two scrapes of one endpoint.
    pub interval: Duration,
    /// Longest wait for one scrape.
    pub timeout: Duration,
    /// Path of the metrics endpoint on the model server.
    pub path: String,
    /// Largest metrics body read.
    pub max_body_bytes: usize,
}

impl Default for ScrapeConfig {
    fn default() -> Self {
        ScrapeConfig {
            interval: Duration::from_millis(50),
            timeout: Duration::from_secs(1),
            path: "/metrics".to_owned(),
            max_body_bytes: 4 * 1024 * 1024,
        }
    }
}

/// Parses a metrics body into the values the scheduler reads. `Err` when it carries none of
/// the load gauges (then the scrape does not count as good).
pub fn parse_metrics(text: &str) -> Result<ScrapedMetrics, String> {
    let (samples, malformed) = prometheus::parse(text);
    if malformed > 0 {
        tracing::trace!(malformed, "skipped unreadable metric lines");
    }
    let scraped = vllm::extract(&samples);
    if scraped.has_load() {
        Ok(scraped)
    } else {
        Err(format!(
            "no {}, {} or {} in the metrics",
            vllm::WAITING,
            vllm::RUNNING,
            vllm::KV_CACHE_USAGE
        ))
    }
}

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// Starts the scrape loops; they follow the datastore's pod list until the task is aborted.
pub fn spawn(datastore: Arc<Datastore>, config: ScrapeConfig, metrics: Metrics) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(config.timeout));
        let client: HttpClient = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        let config = Arc::new(config);
        let mut loops: HashMap<SocketAddr, JoinHandle<()>> = HashMap::new();
        let mut pods = datastore.subscribe_pods();
        loop {
            pods.borrow_and_update();
            let endpoints = datastore.endpoints();
            metrics.set_endpoints(endpoints.len());
            loops.retain(|addr, task| {
                let keep = endpoints.contains(addr);
                if !keep {
                    task.abort();
                }
                keep
            });
            for addr in endpoints {
                loops.entry(addr).or_insert_with(|| {
                    tokio::spawn(scrape_loop(
                        addr,
                        datastore.clone(),
                        client.clone(),
                        config.clone(),
                        metrics.clone(),
                    ))
                });
            }
            if pods.changed().await.is_err() {
                break;
            }
        }
        for task in loops.values() {
            task.abort();
        }
    })
}

async fn scrape_loop(
    addr: SocketAddr,
    datastore: Arc<Datastore>,
    client: HttpClient,
    config: Arc<ScrapeConfig>,
    metrics: Metrics,
) {
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let label = addr.to_string();
    loop {
        ticker.tick().await;
        let result = match tokio::time::timeout(config.timeout, fetch(&client, addr, &config)).await
        {
            Ok(Ok(text)) => parse_metrics(&text),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(format!("timed out after {:?}", config.timeout)),
        };
        if let Err(error) = &result {
            tracing::debug!(endpoint = %addr, %error, "metrics scrape failed");
            metrics.record_scrape_error(&label);
        }
        if !datastore.record_scrape(addr, result.as_ref().map_err(Clone::clone), Instant::now()) {
            return;
        }
    }
}

async fn fetch(
    client: &HttpClient,
    addr: SocketAddr,
    config: &ScrapeConfig,
) -> Result<String, String> {
    let uri: http::Uri = format!("http://{addr}{}", config.path)
        .parse()
        .map_err(|e| format!("metrics URL for {addr}: {e}"))?;
    let response = client
        .get(uri)
        .await
        .map_err(|e| format!("GET {addr}{}: {e}", config.path))?;
    if !response.status().is_success() {
        return Err(format!(
            "GET {addr}{}: status {}",
            config.path,
            response.status()
        ));
    }
    let body = Limited::new(response.into_body(), config.max_body_bytes)
        .collect()
        .await
        .map_err(|e| format!("reading metrics of {addr}: {e}"))?
        .to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}
