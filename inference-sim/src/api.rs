//! vLLM's OpenAI-compatible HTTP API: routes, and the steps every generation request shares
//! (resolve the model, count the prompt, fix the answer, queue it).

mod chat;
mod completions;
mod error;
mod models;
mod stream;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use xxhash_rust::xxh3::xxh3_128_with_seed;

pub(crate) use error::ApiError;

use crate::config::{LoraModule, SimConfig};
use crate::engine::{Emission, SeqSpec, Usage};
use crate::generate::{self, Length, Output};
use crate::kv_cache;
use crate::metrics;
use crate::runner::Engine;

/// Everything the handlers share.
pub(crate) struct App {
    pub engine: Arc<Engine>,
    /// Names of the base model (never empty: config validation); the first is the default.
    pub served: Vec<String>,
    /// `--model`, shown as the base model's `root`.
    pub root: String,
    pub adapters: RwLock<Vec<LoraModule>>,
    pub max_model_len: usize,
    pub block_size: usize,
    pub seed: u64,
    pub output_tokens_mean: usize,
    ids: AtomicU64,
    id_salt: u64,
}

impl App {
    pub fn new(engine: Arc<Engine>, config: &SimConfig, adapters: Vec<LoraModule>) -> Self {
        Self {
            engine,
            served: config.served_names(),
            root: config.model.clone(),
            adapters: RwLock::new(adapters),
            max_model_len: config.max_model_len,
            block_size: config.block_size,
            seed: config.seed,
            output_tokens_mean: config.output_tokens_mean,
            ids: AtomicU64::new(0),
            id_salt: unix_secs() ^ config.seed.rotate_left(17),
        }
    }

    /// A fresh response id such as `chatcmpl-0123…` (32 hex digits, like vLLM's `random_uuid`).
    fn next_id(&self, prefix: &str) -> String {
        let n = self.ids.fetch_add(1, Ordering::Relaxed);
        format!(
            "{prefix}-{:032x}",
            xxh3_128_with_seed(&n.to_le_bytes(), self.id_salt)
        )
    }

    /// The model a request names (default: the first served name) and its adapter, if any.
    fn resolve(&self, requested: Option<&str>) -> Result<(String, Option<String>), ApiError> {
        let Some(name) = requested else {
            return Ok((self.served[0].clone(), None));
        };
        if self.served.iter().any(|s| s == name) {
            return Ok((name.to_owned(), None));
        }
        let adapters = self.adapters.read().unwrap_or_else(PoisonError::into_inner);
        if adapters.iter().any(|a| a.name == name) {
            return Ok((name.to_owned(), Some(name.to_owned())));
        }
        Err(ApiError::model_not_found(name))
    }

    /// Validates a generation request and fixes its answer.
    fn prepare(&self, request: Generation<'_>) -> Result<Prepared, ApiError> {
        let (model, adapter) = self.resolve(request.model)?;
        if request.stream_options.is_some() && !request.stream {
            return Err(ApiError::bad_request(
                "Stream options can only be defined when `stream=True`.",
            )
            .with_param("stream_options"));
        }
        if request.n.is_some_and(|n| n != 1) {
            return Err(ApiError::bad_request("inference-sim only supports n=1").with_param("n"));
        }
        let prompt_len = request.prompt.len();
        if prompt_len == 0 {
            return Err(ApiError::bad_request("The prompt cannot be empty.").with_param("prompt"));
        }
        let max = self.max_model_len;
        let length = match request.max_tokens {
            Some(n) if n < 1 => {
                return Err(ApiError::bad_request(format!(
                    "max_tokens must be at least 1, got {n}."
                ))
                .with_param("max_tokens"));
            }
            Some(n) => {
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                if prompt_len.saturating_add(n) > max {
                    return Err(ApiError::bad_request(format!(
                        "This model's maximum context length is {max} tokens. However, you requested \
                         {} tokens ({prompt_len} in the messages, {n} in the completion). Please \
                         reduce the length of the messages or completion.",
                        prompt_len.saturating_add(n)
                    ))
                    .with_param("max_tokens"));
                }
                Length::Exactly(n)
            }
            None if prompt_len >= max => {
                return Err(ApiError::bad_request(format!(
                    "This model's maximum context length is {max} tokens. However, your request has \
                     {prompt_len} input tokens. Please reduce the length of the input messages."
                ))
                .with_param("messages"));
            }
            None => match request.default_max_tokens {
                Some(n) => Length::Exactly(n.min(max - prompt_len)),
                None => Length::Sampled {
                    mean: self.output_tokens_mean,
                    cap: max - prompt_len,
                },
            },
        };
        let output = generate::output(
            self.seed,
            &request.prompt,
            adapter.as_deref(),
            request.seed,
            length,
        );
        let block_hashes =
            kv_cache::block_hashes(&request.prompt, self.block_size, adapter.as_deref());
        // Usage is streamed only when asked for; vLLM defaults `include_usage` to true once
        // `stream_options` is present.
        let options = request.stream_options;
        let include_usage = options
            .as_ref()
            .is_some_and(|o| o.include_usage.unwrap_or(true));
        let continuous_usage = options
            .as_ref()
            .is_some_and(|o| o.continuous_usage_stats.unwrap_or(false));
        Ok(Prepared {
            id: self.next_id(request.id_prefix),
            created: unix_secs(),
            model,
            spec: SeqSpec {
                prompt_len,
                block_hashes,
                max_output: output.tokens.len(),
                finish: output.finish,
                adapter,
            },
            output,
            stream: request.stream,
            include_usage,
            continuous_usage,
        })
    }

