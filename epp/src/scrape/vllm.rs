//! vLLM's metric names, and how a scrape becomes [`ScrapedMetrics`].
//!
//! - Queue gauges (`num_requests_waiting`, `num_requests_running`) are summed over series
//!   (one per engine or model name); KV usage is the highest series (the most constrained
//!   engine). `vllm:gpu_cache_usage_perc`, the pre-0.10 name, is read when the new one is absent.
//! - `vllm:lora_requests_info` keeps one series per label set ever seen, whose value is the unix
//!   time it was last current: the newest wins.
//! - NaN, infinities and negative values are treated as absent; KV usage is clamped to 0..=1.

use std::collections::BTreeSet;

use super::prometheus::Sample;

pub const WAITING: &str = "vllm:num_requests_waiting";
pub const RUNNING: &str = "vllm:num_requests_running";
pub const KV_CACHE_USAGE: &str = "vllm:kv_cache_usage_perc";
pub const KV_CACHE_USAGE_LEGACY: &str = "vllm:gpu_cache_usage_perc";
pub const LORA_INFO: &str = "vllm:lora_requests_info";
pub const CACHE_CONFIG_INFO: &str = "vllm:cache_config_info";

pub const LORA_RUNNING_LABEL: &str = "running_lora_adapters";
pub const LORA_WAITING_LABEL: &str = "waiting_lora_adapters";
pub const LORA_MAX_LABEL: &str = "max_lora";
pub const BLOCK_SIZE_LABEL: &str = "block_size";
pub const NUM_GPU_BLOCKS_LABEL: &str = "num_gpu_blocks";

/// What one scrape said; `None` where the metric was missing or unreadable.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScrapedMetrics {
    pub waiting: Option<u64>,
    pub running: Option<u64>,
    pub kv_cache_usage: Option<f64>,
    pub lora: Option<LoraInfo>,
    pub block_size: Option<u64>,
    pub num_gpu_blocks: Option<u64>,
}

impl ScrapedMetrics {
    /// A scrape is usable when it carries at least one of the load gauges the scorers read.
    pub fn has_load(&self) -> bool {
        self.waiting.is_some() || self.running.is_some() || self.kv_cache_usage.is_some()
    }
}

/// The current `vllm:lora_requests_info` series.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoraInfo {
    pub running: BTreeSet<String>,
    pub waiting: BTreeSet<String>,
    pub max_loras: Option<u64>,
}

/// Maps parsed samples to the values the scheduler uses.
pub fn extract(samples: &[Sample]) -> ScrapedMetrics {
    let mut out = ScrapedMetrics::default();
    let mut kv_legacy: Option<f64> = None;
    let mut newest_lora: Option<(f64, &Sample)> = None;
    for sample in samples {
        let usable = sample.value.is_finite() && sample.value >= 0.0;
        match sample.name.as_str() {
            WAITING if usable => {
                out.waiting = Some(out.waiting.unwrap_or(0) + count(sample.value));
            }
            RUNNING if usable => {
                out.running = Some(out.running.unwrap_or(0) + count(sample.value));
            }
            KV_CACHE_USAGE if usable => {
                out.kv_cache_usage = Some(out.kv_cache_usage.unwrap_or(0.0).max(sample.value));
            }
            KV_CACHE_USAGE_LEGACY if usable => {
                kv_legacy = Some(kv_legacy.unwrap_or(0.0).max(sample.value));
            }
            LORA_INFO if usable && newest_lora.is_none_or(|(t, _)| sample.value >= t) => {
                newest_lora = Some((sample.value, sample));
            }
            CACHE_CONFIG_INFO => {
                if let Some(v) = sample.label(BLOCK_SIZE_LABEL).and_then(parse_count) {
                    out.block_size = Some(v);
                }
                if let Some(v) = sample.label(NUM_GPU_BLOCKS_LABEL).and_then(parse_count) {
                    out.num_gpu_blocks = Some(v);
                }
            }
            _ => {}
        }
    }
    if out.kv_cache_usage.is_none() {
        out.kv_cache_usage = kv_legacy;
    }
    out.kv_cache_usage = out.kv_cache_usage.map(|v| v.clamp(0.0, 1.0));
    out.lora = newest_lora.map(|(_, sample)| LoraInfo {
        running: adapter_list(sample.label(LORA_RUNNING_LABEL)),
        waiting: adapter_list(sample.label(LORA_WAITING_LABEL)),
        max_loras: sample.label(LORA_MAX_LABEL).and_then(parse_count),
    });
    out
}

fn count(v: f64) -> u64 {
    // Finite and non-negative here; `as` saturates at u64::MAX.
    v.round() as u64
}

fn parse_count(s: &str) -> Option<u64> {
    let s = s.trim();
    s.parse::<u64>().ok().or_else(|| {
        s.parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .map(count)
    })
}

fn adapter_list(s: Option<&str>) -> BTreeSet<String> {
    s.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect()
}
