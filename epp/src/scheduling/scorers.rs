//! Scorers: each gives every candidate a score in `0..=1`; the profile sums them by weight.
//!
//! | type | score |
//! |---|---|
//! | `queue-scorer` | `(max_q − q) / (max_q − min_q)` over the candidates' waiting queues; 1 when all equal |
//! | `kv-cache-utilization-scorer` | `1 − kv_cache_usage` |
//! | `prefix-cache-scorer` | leading prompt blocks the endpoint was sent ÷ the prompt's blocks (see [`super::prefix`]) |
//! | `lora-affinity-scorer` | 1 adapter running there · 0.8 a free adapter slot · 0.6 adapter waiting there · 0 otherwise |
//! | `running-requests-scorer` | like the queue scorer, on running requests |
//!
//! The formulas are the Inference Extension's, so weights tuned for it carry over.

use std::net::SocketAddr;
use std::sync::Mutex;

use serde::Deserialize;

use super::prefix::{self, PrefixIndex};
use super::{Cycle, InferenceRequest};
use crate::datastore::Candidate;

pub const QUEUE: &str = "queue-scorer";
pub const KV_CACHE_UTILIZATION: &str = "kv-cache-utilization-scorer";
pub const PREFIX_CACHE: &str = "prefix-cache-scorer";
pub const LORA_AFFINITY: &str = "lora-affinity-scorer";
pub const RUNNING_REQUESTS: &str = "running-requests-scorer";

/// A configured scorer.
#[derive(Debug)]
pub enum Scorer {
    Queue,
    KvCacheUtilization,
    PrefixCache(PrefixCacheScorer),
    LoraAffinity,
    RunningRequests,
}

impl Scorer {
    /// Scores for `candidates`, in their order.
    pub fn score(&self, cycle: &mut Cycle<'_>, candidates: &[&Candidate]) -> Vec<f64> {
        match self {
            Scorer::Queue => spread_low_is_good(candidates, |c| c.metrics.waiting),
            Scorer::RunningRequests => spread_low_is_good(candidates, |c| c.metrics.running),
            Scorer::KvCacheUtilization => candidates
                .iter()
                .map(|c| (1.0 - c.metrics.kv_cache_usage).clamp(0.0, 1.0))
                .collect(),
            Scorer::PrefixCache(p) => p.score(cycle, candidates),
            Scorer::LoraAffinity => lora_affinity(cycle.request, candidates),
        }
    }

    /// Called with the primary endpoint once a pick is made.
    pub fn picked(&self, cycle: &Cycle<'_>, primary: &Candidate) {
        if let Scorer::PrefixCache(p) = self {
            p.record(cycle, primary);
        }
    }
}

/// `(max − v) / (max − min)`, 1 for everyone when all are equal.
fn spread_low_is_good(candidates: &[&Candidate], value: impl Fn(&Candidate) -> u64) -> Vec<f64> {
    let values: Vec<u64> = candidates.iter().map(|c| value(c)).collect();
    let (Some(min), Some(max)) = (values.iter().min(), values.iter().max()) else {
        return Vec::new();
    };
    if min == max {
        return vec![1.0; values.len()];
    }
    let range = (max - min) as f64;
    values.iter().map(|v| (max - v) as f64 / range).collect()
}

fn lora_affinity(request: &InferenceRequest, candidates: &[&Candidate]) -> Vec<f64> {
    candidates
        .iter()
        .map(|c| {
            let m = &c.metrics;
            let model = request.model.as_str();
            let loaded = (m.running_adapters.len() + m.waiting_adapters.len()) as u64;
            if m.running_adapters.contains(model) {
                1.0
            } else if m.max_loras.is_some_and(|max| loaded < max) {
                0.8
            } else if m.waiting_adapters.contains(model) {
                0.6
            } else {
                0.0
            }
        })
        .collect()
}

/// `parameters` of `prefix-cache-scorer` (upstream's names; unknown keys are ignored).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PrefixParameters {
    /// Size each endpoint's index by its reported `num_gpu_blocks`.
    pub auto_tune: bool,
    /// Block size in tokens (× 4 characters).
    pub block_size_tokens: usize,
    /// Deprecated upstream: block size in characters; wins when set.
    pub block_size: usize,
    pub max_prefix_blocks_to_match: usize,
    /// When set, `max_prefix_blocks_to_match = this / block_size_tokens`.
    pub max_prefix_tokens_to_match: usize,
    pub lru_capacity_per_server: usize,
}

