//! Token budgets end to end (DESIGN.md §6), on the stack of
//! [`infergate_e2e::ratelimit_stack`]: real Envoy, the extproc's estimates and real costs, the
//! xds-server's descriptors, the rate limit service in memory or on a real Redis.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use infergate_e2e::fake_openai::CHAT_USAGE;
use infergate_e2e::ratelimit_stack::{ANSWERS_PER_BUDGET, BUDGET, LIMITED, MINI, Stack, TIMEOUT};
use infergate_e2e::redis::RedisServer;
use infergate_e2e::{http, sdk, wait};
use ratelimit::StorageOptions;
use serde_json::Value;

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
