//! What every connected proxy has been sent and has accepted, shared with `/status` and
//! `/metrics`, and awaited by tests and benchmarks ("wait until the proxies ACK").

mod metrics;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;
use tokio::sync::watch;

use metrics::Metrics;
pub(crate) use metrics::TypeLabel;

/// Which ADS method a proxy uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamKind {
    /// `StreamAggregatedResources` (state of the world).
    Sotw,
    /// `DeltaAggregatedResources` (incremental).
    Delta,
}

/// One connected proxy (one ADS stream).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProxyStatus {
    /// Unique per stream for the life of the process.
    pub stream_id: u64,
    pub node_id: String,
    pub node_cluster: String,
    pub stream: StreamKind,
    pub connected_at: Timestamp,
    /// By type URL, for every type the proxy has subscribed to.
    pub types: BTreeMap<String, TypeStatus>,
}

/// What one proxy has of one resource type.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TypeStatus {
    /// The per-type version of the last response sent (for Delta, the version the stream was
    /// brought up to, even when that needed no response).
    pub sent_version: Option<String>,
    /// The last version the proxy accepted.
    pub acked_version: Option<String>,
    /// The last rejection, kept after later ACKs so that `/status` shows what went wrong.
    pub last_nack: Option<Nack>,
}

/// A rejected response.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Nack {
    pub version: String,
    /// Envoy's `error_detail.message`.
    pub error_detail: String,
    pub at: Timestamp,
}

/// Shared state of all ADS streams; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct ProxyRegistry {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    proxies: Mutex<BTreeMap<u64, ProxyStatus>>,
    /// Bumped on every change, so waiters wake up and re-check.
    changes: watch::Sender<u64>,
    next_stream_id: AtomicU64,
    metrics: Metrics,
    /// Unknown type URLs already logged, so each is logged once per process.
    logged_type_urls: Mutex<BTreeSet<String>>,
}

