//! Token budgets end to end (DESIGN.md §6): real Envoy, the extproc's router leg writing the
//! estimates and real costs, the xds-server's ratelimit filter and descriptors, the rate limit
//! service in memory or on a real Redis, and a fake OpenAI upstream whose every chat answer
//! reports [`CHAT_USAGE`] (17 tokens).
//!
//! Budgets: per `x-user-id`, 100 total tokens a minute (Envoy AI Gateway's token example); per
//! user on `gpt-4o`, 2 requests a minute. Requests reserve `ceil(body bytes / 4) + max_tokens`
//! and are admitted while the user's counter is below 100, so with 17 real tokens each a user
//! gets exactly 6 answers (5 × 17 = 85 < 100, 6 × 17 = 102) when each settles before the next.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use infergate_e2e::fake_openai::{CHAT_USAGE, FakeOpenAi};
use infergate_e2e::redis::RedisServer;
use infergate_e2e::{Envoy, http, ports, sdk, wait};
use ratelimit::StorageOptions;
use serde_json::{Value, json};
use xds_server::pipeline::Debounce;
use xds_server::server::{self, Config};
use xds_server::translate::{Options, RateLimitOptions};

const TIMEOUT: Duration = Duration::from_secs(20);
const KEY: &str = "sk-ratelimit-upstream";
const MINI: &str = "gpt-4o-mini";
const LIMITED: &str = "gpt-4o";
/// Total tokens a user may spend a minute.
const BUDGET: u64 = 100;
/// Answers a user gets before the budget is spent (see the module docs).
const ANSWERS_PER_BUDGET: usize = (BUDGET as usize).div_ceil(CHAT_USAGE.total() as usize);

fn manifests(port: u16, upstream: SocketAddr) -> String {
    format!(
        r#"apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: eg}}
spec: {{controllerName: gateway.envoyproxy.io/gatewayclass-controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: ai, namespace: default}}
spec:
  gatewayClassName: eg
  listeners: [{{name: http, protocol: HTTP, port: {port}}}]
---
apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: AIGatewayRoute
metadata: {{name: chat, namespace: default}}
spec:
  parentRefs: [{{name: ai, kind: Gateway, group: gateway.networking.k8s.io}}]
  rules:
    - matches: [{{headers: [{{type: Exact, name: x-ai-eg-model, value: {MINI}}}]}}]
      backendRefs: [{{name: openai}}]
    - matches: [{{headers: [{{type: Exact, name: x-ai-eg-model, value: {LIMITED}}}]}}]
      backendRefs: [{{name: openai}}]
  llmRequestCosts:
    - {{metadataKey: llm_input_token, type: InputToken}}
    - {{metadataKey: llm_output_token, type: OutputToken}}
    - {{metadataKey: llm_total_token, type: TotalToken}}
---
apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: AIServiceBackend
metadata: {{name: openai, namespace: default}}
spec:
  schema: {{name: OpenAI}}
  backendRef: {{name: openai, kind: Backend, group: gateway.envoyproxy.io}}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata: {{name: openai, namespace: default}}
spec:
  endpoints: [{{ip: {{address: '{ip}', port: {upstream_port}}}}}]
---
apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: BackendSecurityPolicy
metadata: {{name: openai-key, namespace: default}}
spec:
  type: APIKey
  targetRefs: [{{group: aigateway.envoyproxy.io, kind: AIServiceBackend, name: openai}}]
  apiKey: {{secretRef: {{name: openai-key}}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: openai-key, namespace: default}}
stringData: {{apiKey: {KEY}}}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {{name: budgets, namespace: default}}
spec:
  targetRefs: [{{name: ai, kind: Gateway, group: gateway.networking.k8s.io}}]
  rateLimit:
    type: Global
    global:
      rules:
        - clientSelectors: [{{headers: [{{name: x-user-id, type: Distinct}}]}}]
          limit: {{requests: {BUDGET}, unit: Minute}}
          cost:
            request: {{from: Number, number: 0}}
            response:
              from: Metadata
              metadata: {{namespace: io.envoy.ai_gateway, key: llm_total_token}}
        - clientSelectors:
            - headers:
                - {{name: x-user-id, type: Distinct}}
                - {{name: x-ai-eg-model, type: Exact, value: {LIMITED}}}
          limit: {{requests: 2, unit: Minute}}
"#,
        ip = upstream.ip(),
        upstream_port = upstream.port(),
    )
}

