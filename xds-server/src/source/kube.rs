//! The Kubernetes source: one kube-rs watcher per kind the index knows, feeding the same
//! [`crate::index::Index`] as the directory source, through the same parse path (unknown
//! fields and bad objects behave exactly as in a folder).
//!
//! - Each watcher turns list/watch events into [`Change`]s: an object applied or deleted, or a
//!   kind listed in full (the initial list, and every relist after a watch error or
//!   `410 Gone`). A relist replaces that kind's objects only once it is complete, so config is
//!   never dropped while the watcher catches up.
//! - The initial lists of every kind are applied as one batch; the translator starts after it,
//!   so a restart pushes one complete config instead of a burst of partial ones.
//! - Secrets: every Secret in the watched namespace(s) is read (the index needs the referenced
//!   ones; a field selector cannot express "referenced"). RBAC must allow `list`/`watch` on
//!   Secrets there.
//! - Conditions are written back to `status` with server-side apply (see [`status_body`]), by
//!   the elected leader only when [`KubeConfig::leader_election`] is set (see [`lease`]).
//! - `${VAR}` references are a directory-source feature: Kubernetes objects are taken as they are.

mod batch;
mod convert;
pub mod lease;
mod resources;
pub mod status_body;
mod status_writer;
mod watch;

use std::sync::Arc;

use tokio::sync::{mpsc, watch as signal};
use tokio::task::JoinHandle;

pub use batch::{Change, InitialBatch, apply_change};
pub use convert::raw_object;
pub use lease::LeaseConfig;
pub use resources::{WATCHED, api_resource};

use crate::pipeline::ConfigStore;

/// Where to watch.
#[derive(Clone)]
pub struct KubeConfig {
    /// The API server client (`None`: inferred from the kubeconfig or the in-cluster account).
    pub client: Option<kube::Client>,
    /// Watch this namespace only (cluster-scoped kinds such as GatewayClass are always watched
    /// cluster-wide); `None` watches every namespace.
    pub namespace: Option<String>,
    /// Elect a leader on this Lease; only the leader writes status. `None`: every replica
    /// writes (one replica).
    pub leader_election: Option<LeaseConfig>,
}

impl std::fmt::Debug for KubeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeConfig")
            .field("client", &self.client.as_ref().map(|_| "…"))
            .field("namespace", &self.namespace)
            .field("leader_election", &self.leader_election)
            .finish()
    }
}

/// The running watchers. Dropping it does not stop them: abort the tasks.
pub struct KubeSource {
    pub tasks: Vec<JoinHandle<()>>,
    /// Turns `true` once every kind's initial list is in the index.
    pub synced: signal::Receiver<bool>,
}

/// Installs rustls' process-wide crypto provider (ring) unless one is installed already.
/// kube's TLS (HTTPS API servers, in-cluster or from a kubeconfig) needs one, and rustls
/// panics at the first handshake if more than one provider is compiled in and none is chosen.
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Err only means another thread installed one in between, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// Starts the leader election task; the receiver turns `true` while this replica leads.
pub fn spawn_leader_election(
    client: kube::Client,
    config: LeaseConfig,
) -> (JoinHandle<()>, signal::Receiver<bool>) {
    let (tx, rx) = signal::channel(false);
    (tokio::spawn(lease::run(client, config, tx)), rx)
}

/// Starts the task that writes conditions back to objects' `status` (while `leader` is true;
/// always without election).
pub fn spawn_status_writer(
    client: kube::Client,
    published: Arc<crate::pipeline::Published>,
    leader: Option<signal::Receiver<bool>>,
) -> JoinHandle<()> {
    tokio::spawn(status_writer::run(client, published, leader))
}

/// Starts a watcher per kind and the task that applies their changes to `store`.
pub fn spawn(
    client: kube::Client,
    namespace: Option<String>,
    store: Arc<ConfigStore>,
) -> KubeSource {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    for &kind in WATCHED {
        let api = resources::api(client.clone(), kind, namespace.as_deref());
        tasks.push(tokio::spawn(watch::run(api, kind, tx.clone())));
    }
    let (synced_tx, synced) = signal::channel(false);
    tasks.push(tokio::spawn(apply_changes(store, rx, synced_tx)));
    KubeSource { tasks, synced }
}

/// Applies the initial lists as one update, then each burst of changes as one update.
async fn apply_changes(
    store: Arc<ConfigStore>,
    mut rx: mpsc::UnboundedReceiver<Change>,
    synced: signal::Sender<bool>,
) {
    let mut initial = InitialBatch::new(WATCHED);
    let batch = loop {
        let Some(change) = rx.recv().await else {
            return;
        };
        if let Some(batch) = initial.push(change) {
            break batch;
        }
    };
    tracing::info!(objects = batch.len(), "kubernetes: initial lists applied");
    store.update_quietly(|index| apply_all(index, batch));
    synced.send_replace(true);
    let mut burst = Vec::new();
    while rx.recv_many(&mut burst, 1024).await > 0 {
        store.update(|index| apply_all(index, burst.drain(..)));
    }
}

fn apply_all(index: &mut crate::index::Index, changes: impl IntoIterator<Item = Change>) -> bool {
    changes.into_iter().fold(false, |changed, change| {
        apply_change(index, change) | changed
    })
}
