//! The loop from config changes to published snapshots: sources update the [`ConfigStore`];
//! the translator task debounces, translates, publishes to ADS, and records status.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use infergate_ads::SnapshotSet;
use tokio::sync::{Notify, watch};

use crate::index::Index;
use crate::metrics::Metrics;
use crate::publish::Publisher;
use crate::status::StatusReport;
use crate::translate::{self, Options, Translation};

/// The index plus a wake-up for the translator. Sources (directory, later Kubernetes) call
/// [`ConfigStore::update`].
pub struct ConfigStore {
    index: Mutex<Index>,
    changed: Notify,
}

impl ConfigStore {
    pub fn new() -> Arc<Self> {
        Arc::new(ConfigStore {
            index: Mutex::new(Index::new()),
            changed: Notify::new(),
        })
    }

    /// Runs `f` on the index; wakes the translator if it reports a change.
    pub fn update(&self, f: impl FnOnce(&mut Index) -> bool) {
        let changed = {
            // A poisoned lock means a panic mid-update elsewhere; the index is still consistent
            // per call (each apply is whole), so keep going.
            let mut index = self.index.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut index)
        };
        if changed {
            self.changed.notify_one();
        }
    }

    /// Like [`ConfigStore::update`] without waking the translator: for the load that happens
    /// before it starts (it translates once on start anyway; a stored wake-up would make it
    /// translate everything a second time).
    pub fn update_quietly(&self, f: impl FnOnce(&mut Index) -> bool) {
        let mut index = self.index.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut index);
    }

    /// A snapshot of the index as it is now.
    pub fn snapshot(&self) -> crate::index::IndexSnapshot {
        self.index
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .snapshot()
    }
}

/// Debounce of translations: the first change after a quiet period goes out at once; changes
/// arriving within `quiet` of the last push are coalesced until `quiet` passes without one, or
/// `max` since the first.
#[derive(Debug, Clone, Copy)]
pub struct Debounce {
    pub quiet: Duration,
    pub max: Duration,
}

impl Default for Debounce {
    fn default() -> Self {
        Debounce {
            quiet: Duration::from_millis(100),
            max: Duration::from_secs(1),
        }
    }
}

/// What the admin server and the CLI read.
pub struct Published {
    pub status: ArcSwap<StatusReport>,
    pub translation: ArcSwap<Translation>,
    pub snapshots: watch::Sender<Arc<SnapshotSet>>,
    /// Set after the first translation.
    pub ready: watch::Sender<bool>,
    /// Bumped after each translation's status is stored (the status writer waits on it).
    pub status_version: watch::Sender<u64>,
}

impl Published {
    pub fn new() -> Arc<Self> {
        Arc::new(Published {
            status: ArcSwap::from_pointee(StatusReport::default()),
            translation: ArcSwap::from_pointee(Translation::default()),
            snapshots: watch::channel(Arc::new(SnapshotSet::default())).0,
            ready: watch::channel(false).0,
            status_version: watch::channel(0).0,
        })
    }
}

/// Translates and publishes once.
pub fn translate_once(
    store: &ConfigStore,
    options: &Options,
    publisher: &mut Publisher,
    out: &Published,
    metrics: &Metrics,
) {
    let started = Instant::now();
    let snapshot = store.snapshot();
    let translation = translate::translate(&snapshot, options);
    let set = publisher.publish(&translation);
    metrics
        .translate_seconds
        .observe(started.elapsed().as_secs_f64());
    metrics
        .objects
        .set(i64::try_from(snapshot.objects.len()).unwrap_or(i64::MAX));
    let errors = translation
        .status
        .objects
        .values()
        .filter(|s| s.has_errors())
        .count()
        + translation.status.source_errors.len();
    metrics
        .objects_with_errors
        .set(i64::try_from(errors).unwrap_or(i64::MAX));
    // Push first; dropping the previous translation (large configs: tens of ms) comes after.
    out.snapshots.send_replace(Arc::new(set));
    out.status.store(Arc::new(translation.status.clone()));
    out.translation.store(Arc::new(translation));
    out.status_version.send_modify(|v| *v += 1);
    out.ready.send_replace(true);
}

/// The translator task: runs until the process ends.
pub async fn run(
    store: Arc<ConfigStore>,
    options: Options,
    debounce: Debounce,
    out: Arc<Published>,
    metrics: Arc<Metrics>,
) {
    let mut publisher = Publisher::new();
    translate_once(&store, &options, &mut publisher, &out, &metrics);
    let mut last_push = Instant::now();
    loop {
        store.changed.notified().await;
        if last_push.elapsed() < debounce.quiet {
            let deadline = Instant::now() + debounce.max;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(debounce.quiet.min(left), store.changed.notified()).await
                {
                    Ok(()) if !left.is_zero() => continue,
                    _ => break,
                }
            }
        }
        translate_once(&store, &options, &mut publisher, &out, &metrics);
        last_push = Instant::now();
    }
}