struct Stack {
    envoy: Envoy,
    limiters: Vec<ratelimit::Running>,
    port: u16,
    _upstream: FakeOpenAi,
    _extproc: (extproc::Running, extproc::XdsClientHandle),
    _server: server::Running,
    _dir: tempfile::TempDir,
}

impl Stack {
    async fn start(storage: StorageOptions, replicas: usize, fail_closed: bool) -> Result<Stack> {
        let upstream = FakeOpenAi::start(KEY).await?;
        let mut limiters = Vec::new();
        for _ in 0..replicas {
            limiters.push(
                ratelimit::Server::start(ratelimit::Options {
                    grpc_addr: "127.0.0.1:0".parse()?,
                    admin_addr: "127.0.0.1:0".parse()?,
                    storage: storage.clone(),
                })
                .await?,
            );
        }
        let store = extproc::config::ConfigStore::new();
        let extproc = extproc::Server::start(
            extproc::Options {
                grpc_addr: "127.0.0.1:0".parse()?,
                admin_addr: "127.0.0.1:0".parse()?,
                ..Default::default()
            },
            store.clone(),
        )
        .await?;
        let port = ports::free_port()?;
        let dir = tempfile::tempdir()?;
        std::fs::write(
            dir.path().join("stack.yaml"),
            manifests(port, upstream.addr()),
        )?;
        let extproc_options = xds_server::cli::extproc_options(
            &extproc.bound().grpc.to_string(),
            xds_server::translate::ExtprocOptions::DEFAULT_BODY_LIMIT,
        )
        .map_err(anyhow::Error::msg)?;
        let server = server::start(Config {
            dir: dir.path().to_path_buf(),
            ads_addr: "127.0.0.1:0".parse()?,
            admin_addr: "127.0.0.1:0".parse()?,
            translate: Options {
                listener_address: "127.0.0.1".into(),
                extproc: Some(extproc_options),
                ratelimit: Some(RateLimitOptions {
                    endpoints: limiters
                        .iter()
                        .map(|l| ("127.0.0.1".to_string(), l.bound().grpc.port()))
                        .collect(),
                    timeout: Duration::from_millis(500),
                    failure_mode_deny: fail_closed,
                }),
                ..Options::default()
            },
            debounce: Debounce::default(),
        })
        .await?;
        server.ready().await;
        let xds = extproc::xds_client::spawn(server.ads_addr, store);
        if !tokio::time::timeout(TIMEOUT, xds.first_config())
            .await
            .context("extproc got no config")?
        {
            bail!("the extproc's xDS client stopped");
        }
        let envoy = infergate_e2e::xds::start_envoy(server.ads_addr, false).await?;
        infergate_e2e::xds::wait_synced(&server).await?;
        let stack = Stack {
            envoy,
            limiters,
            port,
            _upstream: upstream,
            _extproc: (extproc, xds),
            _server: server,
            _dir: dir,
        };
        // Ready when a limited route answers through every filter.
        wait::until("a chat answer through the gateway", TIMEOUT, || async {
            let r = stack.chat("warm-up", MINI, false).await?;
            Ok((r.status == 200).then_some(()))
        })
        .await
        .with_context(|| format!("envoy log:\n{}", stack.envoy.log()))?;
        Ok(stack)
    }

    fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    async fn chat(&self, user: &str, model: &str, stream: bool) -> Result<http::HttpResponse> {
        let body = json!({
            "model": model,
            "messages": [{"role": "user", "content": "Say hello"}],
            "max_tokens": 10,
            "stream": stream,
        });
        http::post(
            &format!("{}/chat/completions", self.base_url()),
            &[("content-type", "application/json"), ("x-user-id", user)],
            body.to_string(),
        )
        .await
    }

    /// Descriptors every replica decided in `mode`, summed.
    async fn decisions(&self, mode: &str) -> Result<u64> {
        let mut total = 0;
        for limiter in &self.limiters {
            let text = http::get(&format!("http://{}/metrics", limiter.bound().admin), &[])
                .await?
                .text();
            total += text
                .lines()
                .filter(|l| l.starts_with("infergate_ratelimit_decisions_total"))
                .filter(|l| l.contains(&format!("mode=\"{mode}\"")))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>() as u64;
        }
        Ok(total)
    }

