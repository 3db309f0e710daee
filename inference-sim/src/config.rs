//! What the simulator is told: flags (clap) and the same struct for in-process use (`Default`).
//!
//! Defaults describe `meta-llama/Llama-3.1-8B-Instruct` in bf16 on one 80 GB H100 served by vLLM; the
//! README explains each figure.

use crate::error::{Error, Result};

/// Defaults shared by [`SimConfig::default`] and the flags, so the two cannot drift.
pub mod defaults {
    pub const HOST: &str = "0.0.0.0";
    pub const PORT: u16 = 8000;
    pub const MODEL: &str = "meta-llama/Llama-3.1-8B-Instruct";
    pub const MAX_MODEL_LEN: usize = 131_072;
    pub const MAX_NUM_SEQS: usize = 256;
    pub const MAX_NUM_BATCHED_TOKENS: usize = 8192;
    pub const BLOCK_SIZE: usize = 16;
    pub const NUM_GPU_BLOCKS: usize = 26_000;
    pub const PREFILL_US_PER_TOKEN: f64 = 50.0;
    pub const ITL_BASE_MS: f64 = 7.0;
    pub const ITL_PER_SEQ_US: f64 = 100.0;
    pub const MAX_LORAS: usize = 2;
    pub const LORA_LOAD_MS: f64 = 50.0;
    pub const OUTPUT_TOKENS_MEAN: usize = 200;
    pub const SEED: u64 = 0;
    pub const TIME_SCALE: f64 = 1.0;
}

/// How to run one simulated vLLM server. `SimConfig::default()` equals the binary with no flags.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct SimConfig {
    /// Address to bind (an IP or host name); e.g. 127.0.0.11 so many sims share a port on loopback.
    #[arg(long, default_value = defaults::HOST)]
    pub host: String,
    /// Port to bind; 0 picks a free one (see `Running::addr`).
    #[arg(long, default_value_t = defaults::PORT)]
    pub port: u16,
    /// Model name served (vLLM's `--model`).
    #[arg(long, default_value = defaults::MODEL)]
    pub model: String,
    /// Names served instead of `--model` (vLLM's `--served-model-name`); the first labels metrics.
    #[arg(long, num_args = 1.., value_delimiter = ',')]
    pub served_model_name: Vec<String>,
    /// Longest prompt + output, in tokens.
    #[arg(long, default_value_t = defaults::MAX_MODEL_LEN)]
    pub max_model_len: usize,
    /// Most sequences in the running batch; more wait in the FIFO queue.
    #[arg(long, default_value_t = defaults::MAX_NUM_SEQS)]
    pub max_num_seqs: usize,
    /// Token budget of one engine step (decodes first, then prefill chunks).
    #[arg(long, default_value_t = defaults::MAX_NUM_BATCHED_TOKENS)]
    pub max_num_batched_tokens: usize,
    /// Tokens per KV-cache block.
    #[arg(long, default_value_t = defaults::BLOCK_SIZE)]
    pub block_size: usize,
    /// KV-cache blocks on the simulated GPU.
    #[arg(long, default_value_t = defaults::NUM_GPU_BLOCKS)]
    pub num_gpu_blocks: usize,
    /// Prefill cost per uncached prompt token, microseconds.
    #[arg(long, default_value_t = defaults::PREFILL_US_PER_TOKEN)]
    pub prefill_us_per_token: f64,
    /// Cost of one engine step regardless of batch, milliseconds (the batch-of-one inter-token latency).
    #[arg(long, default_value_t = defaults::ITL_BASE_MS)]
    pub itl_base_ms: f64,
    /// Added step cost per sequence in the batch, microseconds.
    #[arg(long, default_value_t = defaults::ITL_PER_SEQ_US)]
    pub itl_per_seq_us: f64,
    /// LoRA adapters served: `name`, `name=path` or vLLM's JSON form; comma- or space-separated.
    #[arg(long, num_args = 1..)]
    pub lora_modules: Vec<String>,
    /// Most adapters resident on the GPU at once (and so in one batch).
    #[arg(long, default_value_t = defaults::MAX_LORAS)]
    pub max_loras: usize,
    /// Cost of loading an adapter into a GPU slot, milliseconds (added to the step that loads it).
    #[arg(long, default_value_t = defaults::LORA_LOAD_MS)]
    pub lora_load_ms: f64,
    /// Mean output length when a chat request sets no max_tokens (uniform over ±50%).
    #[arg(long, default_value_t = defaults::OUTPUT_TOKENS_MEAN)]
    pub output_tokens_mean: usize,
    /// Seed of the output text and lengths.
    #[arg(long, default_value_t = defaults::SEED)]
    pub seed: u64,
    /// Real seconds per simulated second: 0.1 runs everything 10× faster.
    #[arg(long, default_value_t = defaults::TIME_SCALE)]
    pub time_scale: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        use defaults::*;
        Self {
            host: HOST.to_owned(),
            port: PORT,
            model: MODEL.to_owned(),
            served_model_name: Vec::new(),
            max_model_len: MAX_MODEL_LEN,
            max_num_seqs: MAX_NUM_SEQS,
            max_num_batched_tokens: MAX_NUM_BATCHED_TOKENS,
            block_size: BLOCK_SIZE,
            num_gpu_blocks: NUM_GPU_BLOCKS,
            prefill_us_per_token: PREFILL_US_PER_TOKEN,
            itl_base_ms: ITL_BASE_MS,
            itl_per_seq_us: ITL_PER_SEQ_US,
            lora_modules: Vec::new(),
            max_loras: MAX_LORAS,
            lora_load_ms: LORA_LOAD_MS,
            output_tokens_mean: OUTPUT_TOKENS_MEAN,
            seed: SEED,
            time_scale: TIME_SCALE,
        }
    }
}

