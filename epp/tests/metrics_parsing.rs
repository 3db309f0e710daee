//! Prometheus text parsing and the vLLM metric mapping: well-formed, malformed, missing, NaN,
//! and stale metrics.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use epp::datastore::{Datastore, Pod, PoolInfo};
use epp::scrape::prometheus::{self, parse_line};
use epp::scrape::{ScrapedMetrics, parse_metrics, vllm};

/// What inference-sim (and vLLM) write, trimmed.
const VLLM: &str = r#"# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 3.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 7.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.4375
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.001",model_name="m"} 0.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="m"} 12.0
# TYPE vllm:lora_requests_info gauge
vllm:lora_requests_info{max_lora="2",running_lora_adapters="",waiting_lora_adapters=""} 1.7e9
vllm:lora_requests_info{max_lora="2",running_lora_adapters="sql-lora,tweets",waiting_lora_adapters="chat"} 1.700000005e9
vllm:lora_requests_info{max_lora="2",running_lora_adapters="tweets",waiting_lora_adapters=""} 1.700000002e9
# TYPE vllm:cache_config_info gauge
vllm:cache_config_info{block_size="16",cache_dtype="auto",enable_prefix_caching="True",num_gpu_blocks="26000"} 1.0
"#;

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn vllm_metrics_are_read() {
    let m = parse_metrics(VLLM).expect("load gauges present");
    assert_eq!(m.waiting, Some(7));
    assert_eq!(m.running, Some(3));
    assert_eq!(m.kv_cache_usage, Some(0.4375));
    let lora = m.lora.expect("lora info");
    assert_eq!(
        lora.running,
        set(&["sql-lora", "tweets"]),
        "the newest series wins"
    );
    assert_eq!(lora.waiting, set(&["chat"]));
    assert_eq!(lora.max_loras, Some(2));
    assert_eq!(m.block_size, Some(16));
    assert_eq!(m.num_gpu_blocks, Some(26000));
}