    /// Waits until `n` stream-end settlements reached the service (they are sent by Envoy after
    /// the response, racing the client's next request).
    async fn wait_settled(&self, n: u64) -> Result<()> {
        wait::until(&format!("{n} settlements"), TIMEOUT, || async {
            Ok((self.decisions("settle").await? >= n).then_some(()))
        })
        .await
    }

    /// Sends chats for `user` one at a time, each settled before the next, until one is
    /// refused; returns how many were answered (at most `max`) and the refusal.
    async fn spend(
        &self,
        user: &str,
        max: usize,
        stream_every_other: bool,
    ) -> Result<(usize, Option<http::HttpResponse>)> {
        let mut answered = 0;
        for i in 0..max {
            let settled_before = self.decisions("settle").await?;
            let response = self
                .chat(user, MINI, stream_every_other && i % 2 == 1)
                .await?;
            match response.status.as_u16() {
                200 => {
                    answered += 1;
                    self.wait_settled(settled_before + 1).await?;
                }
                429 => return Ok((answered, Some(response))),
                other => bail!("unexpected {other}: {}", response.text()),
            }
        }
        Ok((answered, None))
    }

    async fn envoy_stat(&self, suffix: &str) -> Result<u64> {
        let text = http::get(
            &format!("http://{}/stats?filter={suffix}$", self.envoy.admin_addr()),
            &[],
        )
        .await?
        .text();
        Ok(text
            .lines()
            .filter_map(|l| l.rsplit(": ").next()?.trim().parse::<u64>().ok())
            .sum())
    }
}

fn assert_rate_limited(response: &http::HttpResponse) -> Result<()> {
    assert_eq!(response.status, 429, "{}", response.text());
    let body: Value = response.json()?;
    assert_eq!(body["error"]["code"], "rate_limit_exceeded", "{body}");
    assert_eq!(body["error"]["type"], "requests", "{body}");
    assert!(
        response
            .header("x-ratelimit-limit")
            .is_some_and(|l| l.starts_with(&BUDGET.to_string())),
        "x-ratelimit-limit: {:?}",
        response.header("x-ratelimit-limit")
    );
    assert_eq!(response.header("x-ratelimit-remaining"), Some("0"));
    Ok(())
}

#[tokio::test]
async fn a_user_s_token_budget_is_charged_real_usage_and_others_are_unaffected() -> Result<()> {
    let stack = Stack::start(StorageOptions::default(), 1, false).await?;
    // Every other request streams (without asking for usage): it is charged its real usage
    // too, or the user would run out sooner (the estimate is larger than 17).
    let (answered, refusal) = stack.spend("alice", 20, true).await?;
    assert_eq!(
        answered, ANSWERS_PER_BUDGET,
        "answers before the budget was spent"
    );
    assert_rate_limited(&refusal.context("alice was never refused")?)?;
    // Another user has a budget of their own.
    assert_eq!(stack.chat("bob", MINI, false).await?.status, 200);
    // The official SDK sees a RateLimitError with OpenAI's shape.
    let result = sdk::openai(
        &stack.base_url(),
        MINI,
        &[("x-user-id", "alice")],
        &["chat"],
    )
    .await?
    .remove(0);
    assert_eq!(result["ok"], false, "{result}");
    assert_eq!(result["error"]["type"], "RateLimitError", "{result}");
    assert_eq!(result["error"]["status"], 429, "{result}");
    Ok(())
}

#[tokio::test]
async fn per_model_limits_key_on_the_model_header() -> Result<()> {
    let stack = Stack::start(StorageOptions::default(), 1, false).await?;
    for _ in 0..2 {
        assert_eq!(stack.chat("dave", LIMITED, false).await?.status, 200);
    }
    let refused = stack.chat("dave", LIMITED, false).await?;
    assert_eq!(refused.status, 429, "{}", refused.text());
    // The same user on another model, and another user on the limited one, are unaffected.
    assert_eq!(stack.chat("dave", MINI, false).await?.status, 200);
    assert_eq!(stack.chat("erin", LIMITED, false).await?.status, 200);
    Ok(())
}

