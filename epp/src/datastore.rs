//! The pods of one InferencePool, their endpoints (pod IP × each target port) and the last good
//! metrics scraped from each endpoint.
//!
//! Pods come from a [`PodSource`]: a static list (tests, the CLI), or a watch channel that
//! `infergate run` feeds from the control plane's index (Pods matching the pool's selector,
//! ready, with an IP), or the pool and its Pods watched in Kubernetes (`crate::kube`), which
//! also sets the target ports. A source only lists ready pods; every endpoint here is a
//! candidate.
//!
//! The datastore is a plain state machine under a lock, tested without I/O: `set_pods`,
//! `record_scrape`, `candidates`. Every change bumps a version on a watch channel, so the
//! scraper, health and tests wait on conditions rather than sleeping.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::scrape::ScrapedMetrics;

/// The InferencePool this picker serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolInfo {
    pub name: String,
    pub namespace: String,
    /// `spec.targetPorts[].number`: every pod serves on each of them.
    pub target_ports: Vec<u16>,
}

impl Default for PoolInfo {
    fn default() -> Self {
        PoolInfo {
            name: "default".to_owned(),
            namespace: "default".to_owned(),
            target_ports: vec![8000],
        }
    }
}

/// A ready pod of the pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    pub name: String,
    /// `status.podIP`.
    pub address: IpAddr,
    pub labels: BTreeMap<String, String>,
}

impl Pod {
    pub fn new(name: impl Into<String>, address: IpAddr) -> Self {
        Pod {
            name: name.into(),
            address,
            labels: BTreeMap::new(),
        }
    }
}

/// Where the pool's pods come from.
#[derive(Debug)]
pub enum PodSource {
    /// A fixed list, set once at start.
    Static(Vec<Pod>),
    /// The current list, replaced whenever the sender sends (the control plane's index).
    Watch(watch::Receiver<Vec<Pod>>),
    /// The pool's target ports and pods as Kubernetes has them (`crate::kube`); `None` until
    /// the first complete list of both.
    Pool(watch::Receiver<Option<PoolState>>),
}

/// The InferencePool's target ports and its selected ready pods.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolState {
    pub target_ports: Vec<u16>,
    pub pods: Vec<Pod>,
}

impl Default for PodSource {
    fn default() -> Self {
        PodSource::Static(Vec::new())
    }
}

/// What the scheduler reads about an endpoint. Gauges are the last good values scraped;
/// adapters come from the newest `vllm:lora_requests_info` series.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EndpointMetrics {
    /// `vllm:num_requests_waiting`.
    pub waiting: u64,
    /// `vllm:num_requests_running`.
    pub running: u64,
    /// `vllm:kv_cache_usage_perc`, 0..=1.
    pub kv_cache_usage: f64,
    /// Adapters with running requests (`running_lora_adapters`).
    pub running_adapters: BTreeSet<String>,
    /// Adapters with waiting requests (`waiting_lora_adapters`).
    pub waiting_adapters: BTreeSet<String>,
    /// `max_lora`: adapter slots on the server.
    pub max_loras: Option<u64>,
    /// `vllm:cache_config_info` `block_size` (tokens per KV block).
    pub block_size: Option<u64>,
    /// `vllm:cache_config_info` `num_gpu_blocks`.
    pub num_gpu_blocks: Option<u64>,
}

impl EndpointMetrics {
    /// Applies a scrape: every value it carries replaces the old one, missing ones are kept.
    pub fn merge(&mut self, scraped: &ScrapedMetrics) {
        if let Some(v) = scraped.waiting {
            self.waiting = v;
        }
        if let Some(v) = scraped.running {
            self.running = v;
        }
        if let Some(v) = scraped.kv_cache_usage {
            self.kv_cache_usage = v;
        }
        if let Some(lora) = &scraped.lora {
            self.running_adapters = lora.running.clone();
            self.waiting_adapters = lora.waiting.clone();
            self.max_loras = lora.max_loras.or(self.max_loras);
        }
        if let Some(v) = scraped.block_size {
            self.block_size = Some(v);
        }
        if let Some(v) = scraped.num_gpu_blocks {
            self.num_gpu_blocks = Some(v);
        }
    }
}