impl Default for PrefixParameters {
    fn default() -> Self {
        PrefixParameters {
            auto_tune: true,
            block_size_tokens: prefix::DEFAULT_BLOCK_SIZE_TOKENS,
            block_size: 0,
            max_prefix_blocks_to_match: prefix::DEFAULT_MAX_BLOCKS,
            max_prefix_tokens_to_match: 0,
            lru_capacity_per_server: prefix::DEFAULT_LRU_CAPACITY,
        }
    }
}

impl PrefixParameters {
    pub fn block_chars(&self) -> usize {
        if self.block_size > 0 {
            self.block_size
        } else {
            self.block_size_tokens.max(1) * prefix::CHARS_PER_TOKEN
        }
    }

    pub fn max_blocks(&self) -> usize {
        if self.max_prefix_tokens_to_match > 0 {
            (self.max_prefix_tokens_to_match / self.block_size_tokens.max(1)).max(1)
        } else {
            self.max_prefix_blocks_to_match.max(1)
        }
    }
}

/// `prefix-cache-scorer`: prefers endpoints that were sent the longest prefix of this prompt.
#[derive(Debug)]
pub struct PrefixCacheScorer {
    params: PrefixParameters,
    index: Mutex<PrefixIndex>,
}

impl PrefixCacheScorer {
    pub fn new(params: PrefixParameters) -> Self {
        PrefixCacheScorer {
            params,
            index: Mutex::new(PrefixIndex::new()),
        }
    }

    pub fn params(&self) -> &PrefixParameters {
        &self.params
    }

    fn index(&self) -> std::sync::MutexGuard<'_, PrefixIndex> {
        // The index is consistent after any single operation; recover from poisoning.
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The prompt's block hashes (computed once per cycle).
    pub fn blocks(&self, request: &InferenceRequest) -> Vec<u64> {
        match &request.prompt {
            Some(prompt) => prefix::hash_blocks(
                &request.model,
                request.cache_salt.as_deref(),
                prompt,
                self.params.block_chars(),
                self.params.max_blocks(),
            ),
            None => Vec::new(),
        }
    }

    fn score(&self, cycle: &mut Cycle<'_>, candidates: &[&Candidate]) -> Vec<f64> {
        if cycle.prefix_blocks.is_none() {
            cycle.prefix_blocks = Some(self.blocks(cycle.request));
        }
        let blocks = cycle.prefix_blocks.as_deref().unwrap_or_default();
        if blocks.is_empty() {
            return vec![0.0; candidates.len()];
        }
        let matches = self.index().matches(blocks);
        let total = blocks.len() as f64;
        candidates
            .iter()
            .map(|c| matches.get(&c.addr).map_or(0.0, |n| *n as f64 / total))
            .collect()
    }

    fn capacity(&self, endpoint: &Candidate) -> usize {
        match endpoint.metrics.num_gpu_blocks {
            Some(blocks) if self.params.auto_tune && blocks > 0 => {
                usize::try_from(blocks).unwrap_or(usize::MAX)
            }
            _ => self.params.lru_capacity_per_server.max(1),
        }
    }

    fn record(&self, cycle: &Cycle<'_>, primary: &Candidate) {
        if let Some(blocks) = cycle.prefix_blocks.as_deref().filter(|b| !b.is_empty()) {
            let capacity = self.capacity(primary);
            self.index().record(primary.addr, blocks, capacity);
        }
    }

    /// Remembers that `endpoint` (e.g. the served fallback) was sent `blocks`.
    pub fn record_blocks(&self, endpoint: SocketAddr, blocks: &[u64]) {
        if !blocks.is_empty() {
            self.index()
                .record(endpoint, blocks, self.params.lru_capacity_per_server.max(1));
        }
    }

    /// Matched leading blocks per endpoint, for tests and status.
    pub fn matches(&self, blocks: &[u64]) -> std::collections::HashMap<SocketAddr, usize> {
        self.index().matches(blocks)
    }

    /// Forgets endpoints that left the pool.
    pub fn retain(&self, keep: impl FnMut(&SocketAddr) -> bool) {
        self.index().retain(keep);
    }
}