/// At most this many distinct unknown type URLs are remembered (and logged).
const MAX_LOGGED_TYPE_URLS: usize = 64;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the maps half-updated in a way that matters for
    // status reporting, so keep serving rather than propagate the poison.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ProxyRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every connected proxy, oldest stream first.
    pub fn snapshot(&self) -> Vec<ProxyStatus> {
        lock(&self.inner.proxies).values().cloned().collect()
    }

    /// Registers `xds_pushes_total{type}`, `xds_nacks_total{type}`, `xds_connected_proxies` and
    /// `xds_push_ack_seconds{type}`.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        self.inner.metrics.register(registry);
    }

    /// Resolves once `done` holds for the connected proxies; re-checked after every change.
    /// Wrap it in `tokio::time::timeout`.
    pub async fn wait_for(&self, mut done: impl FnMut(&[ProxyStatus]) -> bool) {
        let mut changes = self.inner.changes.subscribe();
        loop {
            // `subscribe` marks the current value seen, so a change between this check and
            // `changed()` is not missed.
            if done(&self.snapshot()) {
                return;
            }
            if changes.changed().await.is_err() {
                // Unreachable while `self` holds the sender; don't spin if it ever happens.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Resolves once every connected proxy that subscribes to `type_url` has ACKed `version` (and
    /// at once if none does). Use [`ProxyRegistry::wait_for`] to also require that some proxy is
    /// connected.
    pub async fn wait_acked(&self, type_url: &str, version: &str) {
        self.wait_for(|proxies| all_acked(proxies, type_url, version))
            .await
    }

    pub(crate) fn connect(&self, kind: StreamKind) -> StreamEntry {
        let stream_id = self.inner.next_stream_id.fetch_add(1, Ordering::Relaxed);
        let status = ProxyStatus {
            stream_id,
            node_id: String::new(),
            node_cluster: String::new(),
            stream: kind,
            connected_at: Timestamp::now(),
            types: BTreeMap::new(),
        };
        lock(&self.inner.proxies).insert(stream_id, status);
        self.inner.metrics.connected.inc();
        self.notify();
        StreamEntry {
            stream_id,
            registry: self.clone(),
        }
    }

    /// Whether an unknown type URL should be logged now: true the first time it is seen.
    pub(crate) fn first_sighting(&self, type_url: &str) -> bool {
        let mut logged = lock(&self.inner.logged_type_urls);
        if logged.contains(type_url) || logged.len() >= MAX_LOGGED_TYPE_URLS {
            return false;
        }
        logged.insert(type_url.to_owned())
    }

    fn notify(&self) {
        self.inner
            .changes
            .send_modify(|generation| *generation += 1);
    }
}

/// Whether every proxy subscribed to `type_url` has ACKed `version`.
pub fn all_acked(proxies: &[ProxyStatus], type_url: &str, version: &str) -> bool {
    proxies
        .iter()
        .filter_map(|proxy| proxy.types.get(type_url))
        .all(|status| status.acked_version.as_deref() == Some(version))
}

/// A stream's row in the registry; removed when dropped.
#[derive(Debug)]
pub(crate) struct StreamEntry {
    stream_id: u64,
    registry: ProxyRegistry,
}

impl StreamEntry {
    pub(crate) fn id(&self) -> u64 {
        self.stream_id
    }

    fn update(&self, f: impl FnOnce(&mut ProxyStatus)) {
        if let Some(status) = lock(&self.registry.inner.proxies).get_mut(&self.stream_id) {
            f(status);
        }
        self.registry.notify();
    }

    fn update_type(&self, type_url: &str, f: impl FnOnce(&mut TypeStatus)) {
        self.update(|status| f(status.types.entry(type_url.to_owned()).or_default()));
    }

    pub(crate) fn set_node(&self, node_id: &str, node_cluster: &str) {
        self.update(|status| {
            status.node_id = node_id.to_owned();
            status.node_cluster = node_cluster.to_owned();
        });
    }

    /// The proxy subscribed to a type (before anything was sent).
    pub(crate) fn subscribed(&self, type_url: &str) {
        self.update_type(type_url, |_| {});
    }

    pub(crate) fn sent(&self, type_url: &str, version: &str) {
        self.registry
            .inner
            .metrics
            .pushes
            .get_or_create(&TypeLabel::new(type_url))
            .inc();
        self.update_type(type_url, |t| t.sent_version = Some(version.to_owned()));
    }

    /// Delta only: the proxy already has everything of `version` it subscribes to, so nothing
    /// was sent; it counts as sent and, with nothing in flight, as ACKed.
    pub(crate) fn up_to_date(&self, type_url: &str, version: &str, in_flight: bool) {
        self.update_type(type_url, |t| {
            t.sent_version = Some(version.to_owned());
            if !in_flight {
                t.acked_version = Some(version.to_owned());
            }
        });
    }

    pub(crate) fn acked(&self, type_url: &str, version: &str, latency: Duration) {
        self.registry
            .inner
            .metrics
            .push_ack_seconds
            .get_or_create(&TypeLabel::new(type_url))
            .observe(latency.as_secs_f64());
        self.update_type(type_url, |t| t.acked_version = Some(version.to_owned()));
    }

    pub(crate) fn nacked(&self, type_url: &str, version: &str, error_detail: &str) {
        self.registry
            .inner
            .metrics
            .nacks
            .get_or_create(&TypeLabel::new(type_url))
            .inc();
        self.update_type(type_url, |t| {
            t.last_nack = Some(Nack {
                version: version.to_owned(),
                error_detail: error_detail.to_owned(),
                at: Timestamp::now(),
            });
        });
    }

    pub(crate) fn registry(&self) -> &ProxyRegistry {
        &self.registry
    }
}

impl Drop for StreamEntry {
    fn drop(&mut self) {
        lock(&self.registry.inner.proxies).remove(&self.stream_id);
        self.registry.inner.metrics.connected.dec();
        self.registry.notify();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;

    #[test]
    fn a_stream_is_listed_while_connected_and_counted_in_metrics() {
        let registry = ProxyRegistry::new();
        let mut prometheus = prometheus_client::registry::Registry::default();
        registry.register_metrics(&mut prometheus);

        let entry = registry.connect(StreamKind::Delta);
        entry.set_node("envoy-1", "default/gw");
        entry.sent(crate::type_url::CLUSTER, "v1");
        entry.nacked(crate::type_url::CLUSTER, "v1", "bad cluster");
        let proxies = registry.snapshot();
        assert_eq!(proxies.len(), 1);
        assert_eq!(proxies[0].node_id, "envoy-1");
        let cds = &proxies[0].types[crate::type_url::CLUSTER];
        assert_eq!(cds.sent_version.as_deref(), Some("v1"));
        assert_eq!(cds.acked_version, None);
        assert_eq!(
            cds.last_nack.as_ref().map(|n| n.error_detail.as_str()),
            Some("bad cluster")
        );
        let json = serde_json::to_value(&proxies[0]).unwrap_or_default();
        assert_eq!(json["stream"], "delta");

        let mut text = String::new();
        assert!(encode(&mut text, &prometheus).is_ok());
        assert!(text.contains("xds_connected_proxies 1"), "{text}");
        assert!(text.contains(r#"xds_pushes_total{type="cds"} 1"#), "{text}");
        assert!(text.contains(r#"xds_nacks_total{type="cds"} 1"#), "{text}");

        drop(entry);
        assert!(registry.snapshot().is_empty());
        text.clear();
        assert!(encode(&mut text, &prometheus).is_ok());
        assert!(text.contains("xds_connected_proxies 0"), "{text}");
    }

    #[tokio::test]
    async fn wait_acked_resolves_when_every_subscribed_proxy_acks() {
        let registry = ProxyRegistry::new();
        let a = registry.connect(StreamKind::Sotw);
        let b = registry.connect(StreamKind::Sotw);
        a.subscribed(crate::type_url::CLUSTER);
        b.subscribed(crate::type_url::CLUSTER);
        let waiter = tokio::spawn({
            let registry = registry.clone();
            async move { registry.wait_acked(crate::type_url::CLUSTER, "v2").await }
        });
        a.acked(crate::type_url::CLUSTER, "v2", Duration::from_millis(1));
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        b.acked(crate::type_url::CLUSTER, "v2", Duration::from_millis(1));
        let done = tokio::time::timeout(Duration::from_secs(5), waiter).await;
        assert!(matches!(done, Ok(Ok(()))));
    }
}
