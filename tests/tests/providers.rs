//! Providers behind one OpenAI API, end to end: the official `openai` Python SDK → Envoy with
//! the extproc's two legs → a fake Anthropic Messages API. The upstream leg translates the
//! request and, through Envoy's per-request mode override, the response and the stream.

use anyhow::Result;
use infergate_e2e::fake_anthropic::{FakeAnthropic, REPLY_PIECES, USAGE};
use infergate_e2e::gateway::Gateway;
use infergate_e2e::{manifests, ports, sdk};
use serde_json::{Value, json};

const KEY: &str = "sk-ant-e2e-provider-key";
const MODEL: &str = "claude-e2e";

fn manifests(port: u16, upstream: std::net::SocketAddr) -> String {
    let route = format!(
        r#"apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIGatewayRoute
metadata: {{name: claude, namespace: default}}
spec:
  parentRefs: [{{name: ai}}]
  rules:
    - matches: [{{headers: [{{type: Exact, name: x-ai-eg-model, value: {MODEL}}}]}}]
      backendRefs: [{{name: anthropic}}]
"#
    );
    let backend =
        manifests::keyed_backend("anthropic", "Anthropic", upstream, "AnthropicAPIKey", KEY);
    [manifests::gateway(port), route, backend].join("---\n")
}

fn usage() -> Value {
    json!({"prompt_tokens": USAGE.0, "completion_tokens": USAGE.1, "total_tokens": USAGE.0 + USAGE.1})
}

/// The usage numbers of an SDK usage object (it may carry extra detail fields).
fn counts(usage: &Value) -> Value {
    json!({
        "prompt_tokens": usage["prompt_tokens"],
        "completion_tokens": usage["completion_tokens"],
        "total_tokens": usage["total_tokens"],
    })
}

#[tokio::test]
async fn the_openai_sdk_chats_with_an_anthropic_backend_sync_and_streaming() -> Result<()> {
    let upstream = FakeAnthropic::start(KEY).await?;
    let port = ports::free_port()?;
    let gateway = Gateway::start(&manifests(port, upstream.addr()), None).await?;
    let base = format!("http://127.0.0.1:{port}/v1");
    let results = sdk::openai(
        &base,
        MODEL,
        &[],
        &["chat", "chat-stream", "chat-stream-usage"],
    )
    .await?;
    let log = || gateway.envoy.log();
    let [chat, stream, stream_usage] = &results[..] else {
        panic!("three results: {results:?}");
    };
    let text: String = REPLY_PIECES.concat();

    assert_eq!(chat["ok"], true, "{chat}\n{}", log());
    assert_eq!(chat["content"], text, "{chat}");
    assert_eq!(chat["finish_reason"], "stop", "{chat}");
    assert_eq!(counts(&chat["usage"]), usage(), "{chat}");

    // Streams arrive as OpenAI chunks; the usage chunk the client did not ask for is hidden.
    assert_eq!(stream["ok"], true, "{stream}\n{}", log());
    assert_eq!(stream["content"], text, "{stream}");
    assert_eq!(stream["finish_reason"], "stop", "{stream}");
    assert_eq!(stream["usage_chunks"], json!([]), "{stream}");
    assert_eq!(stream_usage["ok"], true, "{stream_usage}");
    assert_eq!(stream_usage["content"], text, "{stream_usage}");
    let chunks = stream_usage["usage_chunks"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(chunks.len(), 1, "{stream_usage}");
    assert_eq!(counts(&chunks[0]), usage(), "{stream_usage}");

    // The provider got the Anthropic API with our key and none of the client's.
    let seen = upstream.seen();
    assert_eq!(seen.len(), 3, "{seen:?}");
    for request in &seen {
        assert_eq!(request.path, "/v1/messages");
        assert_eq!(request.header("x-api-key"), Some(KEY));
        assert!(request.header("anthropic-version").is_some());
        assert_eq!(
            request.header("authorization"),
            None,
            "client key reached the provider"
        );
        let body = request.json().unwrap_or_default();
        assert_eq!(body["model"], MODEL, "{body}");
        assert_eq!(body["messages"][0]["role"], "user", "{body}");
    }
    Ok(())
}

#[tokio::test]
async fn the_anthropic_sdk_reaches_an_anthropic_backend_through_the_gateway() -> Result<()> {
    let upstream = FakeAnthropic::start(KEY).await?;
    let port = ports::free_port()?;
    let gateway = Gateway::start(&manifests(port, upstream.addr()), None).await?;
    let base = format!("http://127.0.0.1:{port}/anthropic");
    let results = sdk::anthropic(&base, MODEL, &["messages", "messages-stream"]).await?;
    let text: String = REPLY_PIECES.concat();
    let want_usage = json!({"input_tokens": USAGE.0, "output_tokens": USAGE.1});
    for result in &results {
        assert_eq!(result["ok"], true, "{result}\n{}", gateway.envoy.log());
        assert_eq!(result["text"], text, "{result}");
        assert_eq!(result["stop_reason"], "end_turn", "{result}");
        assert_eq!(result["usage"], want_usage, "{result}");
    }
    let seen = upstream.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for request in &seen {
        assert_eq!(request.path, "/v1/messages");
        assert_eq!(
            request.header("x-api-key"),
            Some(KEY),
            "the gateway's key, not the client's"
        );
    }
    // The system prompt passed through untouched.
    assert_eq!(seen[0].json().unwrap_or_default()["system"], "Be brief.");
    Ok(())
}
