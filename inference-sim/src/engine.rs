//! The simulated vLLM engine: a scheduler stepping in simulated time, with no I/O.
//!
//! Like vLLM's v1 scheduler, every step has a token budget (`max_num_batched_tokens`). Running
//! sequences come first, oldest first: a decoding sequence needs one token, a prefilling one the
//! rest of its prompt (chunked to the budget). When the KV cache cannot hold a running sequence's
//! next tokens, the newest running sequence is preempted: its blocks are freed (its prefix stays
//! cached) and it goes back to the head of the queue to be recomputed later. If nothing was
//! preempted, waiting sequences are admitted in FIFO order while the batch has room
//! (`max_num_seqs`), the budget lasts and the KV cache has blocks for them; a sequence whose prompt
//! prefix is cached starts with those tokens computed, so it skips their prefill. A sequence whose
//! adapter cannot get a GPU slot stays waiting while the ones behind it go ahead.
//!
//! A step lasts `step_base + step_per_seq × sequences + prefill_per_token × prefill tokens`, plus
//! the load time of adapters it loads. Every sequence whose tokens are all computed at the end of
//! a step samples one token: the first token comes at the end of the last prefill chunk, then one
//! per step. [`Core::schedule`] plans a step and returns its length; the caller lets that much time
//! pass and calls [`Core::finish_step`].

mod sequence;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};

pub(crate) use sequence::{Emission, FinishReason, SeqId, SeqSpec, Usage};

use crate::config::EngineParams;
use crate::handle::EngineState;
use crate::kv_cache::BlockPool;
use crate::lora::{Admit, LoraSlots};
use crate::metrics::{Gauges, Stats};
use sequence::Seq;

/// How a waiting sequence enters the batch.
#[derive(Debug, Clone, Copy)]
struct Admission {
    /// Leading prompt blocks found in the prefix cache.
    hits: usize,
    /// Tokens computed in this step.
    chunk: usize,
    /// Blocks to allocate for them.
    new_blocks: usize,
}

/// The step in flight: tokens per sequence, and its length.
#[derive(Debug)]
struct Plan {
    work: Vec<(SeqId, usize)>,
    duration: f64,
}

#[derive(Debug)]
pub(crate) struct Core {
    params: EngineParams,
    /// Simulated seconds since start.
    clock: f64,
    waiting: VecDeque<Seq>,
    running: Vec<Seq>,
    kv: BlockPool,
    loras: LoraSlots,
    plan: Option<Plan>,
    stats: Stats,
    next_id: SeqId,
}

impl Core {
    pub fn new(params: EngineParams) -> Self {
        Self {
            kv: BlockPool::new(params.num_gpu_blocks),
            loras: LoraSlots::new(params.max_loras),
            stats: Stats::new(params.max_model_len),
            params,
            clock: 0.0,
            waiting: VecDeque::new(),
            running: Vec::new(),
            plan: None,
            next_id: 0,
        }
    }

    pub fn params(&self) -> &EngineParams {
        &self.params
    }

    #[cfg(test)]
    pub fn clock(&self) -> f64 {
        self.clock
    }

    /// Moves the clock forward to `now` (after idling); never backwards, never mid-step.
    pub fn advance_to(&mut self, now: f64) {
        if self.plan.is_none() && now > self.clock {
            self.clock = now;
        }
    }

    /// When the step in flight ends.
    pub fn step_end(&self) -> Option<f64> {
        self.plan.as_ref().map(|p| self.clock + p.duration)
    }

    /// Queues a request; it arrives at the start of the next step.
    pub fn submit(&mut self, spec: SeqSpec) -> SeqId {
        self.next_id += 1;
        self.waiting.push_back(Seq::new(self.next_id, spec));
        self.next_id
    }

    /// Drops a request (its client went away). Returns whether it was known.
    pub fn abort(&mut self, id: SeqId) -> bool {
        if let Some(pos) = self.waiting.iter().position(|s| s.id == id) {
            self.waiting.remove(pos);
            self.stats.finished(FinishReason::Abort);
            return true;
        }
        if let Some(pos) = self.running.iter().position(|s| s.id == id) {
            let seq = self.running.remove(pos);
            self.release(&seq);
            self.stats.finished(FinishReason::Abort);
            return true;
        }
        false
    }

