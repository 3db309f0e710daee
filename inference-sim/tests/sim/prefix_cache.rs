//! A prompt whose prefix is cached skips that prefill, so its first token comes sooner.

use std::time::{Duration, Instant};

use inference_sim::SimConfig;
use serde_json::{Value, json};

use crate::support::*;

/// Client-side time to the first streamed event, and the request's usage.
async fn time_to_first_token(url: &str, prompt: &str) -> (Duration, Value) {
    let mut body = chat(prompt, Some(1));
    body["stream"] = true.into();
    body["stream_options"] = json!({"include_usage": true});
    let started = Instant::now();
    // With one output token the whole stream ends at the first token.
    let events = stream(url, &body).await;
    let elapsed = started.elapsed();
    let usage = events.last().expect("usage chunk")["usage"].clone();
    (elapsed, usage)
}

fn ttft_sum(samples: &[Sample]) -> f64 {
    metric(samples, "vllm:time_to_first_token_seconds_sum")
}

#[tokio::test]
async fn a_repeated_long_prompt_gets_a_lower_ttft_than_a_fresh_one() {
    // Real time runs at half the simulated speed: a fresh 6000-token prefill takes ~0.15 s.
    let sim = start(SimConfig::for_tests(0.5)).await;
    let url = format!("{}/v1/chat/completions", sim.url());
    let shared = long_prompt("shared", 6000);

    let before = ttft_sum(&metrics(&sim).await);
    let (_, usage) = time_to_first_token(&url, &shared).await;
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 0);
    let after_fresh = ttft_sum(&metrics(&sim).await);

    let (repeat_wall, usage) = time_to_first_token(&url, &shared).await;
    let prompt_tokens = usage["prompt_tokens"].as_u64().expect("prompt tokens");
    let cached = usage["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .expect("cached");
    assert!(
        cached + 16 >= prompt_tokens && cached < prompt_tokens,
        "{cached}/{prompt_tokens}"
    );
    let after_repeat = ttft_sum(&metrics(&sim).await);

    let (other_wall, _) = time_to_first_token(&url, &long_prompt("other", 6000)).await;
    let samples = metrics(&sim).await;
    let after_other = ttft_sum(&samples);

    let (fresh, repeat, other) = (
        after_fresh - before,
        after_repeat - after_fresh,
        after_other - after_repeat,
    );
    assert!(
        repeat * 10.0 < other,
        "simulated TTFT: repeat {repeat} vs fresh {other}"
    );
    assert!(
        (fresh - other).abs() < fresh * 0.05,
        "fresh prompts cost alike: {fresh} vs {other}"
    );
    assert!(
        repeat_wall < other_wall,
        "client-side: {repeat_wall:?} vs {other_wall:?}"
    );
    assert_eq!(
        metric(&samples, "vllm:prefix_cache_hits_total"),
        cached as f64,
        "hits counted in tokens"
    );
}
