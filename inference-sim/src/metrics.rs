//! vLLM's Prometheus metrics: what the engine counts, and `/metrics` rendered from it.
//!
//! Names, label names, help texts and buckets follow vLLM's `PrometheusStatLogger` (v1 engine). vLLM
//! serves them from a multiprocess registry, so labels come sorted and there are no `_created`
//! series; [`text`] writes that same Prometheus 0.0.4 text. Times are simulated seconds.

mod text;

use crate::config::EngineParams;
use crate::engine::FinishReason;

pub(crate) use text::CONTENT_TYPE;

const TTFT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];
const ITL_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
    40.0, 80.0,
];
const REQUEST_LATENCY_BUCKETS: &[f64] = &[
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
    480.0, 960.0, 1920.0, 7680.0,
];
/// Label sets of `vllm:lora_requests_info` kept (vLLM keeps every one it ever set).
const LORA_INFO_SERIES: usize = 64;

/// A Prometheus histogram.
#[derive(Debug, Clone)]
pub(crate) struct Histogram {
    bounds: Vec<f64>,
    /// Per bucket, not cumulative; the last is `+Inf`.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    pub fn new(bounds: &[f64]) -> Self {
        Self {
            bounds: bounds.to_vec(),
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    pub fn observe(&mut self, value: f64) {
        let i = self.bounds.partition_point(|b| *b < value);
        self.counts[i] += 1;
        self.sum += value;
        self.count += 1;
    }

    #[cfg(test)]
    pub fn sum(&self) -> f64 {
        self.sum
    }

    #[cfg(test)]
    pub fn count(&self) -> u64 {
        self.count
    }
}

/// vLLM's `build_1_2_5_buckets`: 1, 2, 5, 10, 20, 50, … up to `max`.
fn buckets_1_2_5(max: usize) -> Vec<f64> {
    let mut out = Vec::new();
    let mut scale = 1usize;
    loop {
        for m in [1, 2, 5] {
            let v = m * scale;
            if v > max {
                return out;
            }
            out.push(v as f64);
        }
        scale = match scale.checked_mul(10) {
            Some(s) => s,
            None => return out,
        };
    }
}

/// What the engine has counted since start.
#[derive(Debug, Clone)]
pub(crate) struct Stats {
    pub prompt_tokens: u64,
    pub generation_tokens: u64,
    pub prefix_cache_queries: u64,
    pub prefix_cache_hits: u64,
    pub preemptions: u64,
    /// Finished requests by reason: stop, length, abort.
    pub finished: [u64; 3],
    pub ttft: Histogram,
    pub itl: Histogram,
    pub e2e: Histogram,
    pub queue: Histogram,
    pub prefill: Histogram,
    pub decode: Histogram,
    pub prompt_len: Histogram,
    pub generation_len: Histogram,
    /// `(running, waiting)` adapter lists of `vllm:lora_requests_info`, each with the unix time it
    /// was last current, oldest first.
    lora_info: Vec<(String, String, f64)>,
}

impl Stats {
    pub fn new(max_model_len: usize) -> Self {
        let tokens = buckets_1_2_5(max_model_len);
        Self {
            prompt_tokens: 0,
            generation_tokens: 0,
            prefix_cache_queries: 0,
            prefix_cache_hits: 0,
            preemptions: 0,
            finished: [0; 3],
            ttft: Histogram::new(TTFT_BUCKETS),
            itl: Histogram::new(ITL_BUCKETS),
            e2e: Histogram::new(REQUEST_LATENCY_BUCKETS),
            queue: Histogram::new(REQUEST_LATENCY_BUCKETS),
            prefill: Histogram::new(REQUEST_LATENCY_BUCKETS),
            decode: Histogram::new(REQUEST_LATENCY_BUCKETS),
            prompt_len: Histogram::new(&tokens),
            generation_len: Histogram::new(&tokens),
            lora_info: Vec::new(),
        }
    }

    pub fn finished(&mut self, reason: FinishReason) {
        self.finished[reason as usize] += 1;
    }

    /// Records the adapters now running and waiting, as vLLM does after every step.
    pub fn lora_info(&mut self, running: &[String], waiting: &[String], unix_now: f64) {
        let (running, waiting) = (running.join(","), waiting.join(","));
        self.lora_info
            .retain(|(r, w, _)| !(*r == running && *w == waiting));
        self.lora_info.push((running, waiting, unix_now));
        if self.lora_info.len() > LORA_INFO_SERIES {
            self.lora_info.remove(0);
        }
    }
}

/// The engine's gauges at one instant.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Gauges {
    pub running: usize,
    pub waiting: usize,
    pub kv_cache_usage: f64,
}

