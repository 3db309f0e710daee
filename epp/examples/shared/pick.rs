//! Picker latency per request with synthetic metrics, shared by `pick_bench` and
//! `routing_bench`.
//!
//! Measures the whole pick as the ext_proc handler runs it — datastore snapshot, subset,
//! objective and saturation, the built-in profile (queue 2, KV cache 2, prefix 3) and the
//! max-score picker — on chat prompts of ~2,000 characters sharing one of 8 system prompts,
//! so the prefix index fills and is walked on every pick.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use epp::datastore::{Datastore, Pod, PoolInfo};
use epp::director::Director;
use epp::metrics::Metrics;
use epp::scheduling::picker::SplitMix64;
use epp::scheduling::{InferenceRequest, Scheduler};
use epp::scrape::ScrapedMetrics;

/// What one measurement saw.
pub struct PickFigures {
    pub endpoints: usize,
    pub picks: usize,
    pub prompt_chars: usize,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub per_second: f64,
}

/// Fills a datastore with `endpoints` endpoints and random load, warms the prefix index up with
/// 1,000 picks, then times `requests` picks one after the other.
pub fn measure(endpoints: usize, requests: usize) -> PickFigures {
    let datastore = Arc::new(Datastore::new(
        PoolInfo {
            target_ports: vec![8000],
            ..PoolInfo::default()
        },
        Duration::from_secs(3600),
    ));
    let pods: Vec<Pod> = (0..endpoints)
        .map(|i| {
            let ip = IpAddr::V4(Ipv4Addr::new(10, 1, (i / 250) as u8, (i % 250) as u8 + 1));
            Pod::new(format!("pod-{i}"), ip)
        })
        .collect();
    datastore.set_pods(pods.clone());
    let mut rng = SplitMix64::new(11);
    let now = Instant::now();
    for pod in &pods {
        let scraped = ScrapedMetrics {
            waiting: Some(rng.below(8) as u64),
            running: Some(rng.below(64) as u64),
            kv_cache_usage: Some(rng.below(1000) as f64 / 1000.0),
            ..ScrapedMetrics::default()
        };
        datastore.record_scrape(SocketAddr::new(pod.address, 8000), Ok(&scraped), now);
    }
    let scheduler = Arc::new(Scheduler::with_defaults(3).expect("built-in config"));
    let director = Director::new(datastore, scheduler, &[], Metrics::unregistered());

    let systems: Vec<String> = (0..8)
        .map(|s| format!("System prompt {s}: you are a careful assistant. ").repeat(30))
        .collect();
    let prompts: Vec<InferenceRequest> = (0..requests)
        .map(|i| InferenceRequest {
            model: "meta-llama/Llama-3.1-8B-Instruct".to_owned(),
            prompt: Some(format!(
                "system: {}\nuser: question number {i} about something else entirely\n",
                systems[i % systems.len()]
            )),
            cache_salt: None,
        })
        .collect();

    // Warm up (fills the prefix index), then measure.
    for request in prompts.iter().take(1000) {
        let _ = director.pick(request, None, None);
    }
    let mut times: Vec<Duration> = Vec::with_capacity(requests);
    let started = Instant::now();
    for request in &prompts {
        let t = Instant::now();
        let decision = director.pick(request, None, None);
        times.push(t.elapsed());
        assert!(decision.is_ok());
    }
    let total = started.elapsed();
    times.sort();
    let q = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    PickFigures {
        endpoints,
        picks: requests,
        prompt_chars: prompts[0].prompt.as_deref().map_or(0, str::len),
        p50: q(0.50),
        p90: q(0.90),
        p99: q(0.99),
        max: times[times.len() - 1],
        per_second: requests as f64 / total.as_secs_f64(),
    }
}
