//! `POST /v1/completions`.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::stream::{self, Chunks};
use super::{ApiError, App, Generation, StreamOptions, UsageInfo, parse};
use crate::engine::FinishReason;
use crate::tokenizer;

/// vLLM's default `max_tokens` for completions.
const DEFAULT_MAX_TOKENS: usize = 16;

#[derive(Debug, Deserialize)]
struct CompletionRequest {
    #[serde(default)]
    model: Option<String>,
    prompt: Prompt,
    #[serde(default)]
    max_tokens: Option<i64>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    n: Option<i64>,
    #[serde(default)]
    seed: Option<i64>,
}

/// Text or token ids, alone or in a one-element batch.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Prompt {
    Text(String),
    Tokens(Vec<u32>),
    Texts(Vec<String>),
    TokenLists(Vec<Vec<u32>>),
}

impl Prompt {
    /// Token ids; text gets a begin-of-text token first, as vLLM's tokenizer adds one.
    fn tokens(self) -> Result<Vec<u32>, ApiError> {
        let text = |t: &str| {
            let mut ids = vec![tokenizer::BEGIN_OF_TEXT];
            ids.extend(tokenizer::encode(t));
            ids
        };
        let batch = || {
            ApiError::bad_request("inference-sim serves one prompt per request")
                .with_param("prompt")
        };
        match self {
            Prompt::Text(t) => Ok(text(&t)),
            Prompt::Tokens(ids) => Ok(ids),
            Prompt::Texts(texts) => match texts.as_slice() {
                [one] => Ok(text(one)),
                _ => Err(batch()),
            },
            Prompt::TokenLists(mut lists) => match lists.len() {
                1 => Ok(lists.remove(0)),
                _ => Err(batch()),
            },
        }
    }
}

pub(super) async fn handle(State(app): State<Arc<App>>, body: Bytes) -> Response {
    match respond(&app, &body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn respond(app: &App, body: &[u8]) -> Result<Response, ApiError> {
    let request: CompletionRequest = parse(body)?;
    let prepared = app.prepare(Generation {
        id_prefix: "cmpl",
        model: request.model.as_deref(),
        prompt: request.prompt.tokens()?,
        max_tokens: request.max_tokens,
        default_max_tokens: Some(DEFAULT_MAX_TOKENS),
        n: request.n,
        seed: request.seed,
        stream: request.stream.unwrap_or(false),
        stream_options: request.stream_options,
    })?;
    let rx = app.submit(&prepared);
    if prepared.stream {
        let chunks = CompletionChunks {
            id: prepared.id.clone(),
            created: prepared.created,
            model: prepared.model.clone(),
        };
        return Ok(stream::respond(prepared, rx, chunks));
    }
    let (text, finish, usage) = stream::collect(&prepared, rx).await?;
    Ok(Json(CompletionResponse {
        id: &prepared.id,
        object: "text_completion",
        created: prepared.created,
        model: &prepared.model,
        choices: vec![Choice {
            index: 0,
            text: &text,
            logprobs: None,
            finish_reason: Some(finish.as_str()),
            stop_reason: None,
            prompt_logprobs: None,
        }],
        service_tier: None,
        system_fingerprint: None,
        usage: Some(usage),
        kv_transfer_params: None,
    })
    .into_response())
}

/// vLLM's `CompletionResponse` and `CompletionStreamResponse`.
#[derive(Serialize)]
struct CompletionResponse<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: Vec<Choice<'a>>,
    service_tier: Option<()>,
    system_fingerprint: Option<()>,
    usage: Option<UsageInfo>,
    kv_transfer_params: Option<()>,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    text: &'a str,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
    stop_reason: Option<()>,
    prompt_logprobs: Option<()>,
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: Vec<ChunkChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<UsageInfo>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    text: &'a str,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
    stop_reason: Option<()>,
}

struct CompletionChunks {
    id: String,
    created: u64,
    model: String,
}

impl CompletionChunks {
    fn chunk(&self, choices: Vec<ChunkChoice<'_>>, usage: Option<UsageInfo>) -> String {
        serde_json::to_string(&Chunk {
            id: &self.id,
            object: "text_completion",
            created: self.created,
            model: &self.model,
            choices,
            usage,
        })
        .unwrap_or_default()
    }
}

impl Chunks for CompletionChunks {
    fn token(
        &self,
        _first: bool,
        text: &str,
        finish: Option<FinishReason>,
        usage: Option<UsageInfo>,
    ) -> Vec<String> {
        vec![self.chunk(
            vec![ChunkChoice {
                index: 0,
                text,
                logprobs: None,
                finish_reason: finish.map(FinishReason::as_str),
                stop_reason: None,
            }],
            usage,
        )]
    }

    fn usage(&self, usage: UsageInfo) -> String {
        self.chunk(Vec::new(), Some(usage))
    }
}
