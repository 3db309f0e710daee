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
//! - Secrets: only those a BackendSecurityPolicy references are read, each by its own watcher
//!   (see [`secrets`]); the initial batch waits for them too. RBAC must allow `list`/`watch`
//!   on Secrets (a field selector on the name narrows what is returned, not what is allowed).
//! - Conditions are written back to `status` with server-side apply (see [`status_body`]), by
//!   the elected leader only when [`KubeConfig::leader_election`] is set (see [`lease`]).
//! - `${VAR}` references are a directory-source feature: Kubernetes objects are taken as they are.

mod batch;
mod convert;
pub mod lease;
mod resources;
mod secrets;
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
    for kind in listed_kinds() {
        let api = resources::api(client.clone(), kind, namespace.as_deref());
        tasks.push(tokio::spawn(watch::run(
            api,
            watch::Scope::Kind(kind),
            tx.clone(),
        )));
    }
    let secrets = secrets::SecretWatchers::new(client, tx);
    let (synced_tx, synced) = signal::channel(false);
    tasks.push(tokio::spawn(apply_changes(store, rx, secrets, synced_tx)));
    KubeSource { tasks, synced }
}

/// The kinds watched whole: all but Secrets, which are watched one by one.
fn listed_kinds() -> impl Iterator<Item = crate::object::Kind> {
    WATCHED
        .iter()
        .copied()
        .filter(|&k| k != crate::object::Kind::Secret)
}

/// Applies the initial lists, and then the referenced Secrets, as one update; then each
/// burst of changes as one update, following the Secrets the config references as it goes.
async fn apply_changes(
    store: Arc<ConfigStore>,
    mut rx: mpsc::UnboundedReceiver<Change>,
    mut secrets: secrets::SecretWatchers,
    synced: signal::Sender<bool>,
) {
    let kinds: Vec<_> = listed_kinds().collect();
    let mut initial = InitialBatch::new(&kinds);
    let batch = loop {
        let Some(change) = rx.recv().await else {
            return;
        };
        if let Some(batch) = initial.push(change) {
            break batch;
        }
    };
    let objects = batch.len();
    // The translator is not running yet: nothing is pushed until the Secrets are in too.
    store.update_quietly(|index| apply_all(index, &secrets, batch));
    let mut waiting: std::collections::BTreeSet<_> = follow_secrets(&store, &mut secrets)
        .started
        .into_iter()
        .collect();
    while !waiting.is_empty() {
        let Some(change) = rx.recv().await else {
            return;
        };
        if let Change::ListedOne { key, .. } = &change {
            waiting.remove(key);
        }
        store.update_quietly(|index| apply_all(index, &secrets, [change]));
        waiting.extend(follow_secrets(&store, &mut secrets).started);
    }
    tracing::info!(
        objects,
        secrets = store.snapshot().secrets().count(),
        "kubernetes: initial lists applied"
    );
    synced.send_replace(true);
    let mut burst = Vec::new();
    while rx.recv_many(&mut burst, 1024).await > 0 {
        store.update(|index| {
            let mut changed = apply_all(index, &secrets, burst.drain(..));
            let followed = secrets.sync(&index.snapshot().referenced_secrets());
            for key in followed.stopped {
                changed |= index.delete(&key);
            }
            changed
        });
    }
}

/// Starts and stops Secret watchers for what the index references now; drops the Secrets
/// no longer referenced.
fn follow_secrets(store: &ConfigStore, secrets: &mut secrets::SecretWatchers) -> secrets::Synced {
    let followed = secrets.sync(&store.snapshot().referenced_secrets());
    if !followed.stopped.is_empty() {
        store.update_quietly(|index| {
            followed
                .stopped
                .iter()
                .fold(false, |changed, key| index.delete(key) | changed)
        });
    }
    followed
}

fn apply_all(
    index: &mut crate::index::Index,
    secrets: &secrets::SecretWatchers,
    changes: impl IntoIterator<Item = Change>,
) -> bool {
    changes
        .into_iter()
        // A Secret whose watcher was stopped may still have an event queued.
        .filter(|change| {
            change
                .key()
                .is_none_or(|k| k.kind != crate::object::Kind::Secret || secrets.watches(k))
        })
        .fold(false, |changed, change| {
            apply_change(index, change) | changed
        })
}