/// `/metrics` as vLLM would write it.
pub(crate) fn render(model: &str, params: &EngineParams, gauges: Gauges, stats: &Stats) -> String {
    let mut out = text::Writer::new(model);
    out.gauge(
        "vllm:num_requests_running",
        "Number of requests in model execution batches.",
        gauges.running as f64,
    );
    out.gauge(
        "vllm:num_requests_waiting",
        "Number of requests waiting to be processed.",
        gauges.waiting as f64,
    );
    out.gauge(
        "vllm:kv_cache_usage_perc",
        "KV-cache usage. 1 means 100 percent usage.",
        gauges.kv_cache_usage,
    );
    // The name before vLLM 0.10; older endpoint pickers still read it.
    out.gauge(
        "vllm:gpu_cache_usage_perc",
        "GPU KV-cache usage. 1 means 100 percent usage.",
        gauges.kv_cache_usage,
    );

    out.counter(
        "vllm:prefix_cache_queries",
        "Prefix cache queries, in terms of number of queried tokens.",
        stats.prefix_cache_queries,
    );
    out.counter(
        "vllm:prefix_cache_hits",
        "Prefix cache hits, in terms of number of cached tokens.",
        stats.prefix_cache_hits,
    );
    out.counter(
        "vllm:num_preemptions",
        "Cumulative number of preemption from the engine.",
        stats.preemptions,
    );
    out.counter(
        "vllm:prompt_tokens",
        "Number of prefill tokens processed.",
        stats.prompt_tokens,
    );
    out.counter(
        "vllm:generation_tokens",
        "Number of generation tokens processed.",
        stats.generation_tokens,
    );
    out.counter_by(
        "vllm:request_success",
        "Count of successfully processed requests.",
        "finished_reason",
        [
            (FinishReason::Stop, stats.finished[0]),
            (FinishReason::Length, stats.finished[1]),
            (FinishReason::Abort, stats.finished[2]),
        ]
        .map(|(reason, n)| (reason.as_str(), n)),
    );

    out.histogram(
        "vllm:request_prompt_tokens",
        "Number of prefill tokens processed.",
        &stats.prompt_len,
    );
    out.histogram(
        "vllm:request_generation_tokens",
        "Number of generation tokens processed.",
        &stats.generation_len,
    );
    out.histogram(
        "vllm:time_to_first_token_seconds",
        "Histogram of time to first token in seconds.",
        &stats.ttft,
    );
    out.histogram(
        "vllm:time_per_output_token_seconds",
        "Histogram of time per output token in seconds.DEPRECATED: Use vllm:inter_token_latency_seconds instead.",
        &stats.itl,
    );
    out.histogram(
        "vllm:inter_token_latency_seconds",
        "Histogram of inter-token latency in seconds.",
        &stats.itl,
    );
    out.histogram(
        "vllm:e2e_request_latency_seconds",
        "Histogram of e2e request latency in seconds.",
        &stats.e2e,
    );
    out.histogram(
        "vllm:request_queue_time_seconds",
        "Histogram of time spent in WAITING phase for request.",
        &stats.queue,
    );
    out.histogram(
        "vllm:request_prefill_time_seconds",
        "Histogram of time spent in PREFILL phase for request.",
        &stats.prefill,
    );
    out.histogram(
        "vllm:request_decode_time_seconds",
        "Histogram of time spent in DECODE phase for request.",
        &stats.decode,
    );

    // Info metrics carry no model_name, as in vLLM.
    let max_lora = params.max_loras.to_string();
    out.info_family(
        "vllm:lora_requests_info",
        "Running stats on lora requests.",
        stats.lora_info.iter().map(|(running, waiting, at)| {
            (
                vec![
                    ("max_lora", max_lora.clone()),
                    ("running_lora_adapters", running.clone()),
                    ("waiting_lora_adapters", waiting.clone()),
                ],
                *at,
            )
        }),
    );
    out.info_family(
        "vllm:cache_config_info",
        "Information of the LLMEngine CacheConfig",
        std::iter::once((cache_config_labels(params), 1.0)),
    );
    out.finish()
}

/// `CacheConfig.metrics_info()`: every field as Python's `str()`, plus `engine`.
fn cache_config_labels(params: &EngineParams) -> Vec<(&'static str, String)> {
    vec![
        ("block_size", params.block_size.to_string()),
        ("cache_dtype", "auto".into()),
        ("calculate_kv_scales", "False".into()),
        ("cpu_offload_gb", "0".into()),
        ("enable_prefix_caching", "True".into()),
        ("engine", "0".into()),
        ("gpu_memory_utilization", "0.9".into()),
        ("is_attention_free", "False".into()),
        ("num_cpu_blocks", "None".into()),
        ("num_gpu_blocks", params.num_gpu_blocks.to_string()),
        ("num_gpu_blocks_override", "None".into()),
        ("prefix_caching_hash_algo", "sha256".into()),
        ("sliding_window", "None".into()),
        ("swap_space", "4".into()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_buckets_follow_1_2_5_up_to_the_max() {
        assert_eq!(buckets_1_2_5(100), [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]);
    }

    #[test]
    fn histogram_buckets_take_values_up_to_and_including_their_bound() {
        let mut h = Histogram::new(&[1.0, 2.0]);
        for v in [0.5, 1.0, 1.5, 3.0] {
            h.observe(v);
        }
        assert_eq!(h.counts, [2, 1, 1]);
        assert_eq!((h.count(), h.sum()), (4, 6.0));
    }

    #[test]
    fn lora_info_keeps_each_label_set_with_its_latest_time() {
        let mut stats = Stats::new(16);
        stats.lora_info(&["a".into()], &[], 1.0);
        stats.lora_info(&["a".into(), "b".into()], &["c".into()], 2.0);
        stats.lora_info(&["a".into()], &[], 3.0);
        assert_eq!(
            stats.lora_info,
            [
                ("a,b".into(), "c".into(), 2.0),
                ("a".into(), String::new(), 3.0)
            ]
        );
    }
}
