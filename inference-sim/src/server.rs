//! Starting the simulator in-process: bind, spawn the engine and the HTTP server, and stop both
//! when [`Running`] is dropped.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::serve::ListenerExt as _;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::api::{self, App};
use crate::config::SimConfig;
use crate::error::{Error, Result};
use crate::handle::SimHandle;
use crate::runner::{self, Engine};

/// A running simulator. Dropping it stops the engine and the server; requests in flight end with
/// an error.
pub struct Running {
    /// The address really bound (useful with `port: 0`).
    pub addr: SocketAddr,
    handle: SimHandle,
    engine: Arc<Engine>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// `http://addr`, the base of every endpoint (`/v1/chat/completions`, `/metrics`, …).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A view of the engine (queue, batch, KV cache, adapters).
    pub fn handle(&self) -> SimHandle {
        self.handle.clone()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        self.engine.stop();
    }
}

/// Starts a simulator as `config` says.
pub async fn start(config: SimConfig) -> Result<Running> {
    let params = config.engine_params()?;
    let adapters = config.lora()?;
    let bind = format!("{}:{}", config.host, config.port);
    let listener = TcpListener::bind((config.host.as_str(), config.port))
        .await
        .map_err(|source| Error::Bind {
            addr: bind.clone(),
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| Error::Bind { addr: bind, source })?;

    let model = config.served_names()[0].clone();
    let engine = Engine::new(params, model.clone(), config.time_scale);
    let handle = engine.handle();
    let app = Arc::new(App::new(engine.clone(), &config, adapters));
    let router = api::router(app);
    // Tokens stream as small SSE frames: without TCP_NODELAY, Nagle's algorithm holds each
    // one back behind the client's delayed ACK (~20 ms on average on loopback).
    let listener = listener.tap_io(|stream| {
        // A socket without the option still works; only latency suffers.
        let _ = stream.set_nodelay(true);
    });

    let tasks = vec![
        tokio::spawn(runner::run(engine.clone())),
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                tracing::error!(%error, "inference-sim HTTP server stopped");
            }
        }),
    ];
    tracing::info!(%addr, %model, time_scale = config.time_scale, "inference-sim started");
    Ok(Running {
        addr,
        handle,
        engine,
        tasks,
    })
}