    /// Plans the next step; returns its length in simulated seconds, or `None` when idle.
    pub fn schedule(&mut self) -> Option<f64> {
        if self.plan.is_some() {
            return self.step_end().map(|end| end - self.clock);
        }
        let now = self.clock;
        for seq in &mut self.waiting {
            seq.arrival.get_or_insert(now);
        }
        let mut budget = self.params.max_num_batched_tokens;
        let mut work = Vec::new();
        let mut preempted = false;

        let mut i = 0;
        while i < self.running.len() && budget > 0 {
            let seq = &self.running[i];
            let n = seq.remaining().min(budget);
            let need = self
                .blocks_for(seq.computed + n)
                .saturating_sub(seq.blocks.len());
            while self.kv.free() < need && self.running.len() > i + 1 {
                if let Some(victim) = self.running.pop() {
                    self.preempt(victim);
                    preempted = true;
                }
            }
            if !self.kv.allocate(need) {
                let seq = self.running.remove(i);
                self.preempt(seq);
                preempted = true;
                continue;
            }
            let seq = &mut self.running[i];
            seq.blocks.extend(std::iter::repeat_n(None, need));
            work.push((seq.id, n));
            budget -= n;
            i += 1;
        }

        let mut lora_load = 0.0;
        if !preempted || self.running.is_empty() {
            let mut skipped = Vec::new();
            while budget > 0 && self.running.len() < self.params.max_num_seqs {
                let Some(seq) = self.waiting.pop_front() else {
                    break;
                };
                let adapter = seq.spec.adapter.clone();
                let lora = adapter.as_deref().map(|a| self.loras.plan(a));
                if lora == Some(Admit::Busy) {
                    skipped.push(seq);
                    continue;
                }
                let Some(admission) = self.fit(&seq, budget) else {
                    self.waiting.push_front(seq);
                    break;
                };
                if let (Some(adapter), Some(plan)) = (adapter, lora) {
                    if matches!(plan, Admit::Load { .. }) {
                        lora_load += self.params.lora_load_s;
                    }
                    self.loras.admit(&adapter, &plan);
                }
                work.push((seq.id, admission.chunk));
                budget -= admission.chunk;
                self.admit(seq, admission);
            }
            for seq in skipped.into_iter().rev() {
                self.waiting.push_front(seq);
            }
        }

        if work.is_empty() {
            return None;
        }
        let seqs = work.len();
        let tokens: usize = work.iter().map(|(_, n)| n).sum();
        let p = &self.params;
        let duration = p.step_base_s
            + p.step_per_seq_s * seqs as f64
            + p.prefill_s_per_token * (tokens - seqs) as f64
            + lora_load;
        self.plan = Some(Plan { work, duration });
        Some(duration)
    }

    /// How `seq` would enter the batch: cached prefix blocks, first chunk and new blocks; `None`
    /// when the KV cache cannot hold that chunk.
    fn fit(&self, seq: &Seq, budget: usize) -> Option<Admission> {
        let bs = self.params.block_size;
        let total = seq.num_tokens();
        let mut hits = self.kv.cached_prefix(&seq.spec.block_hashes);
        // At least one token must be computed to sample from.
        while hits > 0 && hits * bs >= total {
            hits -= 1;
        }
        let chunk = (total - hits * bs).min(budget);
        let new_blocks = self.blocks_for(hits * bs + chunk) - hits;
        self.kv
            .can_allocate(new_blocks, &seq.spec.block_hashes[..hits])
            .then_some(Admission {
                hits,
                chunk,
                new_blocks,
            })
    }

    /// Moves `seq` into the batch as `fit` planned.
    fn admit(&mut self, mut seq: Seq, admission: Admission) {
        let Admission {
            hits,
            chunk: _,
            new_blocks,
        } = admission;
        let hit_tokens = hits * self.params.block_size;
        for hash in &seq.spec.block_hashes[..hits] {
            self.kv.acquire(*hash);
        }
        self.kv.allocate(new_blocks);
        seq.blocks = seq.spec.block_hashes[..hits]
            .iter()
            .map(|h| Some(*h))
            .chain(std::iter::repeat_n(None, new_blocks))
            .collect();
        seq.registered = hits;
        seq.computed = hit_tokens;
        self.stats.prefix_cache_queries += seq.num_tokens() as u64;
        self.stats.prefix_cache_hits += hit_tokens as u64;
        seq.cached_tokens.get_or_insert(hit_tokens);
        seq.scheduled.get_or_insert(self.clock);
        self.running.push(seq);
    }