/// One endpoint as the scheduler sees it at pick time.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub addr: SocketAddr,
    /// Name of the pod the endpoint belongs to.
    pub pod: Arc<str>,
    /// Last good metrics (all zero when never scraped).
    pub metrics: Arc<EndpointMetrics>,
    /// Scraped successfully within the staleness threshold.
    pub fresh: bool,
    /// Time since the last good scrape (`None`: never).
    pub age: Option<Duration>,
}

impl Candidate {
    /// A candidate with given metrics, fresh, for tests and benches.
    pub fn with_metrics(addr: SocketAddr, metrics: EndpointMetrics) -> Self {
        Candidate {
            addr,
            pod: Arc::from(addr.to_string()),
            metrics: Arc::new(metrics),
            fresh: true,
            age: Some(Duration::ZERO),
        }
    }
}

#[derive(Debug)]
struct EndpointEntry {
    pod: Arc<str>,
    metrics: Arc<EndpointMetrics>,
    last_good: Option<Instant>,
    last_error: Option<String>,
    scrapes: u64,
    errors: u64,
}

impl EndpointEntry {
    fn new(pod: Arc<str>) -> Self {
        EndpointEntry {
            pod,
            metrics: Arc::new(EndpointMetrics::default()),
            last_good: None,
            last_error: None,
            scrapes: 0,
            errors: 0,
        }
    }
}

/// A read-only view of one endpoint for status and tests.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointStatus {
    pub addr: SocketAddr,
    pub pod: String,
    pub metrics: EndpointMetrics,
    pub good_scrapes: u64,
    pub failed_scrapes: u64,
    pub last_error: Option<String>,
    pub fresh: bool,
}

#[derive(Debug, Default)]
struct Inner {
    /// The pool's target ports (from [`PoolInfo`], then [`Datastore::set_pool`]).
    target_ports: Vec<u16>,
    pods: BTreeMap<String, Pod>,
    endpoints: BTreeMap<SocketAddr, EndpointEntry>,
}

/// Pods, endpoints and metrics of one pool.
#[derive(Debug)]
pub struct Datastore {
    pool: PoolInfo,
    staleness: Duration,
    inner: RwLock<Inner>,
    version: watch::Sender<u64>,
    pods_version: watch::Sender<u64>,
}

impl Datastore {
    /// An empty datastore; endpoints whose last good scrape is older than `staleness` are stale.
    pub fn new(pool: PoolInfo, staleness: Duration) -> Self {
        let inner = Inner {
            target_ports: pool.target_ports.clone(),
            ..Inner::default()
        };
        Datastore {
            pool,
            staleness,
            inner: RwLock::new(inner),
            version: watch::channel(0).0,
            pods_version: watch::channel(0).0,
        }
    }

    pub fn pool(&self) -> &PoolInfo {
        &self.pool
    }

    pub fn staleness(&self) -> Duration {
        self.staleness
    }

    // The lock only guards plain maps and no code panics while holding it; a poisoned lock
    // still holds consistent data, so recover it rather than propagate the panic.
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.version.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Replaces the pod list. Endpoints of pods that stay keep their metrics; a pod whose IP
    /// changed starts afresh.
    pub fn set_pods(&self, pods: Vec<Pod>) {
        self.replace(None, pods);
    }

    /// Replaces the target ports and the pod list (the pool changed in Kubernetes).
    /// [`Datastore::pool`] keeps the ports given at start.
    pub fn set_pool(&self, state: PoolState) {
        self.replace(Some(state.target_ports), state.pods);
    }

    fn replace(&self, target_ports: Option<Vec<u16>>, pods: Vec<Pod>) {
        {
            let mut inner = self.write();
            if let Some(ports) = target_ports {
                inner.target_ports = ports;
            }
            let mut wanted: BTreeMap<SocketAddr, Arc<str>> = BTreeMap::new();
            let mut by_name = BTreeMap::new();
            for pod in pods {
                let name: Arc<str> = Arc::from(pod.name.as_str());
                for port in &inner.target_ports {
                    wanted.insert(SocketAddr::new(pod.address, *port), name.clone());
                }
                by_name.insert(pod.name.clone(), pod);
            }
            inner
                .endpoints
                .retain(|addr, entry| wanted.get(addr).is_some_and(|pod| *pod == entry.pod));
            for (addr, pod) in wanted {
                inner
                    .endpoints
                    .entry(addr)
                    .or_insert_with(|| EndpointEntry::new(pod));
            }
            inner.pods = by_name;
        }
        self.pods_version.send_modify(|v| *v = v.wrapping_add(1));
        self.bump();
    }

