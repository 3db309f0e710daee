//! The rate-limit service as a library: start it on given addresses (port 0 for ephemeral),
//! learn what it bound from [`Running::bound`], stop it by dropping [`Running`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::RateLimitServiceServer;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::metrics::Metrics;
use crate::service::RateLimiter;
use crate::storage::{Storage, StorageOptions};
use crate::{Error, Result, admin, keys};

/// How to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// `envoy.service.ratelimit.v3` gRPC address (8081 by default).
    pub grpc_addr: SocketAddr,
    /// Admin HTTP address: `/metrics`, `/healthz`, `/readyz` (8082 by default).
    pub admin_addr: SocketAddr,
    /// Where counters live (memory by default).
    pub storage: StorageOptions,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], keys::DEFAULT_GRPC_PORT)),
            admin_addr: SocketAddr::from(([127, 0, 0, 1], keys::DEFAULT_ADMIN_PORT)),
            storage: StorageOptions::Memory,
        }
    }
}

/// The addresses the server really bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    pub grpc: SocketAddr,
    pub admin: SocketAddr,
}

/// A running service. Dropping it stops both servers.
pub struct Running {
    bound: Bound,
    storage: Arc<dyn Storage>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    pub fn bound(&self) -> Bound {
        self.bound
    }

    /// The storage the service decides with.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

pub struct Server;

impl Server {
    /// Builds the storage, binds both listeners, then serves until the returned [`Running`]
    /// is dropped. An unreachable Redis is not an error here (see [`StorageOptions::build`]).
    pub async fn start(options: Options) -> Result<Running> {
        let storage = options.storage.build()?;
        let grpc_listener = bind("rate-limit gRPC", options.grpc_addr).await?;
        let admin_listener = bind("admin HTTP", options.admin_addr).await?;
        let bound = Bound {
            grpc: grpc_listener.local_addr().unwrap_or(options.grpc_addr),
            admin: admin_listener.local_addr().unwrap_or(options.admin_addr),
        };
        let mut registry = Registry::default();
        let metrics = Metrics::new(&mut registry);
        let service = RateLimiter::new(storage.clone(), metrics);
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(async move {
            let served = tonic::transport::Server::builder()
                .http2_keepalive_interval(Some(Duration::from_secs(30)))
                .add_service(RateLimitServiceServer::new(service))
                .serve_with_incoming(nodelay(grpc_listener))
                .await;
            if let Err(err) = served {
                tracing::error!(error = %err, "rate-limit gRPC server stopped");
            }
        }));
        let admin = admin::router(Arc::new(registry), storage.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(err) = axum::serve(admin_listener, admin).await {
                tracing::error!(error = %err, "admin server stopped");
            }
        }));
        let storage_name = match &options.storage {
            StorageOptions::Memory => "memory",
            StorageOptions::Redis { .. } => "redis",
        };
        tracing::info!(grpc = %bound.grpc, admin = %bound.admin, storage = storage_name, "ratelimit started");
        Ok(Running {
            bound,
            storage,
            tasks,
        })
    }
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { what, addr, source })
}

/// Accepted connections with `TCP_NODELAY`: `serve_with_incoming` skips tonic's own setting,
/// and without it Nagle's algorithm holds small gRPC frames back ~40 ms behind delayed ACKs.
fn nodelay(
    listener: TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use tokio_stream::StreamExt as _;
    tokio_stream::wrappers::TcpListenerStream::new(listener).map(|accepted| {
        accepted.inspect(|stream| {
            // A socket without the option still works; only latency suffers.
            let _ = stream.set_nodelay(true);
        })
    })
}
