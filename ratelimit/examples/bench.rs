//! Decisions per second and decision latency of the rate-limit service over gRPC, memory and
//! Redis storage, with N concurrent clients (each its own HTTP/2 connection, like Envoy
//! workers).
//!
//! `cargo run --release -p ratelimit --example bench [-- --secs 3 --clients 1,8,32]`
//!
//! Each call carries two descriptors, as a token-limited route does: a `reserve` token budget
//! per user and a plain request count per user, over 1000 users with limits never reached (so
//! every call does the full read-modify-write). Starts its own `redis-server`.

#[path = "../tests/support/envoy.rs"]
mod envoy;
#[path = "../tests/support/redis_server.rs"]
mod redis_server;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use envoy::{call, client, descriptor};
use ratelimit::{Options, Server, StorageOptions, keys};
use redis_server::RedisServer;

struct Row {
    storage: &'static str,
    clients: usize,
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (secs, clients) = args()?;
    let redis = RedisServer::start();
    let mut rows = Vec::new();
    for (name, storage) in [
        ("memory", StorageOptions::Memory),
        ("redis", StorageOptions::redis(redis.url())),
    ] {
        let ephemeral = SocketAddr::from(([127, 0, 0, 1], 0));
        let running = Server::start(Options {
            grpc_addr: ephemeral,
            admin_addr: ephemeral,
            storage,
        })
        .await?;
        for &n in &clients {
            rows.push(run(name, running.bound().grpc, n, Duration::from_secs(secs)).await);
        }
    }
    println!("| storage | clients | decisions/s | p50 | p99 |");
    println!("|---|---:|---:|---:|---:|");
    for row in rows {
        println!(
            "| {} | {} | {:.0} | {:.0} µs | {:.0} µs |",
            row.storage,
            row.clients,
            row.per_second,
            row.p50.as_secs_f64() * 1e6,
            row.p99.as_secs_f64() * 1e6
        );
    }
    Ok(())
}

async fn run(storage: &'static str, addr: SocketAddr, clients: usize, length: Duration) -> Row {
    let started = Instant::now();
    let deadline = started + length;
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            tokio::spawn(async move {
                let mut client = client(addr).await;
                let mut latencies = Vec::new();
                let mut i = c * 7919;
                while Instant::now() < deadline {
                    let user = format!("user-{}", i % 1000);
                    i += 1;
                    let descriptors = vec![
                        descriptor(
                            &[
                                (keys::RULE, "default/tokens/0"),
                                ("x-user-id", &user),
                                (keys::LIMIT, "1000000000/hour"),
                                (keys::MODE, keys::MODE_RESERVE),
                            ],
                            Some(500),
                        ),
                        descriptor(
                            &[
                                (keys::RULE, "default/requests/0"),
                                ("x-user-id", &user),
                                (keys::LIMIT, "1000000000/hour"),
                            ],
                            None,
                        ),
                    ];
                    let one = Instant::now();
                    if let Err(status) = call(&mut client, descriptors).await {
                        eprintln!("call failed: {status:?}");
                        continue;
                    }
                    latencies.push(one.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap_or_default());
    }
    let took = started.elapsed();
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Row {
        storage,
        clients,
        per_second: latencies.len() as f64 / took.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
    }
}

fn args() -> anyhow::Result<(u64, Vec<usize>)> {
    let mut secs = 3;
    let mut clients = vec![1, 8, 32];
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().unwrap_or_default();
        match arg.as_str() {
            "--secs" => secs = value.parse()?,
            "--clients" => {
                clients = value.split(',').map(str::parse).collect::<Result<_, _>>()?;
            }
            other => anyhow::bail!("unknown argument {other}; use --secs N --clients 1,8,32"),
        }
    }
    Ok((secs, clients))
}