/// A LoRA adapter from `--lora-modules`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoraModule {
    pub name: String,
    /// Where vLLM would load it from; shown as `root` in `/v1/models`.
    pub path: String,
}

/// Engine knobs, validated and in the engine's units (seconds of simulated time).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EngineParams {
    pub max_model_len: usize,
    pub max_num_seqs: usize,
    pub max_num_batched_tokens: usize,
    pub block_size: usize,
    pub num_gpu_blocks: usize,
    pub prefill_s_per_token: f64,
    pub step_base_s: f64,
    pub step_per_seq_s: f64,
    pub max_loras: usize,
    pub lora_load_s: f64,
}

impl SimConfig {
    /// A config for tests: port 0 on loopback, everything `time_scale` times faster.
    pub fn for_tests(time_scale: f64) -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 0,
            time_scale,
            ..Self::default()
        }
    }

    /// The names requests may use for the base model.
    pub fn served_names(&self) -> Vec<String> {
        if self.served_model_name.is_empty() {
            vec![self.model.clone()]
        } else {
            self.served_model_name.clone()
        }
    }

    /// `--lora-modules` parsed: `name`, `name=path` or `{"name": .., "path": ..}`.
    pub fn lora(&self) -> Result<Vec<LoraModule>> {
        let mut modules: Vec<LoraModule> = Vec::new();
        // A JSON object is one module; anything else is a comma-separated list.
        let items = self.lora_modules.iter().flat_map(|arg| {
            let arg = arg.trim();
            if arg.starts_with('{') {
                vec![arg]
            } else {
                arg.split(',').map(str::trim).collect()
            }
        });
        for raw in items.filter(|s| !s.is_empty()) {
            let module = parse_lora_module(raw)?;
            if modules.iter().any(|m| m.name == module.name) {
                return Err(Error::InvalidConfig(format!(
                    "--lora-modules: adapter {} listed twice",
                    module.name
                )));
            }
            modules.push(module);
        }
        Ok(modules)
    }

    pub(crate) fn engine_params(&self) -> Result<EngineParams> {
        let bad = |msg: String| Err(Error::InvalidConfig(msg));
        if !(self.time_scale.is_finite() && self.time_scale > 0.0) {
            return bad(format!("--time-scale must be > 0, got {}", self.time_scale));
        }
        for (flag, v) in [
            ("--prefill-us-per-token", self.prefill_us_per_token),
            ("--itl-base-ms", self.itl_base_ms),
            ("--itl-per-seq-us", self.itl_per_seq_us),
            ("--lora-load-ms", self.lora_load_ms),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!("{flag} must be ≥ 0, got {v}"));
            }
        }
        for (flag, v) in [
            ("--max-model-len", self.max_model_len),
            ("--max-num-seqs", self.max_num_seqs),
            ("--max-num-batched-tokens", self.max_num_batched_tokens),
            ("--block-size", self.block_size),
            ("--num-gpu-blocks", self.num_gpu_blocks),
        ] {
            if v == 0 {
                return bad(format!("{flag} must be ≥ 1"));
            }
        }
        // As vLLM does at start-up: one sequence of max_model_len tokens must fit in the KV cache.
        let needed = self.max_model_len.div_ceil(self.block_size);
        if needed > self.num_gpu_blocks {
            return bad(format!(
                "--max-model-len {} needs {needed} KV blocks of {} tokens but --num-gpu-blocks is {}; \
                 lower --max-model-len or raise --num-gpu-blocks",
                self.max_model_len, self.block_size, self.num_gpu_blocks
            ));
        }
        if !self.lora()?.is_empty() && self.max_loras == 0 {
            return bad("--lora-modules needs --max-loras ≥ 1".to_owned());
        }
        if self.served_names().iter().any(|n| n.is_empty()) {
            return bad("served model names must not be empty".to_owned());
        }
        Ok(EngineParams {
            max_model_len: self.max_model_len,
            max_num_seqs: self.max_num_seqs,
            max_num_batched_tokens: self.max_num_batched_tokens,
            block_size: self.block_size,
            num_gpu_blocks: self.num_gpu_blocks,
            prefill_s_per_token: self.prefill_us_per_token * 1e-6,
            step_base_s: self.itl_base_ms * 1e-3,
            step_per_seq_s: self.itl_per_seq_us * 1e-6,
            max_loras: self.max_loras,
            lora_load_s: self.lora_load_ms * 1e-3,
        })
    }
}

