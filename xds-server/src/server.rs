//! The xds-server as a library: start it on given addresses (port 0 for ephemeral), learn the
//! addresses it bound, stop it by dropping [`Running`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use infergate_ads::{AdsServer, ProxyRegistry};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::admin::{self, AdminState};
use crate::metrics::Metrics;
use crate::pipeline::{self, ConfigStore, Debounce, Published};
use crate::source::dir::{self, DirSource};
use crate::source::kube::{self as kube_source, KubeConfig};
use crate::translate::Options;

/// Where config comes from: exactly one source.
#[derive(Debug, Clone)]
pub enum Source {
    /// A folder of manifests, hot-reloaded.
    Dir(PathBuf),
    /// The Kubernetes API.
    Kube(KubeConfig),
}

/// How to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Folder of manifests ([`start`]); [`start_from`] takes the source separately and ignores it.
    pub dir: PathBuf,
    pub ads_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub translate: Options,
    pub debounce: Debounce,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("binding {what} on {addr}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("reading config folder {dir}")]
    ReadDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("watching config folder {dir}")]
    Watch {
        dir: PathBuf,
        #[source]
        source: notify::Error,
    },
    #[error("connecting to the Kubernetes API (kubeconfig or in-cluster service account)")]
    KubeClient {
        #[source]
        source: kube::Error,
    },
}

/// A running xds-server. Dropping it stops every task.
pub struct Running {
    pub ads_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub published: Arc<Published>,
    pub proxies: ProxyRegistry,
    pub store: Arc<ConfigStore>,
    tasks: Vec<JoinHandle<()>>,
    /// The Lease this replica may hold, released on [`Running::shutdown`].
    lease: Option<(kube::Client, kube_source::LeaseConfig)>,
    _watcher: Option<notify::RecommendedWatcher>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Running {
    /// Stops serving; a leader gives its Lease up so another replica leads at once.
    pub async fn shutdown(mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
            // Wait for the abort, so the election cannot renew after the release.
            let _ = task.await;
        }
        if let Some((client, lease)) = self.lease.take() {
            match tokio::time::timeout(
                Duration::from_secs(5),
                kube_source::lease::release(client, &lease),
            )
            .await
            {
                Ok(Ok(_)) => {}
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, "leader election: lease not released")
                }
                Err(_) => tracing::warn!("leader election: lease release timed out"),
            }
        }
    }

    /// Waits until the first translation is published.
    pub async fn ready(&self) {
        let mut ready = self.published.ready.subscribe();
        let _ = ready.wait_for(|r| *r).await;
    }
}

/// Starts with the folder `config.dir` as the source.
pub async fn start(config: Config) -> Result<Running, Error> {
    start_from(Source::Dir(config.dir.clone()), config).await
}

