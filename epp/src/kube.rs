//! The pool from Kubernetes: the picker watches its InferencePool (`--pool-name` in
//! `--pool-namespace`) and the Pods of that namespace, and publishes the pool's target ports
//! with the Pods its selector matches that are ready and have an IP ([`PoolState`]).
//!
//! - Nothing is published until both the pool and the Pods were listed once, so the picker is
//!   not ready before its first complete sync (readiness needs endpoints).
//! - A watch error or `410 Gone` relists (kube-rs); a relist replaces its side only once
//!   complete, so the endpoints do not flicker.
//! - Pods are watched namespace-wide and matched here, so a selector change needs no new
//!   watch. RBAC: `get`/`list`/`watch` on `inferencepools` and `pods` in the pool's namespace.
//! - A missing pool publishes no endpoints (the picker answers 503 until it exists).

use std::collections::BTreeMap;
use std::net::IpAddr;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod as KubePod;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::datastore::{Pod, PoolState};

/// The InferencePool resource (`inference.networking.k8s.io/v1`).
pub fn pool_resource() -> ApiResource {
    ApiResource {
        group: "inference.networking.k8s.io".into(),
        version: "v1".into(),
        api_version: "inference.networking.k8s.io/v1".into(),
        kind: "InferencePool".into(),
        plural: "inferencepools".into(),
    }
}

/// Installs rustls' ring crypto provider unless one is installed (kube's HTTPS needs one).
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Err only means another thread installed one in between, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// Starts watching; the receiver holds `None` until the first complete sync.
pub fn spawn(
    client: kube::Client,
    name: &str,
    namespace: &str,
) -> (JoinHandle<()>, watch::Receiver<Option<PoolState>>) {
    let (tx, rx) = watch::channel(None);
    let pools: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &pool_resource());
    let pods: Api<KubePod> = Api::namespaced(client, namespace);
    let name = name.to_string();
    let task = tokio::spawn(async move {
        let pool_config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let mut pool_events = watcher::watcher(pools, pool_config)
            .default_backoff()
            .boxed();
        let mut pod_events = watcher::watcher(pods, watcher::Config::default())
            .default_backoff()
            .boxed();
        let mut state = Sync::new(name);
        loop {
            let changed = tokio::select! {
                Some(event) = pool_events.next() => match event {
                    Ok(event) => state.pool_event(event),
                    Err(err) => { tracing::warn!(error = %err, "watching the InferencePool"); false }
                },
                Some(event) = pod_events.next() => match event {
                    Ok(event) => state.pod_event(event),
                    Err(err) => { tracing::warn!(error = %err, "watching Pods"); false }
                },
                else => return,
            };
            if changed && let Some(published) = state.published() {
                tx.send_if_modified(|current| {
                    let new = Some(published);
                    (*current != new).then(|| *current = new).is_some()
                });
            }
        }
    });
    (task, rx)
}

/// The pool's selector and ports.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PoolSpec {
    match_labels: BTreeMap<String, String>,
    target_ports: Vec<u16>,
}

/// What the watches have delivered (pure: tested without I/O).
struct Sync {
    name: String,
    pool: Option<PoolSpec>,
    pool_listed: bool,
    pool_buffer: Option<Option<PoolSpec>>,
    pods: BTreeMap<String, KubePod>,
    pods_listed: bool,
    pod_buffer: Option<BTreeMap<String, KubePod>>,
}

impl Sync {
    fn new(name: String) -> Sync {
        Sync {
            name,
            pool: None,
            pool_listed: false,
            pool_buffer: None,
            pods: BTreeMap::new(),
            pods_listed: false,
            pod_buffer: None,
        }
    }

    /// Applies a pool event; true when the state may have changed.
    fn pool_event(&mut self, event: Event<DynamicObject>) -> bool {
        let ours = |o: &DynamicObject| o.metadata.name.as_deref() == Some(self.name.as_str());
        match event {
            Event::Init => self.pool_buffer = Some(None),
            Event::InitApply(object) if ours(&object) => {
                self.pool_buffer = Some(pool_spec(&object.data));
            }
            Event::InitDone => {
                self.pool = self.pool_buffer.take().flatten();
                self.pool_listed = true;
                return true;
            }
            Event::Apply(object) if ours(&object) => {
                self.pool = pool_spec(&object.data);
                return true;
            }
            Event::Delete(object) if ours(&object) => {
                self.pool = None;
                return true;
            }
            _ => {}
        }
        false
    }

    fn pod_event(&mut self, event: Event<KubePod>) -> bool {
        let key = |p: &KubePod| p.metadata.name.clone().unwrap_or_default();
        match event {
            Event::Init => self.pod_buffer = Some(BTreeMap::new()),
            Event::InitApply(pod) => {
                self.pod_buffer
                    .get_or_insert_with(BTreeMap::new)
                    .insert(key(&pod), pod);
            }
            Event::InitDone => {
                self.pods = self.pod_buffer.take().unwrap_or_default();
                self.pods_listed = true;
                return true;
            }
            Event::Apply(pod) => {
                self.pods.insert(key(&pod), pod);
                return true;
            }
            Event::Delete(pod) => {
                self.pods.remove(&key(&pod));
                return true;
            }
        }
        false
    }