fn parse_lora_module(raw: &str) -> Result<LoraModule> {
    if raw.starts_with('{') {
        #[derive(serde::Deserialize)]
        struct Json {
            name: String,
            #[serde(default)]
            path: Option<String>,
        }
        let json: Json = serde_json::from_str(raw)
            .map_err(|e| Error::InvalidConfig(format!("--lora-modules: {raw}: {e}")))?;
        let path = json.path.unwrap_or_else(|| json.name.clone());
        return Ok(LoraModule {
            name: json.name,
            path,
        });
    }
    let (name, path) = match raw.split_once('=') {
        Some((name, path)) => (name.trim(), path.trim()),
        None => (raw, raw),
    };
    if name.is_empty() {
        return Err(Error::InvalidConfig(format!(
            "--lora-modules: {raw}: empty name"
        )));
    }
    Ok(LoraModule {
        name: name.to_owned(),
        path: path.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: SimConfig,
    }

    #[test]
    fn flags_default_to_the_same_config_as_default() {
        let cli = Cli::parse_from(["inference-sim"]);
        assert_eq!(cli.config, SimConfig::default());
        assert!(SimConfig::default().engine_params().is_ok());
    }

    #[test]
    fn lora_modules_accept_names_pairs_and_vllm_json() {
        let cli = Cli::parse_from([
            "inference-sim",
            "--lora-modules",
            "a,b=/adapters/b",
            r#"{"name": "c", "path": "/adapters/c", "base_model_name": "x"}"#,
        ]);
        let names: Vec<_> = cli
            .config
            .lora()
            .expect("valid modules")
            .into_iter()
            .map(|m| (m.name, m.path))
            .collect();
        assert_eq!(
            names,
            [
                ("a".into(), "a".into()),
                ("b".into(), "/adapters/b".into()),
                ("c".into(), "/adapters/c".into())
            ]
        );
    }

    #[test]
    fn a_kv_cache_smaller_than_one_max_length_sequence_is_rejected() {
        let config = SimConfig {
            num_gpu_blocks: 64,
            ..SimConfig::default()
        };
        let err = config.engine_params().expect_err("too small");
        assert!(err.to_string().contains("--num-gpu-blocks is 64"), "{err}");
    }
}
