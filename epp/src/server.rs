//! The picker as a library: [`start`] it on given addresses (port 0 for ephemeral), learn what
//! it bound from [`Running::bound`], feed pods through [`Config::pods`] (or
//! [`Running::datastore`]), stop it by dropping [`Running`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_server::{
    ExternalProcessor, ExternalProcessorServer,
};
use envoy_types::pb::envoy::service::ext_proc::v3::{ProcessingRequest, ProcessingResponse};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::datastore::{Datastore, PodSource, PoolInfo};
use crate::director::{Director, Objective};
use crate::handlers::{HandlerConfig, StreamHandler};
use crate::metrics::Metrics;
use crate::scheduling::Scheduler;
use crate::scheduling::config::EndpointPickerConfig;
use crate::scrape::ScrapeConfig;
use crate::{Error, Result, health};

/// Default staleness of an endpoint's metrics (the Inference Extension's
/// `--metrics-staleness-threshold`).
pub const DEFAULT_STALENESS: Duration = Duration::from_secs(2);

/// Everything the picker needs to run.
#[derive(Debug)]
pub struct Config {
    /// ext_proc gRPC (9002).
    pub grpc_addr: SocketAddr,
    /// gRPC health (9003).
    pub health_addr: SocketAddr,
    /// Prometheus `/metrics` over HTTP (9090).
    pub metrics_addr: SocketAddr,
    pub pool: PoolInfo,
    pub pods: PodSource,
    /// The scheduler's configuration ([`EndpointPickerConfig::default`] when none is given).
    pub picker: EndpointPickerConfig,
    pub scrape: ScrapeConfig,
    /// Metrics older than this are stale: the endpoint is deprioritized and counts as
    /// saturated.
    pub staleness: Duration,
    /// InferenceObjectives bound to the pool.
    pub objectives: Vec<Objective>,
    pub handler: HandlerConfig,
    /// Seed of the pickers' tie-breaking (from the clock when `None`).
    pub seed: Option<u64>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 9002)),
            health_addr: SocketAddr::from(([127, 0, 0, 1], 9003)),
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 9090)),
            pool: PoolInfo::default(),
            pods: PodSource::default(),
            picker: EndpointPickerConfig::default(),
            scrape: ScrapeConfig::default(),
            staleness: DEFAULT_STALENESS,
            objectives: Vec::new(),
            handler: HandlerConfig::default(),
            seed: None,
        }
    }
}

impl Config {
    /// Every port ephemeral on 127.0.0.1, a fixed seed; the rest default.
    pub fn for_tests() -> Self {
        Config {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            health_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            seed: Some(1),
            ..Config::default()
        }
    }
}

/// The addresses the picker really bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    pub grpc: SocketAddr,
    pub health: SocketAddr,
    pub metrics: SocketAddr,
}

/// A running picker. Dropping it stops every server and loop.
pub struct Running {
    bound: Bound,
    director: Arc<Director>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    pub fn bound(&self) -> Bound {
        self.bound
    }

    /// The pool's pods and metrics; `set_pods` replaces the pods.
    pub fn datastore(&self) -> &Arc<Datastore> {
        self.director.datastore()
    }

    pub fn director(&self) -> &Arc<Director> {
        &self.director
    }