    /// Queues a prepared request on the engine.
    fn submit(&self, prepared: &Prepared) -> mpsc::UnboundedReceiver<Emission> {
        self.engine.submit(prepared.spec.clone())
    }
}

/// The parts of a chat or completion request the simulator acts on.
struct Generation<'a> {
    id_prefix: &'a str,
    model: Option<&'a str>,
    prompt: Vec<u32>,
    max_tokens: Option<i64>,
    /// Used when `max_tokens` is absent (completions: 16, as vLLM); `None` samples a length.
    default_max_tokens: Option<usize>,
    n: Option<i64>,
    seed: Option<i64>,
    stream: bool,
    stream_options: Option<StreamOptions>,
}

/// A validated request with its answer fixed.
pub(crate) struct Prepared {
    pub id: String,
    pub created: u64,
    /// The model name to echo back.
    pub model: String,
    pub spec: SeqSpec,
    pub output: Output,
    pub stream: bool,
    pub include_usage: bool,
    pub continuous_usage: bool,
}

/// `stream_options` (vLLM defaults `include_usage` to true once the object is given).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct StreamOptions {
    #[serde(default)]
    pub include_usage: Option<bool>,
    #[serde(default)]
    pub continuous_usage_stats: Option<bool>,
}

/// vLLM's `UsageInfo`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct UsageInfo {
    pub prompt_tokens: usize,
    pub total_tokens: usize,
    pub completion_tokens: usize,
    pub prompt_tokens_details: PromptTokensDetails,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct PromptTokensDetails {
    pub cached_tokens: usize,
}

impl UsageInfo {
    pub fn new(prompt_tokens: usize, completion_tokens: usize, cached_tokens: usize) -> Self {
        Self {
            prompt_tokens,
            total_tokens: prompt_tokens + completion_tokens,
            completion_tokens,
            prompt_tokens_details: PromptTokensDetails { cached_tokens },
        }
    }
}

impl From<Usage> for UsageInfo {
    fn from(u: Usage) -> Self {
        Self::new(u.prompt_tokens, u.completion_tokens, u.cached_tokens)
    }
}

/// Parses a JSON body, mapping any failure to a 400 in vLLM's shape.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))
}

pub(crate) fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(crate) fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat::handle))
        .route("/v1/completions", post(completions::handle))
        .route("/v1/models", get(models::list))
        .route("/v1/load_lora_adapter", post(models::load_adapter))
        .route("/v1/unload_lora_adapter", post(models::unload_adapter))
        .route("/health", get(|| async { StatusCode::OK }))
        .route("/metrics", get(metrics_text))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                axum::Json(serde_json::json!({ "detail": "Not Found" })),
            )
        })
        .with_state(app)
}

async fn metrics_text(
    axum::extract::State(app): axum::extract::State<Arc<App>>,
) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        app.engine.metrics(),
    )
}
