//! A whole gateway with token budgets, in one process (DESIGN.md §6): a fake OpenAI upstream
//! whose every chat answer reports [`CHAT_USAGE`] (17 tokens), the extproc, the xds-server with
//! the rate limit service's replicas (memory or Redis), and a real Envoy.
//!
//! Budgets: per `x-user-id`, [`BUDGET`] total tokens a minute (Envoy AI Gateway's token
//! example); per user on [`LIMITED`], 2 requests a minute. Requests reserve
//! `ceil(body bytes / 4) + max_tokens` and are admitted while the user's counter is below the
//! budget, so with 17 real tokens each a user gets exactly [`ANSWERS_PER_BUDGET`] answers when
//! each settles before the next. A request without `x-user-id` is not limited at all.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use ratelimit::StorageOptions;
use serde_json::json;
use xds_server::translate::RateLimitOptions;

use crate::fake_openai::{CHAT_USAGE, FakeOpenAi};
use crate::gateway::Gateway;
use crate::{http, manifests, ports, wait};

pub const TIMEOUT: Duration = Duration::from_secs(20);
pub const KEY: &str = "sk-ratelimit-upstream";
pub const MINI: &str = "gpt-4o-mini";
pub const LIMITED: &str = "gpt-4o";
/// Total tokens a user may spend a minute.
pub const BUDGET: u64 = 100;
/// Answers a user gets before the budget is spent (see the module docs).
pub const ANSWERS_PER_BUDGET: usize = (BUDGET as usize).div_ceil(CHAT_USAGE.total() as usize);

fn manifests(port: u16, upstream: SocketAddr) -> String {
    let route_and_budgets = format!(
        r#"apiVersion: aigateway.envoyproxy.io/v1alpha1
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
"#
    );
    let backend = manifests::keyed_backend("openai", "OpenAI", upstream, "APIKey", KEY);
    [manifests::gateway(port), route_and_budgets, backend].join("---\n")
}

pub struct Stack {
    pub gateway: Gateway,
    pub limiters: Vec<ratelimit::Running>,
    pub port: u16,
    _upstream: FakeOpenAi,
}

impl Stack {
    /// Starts everything; returns once a chat answer comes back through every filter.
    pub async fn start(
        storage: StorageOptions,
        replicas: usize,
        fail_closed: bool,
    ) -> Result<Stack> {
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
        let port = ports::free_port()?;
        let ratelimit = RateLimitOptions {
            endpoints: limiters
                .iter()
                .map(|l| ("127.0.0.1".to_string(), l.bound().grpc.port()))
                .collect(),
            timeout: Duration::from_millis(500),
            failure_mode_deny: fail_closed,
        };
        let gateway = Gateway::start(&manifests(port, upstream.addr()), Some(ratelimit)).await?;
        let stack = Stack {
            gateway,
            limiters,
            port,
            _upstream: upstream,
        };
        // Ready when a limited route answers through every filter.
        wait::until("a chat answer through the gateway", TIMEOUT, || async {
            let r = stack.chat("warm-up", MINI, false).await?;
            Ok((r.status == 200).then_some(()))
        })
        .await
        .with_context(|| format!("envoy log:\n{}", stack.gateway.envoy.log()))?;
        wait_for_window_room().await;
        Ok(stack)
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// A chat request for `user` (no `x-user-id` header when empty: not limited).
    pub async fn chat(&self, user: &str, model: &str, stream: bool) -> Result<http::HttpResponse> {
        let body = json!({
            "model": model,
            "messages": [{"role": "user", "content": "Say hello"}],
            "max_tokens": 10,
            "stream": stream,
        });
        let mut headers = vec![("content-type", "application/json")];
        if !user.is_empty() {
            headers.push(("x-user-id", user));
        }
        http::post(
            &format!("{}/chat/completions", self.base_url()),
            &headers,
            body.to_string(),
        )
        .await
    }

    /// Descriptors every replica decided in `mode`, summed.
    pub async fn decisions(&self, mode: &str) -> Result<u64> {
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
    pub async fn wait_settled(&self, n: u64) -> Result<()> {
        wait::until(&format!("{n} settlements"), TIMEOUT, || async {
            Ok((self.decisions("settle").await? >= n).then_some(()))
        })
        .await
    }

    /// Sends chats for `user` one at a time, each settled before the next, until one is
    /// refused; returns how many were answered (at most `max`) and the refusal.
    pub async fn spend(
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

    pub async fn envoy_stat(&self, suffix: &str) -> Result<u64> {
        let text = http::get(
            &format!(
                "http://{}/stats?filter={suffix}$",
                self.gateway.envoy.admin_addr()
            ),
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

/// Budgets count in fixed windows of a minute, aligned to the clock: a test that crossed a
/// window's end would find its budget full again (a spent user answered). Each test starts with
/// at least this much of the window left; one takes a few seconds.
const WINDOW_ROOM: Duration = Duration::from_secs(20);

/// Waits for the next window when the current one has less than [`WINDOW_ROOM`] left.
async fn wait_for_window_room() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let left = Duration::from_secs(60) - Duration::from_millis((now.as_millis() % 60_000) as u64);
    if left < WINDOW_ROOM {
        tokio::time::sleep(left + Duration::from_millis(50)).await;
    }
}
