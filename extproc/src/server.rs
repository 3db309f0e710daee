//! The extproc as a library: start it on given addresses (port 0 for ephemeral), learn what
//! it bound from [`Running::bound`], stop it by dropping [`Running`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_server::{
    ExternalProcessor, ExternalProcessorServer,
};
use envoy_types::pb::envoy::service::ext_proc::v3::{ProcessingRequest, ProcessingResponse};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::{Request, Response, Status, Streaming};

use crate::config::ConfigStore;
use crate::metrics::Metrics;
use crate::otlp::{OtlpConfig, OtlpMetrics};
use crate::router::RouterLeg;
use crate::upstream::UpstreamLeg;
use crate::{Error, Result, admin, keys};

/// Largest ext_proc message accepted (bodies up to the configured limit always fit).
const MAX_GRPC_MESSAGE: usize = 256 * 1024 * 1024;

/// How to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// ext_proc gRPC address (1063 by default).
    pub grpc_addr: SocketAddr,
    /// Admin HTTP address: `/metrics`, `/healthz`, `/readyz` (1064 by default).
    pub admin_addr: SocketAddr,
    /// Also serve ext_proc on this Unix socket (replacing a stale file there), for an Envoy on
    /// the same machine: cheaper per message than TCP over loopback. Removed on stop.
    pub grpc_unix: Option<PathBuf>,
    /// Honour `x-infergate-backend` request headers on the upstream leg when Envoy sends no
    /// attributes. For tests without Envoy; never in production (the router leg strips
    /// client copies, but an upstream filter without attributes would then trust a header).
    pub trust_backend_header: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 1063)),
            admin_addr: SocketAddr::from(([127, 0, 0, 1], 1064)),
            grpc_unix: None,
            trust_backend_header: false,
        }
    }
}

/// The addresses the server really bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    pub grpc: SocketAddr,
    pub admin: SocketAddr,
}

/// A running extproc. Dropping it stops both servers.
pub struct Running {
    bound: Bound,
    store: Arc<ConfigStore>,
    tasks: Vec<JoinHandle<()>>,
    unix_socket: Option<PathBuf>,
    /// Flushed and shut down when this is dropped (after the servers stop).
    _otlp: Option<OtlpMetrics>,
}

impl Running {
    pub fn bound(&self) -> Bound {
        self.bound
    }

    /// The Unix socket ext_proc is also served on, if any.
    pub fn unix_socket(&self) -> Option<&Path> {
        self.unix_socket.as_deref()
    }

    /// The config every stream reads; update it to change routes and backends.
    pub fn store(&self) -> &Arc<ConfigStore> {
        &self.store
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        if let Some(path) = &self.unix_socket {
            let _ = std::fs::remove_file(path);
        }
    }
}

pub struct Server;

impl Server {
    /// Binds both listeners, then serves until the returned [`Running`] is dropped.
    pub async fn start(options: Options, store: Arc<ConfigStore>) -> Result<Running> {
        Server::start_with_otlp(options, store, None).await
    }

    /// As [`Server::start`], also pushing the metrics over OTLP/gRPC when `otlp` is given
    /// (see [`crate::otlp`]); dropping the [`Running`] flushes them.
    pub async fn start_with_otlp(
        options: Options,
        store: Arc<ConfigStore>,
        otlp: Option<OtlpConfig>,
    ) -> Result<Running> {
        let grpc_listener = bind("ext_proc gRPC", options.grpc_addr).await?;
        let admin_listener = bind("admin HTTP", options.admin_addr).await?;
        let bound = Bound {
            grpc: grpc_listener.local_addr().unwrap_or(options.grpc_addr),
            admin: admin_listener.local_addr().unwrap_or(options.admin_addr),
        };
        let mut registry = Registry::default();
        let mut metrics = Metrics::new(&mut registry);
        let otlp = match otlp {
            Some(config) => Some(OtlpMetrics::start(&config)?),
            None => None,
        };
        if let Some(otlp) = &otlp {
            metrics = metrics.with_otlp(otlp);
        }
        let service = ExtProcService {
            store: store.clone(),
            metrics,
            trust_backend_header: options.trust_backend_header,
        };
        // A buffered body arrives in one message. Allow well past the body limit so an
        // oversized body gets the client's 413 from the router leg, not a broken stream.
        let max_message = usize::try_from(store.load().request_body_limit)
            .unwrap_or(usize::MAX)
            .max(MAX_GRPC_MESSAGE)
            .saturating_add(1024 * 1024);
        let grpc = ExternalProcessorServer::new(service)
            .max_decoding_message_size(max_message)
            .max_encoding_message_size(max_message);
        // After everything that can fail, so a failed start leaves no socket file behind.
        let unix_listener = match &options.grpc_unix {
            Some(path) => Some(bind_unix(path)?),
            None => None,
        };
        let mut tasks = Vec::new();
        if let Some(listener) = unix_listener {
            let grpc = grpc.clone();
            tasks.push(tokio::spawn(async move {
                let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
                let served = grpc_server()
                    .add_service(grpc)
                    .serve_with_incoming(incoming)
                    .await;
                if let Err(err) = served {
                    tracing::error!(error = %err, "ext_proc gRPC server (Unix socket) stopped");
                }
            }));
        }
        tasks.push(tokio::spawn(async move {
            let incoming = nodelay(grpc_listener);
            let served = grpc_server()
                .add_service(grpc)
                .serve_with_incoming(incoming)
                .await;
            if let Err(err) = served {
                tracing::error!(error = %err, "ext_proc gRPC server stopped");
            }
        }));
        let admin = admin::router(Arc::new(registry), store.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(err) = axum::serve(admin_listener, admin).await {
                tracing::error!(error = %err, "admin server stopped");
            }
        }));
        tracing::info!(grpc = %bound.grpc, unix = ?options.grpc_unix, admin = %bound.admin, "extproc started");
        Ok(Running {
            bound,
            store,
            tasks,
            unix_socket: options.grpc_unix,
            _otlp: otlp,
        })
    }
}