#[test]
fn sample_lines_with_escapes_timestamps_and_special_values_parse() {
    let s =
        parse_line(r#"a_b:c{x="q\"uo\\te",y="line\nbreak",} 1.5e3 1700000000000"#).expect("line");
    assert_eq!(s.name, "a_b:c");
    assert_eq!(s.label("x"), Some("q\"uo\\te"));
    assert_eq!(s.label("y"), Some("line\nbreak"));
    assert_eq!(s.value, 1500.0);
    assert!(parse_line("nan_metric NaN").expect("NaN").value.is_nan());
    assert_eq!(parse_line("up +Inf").expect("inf").value, f64::INFINITY);
    assert_eq!(parse_line("bare 2").expect("bare").labels, vec![]);
    assert_eq!(
        parse_line("spaced { a = \"1\" } 3")
            .expect("spaces")
            .label("a"),
        Some("1")
    );
}

#[test]
fn malformed_lines_are_skipped_and_the_rest_is_read() {
    let text = "\
garbage line here
vllm:num_requests_waiting{engine=\"0\" 4
vllm:num_requests_waiting{engine=\"0\"} four
{orphan=\"labels\"} 1
vllm:num_requests_running{unterminated=\"x} 2
vllm:num_requests_running 2 3 4
vllm:num_requests_running 2
vllm:kv_cache_usage_perc{a=\"b\"} 0.25
\u{0}\u{1}binary
";
    let (samples, malformed) = prometheus::parse(text);
    assert_eq!(samples.len(), 2, "{samples:?}");
    assert_eq!(malformed, 7);
    let m = parse_metrics(text).expect("usable");
    assert_eq!(m.waiting, None);
    assert_eq!(m.running, Some(2));
    assert_eq!(m.kv_cache_usage, Some(0.25));
}

#[test]
fn nan_infinite_and_negative_values_count_as_missing() {
    let m = parse_metrics(
        "vllm:num_requests_waiting NaN\nvllm:num_requests_running -3\nvllm:kv_cache_usage_perc +Inf\nvllm:gpu_cache_usage_perc 0.5\n",
    )
    .expect("the legacy KV gauge is usable");
    assert_eq!(m.waiting, None);
    assert_eq!(m.running, None);
    assert_eq!(
        m.kv_cache_usage,
        Some(0.5),
        "falls back to the pre-0.10 name"
    );
    assert!(parse_metrics("vllm:num_requests_waiting NaN\n").is_err());
    let clamped = parse_metrics("vllm:kv_cache_usage_perc 1.7\n").expect("usable");
    assert_eq!(clamped.kv_cache_usage, Some(1.0));
}

#[test]
fn series_of_several_engines_are_combined() {
    let m = parse_metrics(
        "vllm:num_requests_waiting{engine=\"0\"} 2\nvllm:num_requests_waiting{engine=\"1\"} 3\n\
         vllm:kv_cache_usage_perc{engine=\"0\"} 0.2\nvllm:kv_cache_usage_perc{engine=\"1\"} 0.6\n",
    )
    .expect("usable");
    assert_eq!(m.waiting, Some(5), "queues add up");
    assert_eq!(m.kv_cache_usage, Some(0.6), "the fullest engine counts");
}

#[test]
fn a_body_without_load_gauges_is_not_a_good_scrape() {
    for text in [
        "",
        "# just comments\n",
        "other_metric 1\n",
        "<html>502 Bad Gateway</html>",
    ] {
        assert!(parse_metrics(text).is_err(), "{text:?}");
    }
}

fn store() -> (Datastore, SocketAddr) {
    let ds = Datastore::new(
        PoolInfo {
            target_ports: vec![8000],
            ..PoolInfo::default()
        },
        Duration::from_millis(200),
    );
    ds.set_pods(vec![Pod::new("p", IpAddr::from([10, 0, 0, 1]))]);
    (ds, SocketAddr::from(([10, 0, 0, 1], 8000)))
}

#[test]
fn failed_scrapes_keep_the_last_good_values_until_they_go_stale() {
    let (ds, addr) = store();
    let t0 = Instant::now();
    let good = parse_metrics(VLLM).expect("good");
    assert!(ds.record_scrape(addr, Ok(&good), t0));
    assert!(ds.record_scrape(
        addr,
        Err("connection refused".to_owned()),
        t0 + Duration::from_millis(50)
    ));
    let c = &ds.candidates(t0 + Duration::from_millis(100))[0];
    assert!(c.fresh);
    assert_eq!(c.metrics.waiting, 7, "last good value kept");
    let c = &ds.candidates(t0 + Duration::from_millis(250))[0];
    assert!(!c.fresh, "older than the threshold: stale");
    assert_eq!(c.age, Some(Duration::from_millis(250)));
    assert_eq!(c.metrics.waiting, 7, "still the last known values");
    let status = &ds.status()[0];
    assert_eq!((status.good_scrapes, status.failed_scrapes), (1, 1));
    assert_eq!(status.last_error.as_deref(), Some("connection refused"));
}

#[test]
fn a_partial_scrape_updates_what_it_carries_and_keeps_the_rest() {
    let (ds, addr) = store();
    let now = Instant::now();
    ds.record_scrape(addr, Ok(&parse_metrics(VLLM).expect("good")), now);
    let partial = ScrapedMetrics {
        waiting: Some(1),
        ..ScrapedMetrics::default()
    };
    ds.record_scrape(addr, Ok(&partial), now);
    let m = &ds.candidates(now)[0].metrics;
    assert_eq!(m.waiting, 1);
    assert_eq!(m.running, 3);
    assert_eq!(m.kv_cache_usage, 0.4375);
    assert_eq!(m.running_adapters, set(&["sql-lora", "tweets"]));
}

#[test]
fn an_endpoint_never_scraped_is_unknown() {
    let (ds, _) = store();
    let c = &ds.candidates(Instant::now())[0];
    assert!(!c.fresh);
    assert_eq!(c.age, None);
    assert!(!ds.is_ready());
}

#[test]
fn vllm_metric_names_are_vllms() {
    assert_eq!(vllm::WAITING, "vllm:num_requests_waiting");
    assert_eq!(vllm::RUNNING, "vllm:num_requests_running");
    assert_eq!(vllm::KV_CACHE_USAGE, "vllm:kv_cache_usage_perc");
    assert_eq!(vllm::LORA_INFO, "vllm:lora_requests_info");
    assert_eq!(vllm::CACHE_CONFIG_INFO, "vllm:cache_config_info");
}
