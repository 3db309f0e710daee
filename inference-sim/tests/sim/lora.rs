//! LoRA adapters in a limited number of GPU slots.

use inference_sim::SimConfig;

use crate::support::*;

fn for_adapter(adapter: &str, max_tokens: u32) -> serde_json::Value {
    let mut body = chat(&format!("hello {adapter}"), Some(max_tokens));
    body["model"] = adapter.into();
    body
}

#[tokio::test]
async fn requesting_an_unloaded_adapter_beyond_max_loras_evicts_the_least_recently_used() {
    let sim = start(SimConfig {
        lora_modules: vec!["a,b,c".into()],
        max_loras: 2,
        ..SimConfig::for_tests(0.01)
    })
    .await;
    let url = format!("{}/v1/chat/completions", sim.url());
    for adapter in ["a", "b"] {
        let (status, body) = post(&url, &for_adapter(adapter, 2)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["model"], adapter);
    }
    assert_eq!(sim.handle().state().resident_adapters, ["a", "b"]);
    post(&url, &for_adapter("c", 2)).await;
    let state = sim.handle().state();
    assert_eq!(
        state.resident_adapters,
        ["b", "c"],
        "a was least recently used"
    );
    assert_eq!(state.adapter_loads, 3);
    post(&url, &for_adapter("b", 2)).await;
    assert_eq!(
        sim.handle().state().adapter_loads,
        3,
        "b was still resident"
    );
}

#[tokio::test]
async fn a_request_for_an_adapter_waits_while_every_slot_is_busy() {
    let sim = start(SimConfig {
        lora_modules: vec!["a".into(), "b".into()],
        max_loras: 1,
        ..SimConfig::for_tests(0.05)
    })
    .await;
    let url = format!("{}/v1/chat/completions", sim.url());
    let long = {
        let (url, body) = (url.clone(), for_adapter("a", 5000));
        tokio::spawn(async move { post(&url, &body).await })
    };
    until(&sim, "a running", |s| s.running_adapters == ["a"]).await;
    let short = {
        let (url, body) = (url.clone(), for_adapter("b", 2));
        tokio::spawn(async move { post(&url, &body).await })
    };
    until(&sim, "b waiting", |s| s.waiting_adapters == ["b"]).await;
    let lora = latest_lora_info(&metrics(&sim).await);
    assert_eq!(lora["running_lora_adapters"], "a");
    assert_eq!(lora["waiting_lora_adapters"], "b");
    assert_eq!(lora["max_lora"], "1");

    long.abort();
    let (status, _) = within("b to run once a is gone", short)
        .await
        .expect("client task");
    assert_eq!(status, 200);
    assert_eq!(sim.handle().state().resident_adapters, ["b"]);
}
