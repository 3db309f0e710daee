//! Requests the gateway refuses itself: status and error shape of the client's API, and the
//! extproc keeps serving afterwards.

use serde_json::{Value, json};

use super::harness::{
    Harness, get, headers, immediate, immediate_json, request_body, request_headers,
};

/// Sends headers (and a body, if any) on a router leg and returns the immediate response.
async fn refused(harness: &Harness, pairs: &[(&str, &str)], body: Option<&[u8]>) -> Value {
    let mut router = harness.open("router").await;
    let answer = router
        .send(request_headers(&headers(pairs), body.is_none()))
        .await;
    if let Some(i) = immediate(&answer) {
        return immediate_json(i);
    }
    let body = body.expect("refused at headers or given a body");
    let answer = router.send(request_body(body, true)).await;
    immediate_json(immediate(&answer).expect("an immediate response"))
}

fn chat(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut pairs = vec![
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        ("content-type", "application/json"),
    ];
    pairs.extend_from_slice(extra);
    pairs
}

fn assert_openai_error(reply: &Value, status: i64, code: &str) {
    assert_eq!(reply["status"], status, "{reply}");
    assert_eq!(reply["headers"]["content-type"], "application/json");
    let error = &reply["body"]["error"];
    assert_eq!(error["code"], code, "{reply}");
    assert_eq!(error["param"], Value::Null);
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(error["type"].is_string());
}

#[tokio::test]
async fn invalid_json_is_a_400_in_openai_shape() {
    let harness = Harness::start().await;
    let reply = refused(&harness, &chat(&[]), Some(b"{\"model\": \"gpt-4o\",")).await;
    assert_openai_error(&reply, 400, "invalid_json");
    assert_eq!(reply["body"]["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn missing_model_is_a_400_in_openai_shape() {
    let harness = Harness::start().await;
    let reply = refused(&harness, &chat(&[]), Some(br#"{"messages":[]}"#)).await;
    assert_openai_error(&reply, 400, "missing_model");
}

#[tokio::test]
async fn wrong_content_type_is_a_415() {
    let harness = Harness::start().await;
    let reply = refused(
        &harness,
        &[
            (":method", "POST"),
            (":path", "/v1/chat/completions"),
            ("content-type", "text/plain"),
        ],
        Some(b"model=gpt-4o"),
    )
    .await;
    assert_openai_error(&reply, 415, "unsupported_content_type");
}

#[tokio::test]
async fn body_over_the_limit_is_a_413_from_its_content_length() {
    let harness = Harness::start().await;
    let reply = refused(&harness, &chat(&[("content-length", "5000")]), None).await;
    assert_openai_error(&reply, 413, "request_too_large");
}

#[tokio::test]
async fn body_over_the_limit_is_a_413_when_it_arrives() {
    let harness = Harness::start().await;
    let big = format!(r#"{{"model":"gpt-4o","prompt":"{}"}}"#, "x".repeat(5000));
    let reply = refused(&harness, &chat(&[]), Some(big.as_bytes())).await;
    assert_openai_error(&reply, 413, "request_too_large");
}

#[tokio::test]
async fn anthropic_clients_get_errors_in_anthropic_shape() {
    let harness = Harness::start().await;
    let pairs = [
        (":method", "POST"),
        (":path", "/anthropic/v1/messages"),
        ("content-type", "application/json"),
    ];
    let reply = refused(&harness, &pairs, Some(br#"{"max_tokens":5}"#)).await;
    assert_eq!(reply["status"], 400);
    assert_eq!(reply["body"]["type"], "error");
    assert_eq!(reply["body"]["error"]["type"], "invalid_request_error");
    assert!(
        reply["body"]["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("model"))
    );
}

#[tokio::test]
async fn get_on_chat_completions_is_a_405_and_post_without_body_a_400() {
    let harness = Harness::start().await;
    let reply = refused(
        &harness,
        &[(":method", "GET"), (":path", "/v1/chat/completions")],
        None,
    )
    .await;
    assert_openai_error(&reply, 405, "method_not_allowed");
    let reply = refused(&harness, &chat(&[]), None).await;
    assert_openai_error(&reply, 400, "missing_body");
}

#[tokio::test]
async fn non_string_model_and_non_object_body_are_400s() {
    let harness = Harness::start().await;
    let reply = refused(&harness, &chat(&[]), Some(br#"{"model":42}"#)).await;
    assert_openai_error(&reply, 400, "invalid_value");
    let reply = refused(&harness, &chat(&[]), Some(b"[1,2]")).await;
    assert_openai_error(&reply, 400, "invalid_json");
    let reply = refused(&harness, &chat(&[]), Some(b"\xff\xfe")).await;
    assert_openai_error(&reply, 400, "invalid_json");
}

#[tokio::test]
async fn a_refused_request_leaves_the_server_serving() {
    let harness = Harness::start().await;
    for _ in 0..3 {
        let _ = refused(&harness, &chat(&[]), Some(b"not json")).await;
    }
    let mut router = harness.open("router").await;
    let answer = router
        .send(request_headers(&headers(&chat(&[])), false))
        .await;
    assert!(immediate(&answer).is_none());
    let answer = router
        .send(request_body(
            &serde_json::to_vec(&json!({"model": "gpt-4o"})).expect("json"),
            true,
        ))
        .await;
    let mut seen = headers(&[]);
    super::harness::apply_headers(&mut seen, &answer);
    assert_eq!(get(&seen, "x-ai-eg-model"), Some("gpt-4o"));
}