#[tokio::test]
async fn concurrent_requests_against_a_nearly_spent_budget_overshoot_by_at_most_one_estimate()
-> Result<()> {
    let stack = Stack::start(StorageOptions::default(), 1, false).await?;
    // 5 answers: 85 of 100 tokens spent.
    let (answered, _) = stack.spend("frank", ANSWERS_PER_BUDGET - 1, false).await?;
    assert_eq!(answered, ANSWERS_PER_BUDGET - 1);
    let settled = stack.decisions("settle").await?;
    let requests = (0..20).map(|_| stack.chat("frank", MINI, false));
    let responses = futures::future::join_all(requests).await;
    let mut ok = 0;
    for response in responses {
        let response = response?;
        match response.status.as_u16() {
            200 => ok += 1,
            429 => assert_rate_limited(&response)?,
            other => bail!("unexpected {other}: {}", response.text()),
        }
    }
    // Admission reserves each request's estimate atomically, so once one is admitted the
    // budget is spent for the other 19 (Envoy AI Gateway's check-then-charge would admit all
    // 20: 85 + 20 × 17 = 425 tokens against a budget of 100).
    assert_eq!(ok, 1, "admitted out of 20 concurrent requests");
    stack.wait_settled(settled + ok as u64).await?;
    let spent = CHAT_USAGE.total() * (ANSWERS_PER_BUDGET as u64 - 1 + ok as u64);
    let estimate = 10 + 100u64.div_ceil(4); // max_tokens + a generous bound on the body
    assert!(spent <= BUDGET - 1 + estimate, "spent {spent}");
    Ok(())
}

#[tokio::test]
async fn two_replicas_on_one_redis_enforce_one_budget() -> Result<()> {
    let redis = RedisServer::start().await?;
    let stack = Stack::start(StorageOptions::redis(redis.url()), 2, false).await?;
    let (answered, refusal) = stack.spend("grace", 20, false).await?;
    assert_eq!(
        answered, ANSWERS_PER_BUDGET,
        "one shared budget across both replicas"
    );
    assert_rate_limited(&refusal.context("grace was never refused")?)?;
    for limiter in &stack.limiters {
        let text = http::get(&format!("http://{}/metrics", limiter.bound().admin), &[])
            .await?
            .text();
        assert!(
            text.lines().any(|l| l.starts_with("infergate_ratelimit_decisions_total")
                && !l.ends_with(" 0")),
            "a replica decided nothing: Envoy did not spread the calls\n{text}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn redis_down_fails_open_by_default_and_limits_return_with_it() -> Result<()> {
    let mut redis = RedisServer::start().await?;
    let stack = Stack::start(StorageOptions::redis(redis.url()), 1, false).await?;
    let (_, refusal) = stack.spend("heidi", 20, false).await?;
    assert_rate_limited(&refusal.context("heidi was never refused")?)?;
    redis.stop().await;
    // Fail open: answered, promptly, and counted by Envoy.
    let started = std::time::Instant::now();
    let response = stack.chat("heidi", MINI, false).await?;
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(stack.envoy_stat("ratelimit.failure_mode_allowed").await? > 0);
    // Redis back (empty: it keeps no data): budgets are counted and enforced again.
    redis.restart().await?;
    wait::until(
        "limits enforced again after Redis returned",
        TIMEOUT,
        || async {
            let r = stack.chat("ivan", MINI, false).await?;
            Ok((r.status == 429).then_some(()))
        },
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn redis_down_with_fail_closed_refuses_with_a_503_in_openai_shape() -> Result<()> {
    let mut redis = RedisServer::start().await?;
    let stack = Stack::start(StorageOptions::redis(redis.url()), 1, true).await?;
    redis.stop().await;
    let response = stack.chat("judy", MINI, false).await?;
    assert_eq!(response.status, 503, "{}", response.text());
    let body: Value = response.json()?;
    assert_eq!(
        body["error"]["code"], "rate_limit_service_unavailable",
        "{body}"
    );
    redis.restart().await?;
    wait::until("answers again after Redis returned", TIMEOUT, || async {
        Ok((stack.chat("judy", MINI, false).await?.status == 200).then_some(()))
    })
    .await?;
    Ok(())
}
