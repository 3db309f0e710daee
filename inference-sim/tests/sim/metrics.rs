//! `/metrics` parses as Prometheus text and carries vLLM's names and labels.

use inference_sim::SimConfig;

use crate::support::*;

#[tokio::test]
async fn metrics_text_parses_and_has_vllms_names_and_labels() {
    let sim = start(SimConfig {
        num_gpu_blocks: 9000,
        lora_modules: vec!["a".into()],
        ..SimConfig::for_tests(0.01)
    })
    .await;
    let (status, _) = post(
        &format!("{}/v1/chat/completions", sim.url()),
        &chat("Hello", Some(4)),
    )
    .await;
    assert_eq!(status, 200);

    let (_, text) = get(&format!("{}/metrics", sim.url())).await;
    let samples = parse_metrics(&text);
    for name in [
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "vllm:prompt_tokens_total",
        "vllm:generation_tokens_total",
        "vllm:prefix_cache_queries_total",
        "vllm:prefix_cache_hits_total",
        "vllm:time_to_first_token_seconds_count",
        "vllm:inter_token_latency_seconds_count",
        "vllm:time_per_output_token_seconds_count",
        "vllm:e2e_request_latency_seconds_count",
    ] {
        let sample = samples
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{name} missing:\n{text}"));
        assert_eq!(sample.labels["model_name"], MODEL, "{name}");
        assert_eq!(sample.labels["engine"], "0", "{name}");
    }
    assert_eq!(metric(&samples, "vllm:num_requests_running"), 0.0);
    assert_eq!(metric(&samples, "vllm:num_requests_waiting"), 0.0);
    assert_eq!(metric(&samples, "vllm:kv_cache_usage_perc"), 0.0);
    assert_eq!(metric(&samples, "vllm:generation_tokens_total"), 4.0);
    assert_eq!(
        metric(&samples, "vllm:time_to_first_token_seconds_count"),
        1.0
    );
    assert_eq!(
        metric(&samples, "vllm:inter_token_latency_seconds_count"),
        3.0
    );
    assert!(metric(&samples, "vllm:prompt_tokens_total") > 0.0);
    assert!(text.contains("# TYPE vllm:time_to_first_token_seconds histogram"));
    assert!(
        samples
            .iter()
            .any(|s| s.name == "vllm:time_to_first_token_seconds_bucket"
                && s.labels.get("le").map(String::as_str) == Some("+Inf")
                && s.value == 1.0)
    );

    let cache = samples
        .iter()
        .find(|s| s.name == "vllm:cache_config_info")
        .expect("cache_config_info");
    assert_eq!(cache.labels["block_size"], "16");
    assert_eq!(cache.labels["num_gpu_blocks"], "9000");
    assert_eq!(cache.value, 1.0);

    let lora = latest_lora_info(&samples);
    assert_eq!(lora["max_lora"], "2");
    assert_eq!(lora["running_lora_adapters"], "");
    assert_eq!(lora["waiting_lora_adapters"], "");
    let stamp = samples
        .iter()
        .filter(|s| s.name == "vllm:lora_requests_info")
        .map(|s| s.value)
        .fold(0.0, f64::max);
    assert!(stamp > 1.6e9, "a unix timestamp, as vLLM sets: {stamp}");
}
