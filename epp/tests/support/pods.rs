//! Fake model-server pods for tests: each serves `/metrics` with text the test sets, on its own
//! loopback IP (127.0.0.x) and one port shared by all, as the pods of a pool share targetPorts.

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use epp::datastore::Pod;

pub struct FakePod {
    pub addr: SocketAddr,
    metrics: Arc<Mutex<String>>,
    task: JoinHandle<()>,
}

impl FakePod {
    pub fn pod(&self) -> Pod {
        Pod::new(format!("pod-{}", self.addr.ip()), self.addr.ip())
    }

    /// Serves vLLM gauges with these values from now on.
    pub fn set_load(&self, waiting: u64, running: u64, kv: f64) {
        self.set_text(vllm_text(waiting, running, kv));
    }

    pub fn set_text(&self, text: impl Into<String>) {
        *self.metrics.lock().unwrap_or_else(|e| e.into_inner()) = text.into();
    }
}

impl Drop for FakePod {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// vLLM-shaped metrics text.
pub fn vllm_text(waiting: u64, running: u64, kv: f64) -> String {
    format!(
        "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n\
         # TYPE vllm:num_requests_waiting gauge\n\
         vllm:num_requests_waiting{{engine=\"0\",model_name=\"m\"}} {waiting}.0\n\
         # TYPE vllm:num_requests_running gauge\n\
         vllm:num_requests_running{{engine=\"0\",model_name=\"m\"}} {running}.0\n\
         # TYPE vllm:kv_cache_usage_perc gauge\n\
         vllm:kv_cache_usage_perc{{engine=\"0\",model_name=\"m\"}} {kv}\n"
    )
}

async fn serve_metrics(State(text): State<Arc<Mutex<String>>>) -> String {
    text.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Loopback IP number `n` of a block starting at `base` (127.0.0.base+n).
pub fn loopback(base: u8, n: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, base + n as u8))
}

/// Binds `count` listeners on 127.0.0.base.., all on one free port.
pub async fn bind_shared_port(base: u8, count: usize) -> (Vec<TcpListener>, u16) {
    'attempt: for _ in 0..20 {
        let first = TcpListener::bind((loopback(base, 0), 0))
            .await
            .expect("bind");
        let port = first.local_addr().expect("addr").port();
        let mut listeners = vec![first];
        for i in 1..count {
            match TcpListener::bind((loopback(base, i), port)).await {
                Ok(l) => listeners.push(l),
                Err(_) => continue 'attempt,
            }
        }
        return (listeners, port);
    }
    panic!("no port free on every loopback address");
}

/// `count` fake pods on 127.0.0.base.. sharing one port, each reporting an idle server.
pub async fn fake_pods(base: u8, count: usize) -> (Vec<FakePod>, u16) {
    let (listeners, port) = bind_shared_port(base, count).await;
    let pods = listeners
        .into_iter()
        .map(|listener| {
            let addr = listener.local_addr().expect("addr");
            let metrics = Arc::new(Mutex::new(vllm_text(0, 0, 0.0)));
            let app = Router::new()
                .route("/metrics", get(serve_metrics))
                .with_state(metrics.clone());
            let task = tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            FakePod {
                addr,
                metrics,
                task,
            }
        })
        .collect();
    (pods, port)
}
