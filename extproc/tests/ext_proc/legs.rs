//! Behaviour of each leg beyond the golden exchanges: where the backend comes from, what
//! happens when it cannot be known, streams cut short, config changes, metrics.

use std::collections::HashMap;

use envoy_types::pb::envoy::service::ext_proc::v3::ProcessingRequest;

use super::exchange::{self, Case};
use super::harness::{
    Harness, apply_body, apply_headers, get, golden_config, headers, host_attributes, immediate,
    immediate_json, metadata_json, request_body, request_headers, response_body, response_headers,
    testdata,
};

fn chat_headers() -> Vec<(String, String)> {
    headers(&[
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        ("content-type", "application/json"),
        ("x-ai-eg-model", "gpt-4o"),
    ])
}

/// Runs the router leg's request path for `body` and returns the stream, ready for the
/// response.
async fn routed(harness: &Harness, body: &str) -> super::harness::LegStream {
    let mut router = harness.open("router").await;
    let answer = router.send(request_headers(&chat_headers(), false)).await;
    assert!(immediate(&answer).is_none());
    let answer = router.send(request_body(body.as_bytes(), true)).await;
    assert!(immediate(&answer).is_none());
    router
}

#[tokio::test]
async fn upstream_leg_that_cannot_learn_its_backend_fails_closed_without_details() {
    let mut config = golden_config();
    config.version = "v-test".into();
    let harness = Harness::with_config(&config).await;
    let mut upstream = harness.open("upstream").await;
    // No attributes and no backend header.
    let answer = upstream.send(request_headers(&chat_headers(), false)).await;
    let reply = immediate_json(immediate(&answer).expect("refused"));
    assert_eq!(reply["status"], 500);
    assert_eq!(
        reply["body"]["error"]["message"],
        "the gateway failed to process the request"
    );
}

#[tokio::test]
async fn upstream_leg_for_a_backend_not_yet_in_config_is_a_503() {
    let harness = Harness::start().await;
    let mut upstream = harness.open("upstream").await;
    let mut message = request_headers(&chat_headers(), false);
    message.attributes = host_attributes("default/new", "default/chat", 0);
    let answer = upstream.send(message).await;
    let reply = immediate_json(immediate(&answer).expect("refused"));
    assert_eq!(reply["status"], 503);
    assert_eq!(reply["body"]["error"]["code"], "backend_not_ready");
}

#[tokio::test]
async fn a_stream_whose_first_message_carries_host_attributes_is_an_upstream_leg() {
    let harness = Harness::start().await;
    // Named as neither leg: the attributes decide.
    let mut stream = harness.open("unnamed").await;
    let mut message = request_headers(&chat_headers(), false);
    message.attributes = host_attributes("default/vllm", "default/chat", 3);
    let answer = stream.send(message).await;
    let mut seen = chat_headers();
    apply_headers(&mut seen, &answer);
    assert_eq!(get(&seen, ":path"), Some("/serving/v1/chat/completions"));
}