/// Starts with `source` as the source of config.
pub async fn start_from(source: Source, config: Config) -> Result<Running, Error> {
    let ads_listener = TcpListener::bind(config.ads_addr)
        .await
        .map_err(|source| Error::Bind {
            what: "ADS gRPC",
            addr: config.ads_addr,
            source,
        })?;
    let admin_listener = TcpListener::bind(config.admin_addr)
        .await
        .map_err(|source| Error::Bind {
            what: "admin HTTP",
            addr: config.admin_addr,
            source,
        })?;
    let ads_addr = local_addr(&ads_listener, config.ads_addr);
    let admin_addr = local_addr(&admin_listener, config.admin_addr);

    let mut registry = Registry::default();
    let metrics = Arc::new(Metrics::new(&mut registry));
    let proxies = ProxyRegistry::new();
    proxies.register_metrics(&mut registry);
    let published = Published::new();
    let store = ConfigStore::new();

    let mut tasks = Vec::new();
    let mut lease = None;
    let watcher = match &source {
        Source::Dir(dir) => {
            let (watcher, reload) = start_dir(dir, &store)?;
            tasks.push(reload);
            tasks.push(tokio::spawn(pipeline::run(
                store.clone(),
                config.translate.clone(),
                config.debounce,
                published.clone(),
                metrics,
            )));
            Some(watcher)
        }
        Source::Kube(kube_config) => {
            kube_source::install_crypto_provider();
            let client = match &kube_config.client {
                Some(client) => client.clone(),
                None => kube::Client::try_default()
                    .await
                    .map_err(|source| Error::KubeClient { source })?,
            };
            let source =
                kube_source::spawn(client.clone(), kube_config.namespace.clone(), store.clone());
            // Without leader election every replica writes (the same) status.
            let leader = kube_config.leader_election.clone().map(|config| {
                lease = Some((client.clone(), config.clone()));
                let (task, leader) = kube_source::spawn_leader_election(client.clone(), config);
                tasks.push(task);
                leader
            });
            tasks.push(kube_source::spawn_status_writer(
                client,
                published.clone(),
                leader,
            ));
            tasks.extend(source.tasks);
            let mut synced = source.synced;
            let (store, options, debounce, out) = (
                store.clone(),
                config.translate.clone(),
                config.debounce,
                published.clone(),
            );
            // The first translation waits for every kind's initial list: one complete push.
            tasks.push(tokio::spawn(async move {
                if synced.wait_for(|s| *s).await.is_ok() {
                    pipeline::run(store, options, debounce, out, metrics).await;
                }
            }));
            None
        }
    };
    let ads = AdsServer::new(published.snapshots.subscribe(), proxies.clone()).into_service();
    tasks.push(tokio::spawn(async move {
        let incoming = nodelay(ads_listener);
        let served = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .add_service(ads)
            .serve_with_incoming(incoming)
            .await;
        if let Err(err) = served {
            tracing::error!(error = %err, "ADS server stopped");
        }
    }));
    let admin = admin::router(AdminState {
        published: published.clone(),
        proxies: proxies.clone(),
        metrics: Arc::new(registry),
    });
    tasks.push(tokio::spawn(async move {
        if let Err(err) = axum::serve(admin_listener, admin).await {
            tracing::error!(error = %err, "admin server stopped");
        }
    }));
    tracing::info!(%ads_addr, %admin_addr, ?source, "xds-server started");
    Ok(Running {
        ads_addr,
        admin_addr,
        published,
        proxies,
        store,
        tasks,
        lease,
        _watcher: watcher,
    })
}

/// Loads the folder once (before serving, so the first Envoy gets its config) and starts
/// the task that reloads it on change.
fn start_dir(
    dir: &std::path::Path,
    store: &Arc<ConfigStore>,
) -> Result<(notify::RecommendedWatcher, JoinHandle<()>), Error> {
    let mut source = DirSource::new(dir);
    let view = source.load().map_err(|source| Error::ReadDir {
        dir: dir.to_path_buf(),
        source,
    })?;
    store.update_quietly(|index| {
        let errors = index.set_source_errors(view.errors);
        index.sync(view.objects) | errors
    });
    let (watcher, mut events) = dir::watch(dir).map_err(|source| Error::Watch {
        dir: dir.to_path_buf(),
        source,
    })?;
    let reload_store = store.clone();
    let reload = tokio::spawn(async move {
        while events.recv().await.is_some() {
            // Coalesce the several events of one save.
            dir::settle(
                &mut events,
                Duration::from_millis(10),
                Duration::from_millis(100),
            )
            .await;
            match source.load() {
                Ok(view) => reload_store.update(|index| {
                    let errors = index.set_source_errors(view.errors);
                    index.sync(view.objects) | errors
                }),
                Err(err) => {
                    tracing::error!(dir = %source.root().display(), error = %err, "reading config folder; keeping the last config")
                }
            }
        }
    });
    Ok((watcher, reload))
}

fn local_addr(listener: &TcpListener, fallback: SocketAddr) -> SocketAddr {
    listener.local_addr().unwrap_or(fallback)
}

/// Loads a folder once and returns each object's conditions (for `infergate validate`).
pub fn validate(
    dir: &std::path::Path,
    options: &Options,
) -> std::io::Result<crate::status::StatusReport> {
    let view = DirSource::new(dir).load()?;
    let mut index = crate::index::Index::new();
    index.set_source_errors(view.errors);
    index.sync(view.objects);
    Ok(crate::translate::translate(&index.snapshot(), options).status)
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
