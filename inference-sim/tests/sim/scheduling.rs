//! The batch, the queue and the KV cache, seen through `/metrics` as an endpoint picker sees them.

use inference_sim::SimConfig;

use crate::support::*;

#[tokio::test]
async fn with_max_num_seqs_2_a_third_concurrent_request_waits() {
    let sim = start(SimConfig {
        max_num_seqs: 2,
        ..SimConfig::for_tests(0.05)
    })
    .await;
    let url = format!("{}/v1/chat/completions", sim.url());
    let clients: Vec<_> = (0..3)
        .map(|i| {
            let (url, body) = (url.clone(), chat(&format!("request {i}"), Some(5000)));
            tokio::spawn(async move { post(&url, &body).await })
        })
        .collect();
    until(&sim, "two running, one waiting", |s| {
        s.running == 2 && s.waiting == 1
    })
    .await;
    let samples = metrics(&sim).await;
    assert_eq!(metric(&samples, "vllm:num_requests_waiting"), 1.0);
    assert_eq!(metric(&samples, "vllm:num_requests_running"), 2.0);

    // Clients that go away are aborted and their slots freed.
    for client in clients {
        client.abort();
    }
    until(&sim, "aborted requests dropped", |s| {
        s.running == 0 && s.waiting == 0
    })
    .await;
    let samples = metrics(&sim).await;
    assert_eq!(metric(&samples, "vllm:kv_cache_usage_perc"), 0.0);
}

#[tokio::test]
async fn kv_usage_rises_with_running_requests_and_falls_after() {
    let sim = start(SimConfig {
        num_gpu_blocks: 400,
        max_model_len: 4096,
        ..SimConfig::for_tests(0.05)
    })
    .await;
    let url = format!("{}/v1/chat/completions", sim.url());
    let kv = |samples: &[Sample]| metric(samples, "vllm:kv_cache_usage_perc");

    let first = {
        let (url, body) = (url.clone(), chat(&long_prompt("a", 800), Some(1500)));
        tokio::spawn(async move { post(&url, &body).await })
    };
    until(&sim, "first running", |s| s.running == 1).await;
    let one = kv(&metrics(&sim).await);
    assert!(one > 0.0, "{one}");

    let second = {
        let (url, body) = (url.clone(), chat(&long_prompt("b", 800), Some(50)));
        tokio::spawn(async move { post(&url, &body).await })
    };
    until(&sim, "both running", |s| s.running == 2).await;
    let two = kv(&metrics(&sim).await);
    assert!(two > one * 1.5, "{two} vs {one}");

    let (status, _) = within("second finishes", second)
        .await
        .expect("client task");
    assert_eq!(status, 200);
    let after_second = kv(&metrics(&sim).await);
    assert!(
        after_second < two && after_second > 0.0,
        "{after_second} vs {two}"
    );
    let (status, _) = within("first finishes", first).await.expect("client task");
    assert_eq!(status, 200);
    assert_eq!(kv(&metrics(&sim).await), 0.0);
}
