//! The OpenAI-compatible data path end to end: the official `openai` Python SDK → Envoy 1.40
//! with the extproc's two legs → a fake OpenAI provider that checks what it receives.
//!
//! Each test owns a stack (see `extproc/stack.rs`): the fake provider, one or two extproc
//! replicas and the xds-server in process, Envoy as a child process. The provider key lives in a
//! Secret; the client sends its own key, which must never reach the provider.

#[path = "extproc/prom.rs"]
mod prom;
#[path = "extproc/stack.rs"]
mod stack;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use infergate_e2e::fake_openai::{
    CHAT_CONTENT, CHAT_USAGE, COMPLETION_TEXT, COMPLETION_USAGE, CUT_AFTER_CHUNKS, EMBEDDING,
    EMBEDDING_TOKENS, Failure, FakeOpenAi, RESPONSE_MODEL_SUFFIX, STREAM_PIECES, Seen,
};
use infergate_e2e::{http, wait};
use serde_json::{Value, json};
use stack::{
    ALIAS, BACKEND, CLIENT_KEY, COSTED_ROUTE, EMBED, FREE, FREE_ROUTE, INSTRUCT, OVERRIDE, Stack,
    TIMEOUT, UPSTREAM_KEY,
};

const DEFAULT_LIMIT: u64 = xds_server::translate::ExtprocOptions::DEFAULT_BODY_LIMIT;

async fn start(replicas: usize, body_limit: u64) -> Result<(FakeOpenAi, Stack)> {
    let upstream = FakeOpenAi::start(UPSTREAM_KEY).await?;
    let stack = Stack::start(upstream.addr(), replicas, body_limit).await?;
    Ok((upstream, stack))
}

fn answered(model: &str) -> String {
    format!("{model}{RESPONSE_MODEL_SUFFIX}")
}

fn chat_body(model: &str) -> String {
    json!({"model": model, "messages": [{"role": "user", "content": "Say hello"}]}).to_string()
}

/// The provider got our key, not the client's, and none of the gateway's internal headers.
fn assert_provider_saw_only_the_gateway_credential(seen: &Seen) {
    let dump = seen.dump();
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {UPSTREAM_KEY}").as_str()),
        "{dump}"
    );
    assert!(
        !dump.contains(CLIENT_KEY),
        "client key reached the provider:\n{dump}"
    );
    for name in seen.headers.keys() {
        assert!(
            !name.as_str().starts_with("x-infergate-"),
            "internal header reached the provider:\n{dump}"
        );
    }
}

/// Neither key appears in what clients got nor in any log; the provider key is in none of them.
fn assert_no_leak(stack: &Stack, client_saw: &[String]) {
    let logs = stack.all_logs();
    assert!(
        stack::logs::text().contains("extproc started"),
        "the extproc's log is not captured"
    );
    assert!(
        !logs.contains(UPSTREAM_KEY),
        "provider key in a log:\n{logs}"
    );
    assert!(!logs.contains(CLIENT_KEY), "client key in a log:\n{logs}");
    for text in client_saw {
        assert!(
            !text.contains(UPSTREAM_KEY),
            "provider key sent to a client: {text}"
        );
    }
}

