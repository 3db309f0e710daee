//! Every provider behind the OpenAI API, end to end: the official `openai` Python SDK → real
//! Envoy with both extproc legs → a provider fake answering with the provider replies of the
//! extproc's golden cases (`extproc/testdata/in/<provider>_chat*.json`). What the SDK parses
//! must match what the golden files say the client gets (content, finish reason, tool calls,
//! usage), and every request the provider got must carry the provider's credential (a SigV4
//! signature that still verifies after Envoy, an `api-key`, …) and no client credential.

use anyhow::Result;
use infergate_e2e::gateway::Gateway;
use infergate_e2e::replay_provider::{Matcher, ReplayProvider, Reply, Seen};
use infergate_e2e::{manifests, ports, sdk, workspace};
use serde_json::{Value, json};

/// The key the SDK sends; the provider must never see it.
const CLIENT_KEY: &str = "client-key-must-not-leak";
const AWS_KEY_ID: &str = "AKIDINFERGATEE2E";
const AWS_SECRET: &str = "e2e/secret/key/for/sigv4/checks/only";

/// One provider of the matrix.
struct Provider {
    /// Golden case prefix: `<prefix>_chat`, `_chat_tools`, `_chat_stream`, `_chat_stream_tools`.
    prefix: &'static str,
    schema: &'static str,
    policy: Option<&'static str>,
    secret: Vec<(&'static str, String)>,
    /// Checks the credential on a request the provider got.
    credential: fn(&Seen) -> Result<(), String>,
}

/// The SDK scenario of each golden case suffix.
const CASES: [(&str, &str); 4] = [
    ("chat", "chat"),
    ("chat_tools", "chat-tools"),
    ("chat_stream", "chat-stream"),
    ("chat_stream_tools", "chat-stream-tools"),
];

fn case_exists(case: &str) -> bool {
    workspace::root()
        .join("extproc/testdata/in")
        .join(format!("{case}.json"))
        .exists()
}

/// Whether a provider request asks for a stream (in the path for the providers that say it
/// there, else `"stream": true`).
fn streams(seen: &Seen) -> bool {
    const STREAM_PATHS: [&str; 4] = [
        "converse-stream",
        "streamGenerateContent",
        "invoke-with-response-stream",
        "streamRawPredict",
    ];
    STREAM_PATHS.iter().any(|p| seen.path.contains(p))
        || seen.json().is_some_and(|b| b["stream"] == true)
}

fn offers_tools(seen: &Seen) -> bool {
    seen.json()
        .is_some_and(|b| b.get("tools").is_some() || b.get("toolConfig").is_some())
}

/// What a client sees of a chat answer: the same summary from the SDK's result and from a
/// golden file's client response.
fn summary(content: &str, finish: &Value, tool_calls: &[Value], usage: Option<Value>) -> Value {
    json!({
        "content": content,
        "finish_reason": finish,
        "tool_calls": tool_calls,
        "usage": usage,
    })
}

fn usage_numbers(usage: &Value) -> Option<Value> {
    usage.is_object().then(|| {
        json!([
            usage["prompt_tokens"],
            usage["completion_tokens"],
            usage["total_tokens"]
        ])
    })
}

/// Tool call arguments compare as JSON, so spacing differences do not matter.
fn tool_call(name: &Value, arguments: &str) -> Value {
    json!({"name": name, "arguments": serde_json::from_str::<Value>(arguments).unwrap_or(json!(arguments))})
}

fn golden_summary(case: &str) -> Value {
    let path = workspace::root()
        .join("extproc/testdata/out")
        .join(format!("{case}.json"));
    let text = std::fs::read_to_string(&path).expect("golden output");
    let record: Value = serde_json::from_str(&text).expect("golden json");
    let body = &record["client_response"]["body"];
    if let Some(chunks) = body.as_array() {
        let text: String = chunks.iter().filter_map(Value::as_str).collect();
        let (mut content, mut finish, mut usage) = (String::new(), Value::Null, Vec::new());
        let mut calls: Vec<(Value, String)> = Vec::new();
        for line in text.lines() {
            let Some(data) = line.strip_prefix("data:").map(str::trim) else {
                continue;
            };
            let Ok(chunk) = serde_json::from_str::<Value>(data) else {
                continue;
            };
            if let Some(u) = usage_numbers(&chunk["usage"]) {
                usage.push(u);
            }
            for choice in chunk["choices"].as_array().into_iter().flatten() {
                content.push_str(choice["delta"]["content"].as_str().unwrap_or_default());
                if !choice["finish_reason"].is_null() {
                    finish = choice["finish_reason"].clone();
                }
                for call in choice["delta"]["tool_calls"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    let i = call["index"].as_u64().unwrap_or(0) as usize;
                    while calls.len() <= i {
                        calls.push((json!(""), String::new()));
                    }
                    if let Some(name) = call["function"]["name"].as_str() {
                        calls[i].0 = json!(format!("{}{name}", calls[i].0.as_str().unwrap_or("")));
                    }
                    calls[i]
                        .1
                        .push_str(call["function"]["arguments"].as_str().unwrap_or_default());
                }
            }
        }
        let calls: Vec<Value> = calls.iter().map(|(n, a)| tool_call(n, a)).collect();
        return summary(&content, &finish, &calls, Some(json!(usage)));
    }
    let message = &body["choices"][0]["message"];
    let calls: Vec<Value> = message["tool_calls"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            tool_call(
                &c["function"]["name"],
                c["function"]["arguments"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    summary(
        message["content"].as_str().unwrap_or_default(),
        &body["choices"][0]["finish_reason"],
        &calls,
        usage_numbers(&body["usage"]),
    )
}

fn sdk_summary(result: &Value) -> Value {
    let calls: Vec<Value> = result["tool_calls"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| tool_call(&c["name"], c["arguments"].as_str().unwrap_or_default()))
        .collect();
    let usage = match result.get("usage_chunks") {
        Some(chunks) => Some(json!(
            chunks
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(usage_numbers)
                .collect::<Vec<_>>()
        )),
        None => usage_numbers(&result["usage"]),
    };
    summary(
        result["content"].as_str().unwrap_or_default(),
        &result["finish_reason"],
        &calls,
        usage,
    )
}

/// The gateway in front of `upstream` as `provider`, serving `model` on one route.
async fn serve(
    provider: &Provider,
    upstream: &ReplayProvider,
    model: &str,
) -> Result<(Gateway, u16)> {
    let port = ports::free_port()?;
    let route = format!(
        r#"apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIGatewayRoute
metadata: {{name: matrix, namespace: default}}
spec:
  parentRefs: [{{name: ai}}]
  rules:
    - matches: [{{headers: [{{type: Exact, name: x-ai-eg-model, value: {model}}}]}}]
      backendRefs: [{{name: provider}}]
"#
    );
    let secret: Vec<(&str, &str)> = provider
        .secret
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .collect();
    let backend = manifests::provider_backend(
        "provider",
        provider.schema,
        upstream.addr(),
        provider.policy,
        &secret,
    );
    let yaml = [manifests::gateway(port), route, backend].join("---\n");
    Ok((Gateway::start(&yaml, None).await?, port))
}

/// Every request the provider got carries its credential and never the client's key.
fn check_requests(provider: &Provider, seen: &[Seen]) {
    for request in seen {
        for (name, value) in &request.headers {
            assert!(
                !value.to_str().unwrap_or_default().contains(CLIENT_KEY),
                "{}: the client's key reached the provider in {name}",
                provider.prefix
            );
        }
        if let Err(problem) = (provider.credential)(request) {
            panic!("{}: {problem}: {request:?}", provider.prefix);
        }
    }
}

async fn check(provider: Provider) -> Result<()> {
    let cases: Vec<(String, &str)> = CASES
        .iter()
        .map(|(suffix, scenario)| (format!("{}_{suffix}", provider.prefix), *scenario))
        .filter(|(case, _)| case_exists(case))
        .collect();
    assert!(!cases.is_empty(), "{}: no golden cases", provider.prefix);
    let mut rules: Vec<(Matcher, Reply)> = Vec::new();
    for (case, _) in &cases {
        let stream = case.contains("_stream");
        let tools = case.ends_with("_tools");
        let matcher: Matcher =
            Box::new(move |seen: &Seen| streams(seen) == stream && offers_tools(seen) == tools);
        rules.push((matcher, Reply::from_case(case)?));
    }
    let upstream = ReplayProvider::start(rules).await?;
    let model = format!("{}-model", provider.prefix);
    let (gateway, port) = serve(&provider, &upstream, &model).await?;
    let base = format!("http://127.0.0.1:{port}/v1");
    let scenarios: Vec<&str> = cases.iter().map(|(_, s)| *s).collect();
    let results = sdk::openai(&base, &model, &[], &scenarios).await?;
    for ((case, _), result) in cases.iter().zip(&results) {
        assert_eq!(
            result["ok"],
            true,
            "{case}: {result}\nprovider got: {:?}\n{}",
            upstream.seen(),
            gateway.envoy.log()
        );
        assert_eq!(
            sdk_summary(result),
            golden_summary(case),
            "{case}: the SDK's view differs from the golden client response"
        );
    }
    let seen = upstream.seen();
    assert_eq!(seen.len(), cases.len(), "one provider request per scenario");
    check_requests(&provider, &seen);
    Ok(())
}

/// The SigV4 signature the provider got still verifies: recomputed over what arrived (host,
/// path, the signed headers, body) at the request's own `x-amz-date`.
fn sigv4(seen: &Seen) -> Result<(), String> {
    let authorization = seen.header("authorization").ok_or("no authorization")?;
    let signed_names = authorization
        .split("SignedHeaders=")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .ok_or("no SignedHeaders")?;
    if !authorization.starts_with(&format!("AWS4-HMAC-SHA256 Credential={AWS_KEY_ID}/")) {
        return Err(format!("not signed with the policy's key: {authorization}"));
    }
    let date = seen.header("x-amz-date").ok_or("no x-amz-date")?;
    let time = jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", date)
        .map_err(|e| e.to_string())?
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map_err(|e| e.to_string())?;
    let host = seen.header("host").ok_or("no host")?;
    const ADDED_BY_SIGNER: [&str; 4] = [
        "host",
        "x-amz-date",
        "x-amz-content-sha256",
        "x-amz-security-token",
    ];
    let headers: Vec<(&str, &str)> = signed_names
        .split(';')
        .filter(|n| !ADDED_BY_SIGNER.contains(n))
        .map(|n| (n, seen.header(n).unwrap_or_default()))
        .collect();
    let credential = extproc::config::AwsCredential {
        region: "us-east-1".into(),
        access_key_id: AWS_KEY_ID.into(),
        secret_access_key: AWS_SECRET.into(),
        session_token: None,
    };
    let service = if seen.path.contains("/invoke") || seen.path.contains("/converse") {
        "bedrock"
    } else {
        return Err(format!("unexpected AWS path {}", seen.path));
    };
    let expected = extproc::auth::aws::sign_request(
        &credential,
        service,
        host,
        &seen.path,
        &headers,
        &seen.body,
        std::time::SystemTime::from(time.timestamp()),
    )?;
    let wanted = expected
        .iter()
        .find(|(n, _)| n == "authorization")
        .map(|(_, v)| v.as_str());
    if wanted != Some(authorization) {
        return Err(format!(
            "the signature does not verify after Envoy: got {authorization}, recomputed {wanted:?}"
        ));
    }
    Ok(())
}

fn aws_secret() -> Vec<(&'static str, String)> {
    vec![(
        "credentials",
        format!(
            "[default]\naws_access_key_id = {AWS_KEY_ID}\naws_secret_access_key = {AWS_SECRET}\n"
        ),
    )]
}

const AWS_POLICY: &str = "  type: AWSCredentials
  awsCredentials:
    region: us-east-1
    credentialsFile: {secretRef: {name: provider-secret}}";

#[tokio::test]
async fn bedrock_converse_through_the_openai_sdk() -> Result<()> {
    check(Provider {
        prefix: "bedrock",
        schema: "{name: AWSBedrock}",
        policy: Some(AWS_POLICY),
        secret: aws_secret(),
        credential: sigv4,
    })
    .await
}

#[tokio::test]
async fn anthropic_messages_through_the_openai_sdk() -> Result<()> {
    check(Provider {
        prefix: "anthropic",
        schema: "{name: Anthropic, version: '2023-06-01'}",
        policy: Some(
            "  type: AnthropicAPIKey\n  anthropicAPIKey: {secretRef: {name: provider-secret}}",
        ),
        secret: vec![("apiKey", "sk-ant-matrix".into())],
        credential: anthropic_key,
    })
    .await
}

#[tokio::test]
async fn azure_openai_through_the_openai_sdk() -> Result<()> {
    check(Provider {
        prefix: "azure",
        schema: "{name: AzureOpenAI, version: 2025-01-01-preview}",
        policy: Some("  type: AzureAPIKey\n  azureAPIKey: {secretRef: {name: provider-secret}}"),
        secret: vec![("apiKey", "azure-matrix-key".into())],
        credential: |seen| {
            let path_ok = seen.path.starts_with("/openai/deployments/")
                && seen
                    .path
                    .contains("/chat/completions?api-version=2025-01-01-preview");
            match seen.header("api-key") {
                Some("azure-matrix-key") if path_ok => Ok(()),
                other => Err(format!(
                    "want api-key and the deployment path, got {other:?} {}",
                    seen.path
                )),
            }
        },
    })
    .await
}

/// Envoy AI Gateway's provider fallback: Bedrock at priority 0 answers 503, a
/// BackendTrafficPolicy retries 5xx, and the request fails over to an OpenAI backend at
/// priority 1, translated afresh for it (an OpenAI body and key there, a signed Converse body
/// at Bedrock).
#[tokio::test]
async fn a_failing_bedrock_fails_over_to_openai_retranslated() -> Result<()> {
    let unavailable = Reply::error(
        503,
        &[(
            "x-amzn-errortype",
            "ServiceUnavailableException:http://internal.amazon.com/coral/com.amazon.bedrock/",
        )],
        json!({"message": "Bedrock is unavailable"}),
    );
    let bedrock = ReplayProvider::start(vec![(Box::new(|_: &Seen| true), unavailable)]).await?;
    let openai =
        ReplayProvider::start(vec![(Box::new(|_: &Seen| true), Reply::from_case("chat")?)]).await?;
    let port = ports::free_port()?;
    let route = r#"apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIGatewayRoute
metadata: {name: fallback, namespace: default}
spec:
  parentRefs: [{name: ai}]
  rules:
    - matches: [{headers: [{type: Exact, name: x-ai-eg-model, value: chat}]}]
      backendRefs:
        - {name: bedrock, modelNameOverride: amazon.nova-pro-v1:0}
        - {name: openai, modelNameOverride: gpt-4o-mini, priority: 1}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: fallback-retry, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: fallback}]
  retry:
    numRetries: 2
    perRetry: {backOff: {baseInterval: 10ms, maxInterval: 100ms}}
    retryOn: {httpStatusCodes: [500, 503], triggers: [connect-failure]}
"#;
    let secret = aws_secret();
    let secret: Vec<(&str, &str)> = secret.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let yaml = [
        manifests::gateway(port),
        route.to_string(),
        manifests::provider_backend(
            "bedrock",
            "{name: AWSBedrock}",
            bedrock.addr(),
            Some(&AWS_POLICY.replace("provider-secret", "bedrock-secret")),
            &secret,
        ),
        manifests::keyed_backend("openai", "OpenAI", openai.addr(), "APIKey", "sk-fallback"),
    ]
    .join("---\n");
    let gateway = Gateway::start(&yaml, None).await?;
    let base = format!("http://127.0.0.1:{port}/v1");
    let results = sdk::openai(&base, "chat", &[], &["chat"]).await?;
    let result = &results[0];
    assert_eq!(
        result["ok"],
        true,
        "{result}\nbedrock got {:?}\nopenai got {:?}\n{}",
        bedrock.seen(),
        openai.seen(),
        gateway.envoy.log()
    );
    assert_eq!(
        sdk_summary(result),
        golden_summary("chat"),
        "OpenAI's answer"
    );

    let tried = bedrock.seen();
    assert_eq!(tried.len(), 1, "Bedrock tried once: {tried:?}");
    sigv4(&tried[0]).map_err(anyhow::Error::msg)?;
    assert_eq!(tried[0].path, "/model/amazon.nova-pro-v1%3A0/converse");
    let converse = tried[0].json().expect("json");
    assert!(
        converse.get("messages").is_some() && converse.get("model").is_none(),
        "{converse}"
    );

    let served = openai.seen();
    assert_eq!(served.len(), 1, "OpenAI served the retry: {served:?}");
    assert_eq!(
        served[0].header("authorization"),
        Some("Bearer sk-fallback")
    );
    assert!(
        served[0].header("x-amz-date").is_none(),
        "no SigV4 left from the first attempt"
    );
    let body = served[0].json().expect("json");
    assert_eq!(body["model"], "gpt-4o-mini", "{body}");
    assert_eq!(body["messages"][0]["content"], "Say hello", "{body}");
    Ok(())
}

/// What an Anthropic client sees of a message: text, stop reason, input and output tokens.
fn anthropic_summary(text: &str, stop: &Value, input: &Value, output: &Value) -> Value {
    json!({"text": text, "stop_reason": stop, "usage": [input, output]})
}

fn golden_anthropic_summary(case: &str) -> Value {
    let path = workspace::root()
        .join("extproc/testdata/out")
        .join(format!("{case}.json"));
    let text = std::fs::read_to_string(&path).expect("golden output");
    let record: Value = serde_json::from_str(&text).expect("golden json");
    let body = &record["client_response"]["body"];
    if let Some(chunks) = body.as_array() {
        let sse: String = chunks.iter().filter_map(Value::as_str).collect();
        let (mut text, mut stop, mut input, mut output) =
            (String::new(), Value::Null, Value::Null, Value::Null);
        for line in sse.lines() {
            let Some(event) = line
                .strip_prefix("data:")
                .and_then(|d| serde_json::from_str::<Value>(d.trim()).ok())
            else {
                continue;
            };
            match event["type"].as_str() {
                Some("message_start") => {
                    input = event["message"]["usage"]["input_tokens"].clone();
                    output = event["message"]["usage"]["output_tokens"].clone();
                }
                Some("content_block_delta") => {
                    text.push_str(event["delta"]["text"].as_str().unwrap_or_default())
                }
                Some("message_delta") => {
                    stop = event["delta"]["stop_reason"].clone();
                    if !event["usage"]["output_tokens"].is_null() {
                        output = event["usage"]["output_tokens"].clone();
                    }
                    if !event["usage"]["input_tokens"].is_null() {
                        input = event["usage"]["input_tokens"].clone();
                    }
                }
                _ => {}
            }
        }
        return anthropic_summary(&text, &stop, &input, &output);
    }
    let text: String = body["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["type"] == "text")
        .filter_map(|b| b["text"].as_str())
        .collect();
    anthropic_summary(
        &text,
        &body["stop_reason"],
        &body["usage"]["input_tokens"],
        &body["usage"]["output_tokens"],
    )
}

/// The `anthropic` SDK against `/anthropic/v1/messages` of a backend: `messages` and
/// `messages-stream` answered by the golden cases `<cases>` and `<cases>_stream`.
async fn check_messages(provider: Provider, cases: &str) -> Result<()> {
    let stream_case = format!("{cases}_stream");
    let stream_reply = Reply::from_case(&stream_case)?;
    let json_reply = Reply::from_case(cases)?;
    let rules: Vec<(Matcher, Reply)> = vec![
        (Box::new(streams), stream_reply),
        (Box::new(|_: &Seen| true), json_reply),
    ];
    let upstream = ReplayProvider::start(rules).await?;
    let model = format!("{}-model", provider.prefix);
    let (gateway, port) = serve(&provider, &upstream, &model).await?;
    let base = format!("http://127.0.0.1:{port}/anthropic");
    let results = sdk::anthropic(&base, &model, &["messages", "messages-stream"]).await?;
    for (case, result) in [cases, stream_case.as_str()].iter().zip(&results) {
        assert_eq!(
            result["ok"],
            true,
            "{case}: {result}\nprovider got: {:?}\n{}",
            upstream.seen(),
            gateway.envoy.log()
        );
        let seen = anthropic_summary(
            result["text"].as_str().unwrap_or_default(),
            &result["stop_reason"],
            &result["usage"]["input_tokens"],
            &result["usage"]["output_tokens"],
        );
        assert_eq!(
            seen,
            golden_anthropic_summary(case),
            "{case}: the SDK's view differs from the golden client response"
        );
    }
    let seen = upstream.seen();
    assert_eq!(seen.len(), 2, "one provider request per scenario");
    check_requests(&provider, &seen);
    Ok(())
}

fn anthropic_key(seen: &Seen) -> Result<(), String> {
    match (seen.header("x-api-key"), seen.header("anthropic-version")) {
        (Some("sk-ant-matrix"), Some(_)) if seen.path == "/v1/messages" => Ok(()),
        other => Err(format!(
            "want x-api-key, anthropic-version and /v1/messages, got {other:?}"
        )),
    }
}

#[tokio::test]
async fn the_anthropic_sdk_through_anthropic_messages() -> Result<()> {
    check_messages(
        Provider {
            prefix: "anthropic",
            schema: "{name: Anthropic}",
            policy: Some(
                "  type: AnthropicAPIKey\n  anthropicAPIKey: {secretRef: {name: provider-secret}}",
            ),
            secret: vec![("apiKey", "sk-ant-matrix".into())],
            credential: anthropic_key,
        },
        "messages",
    )
    .await
}

/// `/v1/embeddings` through the SDK against a backend answering with the golden case `case`:
/// the vector and usage the SDK parses are the golden client response's.
async fn check_embeddings(provider: Provider, case: &str) -> Result<()> {
    let upstream =
        ReplayProvider::start(vec![(Box::new(|_: &Seen| true), Reply::from_case(case)?)]).await?;
    let model = format!("{}-embed", provider.prefix);
    let (gateway, port) = serve(&provider, &upstream, &model).await?;
    let base = format!("http://127.0.0.1:{port}/v1");
    let results = sdk::openai(&base, &model, &[], &["embeddings"]).await?;
    let result = &results[0];
    assert_eq!(
        result["ok"],
        true,
        "{case}: {result}\nprovider got: {:?}\n{}",
        upstream.seen(),
        gateway.envoy.log()
    );
    let text = std::fs::read_to_string(
        workspace::root()
            .join("extproc/testdata/out")
            .join(format!("{case}.json")),
    )?;
    let golden: Value = serde_json::from_str(&text)?;
    let body = &golden["client_response"]["body"];
    assert_eq!(result["embedding"], body["data"][0]["embedding"], "{case}");
    assert_eq!(
        json!([
            result["usage"]["prompt_tokens"],
            result["usage"]["total_tokens"]
        ]),
        json!([
            body["usage"]["prompt_tokens"],
            body["usage"]["total_tokens"]
        ]),
        "{case}: usage"
    );
    let seen = upstream.seen();
    assert_eq!(seen.len(), 1);
    (provider.credential)(&seen[0]).map_err(anyhow::Error::msg)?;
    Ok(())
}

#[tokio::test]
async fn azure_openai_embeddings_through_the_openai_sdk() -> Result<()> {
    check_embeddings(
        Provider {
            prefix: "azure",
            schema: "{name: AzureOpenAI, version: 2024-10-21}",
            policy: Some(
                "  type: AzureAPIKey\n  azureAPIKey: {secretRef: {name: provider-secret}}",
            ),
            secret: vec![("apiKey", "azure-matrix-key".into())],
            credential: |seen| match seen.header("api-key") {
                Some("azure-matrix-key")
                    if seen.path.starts_with(
                        "/openai/deployments/azure-embed/embeddings?api-version=2024-10-21",
                    ) =>
                {
                    Ok(())
                }
                other => Err(format!(
                    "want api-key and the deployment path, got {other:?} {}",
                    seen.path
                )),
            },
        },
        "azure_embeddings",
    )
    .await
}

#[tokio::test]
async fn claude_on_bedrock_invoke_model_through_the_openai_sdk() -> Result<()> {
    check(Provider {
        prefix: "aws_anthropic",
        schema: "{name: AWSAnthropic}",
        policy: Some(AWS_POLICY),
        secret: aws_secret(),
        credential: sigv4,
    })
    .await
}

#[tokio::test]
async fn the_anthropic_sdk_through_claude_on_bedrock_invoke_model() -> Result<()> {
    check_messages(
        Provider {
            prefix: "aws_anthropic",
            schema: "{name: AWSAnthropic}",
            policy: Some(AWS_POLICY),
            secret: aws_secret(),
            credential: sigv4,
        },
        "aws_anthropic_messages",
    )
    .await
}

#[tokio::test]
async fn the_anthropic_sdk_through_an_openai_backend() -> Result<()> {
    check_messages(
        Provider {
            prefix: "openai",
            schema: "{name: OpenAI}",
            policy: Some("  type: APIKey\n  apiKey: {secretRef: {name: provider-secret}}"),
            secret: vec![("apiKey", "sk-openai-matrix".into())],
            credential: |seen| match seen.header("authorization") {
                Some("Bearer sk-openai-matrix") if seen.path == "/v1/chat/completions" => Ok(()),
                other => Err(format!(
                    "want the bearer key on /v1/chat/completions, got {other:?} {}",
                    seen.path
                )),
            },
        },
        "messages_to_openai",
    )
    .await
}

/// The token the fake Google token endpoint mints.
const GCP_TOKEN: &str = "ya29.e2e-minted-token";

/// A fake Google token endpoint and the Secret of a service-account key pointing at it.
async fn gcp_token_endpoint() -> Result<(ReplayProvider, Vec<(&'static str, String)>)> {
    let token = Reply {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        chunks: vec![
            json!({"access_token": GCP_TOKEN, "expires_in": 3599, "token_type": "Bearer"})
                .to_string()
                .into_bytes(),
        ],
    };
    let endpoint = ReplayProvider::start(vec![(
        Box::new(|seen: &Seen| {
            seen.path == "/token"
                && String::from_utf8_lossy(&seen.body)
                    .contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer")
        }),
        token,
    )])
    .await?;
    let pem = std::fs::read_to_string(
        workspace::root().join("extproc/testdata/gcp-test-service-account-key.pem"),
    )?;
    let key_file = json!({
        "type": "service_account",
        "project_id": "infergate-test",
        "private_key_id": "e2e-key",
        "private_key": pem,
        "client_email": "gateway@infergate-test.iam.gserviceaccount.com",
        "token_uri": format!("http://{}/token", endpoint.addr()),
    });
    Ok((
        endpoint,
        vec![("service_account.json", key_file.to_string())],
    ))
}

const GCP_POLICY: &str = "  type: GCPCredentials
  gcpCredentials:
    projectName: infergate-test
    region: us-east5
    credentialsFile: {secretRef: {name: provider-secret}}";

fn vertex_anthropic(seen: &Seen) -> Result<(), String> {
    let prefix = "/v1/projects/infergate-test/locations/us-east5/publishers/anthropic/models/";
    let bearer = format!("Bearer {GCP_TOKEN}");
    let body = seen.json().unwrap_or_default();
    match seen.header("authorization") {
        Some(auth)
            if auth == bearer
                && seen.path.starts_with(prefix)
                && (seen.path.ends_with(":rawPredict")
                    || seen.path.ends_with(":streamRawPredict"))
                && body["anthropic_version"] == "vertex-2023-10-16"
                && body.get("model").is_none() =>
        {
            Ok(())
        }
        other => Err(format!(
            "want the minted bearer token, a Vertex rawPredict path and a Vertex body, got {other:?} {} {body}",
            seen.path
        )),
    }
}

#[tokio::test]
async fn claude_on_vertex_through_the_openai_sdk_with_a_minted_token() -> Result<()> {
    let (tokens, secret) = gcp_token_endpoint().await?;
    check(Provider {
        prefix: "anthropic",
        schema: "{name: GCPAnthropic}",
        policy: Some(GCP_POLICY),
        secret,
        credential: vertex_anthropic,
    })
    .await?;
    assert!(!tokens.seen().is_empty(), "the token endpoint was asked");
    Ok(())
}

#[tokio::test]
async fn the_anthropic_sdk_through_claude_on_vertex() -> Result<()> {
    let (_tokens, secret) = gcp_token_endpoint().await?;
    check_messages(
        Provider {
            prefix: "anthropic",
            schema: "{name: GCPAnthropic}",
            policy: Some(GCP_POLICY),
            secret,
            credential: vertex_anthropic,
        },
        "messages",
    )
    .await
}

fn vertex_gemini(seen: &Seen) -> Result<(), String> {
    let prefix = "/v1/projects/infergate-test/locations/us-east5/publishers/google/models/";
    let bearer = format!("Bearer {GCP_TOKEN}");
    let methods = [
        ":generateContent",
        ":streamGenerateContent?alt=sse",
        ":predict",
    ];
    match seen.header("authorization") {
        Some(auth)
            if auth == bearer
                && seen.path.starts_with(prefix)
                && methods.iter().any(|m| seen.path.ends_with(m)) =>
        {
            Ok(())
        }
        other => Err(format!(
            "want the minted bearer token and a Gemini path, got {other:?} {}",
            seen.path
        )),
    }
}

#[tokio::test]
async fn gemini_on_vertex_through_the_openai_sdk() -> Result<()> {
    let (_tokens, secret) = gcp_token_endpoint().await?;
    check(Provider {
        prefix: "vertex",
        schema: "{name: GCPVertexAI}",
        policy: Some(GCP_POLICY),
        secret,
        credential: vertex_gemini,
    })
    .await
}

#[tokio::test]
async fn vertex_embeddings_through_the_openai_sdk() -> Result<()> {
    let (_tokens, secret) = gcp_token_endpoint().await?;
    check_embeddings(
        Provider {
            prefix: "vertex",
            schema: "{name: GCPVertexAI}",
            policy: Some(GCP_POLICY),
            secret,
            credential: vertex_gemini,
        },
        "vertex_embeddings",
    )
    .await
}

/// `credentialOverride.fromRequestHeaders`: a caller bringing its own key in `x-user-key`
/// reaches the provider with it (the configured key stays unused), and one without falls back
/// to the configured key.
#[tokio::test]
async fn a_client_brings_its_own_key_through_credential_override() -> Result<()> {
    let openai =
        ReplayProvider::start(vec![(Box::new(|_: &Seen| true), Reply::from_case("chat")?)]).await?;
    let port = ports::free_port()?;
    let route = r#"apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIGatewayRoute
metadata: {name: byok, namespace: default}
spec:
  parentRefs: [{name: ai}]
  rules:
    - matches: [{headers: [{type: Exact, name: x-ai-eg-model, value: byok}]}]
      backendRefs: [{name: provider}]
"#;
    let policy = "  type: APIKey
  apiKey: {secretRef: {name: provider-secret}}
  credentialOverride:
    fromRequestHeaders: {header: x-user-key, fallbackToConfigured: true}";
    let backend = manifests::provider_backend(
        "provider",
        "{name: OpenAI}",
        openai.addr(),
        Some(policy),
        &[("apiKey", "sk-configured")],
    );
    let yaml = [manifests::gateway(port), route.to_string(), backend].join("---\n");
    let gateway = Gateway::start(&yaml, None).await?;
    let base = format!("http://127.0.0.1:{port}/v1");
    let own = sdk::openai(&base, "byok", &[("x-user-key", "sk-users-own")], &["chat"]).await?;
    assert_eq!(own[0]["ok"], true, "{}\n{}", own[0], gateway.envoy.log());
    let fallback = sdk::openai(&base, "byok", &[], &["chat"]).await?;
    assert_eq!(fallback[0]["ok"], true, "{}", fallback[0]);
    let seen = openai.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].header("authorization"), Some("Bearer sk-users-own"));
    assert!(
        seen[0].header("x-user-key").is_none(),
        "the caller's header is not forwarded"
    );
    assert_eq!(
        seen[1].header("authorization"),
        Some("Bearer sk-configured")
    );
    Ok(())
}