    pub fn pods(&self) -> Vec<Pod> {
        self.read().pods.values().cloned().collect()
    }

    /// Every endpoint, in address order.
    pub fn endpoints(&self) -> Vec<SocketAddr> {
        self.read().endpoints.keys().copied().collect()
    }

    /// Records one scrape of `addr`: `Ok` merges the values into the last good metrics and
    /// refreshes the endpoint, `Err` only counts (the last good values stay and age).
    /// Returns false when the endpoint is no longer in the pool.
    pub fn record_scrape(
        &self,
        addr: SocketAddr,
        result: Result<&ScrapedMetrics, String>,
        at: Instant,
    ) -> bool {
        {
            let mut inner = self.write();
            let Some(entry) = inner.endpoints.get_mut(&addr) else {
                return false;
            };
            match result {
                Ok(scraped) => {
                    let mut metrics = (*entry.metrics).clone();
                    metrics.merge(scraped);
                    entry.metrics = Arc::new(metrics);
                    entry.last_good = Some(at);
                    entry.last_error = None;
                    entry.scrapes += 1;
                }
                Err(error) => {
                    entry.last_error = Some(error);
                    entry.errors += 1;
                }
            }
        }
        self.bump();
        true
    }

    /// The endpoints to pick from, as of `now`, in address order.
    pub fn candidates(&self, now: Instant) -> Vec<Candidate> {
        self.read()
            .endpoints
            .iter()
            .map(|(addr, entry)| {
                let age = entry.last_good.map(|t| now.saturating_duration_since(t));
                Candidate {
                    addr: *addr,
                    pod: entry.pod.clone(),
                    metrics: entry.metrics.clone(),
                    fresh: age.is_some_and(|a| a <= self.staleness),
                    age,
                }
            })
            .collect()
    }

    /// Status of every endpoint, in address order.
    pub fn status(&self) -> Vec<EndpointStatus> {
        let now = Instant::now();
        self.read()
            .endpoints
            .iter()
            .map(|(addr, entry)| EndpointStatus {
                addr: *addr,
                pod: entry.pod.to_string(),
                metrics: (*entry.metrics).clone(),
                good_scrapes: entry.scrapes,
                failed_scrapes: entry.errors,
                last_error: entry.last_error.clone(),
                fresh: entry
                    .last_good
                    .is_some_and(|t| now.saturating_duration_since(t) <= self.staleness),
            })
            .collect()
    }

    /// Ready to pick: the pool has endpoints and at least one was scraped successfully.
    pub fn is_ready(&self) -> bool {
        let inner = self.read();
        !inner.endpoints.is_empty() && inner.endpoints.values().any(|e| e.last_good.is_some())
    }

    /// A receiver that changes whenever pods or metrics change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// A receiver that changes whenever the pod list (so the endpoint set) changes.
    pub fn subscribe_pods(&self) -> watch::Receiver<u64> {
        self.pods_version.subscribe()
    }

    /// Waits until `condition` holds on the datastore (checked now and after each change).
    pub async fn wait_for(&self, mut condition: impl FnMut(&Datastore) -> bool) {
        let mut changes = self.subscribe();
        loop {
            changes.borrow_and_update();
            if condition(self) {
                return;
            }
            if changes.changed().await.is_err() {
                return;
            }
        }
    }

    /// Index of candidate addresses, for plugins that keep per-endpoint state.
    pub fn endpoint_set(&self) -> HashMap<SocketAddr, Arc<str>> {
        self.read()
            .endpoints
            .iter()
            .map(|(a, e)| (*a, e.pod.clone()))
            .collect()
    }
}