#[tokio::test]
async fn router_leg_reads_the_backend_from_response_attributes() {
    let harness = Harness::start().await;
    let mut router = routed(&harness, r#"{"model":"gpt-4o"}"#).await;
    let mut message: ProcessingRequest = response_headers(
        &headers(&[(":status", "200"), ("content-type", "application/json")]),
        false,
    );
    message.attributes = host_attributes("default/openai", "default/chat", 0);
    let _ = router.send(message).await;
    let body =
        br#"{"model":"gpt-4o","usage":{"prompt_tokens":2,"completion_tokens":3,"total_tokens":5}}"#;
    let answer = router.send(response_body(body, true)).await;
    let metadata = metadata_json(&answer);
    let ours = &metadata["io.envoy.ai_gateway"];
    assert_eq!(ours["backend_name"], "default/openai");
    assert_eq!(ours["route_name"], "default/chat");
    assert_eq!(ours["llm_total_token"], 5.0);
    assert_eq!(ours["weighted"], 14.0);
}

/// Envoy reaches a plain OpenAI backend without the upstream leg (its cluster injects the key
/// natively), so the router leg asks for the stream's usage itself and drops the usage chunk
/// the client did not ask for.
#[tokio::test]
async fn router_leg_asks_for_stream_usage_itself_when_costs_need_it() {
    let harness = Harness::start().await;
    let mut router = harness.open("router").await;
    let mut sent = chat_headers();
    let _ = router.send(request_headers(&sent, false)).await;
    let body = br#"{"model":"gpt-4o","stream":true,"messages":[]}"#;
    let answer = router.send(request_body(body, true)).await;
    apply_headers(&mut sent, &answer);
    let upstream_body = apply_body(body, &answer);
    let json: serde_json::Value = serde_json::from_slice(&upstream_body).expect("json");
    assert_eq!(json["stream_options"]["include_usage"], true);
    assert_eq!(json["messages"], serde_json::json!([]));
    assert_eq!(
        get(&sent, "content-length"),
        Some(upstream_body.len().to_string().as_str())
    );

    let mut message = response_headers(
        &headers(&[(":status", "200"), ("content-type", "text/event-stream")]),
        false,
    );
    message.attributes = host_attributes("default/openai", "default/chat", 0);
    let _ = router.send(message).await;
    let chunks = concat!(
        "data: {\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n",
        "data: {\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":3,\"total_tokens\":5}}\n\n",
        "data: [DONE]\n\n",
    );
    let answer = router.send(response_body(chunks.as_bytes(), true)).await;
    let client = String::from_utf8(apply_body(chunks.as_bytes(), &answer)).expect("utf-8");
    assert!(client.contains("Hi"), "{client}");
    assert!(!client.contains("usage"), "{client}");
    assert!(client.ends_with("data: [DONE]\n\n"), "{client}");
    assert_eq!(
        metadata_json(&answer)["io.envoy.ai_gateway"]["llm_total_token"],
        5.0
    );
}

/// A small JSON answer of known length is asked for in one buffered message; a large or
/// unsized one keeps streaming through (it may exceed what Envoy can buffer).
#[tokio::test]
async fn small_json_responses_are_buffered_and_large_ones_stream() {
    use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::processing_mode::BodySendMode;
    let harness = Harness::start().await;
    for (length, buffered) in [
        (Some("829"), true),
        (Some("10485760"), false),
        (None, false),
    ] {
        let mut router = routed(&harness, r#"{"model":"gpt-4o"}"#).await;
        let mut sent = vec![(":status", "200"), ("content-type", "application/json")];
        if let Some(length) = length {
            sent.push(("content-length", length));
        }
        let mut message = response_headers(&headers(&sent), false);
        message.attributes = host_attributes("default/openai", "default/chat", 0);
        let answer = router.send(message).await;
        let mode = answer
            .mode_override
            .map(|m| m.response_body_mode)
            .unwrap_or(BodySendMode::Streamed as i32);
        let expected = if buffered {
            BodySendMode::Buffered
        } else {
            BodySendMode::Streamed
        };
        assert_eq!(mode, expected as i32, "content-length {length:?}");
        let body = br#"{"model":"gpt-4o","usage":{"prompt_tokens":2,"completion_tokens":3,"total_tokens":5}}"#;
        let answer = router.send(response_body(body, true)).await;
        assert_eq!(
            metadata_json(&answer)["io.envoy.ai_gateway"]["llm_total_token"],
            5.0
        );
    }
}

/// Without costs for the model nothing is injected: the body goes on as the client sent it.
#[tokio::test]
async fn router_leg_leaves_streams_alone_when_no_costs_apply() {
    let mut config = golden_config();
    for route in &mut config.routes {
        route.llm_request_costs.clear();
    }
    let harness = Harness::with_config(&config).await;
    let mut router = harness.open("router").await;
    let _ = router.send(request_headers(&chat_headers(), false)).await;
    let body = br#"{"model":"gpt-4o","stream":true}"#;
    let answer = router.send(request_body(body, true)).await;
    assert_eq!(apply_body(body, &answer), body.to_vec());
}

#[tokio::test]
async fn stream_closed_mid_response_writes_no_costs_and_the_server_keeps_serving() {
    let harness = Harness::start().await;
    let mut router = routed(&harness, r#"{"model":"gpt-4o","stream":true}"#).await;
    let answer = router
        .send(response_headers(
            &headers(&[
                (":status", "200"),
                ("content-type", "text/event-stream"),
                ("x-infergate-backend", "default/openai"),
                ("x-infergate-route", "default/chat"),
            ]),
            false,
        ))
        .await;
    assert!(answer.dynamic_metadata.is_none());
    let answer = router
        .send(response_body(
            b"data: {\"choices\":[{\"delta\":{\"content\":\"Hel",
            false,
        ))
        .await;
    assert!(answer.dynamic_metadata.is_none());
    router.close().await;

    let case: Case =
        serde_json::from_slice(&std::fs::read(testdata().join("in/chat.json")).expect("case"))
            .expect("parse");
    let record = exchange::run(&harness, &case).await;
    assert_eq!(record["client_response"]["status"], 200);
}

async fn listed_models(harness: &Harness) -> Vec<String> {
    let mut router = harness.open("router").await;
    let answer = router
        .send(request_headers(
            &headers(&[(":method", "GET"), (":path", "/v1/models")]),
            true,
        ))
        .await;
    let reply = immediate_json(immediate(&answer).expect("listed"));
    reply["body"]["data"]
        .as_array()
        .map(|d| {
            d.iter()
                .filter_map(|m| m["id"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn config_update_applies_to_the_next_request() {
    let harness = Harness::start().await;
    assert!(!listed_models(&harness).await.contains(&"o3".to_string()));
    let mut config = golden_config();
    config.routes[0].rules[0].models.push("o3".into());
    let errors = harness.running.store().update(&config);
    assert!(errors.is_empty());
    assert!(listed_models(&harness).await.contains(&"o3".to_string()));
}

#[tokio::test]
async fn metrics_count_tokens_and_durations_after_requests() {
    let harness = Harness::start().await;
    let case: Case =
        serde_json::from_slice(&std::fs::read(testdata().join("in/chat.json")).expect("case"))
            .expect("parse");
    for _ in 0..3 {
        let _ = exchange::run(&harness, &case).await;
    }
    let stream: Case = serde_json::from_slice(
        &std::fs::read(testdata().join("in/chat_stream.json")).expect("case"),
    )
    .expect("parse");
    let _ = exchange::run(&harness, &stream).await;

    let (status, body) = harness.admin_get("/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, text) = harness.admin_get("/metrics").await;
    assert_eq!(status, 200);
    let samples = parse_samples(&text);
    let labels = r#"gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o",gen_ai_response_model="gpt-4o-2024-08-06""#;
    let sample = |name: &str, extra: &str| {
        let key = if extra.is_empty() {
            format!("{name}{{{labels}}}")
        } else {
            format!("{name}{{{labels},{extra}}}")
        };
        samples
            .get(&key)
            .copied()
            .unwrap_or_else(|| panic!("no {key} in\n{text}"))
    };
    // 3 × 12 input tokens (non-streamed) + 9 (streamed).
    assert_eq!(
        sample(
            "gen_ai_client_token_usage_sum",
            r#"gen_ai_token_type="input""#
        ),
        45.0
    );
    assert_eq!(
        sample(
            "gen_ai_client_token_usage_sum",
            r#"gen_ai_token_type="output""#
        ),
        27.0
    );
    assert_eq!(
        sample(
            "gen_ai_client_token_usage_count",
            r#"gen_ai_token_type="cached_input""#
        ),
        4.0
    );
    // Four successes: no error type.
    assert_eq!(
        sample(
            "gen_ai_server_request_duration_seconds_count",
            r#"error_type="""#
        ),
        4.0
    );
    assert_eq!(
        sample("gen_ai_server_time_to_first_token_seconds_count", ""),
        1.0
    );
    assert_eq!(
        sample("gen_ai_server_time_per_output_token_seconds_count", ""),
        1.0
    );
}

/// `name{labels} value` lines of the text exposition.
fn parse_samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(k, v)| v.parse().ok().map(|v| (k.to_string(), v)))
        .collect()
}

#[tokio::test]
async fn client_copies_of_gateway_headers_are_overwritten_or_removed() {
    let harness = Harness::start().await;
    let mut router = harness.open("router").await;
    let mut sent = chat_headers();
    sent.push(("x-ai-eg-model".into(), "spoof".into()));
    sent.push(("x-ai-eg-original-path".into(), "/spoof".into()));
    sent.push(("x-infergate-stream-without-usage".into(), "true".into()));
    let answer = router.send(request_headers(&sent, false)).await;
    apply_headers(&mut sent, &answer);
    let answer = router
        .send(request_body(br#"{"model":"gpt-4o","stream":false}"#, true))
        .await;
    apply_headers(&mut sent, &answer);
    let models: Vec<&str> = sent
        .iter()
        .filter(|(k, _)| k == "x-ai-eg-model")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(models, ["gpt-4o"]);
    assert_eq!(
        get(&sent, "x-ai-eg-original-path"),
        Some("/v1/chat/completions")
    );
    assert_eq!(get(&sent, "x-infergate-stream-without-usage"), None);
}

#[tokio::test]
async fn upstream_error_json_passes_through_and_refunds_the_reservation() {
    let harness = Harness::start().await;
    let mut router = routed(&harness, r#"{"model":"gpt-4o"}"#).await;
    let answer = router
        .send(response_headers(
            &headers(&[
                (":status", "429"),
                ("content-type", "application/json"),
                ("x-infergate-backend", "default/openai"),
                ("x-infergate-route", "default/chat"),
            ]),
            false,
        ))
        .await;
    // No cost, but every reserved estimate is settled at 0 (the upstream refused the request),
    // and the access log still learns which backend answered.
    let metadata = format!("{:?}", answer.dynamic_metadata);
    assert!(
        metadata.contains("llm_total_token.reserved")
            && metadata.contains("backend_name")
            && !metadata.contains("response_model"),
        "{metadata}"
    );
    assert!(super::harness::skips_body(&answer, false));
    let mut seen = headers(&[("x-infergate-backend", "default/openai")]);
    apply_headers(&mut seen, &answer);
    assert_eq!(
        get(&seen, "x-infergate-backend"),
        None,
        "internal header reaches the client"
    );
}

/// A small deterministic generator, so the noise is the same on every run.
fn noise(seed: &mut u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            // Mostly JSON/SSE punctuation and letters, sometimes any byte.
            let pick = (*seed % 64) as usize;
            b"{}[]\":,data: \n\r\n[DONE]event:usage0123456789modelchoices\x00\xff"
                .get(pick)
                .copied()
                .unwrap_or((*seed >> 8) as u8)
        })
        .collect()
}

#[tokio::test]
async fn garbage_bodies_and_chunks_never_break_a_leg() {
    let harness = Harness::start().await;
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for round in 0..40 {
        let mut router = harness.open("router").await;
        let _ = router.send(request_headers(&chat_headers(), false)).await;
        let body = if round % 4 == 3 {
            noise(&mut seed, 10 + round * 7)
        } else {
            format!(r#"{{"model":"gpt-4o","stream":{}}}"#, round % 2 == 0).into_bytes()
        };
        let answer = router.send(request_body(&body, true)).await;
        if immediate(&answer).is_some() {
            continue;
        }
        let content_type = if round % 2 == 0 {
            "text/event-stream"
        } else {
            "application/json"
        };
        let _ = router
            .send(response_headers(
                &headers(&[
                    (":status", "200"),
                    ("content-type", content_type),
                    ("x-infergate-backend", "default/openai"),
                    ("x-infergate-route", "default/chat"),
                ]),
                false,
            ))
            .await;
        for i in 0..5 {
            let chunk = noise(&mut seed, 1 + (round * 13 + i) % 90);
            let _ = router.send(response_body(&chunk, i == 4)).await;
        }
        router.close().await;
    }
    for round in 0..20 {
        let mut upstream = harness.open("upstream").await;
        let mut message = request_headers(&chat_headers(), false);
        message.attributes = host_attributes("default/openai", "default/chat", round % 3);
        let answer = upstream.send(message).await;
        if skips_body_of(&answer) {
            continue;
        }
        let body = noise(&mut seed, 5 + round * 11);
        let _ = upstream.send(request_body(&body, true)).await;
    }
    // Still serving.
    assert!(
        listed_models(&harness)
            .await
            .contains(&"gpt-4o".to_string())
    );
}

fn skips_body_of(
    answer: &envoy_types::pb::envoy::service::ext_proc::v3::ProcessingResponse,
) -> bool {
    super::harness::skips_body(answer, true)
}

/// A request that ends in trailers: Envoy's BUFFERED filter sends the whole body without
/// `end_of_stream` (its first message says the body comes buffered). The body is taken as
/// whole; without that word from Envoy, a chunk still waits for the rest.
#[tokio::test]
async fn a_buffered_body_before_trailers_is_taken_as_whole() {
    use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::processing_mode::BodySendMode;
    use envoy_types::pb::envoy::service::ext_proc::v3::ProtocolConfiguration;
    let harness = Harness::start().await;
    let body = br#"{"model":"gpt-4o","messages":[]}"#;
    for (mode, routed) in [
        (Some(BodySendMode::Buffered), true),
        (Some(BodySendMode::Streamed), false),
        (None, false),
    ] {
        let mut router = harness.open("router").await;
        let mut first = request_headers(&chat_headers(), false);
        first.protocol_config = mode.map(|mode| ProtocolConfiguration {
            request_body_mode: mode as i32,
            ..Default::default()
        });
        let answer = router.send(first).await;
        assert!(immediate(&answer).is_none());
        let answer = router.send(request_body(body, false)).await;
        let mut sent = headers(&[]);
        apply_headers(&mut sent, &answer);
        let model = get(&sent, "x-ai-eg-model");
        assert_eq!(model.is_some(), routed, "mode {mode:?}: {sent:?}");
    }
}
