//! Added latency of a rate-limited route through Envoy (`make bench`; prints figures).
//!
//! One gateway per storage (memory, then a real Redis), the same route and upstream: requests
//! with `x-user-id` get the token-budget descriptors (a reserve call before the upstream, a
//! settle call after), requests without it get none (Envoy's rate limit filter makes no call).
//! The two kinds are interleaved, one at a time, so both see the same machine.
//!
//!     cargo run --release -p infergate-e2e --example ratelimit_bench [-- REQUESTS]

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use infergate_e2e::ratelimit_stack::{MINI, Stack};
use infergate_e2e::redis::RedisServer;
use ratelimit::StorageOptions;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn measure(stack: &Stack, requests: usize) -> Result<(Vec<Duration>, Vec<Duration>)> {
    let (mut limited, mut free) = (Vec::new(), Vec::new());
    for i in 0..requests + 20 {
        // A new user each time: a fresh budget, so every request is admitted.
        let user = format!("bench-{i}");
        let started = Instant::now();
        let r = stack.chat(&user, MINI, false).await?;
        let a = started.elapsed();
        let started = Instant::now();
        let s = stack.chat("", MINI, false).await?;
        let b = started.elapsed();
        if r.status != 200 || s.status != 200 {
            bail!("unexpected statuses {} / {}", r.status, s.status);
        }
        // The first 20 of each warm connections and caches.
        if i >= 20 {
            limited.push(a);
            free.push(b);
        }
    }
    limited.sort();
    free.sort();
    Ok((limited, free))
}

#[tokio::main]
async fn main() -> Result<()> {
    let requests: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(400);
    let redis = RedisServer::start().await?;
    println!("rate-limited vs unlimited route through Envoy, {requests} sequential requests each");
    println!(
        "{:<8} {:>12} {:>12} {:>12} {:>12} {:>10} {:>10}",
        "storage", "limited p50", "limited p99", "free p50", "free p99", "+p50", "+p99"
    );
    for (name, storage) in [
        ("memory", StorageOptions::Memory),
        ("redis", StorageOptions::redis(redis.url())),
    ] {
        let stack = Stack::start(storage, 1, false).await?;
        let (limited, free) = measure(&stack, requests).await?;
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let (lp50, lp99) = (percentile(&limited, 0.5), percentile(&limited, 0.99));
        let (fp50, fp99) = (percentile(&free, 0.5), percentile(&free, 0.99));
        println!(
            "{name:<8} {:>10.3}ms {:>10.3}ms {:>10.3}ms {:>10.3}ms {:>8.3}ms {:>8.3}ms",
            ms(lp50),
            ms(lp99),
            ms(fp50),
            ms(fp99),
            ms(lp50) - ms(fp50),
            ms(lp99) - ms(fp99)
        );
    }
    Ok(())
}
