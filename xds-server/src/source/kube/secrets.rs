//! Secrets are watched one by one, only those the config references: a watcher per
//! referenced Secret (a field selector on its name), started when a BackendSecurityPolicy
//! names it and stopped, with the Secret dropped from the index, when none does any more. The
//! gateway never holds the data of Secrets it does not use.

use std::collections::{BTreeMap, BTreeSet};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Change;
use super::resources;
use super::watch::{self, Scope};
use crate::object::{Kind, ObjectKey};

/// The running per-Secret watchers.
pub struct SecretWatchers {
    client: kube::Client,
    tx: mpsc::UnboundedSender<Change>,
    running: BTreeMap<ObjectKey, JoinHandle<()>>,
}

/// What [`SecretWatchers::sync`] changed.
#[derive(Debug, Default)]
pub struct Synced {
    /// Watchers started: their Secrets arrive as [`Change::ListedOne`].
    pub started: Vec<ObjectKey>,
    /// Watchers stopped: their Secrets should leave the index.
    pub stopped: Vec<ObjectKey>,
}

impl SecretWatchers {
    pub fn new(client: kube::Client, tx: mpsc::UnboundedSender<Change>) -> SecretWatchers {
        SecretWatchers {
            client,
            tx,
            running: BTreeMap::new(),
        }
    }

    /// Watches exactly the `wanted` Secrets.
    pub fn sync(&mut self, wanted: &BTreeSet<ObjectKey>) -> Synced {
        let mut out = Synced::default();
        self.running.retain(|key, task| {
            let keep = wanted.contains(key);
            if !keep {
                task.abort();
                out.stopped.push(key.clone());
            }
            keep
        });
        for key in wanted {
            if self.running.contains_key(key) {
                continue;
            }
            let api = resources::api(self.client.clone(), Kind::Secret, Some(&key.namespace));
            let task = tokio::spawn(watch::run(api, Scope::Named(key.clone()), self.tx.clone()));
            self.running.insert(key.clone(), task);
            out.started.push(key.clone());
        }
        if !out.started.is_empty() || !out.stopped.is_empty() {
            tracing::debug!(
                started = out.started.len(),
                stopped = out.stopped.len(),
                watched = self.running.len(),
                "kubernetes: referenced Secrets changed"
            );
        }
        out
    }

    /// Whether a Secret change still concerns a watched Secret (a stopped watcher's last
    /// event may still be queued).
    pub fn watches(&self, key: &ObjectKey) -> bool {
        self.running.contains_key(key)
    }
}

impl Drop for SecretWatchers {
    fn drop(&mut self) {
        for task in self.running.values() {
            task.abort();
        }
    }
}