/// OpenAI's error shape with this status, type and code.
fn assert_openai_error(response: &http::HttpResponse, status: u16, code: &str) {
    assert_eq!(response.status.as_u16(), status, "{}", response.text());
    assert_eq!(
        response.header("content-type"),
        Some("application/json"),
        "{}",
        response.text()
    );
    let body = response.json().expect("error body is JSON");
    let error = &body["error"];
    assert_eq!(error["type"], "invalid_request_error", "{body}");
    assert_eq!(error["code"], code, "{body}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(error.get("param").is_some(), "no param: {body}");
}

fn usage_of(result: &Value) -> (u64, u64, u64) {
    let u = &result["usage"];
    (
        u["prompt_tokens"].as_u64().unwrap_or(0),
        u["completion_tokens"].as_u64().unwrap_or(0),
        u["total_tokens"].as_u64().unwrap_or(0),
    )
}

fn assert_chat_usage(usage: &Value) {
    assert_eq!(usage["prompt_tokens"], CHAT_USAGE.prompt, "{usage}");
    assert_eq!(usage["completion_tokens"], CHAT_USAGE.completion, "{usage}");
    assert_eq!(usage["total_tokens"], CHAT_USAGE.total(), "{usage}");
    assert_eq!(
        usage["prompt_tokens_details"]["cached_tokens"], CHAT_USAGE.cached,
        "{usage}"
    );
    assert_eq!(
        usage["completion_tokens_details"]["reasoning_tokens"], CHAT_USAGE.reasoning,
        "{usage}"
    );
}

/// Every cost of the costed route for one chat completion.
fn assert_chat_costs(line: &Value) {
    assert_chat_costs_of(line, OVERRIDE);
}

/// The costs of a chat answered as `model` (the upstream's name after any override).
fn assert_chat_costs_of(line: &Value, model: &str) {
    let costs = &line["costs"];
    assert_eq!(costs["llm_input_token"], CHAT_USAGE.prompt, "{line}");
    assert_eq!(costs["llm_cached_input_token"], CHAT_USAGE.cached, "{line}");
    assert_eq!(costs["llm_output_token"], CHAT_USAGE.completion, "{line}");
    assert_eq!(costs["llm_reasoning_token"], CHAT_USAGE.reasoning, "{line}");
    assert_eq!(costs["llm_total_token"], CHAT_USAGE.total(), "{line}");
    assert_eq!(
        costs["weighted"],
        CHAT_USAGE.prompt + CHAT_USAGE.completion * 3,
        "{line}"
    );
    assert_eq!(costs["backend_name"], BACKEND, "{line}");
    assert_eq!(costs["route_name"], COSTED_ROUTE, "{line}");
    assert_eq!(costs["model_name_override"], model, "{line}");
    assert_eq!(line["backend"], BACKEND, "{line}");
    assert_eq!(line["route"], COSTED_ROUTE, "{line}");
    assert_eq!(line["response_model"], answered(model), "{line}");
}

/// A chat for `model` carrying the client's own key in every credential header a provider
/// reads, plus `extra` headers.
async fn chat_with_client_keys(
    stack: &Stack,
    model: &str,
    extra: &[(&str, &str)],
) -> Result<http::HttpResponse> {
    let bearer = format!("Bearer {CLIENT_KEY}");
    let mut headers = vec![
        ("content-type", "application/json"),
        ("authorization", bearer.as_str()),
        ("x-api-key", CLIENT_KEY),
        ("api-key", CLIENT_KEY),
    ];
    headers.extend_from_slice(extra);
    http::post(
        &stack.url("/v1/chat/completions"),
        &headers,
        chat_body(model),
    )
    .await
}

fn is_chat_line(line: &Value, model: &str, status: u64) -> bool {
    line["path"] == "/v1/chat/completions" && line["model"] == model && line["status"] == status
}

fn json_of(seen: &Seen) -> Value {
    seen.json().unwrap_or(Value::Null)
}

#[tokio::test]
async fn sdk_chat_completions_embeddings_and_models_reach_the_provider_as_it_expects() -> Result<()>
{
    let (upstream, stack) = start(1, DEFAULT_LIMIT).await?;
    let completions = format!("completions:{INSTRUCT}");
    let embeddings = format!("embeddings:{EMBED}");
    let results = stack
        .sdk(ALIAS, &["chat", &completions, &embeddings, "models"])
        .await?;
    for r in &results {
        assert_eq!(r["ok"], true, "{r}");
    }

    // What the client got: the provider's answer, with its model name and usage.
    let chat = &results[0];
    assert_eq!(chat["content"], CHAT_CONTENT, "{chat}");
    assert_eq!(chat["finish_reason"], "stop", "{chat}");
    assert_eq!(chat["model"], answered(OVERRIDE), "{chat}");
    assert_chat_usage(&chat["usage"]);
    let completion = &results[1];
    assert_eq!(completion["text"], COMPLETION_TEXT, "{completion}");
    assert_eq!(completion["model"], answered(INSTRUCT), "{completion}");
    assert_eq!(
        usage_of(completion),
        (
            COMPLETION_USAGE.prompt,
            COMPLETION_USAGE.completion,
            COMPLETION_USAGE.total()
        )
    );
    let embedding = &results[2];
    let vector: Vec<f64> = EMBEDDING.iter().map(|f| f64::from(*f)).collect();
    assert_eq!(embedding["embedding"], json!(vector), "{embedding}");
    assert_eq!(embedding["model"], answered(EMBED), "{embedding}");
    assert_eq!(embedding["usage"]["prompt_tokens"], EMBEDDING_TOKENS);
    let models = results[3]["models"].as_array().context("models")?;
    let mut ids: Vec<&str> = models.iter().filter_map(|m| m["id"].as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, [FREE, INSTRUCT, ALIAS, EMBED], "{models:?}");
    for model in models {
        assert_eq!(model["object"], "model");
        if model["id"] == ALIAS {
            assert_eq!(model["owned_by"], "acme", "{model}");
            assert_eq!(model["created"], 1_715_558_400, "{model}");
        } else {
            assert_eq!(model["owned_by"], "Envoy AI Gateway", "{model}");
        }
    }

    // What the provider got: its own paths, the overridden model, our key and never the client's.
    let seen = upstream.seen();
    assert_eq!(
        seen.len(),
        3,
        "models are answered by the gateway: {seen:?}"
    );
    let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(
        paths,
        ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"]
    );
    let models: Vec<Option<String>> = seen.iter().map(Seen::model).collect();
    assert_eq!(
        models,
        [
            Some(OVERRIDE.into()),
            Some(INSTRUCT.into()),
            Some(EMBED.into())
        ]
    );
    for s in &seen {
        assert_eq!(s.status, 200, "{}", s.dump());
        assert_provider_saw_only_the_gateway_credential(s);
    }
    let chat_request = json_of(&seen[0]);
    assert_eq!(chat_request["messages"][0]["content"], "Say hello");
    assert!(
        chat_request.get("stream_options").is_none(),
        "{chat_request}"
    );
    // The SDK asks for base64 embeddings; the gateway passes that through untouched.
    assert_eq!(json_of(&seen[2])["encoding_format"], "base64");
    let outputs: Vec<String> = results.iter().map(Value::to_string).collect();
    assert_no_leak(&stack, &outputs);
    Ok(())
}

#[tokio::test]
async fn a_plain_openai_backend_gets_its_key_from_envoy_without_the_upstream_leg() -> Result<()> {
    let (upstream, stack) = start(1, DEFAULT_LIMIT).await?;
    let response = chat_with_client_keys(
        &stack,
        INSTRUCT,
        &[
            ("x-infergate-backend", "default/elsewhere"),
            ("accept-encoding", "gzip"),
        ],
    )
    .await?;
    assert_eq!(response.status, 200, "{}", response.text());
    let seen = upstream.last().context("the provider got nothing")?;
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(seen.model().as_deref(), Some(INSTRUCT));
    assert_eq!(seen.header("x-api-key"), None, "{}", seen.dump());
    assert_eq!(seen.header("api-key"), None, "{}", seen.dump());
    assert_eq!(seen.header("accept-encoding"), None, "{}", seen.dump());
    assert_provider_saw_only_the_gateway_credential(&seen);
    let line = stack
        .access_log_line("for the chat", |l| is_chat_line(l, INSTRUCT, 200))
        .await?;
    assert_chat_costs_of(&line, INSTRUCT);

    // Envoy's own filters did the upstream leg's work: no upstream-leg stream was opened.
    let metrics = stack.replicas[0].metrics().await?;
    let streams = "infergate_extproc_streams_total";
    assert_eq!(
        prom::sum(&metrics, streams, &[("leg", "upstream")]),
        0.0,
        "{metrics}"
    );
    // The key reached Envoy as an SDS secret, which its config dump redacts.
    let dump = http::get(
        &format!(
            "http://{}/config_dump?include_eds",
            stack.envoy.admin_addr()
        ),
        &[],
    )
    .await?
    .text();
    assert!(
        dump.contains("infergate/credential/default/openai"),
        "no SDS secret in the dump"
    );
    assert!(
        !dump.contains(UPSTREAM_KEY),
        "the key shows in Envoy's config dump"
    );
    Ok(())
}

#[tokio::test]
async fn client_credentials_and_routing_headers_are_replaced_before_the_provider() -> Result<()> {
    let (upstream, stack) = start(1, DEFAULT_LIMIT).await?;
    let response = chat_with_client_keys(
        &stack,
        ALIAS,
        &[
            // Spoofed routing and internal headers: the body's model decides, ours are ignored.
            ("x-ai-eg-model", FREE),
            ("x-ai-eg-original-path", "/v1/embeddings"),
            ("x-infergate-backend", "default/elsewhere"),
            ("x-infergate-model-override", "spoofed-model"),
        ],
    )
    .await?;
    assert_eq!(response.status, 200, "{}", response.text());
    let body = response.json()?;
    assert_eq!(body["model"], answered(OVERRIDE), "{body}");
    assert_chat_usage(&body["usage"]);
    for name in response.headers.keys() {
        assert!(
            !name.as_str().starts_with("x-infergate-"),
            "{name} sent to the client"
        );
    }

    let seen = upstream.last().context("the provider got nothing")?;
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(
        seen.model().as_deref(),
        Some(OVERRIDE),
        "routed on the body's model"
    );
    assert_eq!(seen.header("x-api-key"), None, "{}", seen.dump());
    assert_eq!(seen.header("api-key"), None, "{}", seen.dump());
    assert_provider_saw_only_the_gateway_credential(&seen);

    let line = stack
        .access_log_line("for the chat", |l| is_chat_line(l, ALIAS, 200))
        .await?;
    assert_chat_costs(&line);
    let client_saw = format!("{:?}{}", response.headers, response.text());
    assert!(!client_saw.contains(UPSTREAM_KEY), "{client_saw}");
    assert!(!stack.all_logs().contains(UPSTREAM_KEY));
    Ok(())
}

#[tokio::test]
async fn costs_are_charged_in_the_access_log_and_usage_reaches_the_client_only_when_asked()
-> Result<()> {
    let (upstream, stack) = start(1, DEFAULT_LIMIT).await?;

    // Not streamed: usage in the body, costs in the access log.
    let chat = stack.sdk_ok(ALIAS, "chat").await?;
    assert_chat_usage(&chat["usage"]);
    let line = stack
        .access_log_line("for the chat", |l| is_chat_line(l, ALIAS, 200))
        .await?;
    assert_eq!(line["method"], "POST");
    assert_chat_costs(&line);

    // Streamed with include_usage: exactly one usage chunk, at the end, and charged.
    let streamed = stack.sdk_ok(ALIAS, "chat-stream-usage").await?;
    assert_eq!(streamed["content"], CHAT_CONTENT, "{streamed}");
    let usage_chunks = streamed["usage_chunks"]
        .as_array()
        .context("usage_chunks")?;
    assert_eq!(usage_chunks.len(), 1, "{streamed}");
    assert_chat_usage(&usage_chunks[0]);
    assert_eq!(streamed["model"], answered(OVERRIDE));

    // Streamed without include_usage on a costed route: the gateway asks the provider for
    // usage, charges it, and hides the extra chunk from the client.
    let hidden = stack.sdk_ok(ALIAS, "chat-stream").await?;
    assert_eq!(hidden["content"], CHAT_CONTENT, "{hidden}");
    assert_eq!(hidden["finish_reason"], "stop", "{hidden}");
    assert_eq!(
        hidden["usage_chunks"],
        json!([]),
        "usage chunk leaked: {hidden}"
    );
    let sent = json_of(&upstream.last().context("no request")?);
    assert_eq!(sent["stream"], true, "{sent}");
    assert_eq!(sent["stream_options"]["include_usage"], true, "{sent}");
    let lines = stack
        .access_log_matching("for the three chats", |l| is_chat_line(l, ALIAS, 200), 3)
        .await?;
    assert_eq!(lines.len(), 3, "{lines:#?}");
    for line in &lines {
        assert_chat_costs(line);
    }

    // The same on a rule whose plain OpenAI backend Envoy reaches without the upstream leg:
    // the router leg asks for the usage and hides it again.
    let native = stack.sdk_ok(INSTRUCT, "chat-stream").await?;
    assert_eq!(native["content"], CHAT_CONTENT, "{native}");
    assert_eq!(
        native["usage_chunks"],
        json!([]),
        "usage chunk leaked: {native}"
    );
    let sent = json_of(&upstream.last().context("no request")?);
    assert_eq!(sent["model"], INSTRUCT, "{sent}");
    assert_eq!(sent["stream_options"]["include_usage"], true, "{sent}");
    let line = stack
        .access_log_line("for the native stream", |l| is_chat_line(l, INSTRUCT, 200))
        .await?;
    assert_chat_costs_of(&line, INSTRUCT);

    // A route without costs: nothing injected, nothing charged, still no usage chunk.
    let free = stack.sdk_ok(FREE, "chat-stream").await?;
    assert_eq!(free["content"], CHAT_CONTENT, "{free}");
    assert_eq!(free["usage_chunks"], json!([]), "{free}");
    let sent = json_of(&upstream.last().context("no request")?);
    assert_eq!(sent["model"], FREE);
    assert!(
        sent.get("stream_options").is_none(),
        "injected without costs: {sent}"
    );
    let line = stack
        .access_log_line("for the free model", |l| is_chat_line(l, FREE, 200))
        .await?;
    assert_eq!(line["route"], FREE_ROUTE, "{line}");
    assert_eq!(line["backend"], BACKEND, "{line}");
    assert!(line["costs"].get("llm_total_token").is_none(), "{line}");
    for seen in upstream.seen() {
        assert_provider_saw_only_the_gateway_credential(&seen);
    }
    Ok(())
}

#[tokio::test]
async fn streamed_chunks_reach_the_client_before_the_provider_finishes() -> Result<()> {
    let (upstream, stack) = start(1, DEFAULT_LIMIT).await?;
    upstream.hold_streams();
    let body = json!({
        "model": ALIAS,
        "messages": [{"role": "user", "content": "Say hello"}],
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    let request = http::request(
        http::Method::POST,
        &stack.url("/v1/chat/completions"),
        &[("content-type", "application/json")],
        Bytes::from(body.to_string()),
    )?;
    let client = http::http_client();
    let response = tokio::time::timeout(TIMEOUT, client.request(request)).await??;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    for name in response.headers().keys() {
        assert!(!name.as_str().starts_with("x-infergate-"), "{name}");
    }
    let mut body = response.into_body();
    let mut received = String::new();
    // The provider holds the stream after its first content chunk: that chunk must arrive now.
    while !received.contains(STREAM_PIECES[0]) {
        let frame = tokio::time::timeout(TIMEOUT, body.frame())
            .await
            .context("the first chunk was held back by the gateway")?
            .context("stream ended early")??;
        if let Some(data) = frame.data_ref() {
            received.push_str(&String::from_utf8_lossy(data));
        }
    }
    assert!(!received.contains(STREAM_PIECES[1]), "{received}");
    upstream.release_streams();
    while let Some(frame) = tokio::time::timeout(TIMEOUT, body.frame()).await? {
        if let Some(data) = frame?.data_ref() {
            received.push_str(&String::from_utf8_lossy(data));
        }
    }
    assert!(received.trim_end().ends_with("data: [DONE]"), "{received}");
    let events: Vec<Value> = received
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect();
    let content: String = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, CHAT_CONTENT);
    let usage: Vec<&Value> = events
        .iter()
        .map(|e| &e["usage"])
        .filter(|u| !u.is_null())
        .collect();
    assert_eq!(usage.len(), 1, "{received}");
    assert_chat_usage(usage[0]);
    let line = stack
        .access_log_line("for the stream", |l| is_chat_line(l, ALIAS, 200))
        .await?;
    assert_chat_costs(&line);
    Ok(())
}

#[tokio::test]
async fn extproc_metrics_count_every_request_and_its_tokens() -> Result<()> {
    let (_upstream, stack) = start(1, DEFAULT_LIMIT).await?;
    let embeddings = format!("embeddings:{EMBED}");
    let scenarios = [
        "chat",
        "chat",
        "chat",
        "chat-stream-usage",
        "chat-stream-usage",
        &embeddings,
    ];
    for r in stack.sdk(ALIAS, &scenarios).await? {
        assert_eq!(r["ok"], true, "{r}");
    }
    let chats = 5.0;
    let chat = [
        ("gen_ai_operation_name", "chat"),
        ("gen_ai_provider_name", "openai"),
        ("gen_ai_request_model", OVERRIDE),
    ];
    let answered_model = answered(OVERRIDE);
    let chat_answered = [
        chat[0],
        chat[1],
        chat[2],
        ("gen_ai_response_model", answered_model.as_str()),
    ];
    let replica = &stack.replicas[0];
    let text = wait::until("the extproc to count 6 requests", TIMEOUT, || async {
        let text = replica.metrics().await?;
        let done = prom::sum(&text, "gen_ai_server_request_duration_seconds_count", &[]) >= 6.0;
        Ok(done.then_some(text))
    })
    .await?;
    let tokens = |kind: &str, suffix: &str| {
        let mut labels = chat_answered.to_vec();
        labels.push(("gen_ai_token_type", kind));
        prom::sum(
            &text,
            &format!("gen_ai_client_token_usage{suffix}"),
            &labels,
        )
    };
    assert_eq!(tokens("input", "_count"), chats, "{text}");
    assert_eq!(
        tokens("input", "_sum"),
        chats * CHAT_USAGE.prompt as f64,
        "{text}"
    );
    assert_eq!(
        tokens("cached_input", "_sum"),
        chats * CHAT_USAGE.cached as f64
    );
    assert_eq!(tokens("output", "_count"), chats);
    assert_eq!(
        tokens("output", "_sum"),
        chats * CHAT_USAGE.completion as f64
    );
    assert_eq!(
        tokens("reasoning", "_sum"),
        chats * CHAT_USAGE.reasoning as f64
    );
    let duration = "gen_ai_server_request_duration_seconds_count";
    assert_eq!(prom::sum(&text, duration, &chat_answered), chats, "{text}");
    let ttft = "gen_ai_server_time_to_first_token_seconds_count";
    assert_eq!(prom::sum(&text, ttft, &chat_answered), 2.0, "{text}");
    let tpot = "gen_ai_server_time_per_output_token_seconds_count";
    assert_eq!(prom::sum(&text, tpot, &chat_answered), 2.0, "{text}");
    let embed = [
        ("gen_ai_operation_name", "embeddings"),
        ("gen_ai_request_model", EMBED),
        ("gen_ai_token_type", "input"),
    ];
    assert_eq!(
        prom::sum(&text, "gen_ai_client_token_usage_sum", &embed),
        EMBEDDING_TOKENS as f64,
        "{text}"
    );
    assert_eq!(
        prom::sum(&text, ttft, &[("gen_ai_request_model", EMBED)]),
        0.0
    );
    // One upstream-leg stream per attempt (no retries here) to the aliased model, whose
    // override rewrites the body; the embeddings rule's plain OpenAI backend is reached
    // without the leg (Envoy injects its key). Router-leg streams also answered the models
    // lists the stack's start-up polled.
    let streams = "infergate_extproc_streams_total";
    assert_eq!(
        prom::sum(&text, streams, &[("leg", "upstream")]),
        chats,
        "{text}"
    );
    assert!(
        prom::sum(&text, streams, &[("leg", "router")]) >= 7.0,
        "{text}"
    );
    Ok(())
}

#[tokio::test]
async fn two_extproc_replicas_serve_the_same_envoy() -> Result<()> {
    let (upstream, stack) = start(2, DEFAULT_LIMIT).await?;
    let scenarios = ["chat", "chat-stream-usage"].repeat(4);
    let results = stack.sdk(ALIAS, &scenarios).await?;
    for r in &results {
        assert_eq!(r["ok"], true, "{r}");
        match r["scenario"].as_str() {
            Some("chat") => assert_chat_usage(&r["usage"]),
            _ => {
                assert_eq!(r["content"], CHAT_CONTENT, "{r}");
                assert_eq!(r["usage_chunks"].as_array().map(Vec::len), Some(1), "{r}");
                assert_chat_usage(&r["usage_chunks"][0]);
            }
        }
    }
    assert_eq!(upstream.requests(), 8);
    for seen in upstream.seen() {
        assert_eq!(seen.model().as_deref(), Some(OVERRIDE));
        assert_provider_saw_only_the_gateway_credential(&seen);
    }

    // Envoy sent ext_proc streams to both replicas.
    let hosts = stack.extproc_host_requests().await?;
    for replica in &stack.replicas {
        let grpc = replica.grpc().to_string();
        let served = hosts.iter().find(|(h, _)| *h == grpc).map(|(_, n)| *n);
        assert!(
            served.is_some_and(|n| n > 0),
            "{grpc} took no stream: {hosts:?}"
        );
    }
    // Between them the replicas counted every request exactly once, whichever leg each served.
    let input = [
        ("gen_ai_token_type", "input"),
        ("gen_ai_operation_name", "chat"),
    ];
    let counted = wait::until("the replicas to count 8 requests", TIMEOUT, || async {
        let mut per_replica = Vec::new();
        for replica in &stack.replicas {
            let text = replica.metrics().await?;
            per_replica.push(prom::sum(&text, "gen_ai_client_token_usage_count", &input));
        }
        Ok((per_replica.iter().sum::<f64>() >= 8.0).then_some(per_replica))
    })
    .await?;
    assert_eq!(counted.iter().sum::<f64>(), 8.0, "{counted:?}");
    let lines = stack
        .access_log_matching("for the eight chats", |l| is_chat_line(l, ALIAS, 200), 8)
        .await?;
    assert_eq!(lines.len(), 8);
    for line in &lines {
        assert_chat_costs(line);
    }
    Ok(())
}

/// A chunked request body (no `content-length`) of `size` bytes.
async fn post_chunked(url: &str, size: usize) -> Result<http::HttpResponse> {
    let chunk = Bytes::from(vec![b' '; 64 * 1024]);
    let chunks = size.div_ceil(chunk.len());
    let frames = std::iter::once(Bytes::from_static(b"{\"model\": \"smart\", \"x\": \""))
        .chain(std::iter::repeat_n(chunk, chunks))
        .map(Frame::data);
    post_frames(url, frames, false).await
}

/// POSTs JSON made of `frames` (no `content-length`), over HTTP/2 without TLS when `h2`.
async fn post_frames(
    url: &str,
    frames: impl Iterator<Item = Frame<Bytes>> + Send + 'static,
    h2: bool,
) -> Result<http::HttpResponse> {
    let body = StreamBody::new(futures::stream::iter(
        frames.map(Ok::<_, std::convert::Infallible>),
    ));
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(h2)
        .build_http();
    let request = ::http::Request::post(url)
        .header("content-type", "application/json")
        .body(body)?;
    let response = tokio::time::timeout(TIMEOUT, client.request(request)).await??;
    let (parts, body) = response.into_parts();
    Ok(http::HttpResponse {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await?.to_bytes(),
    })
}

/// An HTTP/2 client may end its request with trailers; Envoy then hands each leg the whole
/// buffered body without `end_of_stream`. The request is still routed by its model, and the
/// upstream leg still applies the model override.
#[tokio::test]
async fn a_request_ending_in_trailers_is_routed_by_its_model() -> Result<()> {
    let (upstream, stack) = start(1, DEFAULT_LIMIT).await?;
    let mut trailers = ::http::HeaderMap::new();
    trailers.insert("x-client-trailer", ::http::HeaderValue::from_static("done"));
    let frames = [
        Frame::data(Bytes::from(chat_body(ALIAS))),
        Frame::trailers(trailers),
    ];
    let response =
        post_frames(&stack.url("/v1/chat/completions"), frames.into_iter(), true).await?;
    assert_eq!(response.status, 200, "{}", response.text());
    let seen = upstream.last().context("the provider got nothing")?;
    assert_eq!(seen.model().as_deref(), Some(OVERRIDE), "{}", seen.dump());
    assert_provider_saw_only_the_gateway_credential(&seen);
    Ok(())
}

#[tokio::test]
async fn bad_requests_get_openai_errors_with_the_right_status_and_never_reach_the_provider()
-> Result<()> {
    const LIMIT: u64 = 2 * 1024 * 1024;
    let (upstream, stack) = start(1, LIMIT).await?;
    let url = stack.url("/v1/chat/completions");
    let json = [("content-type", "application/json")];
    let mut client_saw = Vec::new();

    let invalid = http::post(&url, &json, "{\"model\": \"smart\", \"messages\": [").await?;
    assert_openai_error(&invalid, 400, "invalid_json");
    let missing = http::post(
        &url,
        &json,
        r#"{"messages": [{"role": "user", "content": "hi"}]}"#,
    )
    .await?;
    assert_openai_error(&missing, 400, "missing_model");
    let unknown = http::post(&url, &json, chat_body("no-such-model")).await?;
    assert_openai_error(&unknown, 404, "model_not_found");
    let text = http::post(&url, &[("content-type", "text/plain")], chat_body(ALIAS)).await?;
    assert_openai_error(&text, 415, "unsupported_content_type");
    let get = http::get(&url, &[]).await?;
    assert_openai_error(&get, 405, "method_not_allowed");
    let big = json!({"model": ALIAS, "messages": [{"role": "user", "content": "x".repeat(LIMIT as usize)}]});
    let too_large = http::post(&url, &json, big.to_string()).await?;
    assert_openai_error(&too_large, 413, "request_too_large");
    // Without a content-length, Envoy's own buffer limit answers (set to the same limit), in
    // the same shape.
    let chunked = post_chunked(&url, LIMIT as usize + 1).await?;
    assert_openai_error(&chunked, 413, "request_too_large");
    // The Anthropic API gets Anthropic's error shape for the same gateway-made errors.
    let anthropic = http::post(
        &stack.url("/anthropic/v1/messages"),
        &json,
        r#"{"model":"no-such-model","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await?;
    assert_eq!(anthropic.status.as_u16(), 404, "{}", anthropic.text());
    let body = anthropic.json()?;
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], "not_found_error", "{body}");
    client_saw.push(chunked.text());
    for r in [&invalid, &missing, &unknown, &text, &get, &too_large] {
        client_saw.push(format!("{:?}{}", r.headers, r.text()));
    }
    assert_eq!(upstream.requests(), 0, "{:?}", upstream.seen());

    // The SDK sees the unknown model as its NotFoundError with OpenAI's error fields.
    let sdk = stack.sdk("no-such-model", &["chat", "chat-stream"]).await?;
    for r in &sdk {
        assert_eq!(r["ok"], false, "{r}");
        assert_eq!(r["error"]["type"], "NotFoundError", "{r}");
        assert_eq!(r["error"]["status"], 404, "{r}");
        assert_eq!(r["error"]["body"]["code"], "model_not_found", "{r}");
        client_saw.push(r.to_string());
    }
    assert_eq!(upstream.requests(), 0);

    // A 1 MB prompt under the limit goes through; the extproc still serves after all of this.
    let prompt =
        json!({"model": ALIAS, "messages": [{"role": "user", "content": "y".repeat(1_000_000)}]});
    let ok = http::post(&url, &json, prompt.to_string()).await?;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let sent = upstream.last().context("the 1 MB prompt did not arrive")?;
    assert_eq!(
        json_of(&sent)["messages"][0]["content"]
            .as_str()
            .map(str::len),
        Some(1_000_000)
    );
    assert_eq!(sent.model().as_deref(), Some(OVERRIDE));
    let chat = stack.sdk_ok(ALIAS, "chat").await?;
    assert_chat_usage(&chat["usage"]);
    let health = http::get(
        &format!("http://{}/healthz", stack.replicas[0].admin()),
        &[],
    )
    .await?;
    assert_eq!(health.status, 200);
    assert_no_leak(&stack, &client_saw);
    Ok(())
}

#[tokio::test]
async fn provider_failures_reach_the_client_as_they_happened_and_charge_nothing() -> Result<()> {
    let (mut upstream, stack) = start(1, DEFAULT_LIMIT).await?;
    let mut client_saw = Vec::new();
    let metrics_before = stack.replicas[0].metrics().await?;
    let input = [("gen_ai_token_type", "input")];
    assert_eq!(
        prom::sum(&metrics_before, "gen_ai_client_token_usage_count", &input),
        0.0
    );

    // 500 with an HTML page: passed through as the provider sent it.
    upstream.set_failure(Failure::Html500);
    let failed = stack.sdk(ALIAS, &["chat"]).await?.remove(0);
    assert_eq!(failed["ok"], false, "{failed}");
    assert_eq!(failed["error"]["type"], "InternalServerError", "{failed}");
    assert_eq!(failed["error"]["status"], 500, "{failed}");
    assert_eq!(failed["error"]["content_type"], "text/html", "{failed}");
    let html = failed["error"]["text"].as_str().unwrap_or_default();
    assert!(html.contains("<h1>Internal Server Error</h1>"), "{failed}");
    client_saw.push(failed.to_string());

    // Between failures the gateway serves normally (and the outlier detector sees a success).
    upstream.set_failure(Failure::None);
    assert_chat_usage(&stack.sdk_ok(ALIAS, "chat").await?["usage"]);

    // A stream cut mid-way: the client gets what was sent, then an error; nothing is charged.
    upstream.set_failure(Failure::Cut);
    let cut = stack.sdk(ALIAS, &["chat-stream-usage"]).await?.remove(0);
    assert_eq!(
        cut["ok"], false,
        "a cut stream must not look complete: {cut}"
    );
    let partial = &cut["error"]["partial"];
    let expected: String = STREAM_PIECES[..CUT_AFTER_CHUNKS].concat();
    assert_eq!(partial["content"], expected, "{cut}");
    assert_eq!(partial["usage_chunks"], json!([]), "{cut}");
    assert_eq!(partial["finish_reason"], Value::Null, "{cut}");
    client_saw.push(cut.to_string());
    upstream.set_failure(Failure::None);
    assert_chat_usage(&stack.sdk_ok(ALIAS, "chat").await?["usage"]);

    // A JSON body cut mid-way: the client sees a broken response, nothing is charged.
    upstream.set_failure(Failure::Cut);
    let cut_json = stack.sdk(ALIAS, &["chat"]).await?.remove(0);
    assert_eq!(cut_json["ok"], false, "{cut_json}");
    client_saw.push(cut_json.to_string());
    upstream.set_failure(Failure::None);
    assert_chat_usage(&stack.sdk_ok(ALIAS, "chat").await?["usage"]);

    // Exactly the three complete chats were charged; the 500 and both cuts were not.
    let chats = stack
        .access_log_matching(
            "for the six chats",
            |l| l["path"] == "/v1/chat/completions",
            6,
        )
        .await?;
    assert_eq!(chats.len(), 6, "{chats:#?}");
    // The upstream's 500 settles at 0 (a rate limit reservation is refunded); the cut ones
    // write nothing.
    let charged: Vec<&Value> = chats
        .iter()
        .filter(|l| {
            l["costs"]["llm_total_token"]
                .as_f64()
                .is_some_and(|t| t > 0.0)
        })
        .collect();
    let failed: Vec<&Value> = chats
        .iter()
        .filter(|l| l["status"] == "500" || l["status"] == 500)
        .collect();
    assert_eq!(failed.len(), 1, "{chats:#?}");
    assert_eq!(
        failed[0]["costs"]["llm_total_token"].as_f64(),
        Some(0.0),
        "the 500 is not charged: {chats:#?}"
    );
    assert_eq!(
        charged.len(),
        3,
        "only complete chats are charged: {chats:#?}"
    );
    for line in charged {
        assert_chat_costs(line);
    }
    let metrics = stack.replicas[0].metrics().await?;
    assert_eq!(
        prom::sum(&metrics, "gen_ai_client_token_usage_count", &input),
        3.0,
        "tokens counted for a failed response:\n{metrics}"
    );

    // The provider is gone: the client gets the gateway's 503 in OpenAI's error shape.
    upstream.stop().await;
    let down = stack.sdk(ALIAS, &["chat"]).await?.remove(0);
    assert_eq!(down["ok"], false, "{down}");
    let status = down["error"]["status"].as_u64();
    assert!(matches!(status, Some(502 | 503)), "{down}");
    client_saw.push(down.to_string());
    let raw = http::post(
        &stack.url("/v1/chat/completions"),
        &[("content-type", "application/json")],
        chat_body(ALIAS),
    )
    .await?;
    assert_eq!(raw.status.as_u16(), 503, "{}", raw.text());
    assert_eq!(
        raw.header("content-type"),
        Some("application/json"),
        "{}",
        raw.text()
    );
    let body = raw.json()?;
    assert_eq!(body["error"]["code"], "upstream_unavailable", "{body}");
    assert_eq!(body["error"]["type"], "server_error", "{body}");
    client_saw.push(raw.text());

    // The extproc is still there and answering.
    let models = stack.sdk_ok(ALIAS, "models").await?;
    assert_eq!(
        models["models"].as_array().map(Vec::len),
        Some(4),
        "{models}"
    );
    let health = http::get(
        &format!("http://{}/healthz", stack.replicas[0].admin()),
        &[],
    )
    .await?;
    assert_eq!(health.status, 200);
    assert_no_leak(&stack, &client_saw);
    Ok(())
}
