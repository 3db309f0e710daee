//! Bad input gets vLLM's JSON errors: `{"error": {"message", "type", "param", "code"}}`.

use inference_sim::SimConfig;
use serde_json::{Value, json};

use crate::support::*;

fn assert_vllm_error(status: u16, body: &Value, code: u16, kind: &str) {
    assert_eq!(status, code, "{body}");
    let error = &body["error"];
    assert_eq!(error["type"], kind, "{body}");
    assert_eq!(error["code"], code, "{body}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(error.get("param").is_some(), "{body}");
}

#[tokio::test]
async fn bad_input_gets_a_400_in_vllms_error_shape() {
    let sim = start(SimConfig {
        max_model_len: 64,
        ..SimConfig::for_tests(0.01)
    })
    .await;
    let url = format!("{}/v1/chat/completions", sim.url());
    let cases = [
        "{not json".to_owned(),
        json!({"model": MODEL}).to_string(),
        json!({"messages": "hello"}).to_string(),
        json!({"messages": []}).to_string(),
        chat("hi", Some(0)).to_string(),
        chat("hi", Some(100)).to_string(),
        chat(&long_prompt("w", 80), None).to_string(),
        json!({"messages": [{"role": "user", "content": "hi"}], "stream_options": {}}).to_string(),
        json!({"messages": [{"role": "user", "content": "hi"}], "n": 2}).to_string(),
    ];
    for case in cases {
        let (status, body) = post_raw(&url, &case).await;
        assert_vllm_error(status, &body, 400, "BadRequestError");
    }
    let (status, body) = post(&url, &chat("hi", Some(100))).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("This model's maximum context length is 64 tokens")),
        "{status} {body}"
    );
    let completions = format!("{}/v1/completions", sim.url());
    let (status, body) = post(&completions, &json!({"prompt": ["a", "b"]})).await;
    assert_vllm_error(status, &body, 400, "BadRequestError");
}

#[tokio::test]
async fn an_unknown_model_is_a_404() {
    let sim = start(SimConfig::for_tests(0.01)).await;
    let mut request = chat("hi", Some(1));
    request["model"] = "gpt-5".into();
    let (status, body) = post(&format!("{}/v1/chat/completions", sim.url()), &request).await;
    assert_vllm_error(status, &body, 404, "NotFoundError");
    assert_eq!(
        body["error"]["message"],
        "The model `gpt-5` does not exist."
    );
    assert_eq!(body["error"]["param"], "model");
}
