//! The picker over real simulated vLLM pods (inference-sim): it scrapes their metrics and a
//! saturated pod stops receiving picks.

#[path = "support/envoy.rs"]
mod envoy;

use std::collections::HashMap;
use std::net::SocketAddr;

use envoy::{Mode, Stream};
use epp::Config;
use epp::datastore::{Pod, PodSource, PoolInfo};
use inference_sim::SimConfig;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const MODEL: &str = "meta-llama/Llama-3.1-8B-Instruct";

/// `count` sims on 127.0.0.base.. sharing one port, one sequence at a time each.
async fn sims(base: u8, count: usize) -> (Vec<inference_sim::Running>, u16) {
    'attempt: for _ in 0..20 {
        let config = |host: String, port| SimConfig {
            host,
            port,
            max_num_seqs: 1,
            seed: 7,
            ..SimConfig::for_tests(1.0)
        };
        let first = inference_sim::start(config(format!("127.0.0.{base}"), 0))
            .await
            .expect("start sim");
        let port = first.addr.port();
        let mut all = vec![first];
        for i in 1..count {
            match inference_sim::start(config(format!("127.0.0.{}", base + i as u8), port)).await {
                Ok(sim) => all.push(sim),
                Err(_) => continue 'attempt,
            }
        }
        return (all, port);
    }
    panic!("no port free on every loopback address");
}

/// Starts a long completion on `addr` and keeps the connection open (a client that hangs up
/// aborts its request in the simulator, as in vLLM).
async fn long_request(addr: SocketAddr) -> TcpStream {
    let body = serde_json::json!({
        "model": MODEL,
        "prompt": "Write a very long story about load balancing.",
        "max_tokens": 5000,
    })
    .to_string();
    let mut stream = TcpStream::connect(addr).await.expect("connect to sim");
    let request = format!(
        "POST /v1/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    stream
}

async fn pick(grpc: SocketAddr, mode: Mode, prompt: &str) -> String {
    let mut stream = Stream::open(grpc, mode).await;
    let out = stream
        .post(
            envoy::post_headers(&[]),
            &envoy::chat_body(MODEL, prompt),
            2,
        )
        .await;
    out.iter()
        .find_map(envoy::pick_of)
        .unwrap_or_else(|| panic!("a pick: {out:?}"))
        .header
}

#[tokio::test]
async fn a_saturated_sim_pod_stops_receiving_picks() {
    let (pods, port) = sims(41, 3).await;
    let config = Config {
        pool: PoolInfo {
            name: "llama".to_owned(),
            namespace: "default".to_owned(),
            target_ports: vec![port],
        },
        pods: PodSource::Static(
            pods.iter()
                .enumerate()
                .map(|(i, p)| Pod::new(format!("sim-{i}"), p.addr.ip()))
                .collect(),
        ),
        ..Config::for_tests()
    };
    let running = epp::start(config).await.expect("start picker");
    let grpc = running.bound().grpc;
    let ds = running.datastore().clone();
    tokio::time::timeout(
        envoy::WAIT,
        ds.wait_for(|d| d.status().iter().all(|s| s.good_scrapes > 0)),
    )
    .await
    .expect("every sim scraped");

    // Idle pool: every pod gets work (ties are broken randomly).
    let mut counts: HashMap<String, usize> = HashMap::new();
    for i in 0..30 {
        let mode = if i % 2 == 0 {
            Mode::FullDuplex
        } else {
            Mode::Buffered
        };
        *counts
            .entry(pick(grpc, mode, &format!("idle {i}")).await)
            .or_default() += 1;
    }
    for p in &pods {
        assert!(
            counts.get(&p.addr.to_string()).copied().unwrap_or(0) > 0,
            "idle pod {} got no picks: {counts:?}",
            p.addr
        );
    }

    // Saturate pod 0: one running, seven waiting.
    let busy = pods[0].addr;
    let mut connections = Vec::new();
    for _ in 0..8 {
        connections.push(long_request(busy).await);
    }
    tokio::time::timeout(envoy::WAIT, pods[0].handle().wait_for(|s| s.waiting >= 7))
        .await
        .expect("sim queue builds")
        .expect("sim running");
    tokio::time::timeout(
        envoy::WAIT,
        ds.wait_for(|d| {
            d.status()
                .iter()
                .any(|s| s.addr == busy && s.metrics.waiting >= 7 && s.fresh)
        }),
    )
    .await
    .expect("the picker scraped the queue");

    let mut counts: HashMap<String, usize> = HashMap::new();
    for i in 0..30 {
        let mode = if i % 2 == 0 {
            Mode::FullDuplex
        } else {
            Mode::Buffered
        };
        *counts
            .entry(pick(grpc, mode, &format!("busy {i}")).await)
            .or_default() += 1;
    }
    assert_eq!(
        counts.get(&busy.to_string()),
        None,
        "saturated pod picked: {counts:?}"
    );
    for p in &pods[1..] {
        assert!(
            counts.get(&p.addr.to_string()).copied().unwrap_or(0) > 0,
            "{counts:?}"
        );
    }
    let metrics = envoy::http_get(running.bound().metrics, "/metrics").await;
    assert!(metrics.contains("epp_endpoints 3"), "{metrics}");
    drop(connections);
}