fn grpc_server() -> tonic::transport::Server {
    tonic::transport::Server::builder().http2_keepalive_interval(Some(Duration::from_secs(30)))
}

/// Binds a Unix socket, replacing a file left by an earlier run that did not stop cleanly.
fn bind_unix(path: &Path) -> Result<tokio::net::UnixListener> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(Error::BindUnix {
                path: path.to_path_buf(),
                source,
            });
        }
    }
    tokio::net::UnixListener::bind(path).map_err(|source| Error::BindUnix {
        path: path.to_path_buf(),
        source,
    })
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { what, addr, source })
}

/// Which leg a stream serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leg {
    Router,
    Upstream,
}

struct ExtProcService {
    store: Arc<ConfigStore>,
    metrics: Metrics,
    trust_backend_header: bool,
}

#[tonic::async_trait]
impl ExternalProcessor for ExtProcService {
    type ProcessStream = LegStream;

    async fn process(
        &self,
        request: Request<Streaming<ProcessingRequest>>,
    ) -> std::result::Result<Response<Self::ProcessStream>, Status> {
        // The filter names its leg in the gRPC initial metadata; without it, a stream whose
        // first message carries our host attributes is an upstream leg.
        let named = match request
            .metadata()
            .get(keys::LEG_GRPC_METADATA)
            .and_then(|v| v.to_str().ok())
        {
            Some(keys::LEG_ROUTER) => Some(Leg::Router),
            Some(keys::LEG_UPSTREAM) => Some(Leg::Upstream),
            _ => None,
        };
        Ok(Response::new(LegStream {
            inbound: request.into_inner(),
            named,
            state: None,
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            trust_backend_header: self.trust_backend_header,
        }))
    }
}

/// One ext_proc stream: each message from Envoy is answered, in order, as the response stream
/// is polled, so a message costs no task hand-off. Ends when Envoy closes its side or breaks
/// the stream.
struct LegStream {
    inbound: Streaming<ProcessingRequest>,
    named: Option<Leg>,
    /// Set by the first message.
    state: Option<LegState>,
    store: Arc<ConfigStore>,
    metrics: Metrics,
    trust_backend_header: bool,
}

enum LegState {
    Router(Box<RouterLeg>),
    Upstream(Box<UpstreamLeg>),
}

impl LegStream {
    fn leg_for(&mut self, first: &ProcessingRequest) -> LegState {
        let leg = self.named.unwrap_or_else(|| {
            if crate::target::Target::from_attributes(&first.attributes).is_some() {
                Leg::Upstream
            } else {
                Leg::Router
            }
        });
        self.metrics.stream_opened(match leg {
            Leg::Router => keys::LEG_ROUTER,
            Leg::Upstream => keys::LEG_UPSTREAM,
        });
        match leg {
            Leg::Router => LegState::Router(Box::new(RouterLeg::new(
                self.store.clone(),
                self.metrics.clone(),
            ))),
            Leg::Upstream => LegState::Upstream(Box::new(UpstreamLeg::new(
                self.store.clone(),
                self.trust_backend_header,
            ))),
        }
    }
}

impl tokio_stream::Stream for LegStream {
    type Item = std::result::Result<ProcessingResponse, Status>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        loop {
            let message = match std::pin::Pin::new(&mut self.inbound).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(message))) => message,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Err(status))) => {
                    tracing::debug!(%status, "ext_proc stream closed by Envoy");
                    return Poll::Ready(None);
                }
            };
            if self.state.is_none() {
                let state = self.leg_for(&message);
                self.state = Some(state);
            }
            let observability = message.observability_mode;
            let response = match self.state.as_mut() {
                Some(LegState::Router(router)) => router.handle(message),
                Some(LegState::Upstream(upstream)) => upstream.handle(message),
                None => return Poll::Ready(None),
            };
            // Envoy ignores answers in observability mode; handled for usage, answered with
            // nothing.
            if !observability {
                return Poll::Ready(Some(Ok(response)));
            }
        }
    }
}

impl Drop for LegStream {
    fn drop(&mut self) {
        if let Some(LegState::Router(router)) = &mut self.state {
            router.close();
        }
    }
}

/// Accepted connections with `TCP_NODELAY`: `serve_with_incoming` skips tonic's own setting,
/// and without it Nagle's algorithm holds small gRPC frames back ~40 ms behind delayed ACKs.
fn nodelay(
    listener: tokio::net::TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use tokio_stream::StreamExt as _;
    tokio_stream::wrappers::TcpListenerStream::new(listener).map(|accepted| {
        accepted.inspect(|stream| {
            // A socket without the option still works; only latency suffers.
            let _ = stream.set_nodelay(true);
        })
    })
}