    /// The pool as published: `None` before both lists are complete.
    fn published(&self) -> Option<PoolState> {
        if !(self.pool_listed && self.pods_listed) {
            return None;
        }
        let Some(pool) = &self.pool else {
            return Some(PoolState::default());
        };
        let pods = self
            .pods
            .values()
            .filter(|pod| selected(pod, &pool.match_labels))
            .filter_map(ready_pod)
            .collect();
        Some(PoolState {
            target_ports: pool.target_ports.clone(),
            pods,
        })
    }
}

/// `spec.selector.matchLabels` and `spec.targetPorts[].number`; `None` when unusable.
fn pool_spec(data: &Value) -> Option<PoolSpec> {
    let spec = data.get("spec")?;
    let match_labels: BTreeMap<String, String> = spec
        .pointer("/selector/matchLabels")?
        .as_object()?
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect();
    let target_ports: Vec<u16> = spec
        .get("targetPorts")?
        .as_array()?
        .iter()
        .filter_map(|p| u16::try_from(p.get("number")?.as_u64()?).ok())
        .collect();
    // An empty selector would select every Pod of the namespace: never what a pool means.
    if match_labels.is_empty() || target_ports.is_empty() {
        tracing::warn!("InferencePool without matchLabels or targetPorts: no endpoints");
        return None;
    }
    Some(PoolSpec {
        match_labels,
        target_ports,
    })
}

fn selected(pod: &KubePod, match_labels: &BTreeMap<String, String>) -> bool {
    let labels = pod.metadata.labels.as_ref();
    match_labels
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// A Pod that is not being deleted, has an IP and whose `Ready` condition is `True`.
fn ready_pod(pod: &KubePod) -> Option<Pod> {
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let status = pod.status.as_ref()?;
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    if !ready {
        return None;
    }
    let address: IpAddr = status.pod_ip.as_deref()?.parse().ok()?;
    Some(Pod {
        name: pod.metadata.name.clone()?,
        address,
        labels: pod
            .metadata
            .labels
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pool(name: &str, app: &str, port: u16) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "inference.networking.k8s.io/v1", "kind": "InferencePool",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": app}},
                     "targetPorts": [{"number": port}],
                     "endpointPickerRef": {"name": "epp", "port": {"number": 9002}}},
        }))
        .expect("pool")
    }

    fn pod(name: &str, app: &str, ip: &str, ready: bool) -> KubePod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "labels": {"app": app}},
            "status": {"podIP": ip,
                       "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        }))
        .expect("pod")
    }

    fn names(state: &PoolState) -> Vec<&str> {
        state.pods.iter().map(|p| p.name.as_str()).collect()
    }

    #[test]
    fn nothing_is_published_before_both_lists_then_ready_selected_pods() {
        let mut sync = Sync::new("mistral".into());
        sync.pod_event(Event::Init);
        sync.pod_event(Event::InitApply(pod("a", "mistral", "10.0.0.1", true)));
        sync.pod_event(Event::InitApply(pod("b", "mistral", "10.0.0.2", false)));
        sync.pod_event(Event::InitApply(pod("c", "other", "10.0.0.3", true)));
        sync.pod_event(Event::InitDone);
        assert_eq!(sync.published(), None, "the pool is not listed yet");
        sync.pool_event(Event::Init);
        sync.pool_event(Event::InitApply(pool("other-pool", "other", 1)));
        sync.pool_event(Event::InitApply(pool("mistral", "mistral", 8000)));
        assert_eq!(sync.published(), None, "the pool list is not complete");
        sync.pool_event(Event::InitDone);
        let state = sync.published().expect("synced");
        assert_eq!(state.target_ports, vec![8000]);
        assert_eq!(names(&state), vec!["a"]);

        sync.pod_event(Event::Apply(pod("b", "mistral", "10.0.0.2", true)));
        assert_eq!(names(&sync.published().expect("synced")), vec!["a", "b"]);
        sync.pool_event(Event::Apply(pool("mistral", "other", 9000)));
        let state = sync.published().expect("synced");
        assert_eq!(names(&state), vec!["c"]);
        assert_eq!(state.target_ports, vec![9000]);
        sync.pool_event(Event::Delete(pool("mistral", "other", 9000)));
        assert_eq!(sync.published(), Some(PoolState::default()));
    }

    #[test]
    fn a_relist_replaces_the_pods_only_once_complete() {
        let mut sync = Sync::new("mistral".into());
        sync.pool_event(Event::Init);
        sync.pool_event(Event::InitApply(pool("mistral", "mistral", 8000)));
        sync.pool_event(Event::InitDone);
        sync.pod_event(Event::Init);
        sync.pod_event(Event::InitApply(pod("a", "mistral", "10.0.0.1", true)));
        sync.pod_event(Event::InitDone);
        sync.pod_event(Event::Init);
        sync.pod_event(Event::InitApply(pod("b", "mistral", "10.0.0.2", true)));
        assert_eq!(names(&sync.published().expect("synced")), vec!["a"]);
        sync.pod_event(Event::InitDone);
        assert_eq!(names(&sync.published().expect("synced")), vec!["b"]);
    }
}