    /// Waits until the picker is ready (endpoints known, one scraped).
    pub async fn wait_ready(&self) {
        self.datastore().wait_for(Datastore::is_ready).await;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Builds the scheduler, binds the three listeners, starts scraping, then serves until the
/// returned [`Running`] is dropped.
pub async fn start(config: Config) -> Result<Running> {
    let seed = config.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let scheduler = Arc::new(Scheduler::from_config(&config.picker, seed)?);
    let grpc_listener = bind("ext_proc gRPC", config.grpc_addr).await?;
    let health_listener = bind("gRPC health", config.health_addr).await?;
    let metrics_listener = bind("metrics HTTP", config.metrics_addr).await?;
    let bound = Bound {
        grpc: grpc_listener.local_addr().unwrap_or(config.grpc_addr),
        health: health_listener.local_addr().unwrap_or(config.health_addr),
        metrics: metrics_listener.local_addr().unwrap_or(config.metrics_addr),
    };

    let mut registry = Registry::default();
    let metrics = Metrics::new(&mut registry);
    let datastore = Arc::new(Datastore::new(config.pool.clone(), config.staleness));
    let director = Arc::new(Director::new(
        datastore.clone(),
        scheduler.clone(),
        &config.objectives,
        metrics.clone(),
    ));
    let mut tasks = Vec::new();

    match config.pods {
        PodSource::Static(pods) => datastore.set_pods(pods),
        PodSource::Watch(mut rx) => {
            datastore.set_pods(rx.borrow_and_update().clone());
            let ds = datastore.clone();
            tasks.push(tokio::spawn(async move {
                while rx.changed().await.is_ok() {
                    let pods = rx.borrow_and_update().clone();
                    ds.set_pods(pods);
                }
            }));
        }
        PodSource::Pool(mut rx) => {
            let ds = datastore.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    // Before the first sync the pool is empty, so the picker is not ready.
                    if let Some(state) = rx.borrow_and_update().clone() {
                        ds.set_pool(state);
                    }
                    if rx.changed().await.is_err() {
                        return;
                    }
                }
            }));
        }
    }
    tasks.push(crate::scrape::spawn(
        datastore.clone(),
        config.scrape.clone(),
        metrics.clone(),
    ));
    {
        // Per-endpoint scheduler state follows the pool.
        let ds = datastore.clone();
        let scheduler = scheduler.clone();
        tasks.push(tokio::spawn(async move {
            let mut pods = ds.subscribe_pods();
            while pods.changed().await.is_ok() {
                scheduler.retain_endpoints(&ds.endpoint_set());
            }
        }));
    }

    let (reporter, health_service) = tonic_health::server::health_reporter();
    tasks.push(tokio::spawn(health::run(datastore.clone(), reporter)));
    tasks.push(tokio::spawn(async move {
        let served = tonic::transport::Server::builder()
            .add_service(health_service)
            .serve_with_incoming(nodelay(health_listener))
            .await;
        if let Err(err) = served {
            tracing::error!(error = %err, "gRPC health server stopped");
        }
    }));

    let max_message = config.handler.max_body_bytes.saturating_add(1024 * 1024);
    let ext_proc = ExternalProcessorServer::new(ExtProc {
        director: director.clone(),
        handler: config.handler,
    })
    .max_decoding_message_size(max_message)
    .max_encoding_message_size(max_message);
    tasks.push(tokio::spawn(async move {
        let served = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .add_service(ext_proc)
            .serve_with_incoming(nodelay(grpc_listener))
            .await;
        if let Err(err) = served {
            tracing::error!(error = %err, "ext_proc gRPC server stopped");
        }
    }));

    let router = crate::metrics::router(Arc::new(registry));
    tasks.push(tokio::spawn(async move {
        if let Err(err) = axum::serve(metrics_listener, router).await {
            tracing::error!(error = %err, "metrics server stopped");
        }
    }));

    tracing::info!(
        pool = %config.pool.name,
        grpc = %bound.grpc,
        health = %bound.health,
        metrics = %bound.metrics,
        profile = %scheduler.profile_name(),
        "epp started"
    );
    Ok(Running {
        bound,
        director,
        tasks,
    })
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { what, addr, source })
}

struct ExtProc {
    director: Arc<Director>,
    handler: HandlerConfig,
}

#[tonic::async_trait]
impl ExternalProcessor for ExtProc {
    type ProcessStream = ReceiverStream<std::result::Result<ProcessingResponse, Status>>;

    async fn process(
        &self,
        request: Request<Streaming<ProcessingRequest>>,
    ) -> std::result::Result<Response<Self::ProcessStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let mut handler = StreamHandler::new(self.director.clone(), self.handler);
        tokio::spawn(async move {
            loop {
                let message = match inbound.message().await {
                    Ok(Some(m)) => m,
                    Ok(None) => return,
                    Err(status) => {
                        tracing::debug!(%status, "ext_proc stream closed by Envoy");
                        return;
                    }
                };
                let observe_only = message.observability_mode;
                for response in handler.handle(message) {
                    if !observe_only && tx.send(Ok(response)).await.is_err() {
                        return;
                    }
                }
                if handler.is_done() {
                    // An immediate response ends the exchange; Envoy closes the stream.
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
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
