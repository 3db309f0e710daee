//! Response shapes of vLLM's OpenAI server, with the field names the official SDKs read.

use inference_sim::SimConfig;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn chat_completion_has_the_sdk_fields_and_usage() {
    let sim = start(SimConfig::for_tests(0.01)).await;
    let url = format!("{}/v1/chat/completions", sim.url());
    let (status, body) = post(&url, &chat("Hello there, how are you?", Some(7))).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("chatcmpl-"))
    );
    assert_eq!(body["object"], "chat.completion");
    assert!(body["created"].as_u64().is_some());
    assert_eq!(body["model"], MODEL);
    let choice = &body["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert!(
        choice["message"]["content"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
    );
    assert_eq!(choice["finish_reason"], "length");
    assert!(choice["logprobs"].is_null());
    let usage = &body["usage"];
    assert_eq!(usage["completion_tokens"], 7);
    let prompt = usage["prompt_tokens"].as_u64().expect("prompt_tokens");
    assert!(prompt > 7, "template tokens counted: {prompt}");
    assert_eq!(usage["total_tokens"].as_u64(), Some(prompt + 7));
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 0);
}

#[tokio::test]
async fn streamed_chat_opens_with_the_role_and_ends_with_usage_then_done() {
    let sim = start(SimConfig::for_tests(0.01)).await;
    let url = format!("{}/v1/chat/completions", sim.url());
    let mut request = chat("Tell me a story", Some(5));
    let (_, whole) = post(&url, &request).await;

    request["stream"] = true.into();
    request["stream_options"] = json!({"include_usage": true});
    let events = stream(&url, &request).await;
    assert_eq!(
        events.len(),
        1 + 5 + 1,
        "role, five tokens, usage: {events:#?}"
    );
    for event in &events {
        assert_eq!(event["object"], "chat.completion.chunk");
        assert_eq!(event["id"], events[0]["id"]);
        assert_eq!(event["model"], MODEL);
    }
    assert_eq!(
        events[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    let tokens = &events[1..6];
    let text: String = tokens
        .iter()
        .map(|e| {
            e["choices"][0]["delta"]["content"]
                .as_str()
                .expect("content")
        })
        .collect();
    assert_eq!(
        text, whole["choices"][0]["message"]["content"],
        "same answer either way"
    );
    assert!(
        tokens[..4]
            .iter()
            .all(|e| e["choices"][0]["finish_reason"].is_null())
    );
    assert_eq!(tokens[4]["choices"][0]["finish_reason"], "length");
    assert!(tokens.iter().all(|e| e.get("usage").is_none()));
    let last = &events[6];
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["completion_tokens"], 5);
    assert_eq!(
        last["usage"]["prompt_tokens"],
        whole["usage"]["prompt_tokens"]
    );
}

#[tokio::test]
async fn a_stream_without_include_usage_has_no_usage_chunk() {
    let sim = start(SimConfig::for_tests(0.01)).await;
    let mut request = chat("Hi", Some(3));
    request["stream"] = true.into();
    let events = stream(&format!("{}/v1/chat/completions", sim.url()), &request).await;
    assert_eq!(events.len(), 4);
    assert!(events.iter().all(|e| e.get("usage").is_none()));
}

#[tokio::test]
async fn completions_answer_in_text_completion_shape_with_vllms_default_of_16_tokens() {
    let sim = start(SimConfig::for_tests(0.01)).await;
    let url = format!("{}/v1/completions", sim.url());
    let (status, body) = post(&url, &json!({"model": MODEL, "prompt": "Once upon a time"})).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("cmpl-"))
    );
    assert_eq!(body["object"], "text_completion");
    assert!(body["choices"][0]["text"].is_string());
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert_eq!(body["usage"]["completion_tokens"], 16);

    let events = stream(
        &url,
        &json!({"model": MODEL, "prompt": [1, 2, 3], "max_tokens": 2, "stream": true,
                "stream_options": {"include_usage": true}}),
    )
    .await;
    assert_eq!(events.len(), 3);
    assert_eq!(events[0]["object"], "text_completion");
    assert!(events[0]["choices"][0]["text"].is_string());
    assert_eq!(events[1]["choices"][0]["finish_reason"], "length");
    assert_eq!(
        events[2]["usage"]["prompt_tokens"], 3,
        "token-id prompts are taken as is"
    );
}

#[tokio::test]
async fn models_lists_the_served_model_and_its_adapters() {
    let sim = start(SimConfig {
        lora_modules: vec!["sql-lora=/adapters/sql,tweets".into()],
        ..SimConfig::for_tests(0.01)
    })
    .await;
    let (status, text) = get(&format!("{}/v1/models", sim.url())).await;
    assert_eq!(status, 200);
    let body: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(body["object"], "list");
    let ids: Vec<_> = body["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|m| (m["id"].clone(), m["parent"].clone(), m["root"].clone()))
        .collect();
    assert_eq!(
        ids,
        [
            (json!(MODEL), json!(null), json!(MODEL)),
            (json!("sql-lora"), json!(MODEL), json!("/adapters/sql")),
            (json!("tweets"), json!(MODEL), json!("tweets")),
        ]
    );
    assert_eq!(body["data"][0]["object"], "model");
    assert_eq!(body["data"][0]["owned_by"], "vllm");
}

#[tokio::test]
async fn health_answers_ok() {
    let sim = start(SimConfig::for_tests(0.01)).await;
    assert_eq!(get(&format!("{}/health", sim.url())).await.0, 200);
}
