//! Reading a running simulator's engine from tests and other crates.

use tokio::sync::watch;

use crate::error::{Error, Result};

/// The engine at one instant (published after every step and every new request).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineState {
    /// Requests queued (`vllm:num_requests_waiting`).
    pub waiting: usize,
    /// Requests in the batch (`vllm:num_requests_running`).
    pub running: usize,
    /// Fraction of KV blocks in use (`vllm:kv_cache_usage_perc`).
    pub kv_cache_usage: f64,
    pub free_blocks: usize,
    pub total_blocks: usize,
    /// Blocks holding a cached prompt block, in use or not.
    pub cached_blocks: usize,
    /// Adapters in GPU slots, least recently used first.
    pub resident_adapters: Vec<String>,
    pub running_adapters: Vec<String>,
    pub waiting_adapters: Vec<String>,
    /// Adapter loads since start.
    pub adapter_loads: u64,
    pub max_loras: usize,
    /// Prompt tokens looked up in / found in the prefix cache since start.
    pub prefix_cache_queries: u64,
    pub prefix_cache_hits: u64,
    pub preemptions: u64,
    /// Requests finished (any reason, aborts included) since start.
    pub finished: u64,
    pub generation_tokens: u64,
    /// Simulated seconds since start.
    pub clock: f64,
}

/// A cheap, cloneable view of a running simulator's engine.
#[derive(Debug, Clone)]
pub struct SimHandle {
    state: watch::Receiver<EngineState>,
}

impl SimHandle {
    pub(crate) fn new(state: watch::Receiver<EngineState>) -> Self {
        Self { state }
    }

    /// The latest state.
    pub fn state(&self) -> EngineState {
        self.state.borrow().clone()
    }

    /// Waits until `condition` holds (checked on every change) and returns that state.
    pub async fn wait_for(
        &self,
        mut condition: impl FnMut(&EngineState) -> bool,
    ) -> Result<EngineState> {
        let mut state = self.state.clone();
        let result = state.wait_for(|s| condition(s)).await;
        result.map(|s| s.clone()).map_err(|_| Error::Stopped)
    }
}
