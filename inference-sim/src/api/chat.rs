//! `POST /v1/chat/completions`.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::stream::{self, Chunks};
use super::{ApiError, App, Generation, StreamOptions, UsageInfo, parse};
use crate::engine::FinishReason;
use crate::tokenizer::{self, Turn};

#[derive(Debug, Deserialize)]
struct ChatRequest {
    #[serde(default)]
    model: Option<String>,
    messages: Vec<Message>,
    #[serde(default)]
    max_tokens: Option<i64>,
    #[serde(default)]
    max_completion_tokens: Option<i64>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    n: Option<i64>,
    #[serde(default)]
    seed: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct Message {
    role: String,
    #[serde(default)]
    content: Option<Content>,
}

/// A string, or OpenAI's array of content parts (only `text` parts count).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Deserialize)]
struct Part {
    #[serde(default)]
    text: Option<String>,
}

impl Message {
    fn text(&self) -> String {
        match &self.content {
            None => String::new(),
            Some(Content::Text(text)) => text.clone(),
            Some(Content::Parts(parts)) => parts
                .iter()
                .filter_map(|p| p.text.as_deref())
                .collect::<Vec<_>>()
                .join("\n"),
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
    let request: ChatRequest = parse(body)?;
    if request.messages.is_empty() {
        return Err(ApiError::bad_request("messages must not be empty").with_param("messages"));
    }
    let texts: Vec<String> = request.messages.iter().map(Message::text).collect();
    let prompt =
        tokenizer::encode_chat(request.messages.iter().zip(&texts).map(|(m, text)| Turn {
            role: &m.role,
            content: text,
        }));
    let prepared = app.prepare(Generation {
        id_prefix: "chatcmpl",
        model: request.model.as_deref(),
        prompt,
        max_tokens: request.max_completion_tokens.or(request.max_tokens),
        default_max_tokens: None,
        n: request.n,
        seed: request.seed,
        stream: request.stream.unwrap_or(false),
        stream_options: request.stream_options,
    })?;
    let rx = app.submit(&prepared);
    if prepared.stream {
        let chunks = ChatChunks {
            id: prepared.id.clone(),
            created: prepared.created,
            model: prepared.model.clone(),
        };
        return Ok(stream::respond(prepared, rx, chunks));
    }
    let (content, finish, usage) = stream::collect(&prepared, rx).await?;
    Ok(Json(ChatResponse {
        id: &prepared.id,
        object: "chat.completion",
        created: prepared.created,
        model: &prepared.model,
        choices: vec![Choice {
            index: 0,
            message: AssistantMessage {
                role: "assistant",
                content: &content,
                refusal: None,
                annotations: None,
                audio: None,
                function_call: None,
                tool_calls: Vec::new(),
                reasoning_content: None,
            },
            logprobs: None,
            finish_reason: finish.as_str(),
            stop_reason: None,
        }],
        service_tier: None,
        system_fingerprint: None,
        usage,
        prompt_logprobs: None,
        kv_transfer_params: None,
    })
    .into_response())
}

/// vLLM's `ChatCompletionResponse`.
#[derive(Serialize)]
struct ChatResponse<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: Vec<Choice<'a>>,
    service_tier: Option<()>,
    system_fingerprint: Option<()>,
    usage: UsageInfo,
    prompt_logprobs: Option<()>,
    kv_transfer_params: Option<()>,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: AssistantMessage<'a>,
    logprobs: Option<()>,
    finish_reason: &'static str,
    stop_reason: Option<()>,
}

#[derive(Serialize)]
struct AssistantMessage<'a> {
    role: &'static str,
    content: &'a str,
    refusal: Option<()>,
    annotations: Option<()>,
    audio: Option<()>,
    function_call: Option<()>,
    tool_calls: Vec<()>,
    reasoning_content: Option<()>,
}

/// vLLM's `ChatCompletionStreamResponse` (serialized with `exclude_unset`).
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
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
    /// Present (as null) on the final chunk only.
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_reason: Option<serde_json::Value>,
}

#[derive(Serialize)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    content: &'a str,
}

struct ChatChunks {
    id: String,
    created: u64,
    model: String,
}

impl ChatChunks {
    fn chunk(&self, choices: Vec<ChunkChoice<'_>>, usage: Option<UsageInfo>) -> String {
        serde_json::to_string(&Chunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices,
            usage,
        })
        .unwrap_or_default()
    }
}

impl Chunks for ChatChunks {
    fn token(
        &self,
        first: bool,
        text: &str,
        finish: Option<FinishReason>,
        usage: Option<UsageInfo>,
    ) -> Vec<String> {
        let mut out = Vec::with_capacity(2);
        if first {
            // vLLM opens with the role and empty content when the first token is ready.
            let role_usage = usage
                .as_ref()
                .map(|u| UsageInfo::new(u.prompt_tokens, 0, 0));
            out.push(self.chunk(
                vec![ChunkChoice {
                    index: 0,
                    delta: Delta {
                        role: Some("assistant"),
                        content: "",
                    },
                    logprobs: None,
                    finish_reason: None,
                    stop_reason: None,
                }],
                role_usage,
            ));
        }
        out.push(self.chunk(
            vec![ChunkChoice {
                index: 0,
                delta: Delta {
                    role: None,
                    content: text,
                },
                logprobs: None,
                finish_reason: finish.map(FinishReason::as_str),
                stop_reason: finish.map(|_| serde_json::Value::Null),
            }],
            usage,
        ));
        out
    }

    fn usage(&self, usage: UsageInfo) -> String {
        self.chunk(Vec::new(), Some(usage))
    }
}