    /// Ends the step in flight: advances the clock and returns the tokens it generated.
    pub fn finish_step(&mut self) -> Vec<Emission> {
        let Some(plan) = self.plan.take() else {
            return Vec::new();
        };
        self.clock += plan.duration;
        let now = self.clock;
        let positions: HashMap<SeqId, usize> = self
            .running
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id, i))
            .collect();
        let mut out = Vec::new();
        for (id, n) in plan.work {
            let Some(&pos) = positions.get(&id) else {
                continue;
            };
            self.computed(pos, n);
            let seq = &mut self.running[pos];
            if seq.remaining() > 0 {
                continue;
            }
            seq.generated += 1;
            self.stats.generation_tokens += 1;
            match seq.last_token {
                None => {
                    self.stats.ttft.observe(now - seq.arrival.unwrap_or(now));
                    self.stats.prompt_tokens += seq.spec.prompt_len as u64;
                    seq.first_token = Some(now);
                }
                Some(last) => self.stats.itl.observe(now - last),
            }
            seq.last_token = Some(now);
            let done = seq.is_finished().then(|| (seq.spec.finish, seq.usage()));
            out.push(Emission {
                id,
                index: seq.generated - 1,
                done,
            });
        }
        let (finished, running): (Vec<_>, Vec<_>) = std::mem::take(&mut self.running)
            .into_iter()
            .partition(Seq::is_finished);
        self.running = running;
        for seq in finished {
            self.retire(seq);
        }
        out
    }

    /// Records `n` more computed tokens of the running sequence at `pos`, caching prompt blocks
    /// it completed.
    fn computed(&mut self, pos: usize, n: usize) {
        let bs = self.params.block_size;
        let seq = &mut self.running[pos];
        seq.computed += n;
        let full = (seq.computed.min(seq.spec.prompt_len) / bs).min(seq.spec.block_hashes.len());
        for i in seq.registered..full {
            if seq.blocks.get(i) == Some(&None) {
                let hash = seq.spec.block_hashes[i];
                if self.kv.register(hash) {
                    seq.blocks[i] = Some(hash);
                }
            }
        }
        seq.registered = seq.registered.max(full);
    }

    fn retire(&mut self, seq: Seq) {
        self.release(&seq);
        let s = &mut self.stats;
        s.finished(seq.spec.finish);
        let (arrival, scheduled) = (seq.arrival.unwrap_or(0.0), seq.scheduled.unwrap_or(0.0));
        let (first, last) = (
            seq.first_token.unwrap_or(self.clock),
            seq.last_token.unwrap_or(self.clock),
        );
        s.e2e.observe(self.clock - arrival);
        s.queue.observe(scheduled - arrival);
        s.prefill.observe(first - scheduled);
        s.decode.observe(last - first);
        s.prompt_len.observe(seq.spec.prompt_len as f64);
        s.generation_len.observe(seq.generated as f64);
    }

    fn preempt(&mut self, mut seq: Seq) {
        self.release(&seq);
        seq.blocks.clear();
        seq.computed = 0;
        seq.registered = 0;
        self.stats.preemptions += 1;
        self.waiting.push_front(seq);
    }

    /// Gives back a leaving sequence's blocks (tail first) and adapter slot reference.
    fn release(&mut self, seq: &Seq) {
        self.kv.release(seq.blocks.iter().rev());
        if let Some(adapter) = &seq.spec.adapter {
            self.loras.release(adapter);
        }
    }

    fn blocks_for(&self, tokens: usize) -> usize {
        tokens.div_ceil(self.params.block_size)
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn stats_mut(&mut self) -> &mut Stats {
        &mut self.stats
    }

    pub fn gauges(&self) -> Gauges {
        Gauges {
            running: self.running.len(),
            waiting: self.waiting.len(),
            kv_cache_usage: self.kv.usage(),
        }
    }

    /// Adapters of running and of waiting requests, each in order of first appearance.
    pub fn adapters(&self) -> (Vec<String>, Vec<String>) {
        fn distinct<'a>(seqs: impl Iterator<Item = &'a Seq>) -> Vec<String> {
            let mut out: Vec<String> = Vec::new();
            for adapter in seqs.filter_map(|s| s.spec.adapter.as_ref()) {
                if !out.contains(adapter) {
                    out.push(adapter.clone());
                }
            }
            out
        }
        (distinct(self.running.iter()), distinct(self.waiting.iter()))
    }

    pub fn state(&self) -> EngineState {
        let (running_adapters, waiting_adapters) = self.adapters();
        EngineState {
            waiting: self.waiting.len(),
            running: self.running.len(),
            kv_cache_usage: self.kv.usage(),
            free_blocks: self.kv.free(),
            total_blocks: self.kv.total(),
            cached_blocks: self.kv.cached_blocks(),
            resident_adapters: self.loras.resident(),
            running_adapters,
            waiting_adapters,
            adapter_loads: self.loras.loads(),
            max_loras: self.loras.max(),
            prefix_cache_queries: self.stats.prefix_cache_queries,
            prefix_cache_hits: self.stats.prefix_cache_hits,
            preemptions: self.stats.preemptions,
            finished: self.stats.finished.iter().sum(),
            generation_tokens: self.stats.generation_tokens,
            clock: self.clock,
        }
    }
}
