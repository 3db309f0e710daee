//! Provider translation on the upstream leg: a client's OpenAI request in a provider's own
//! schema, and the provider's answer back in OpenAI's.
//!
//! One module per provider, each with its own wire types and a `from_openai` module, so a call
//! reads `translate::anthropic::from_openai::request(..)`. [`pair`] decides how a client
//! endpoint reaches a backend schema; the xds-server asks the same question at config time, so
//! a pair we cannot translate is a condition on the route, not a 500 at request time.
//!
//! The response side is incremental: a stream is translated chunk by chunk as Envoy passes it
//! (events split across chunks wait for their end, `data:` without a space and CRLF framing
//! are read, usage is carried to the end of the stream); a JSON body or an error is collected
//! and translated once whole. The router leg then sees an OpenAI response, so usage, costs and
//! metrics read it as they read an OpenAI backend's.

pub mod anthropic;
pub mod aws_anthropic;
pub mod azure;
pub mod bedrock;
pub mod eventstream;
pub mod gcp_anthropic;
pub mod gemini;
pub mod gzip;
pub mod openai;

use crate::api::{ClientApi, Endpoint};
use crate::config::Schema;
use crate::envoy::{HeaderChanges, Headers};
use crate::keys;

/// How a client endpoint reaches a backend schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pair {
    /// Same API on both sides: only the path prefix changes.
    Same,
    /// Azure OpenAI: OpenAI bodies, the deployment in the path.
    Azure,
    /// OpenAI chat completions translated to a provider's chat API and back.
    Chat(ChatProvider),
    /// Anthropic Messages, rewrapped for a cloud that serves Claude in its own envelope
    /// (the body rewritten, a stream re-framed as Anthropic SSE).
    Messages(ChatProvider),
    /// OpenAI embeddings translated to a provider's embeddings API and back.
    Embeddings(ChatProvider),
}

/// A provider whose chat API the gateway translates to and from OpenAI's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatProvider {
    Anthropic,
    /// AWS Bedrock Converse / ConverseStream.
    Bedrock,
    /// Claude on AWS Bedrock through InvokeModel (Anthropic bodies).
    AwsAnthropic,
    /// An OpenAI chat completions backend, for clients of `/anthropic/v1/messages`.
    OpenAi,
    /// Claude on Vertex AI (Anthropic bodies and answers, Vertex paths).
    GcpAnthropic,
    /// Gemini on Vertex AI (`generateContent`, `predict` for embeddings).
    Gemini,
}

impl Pair {
    /// Whether the upstream leg must read and rewrite the response body.
    pub fn translates_response(self) -> bool {
        matches!(
            self,
            Pair::Chat(_) | Pair::Messages(_) | Pair::Embeddings(_)
        )
    }
}

/// How requests for `endpoint` (or, for a path the router does not know, `api`) reach a
/// backend of `schema`; `None` when the gateway cannot translate that pair.
pub fn pair(schema: &Schema, endpoint: Option<Endpoint>, api: ClientApi) -> Option<Pair> {
    use Endpoint::*;
    match (schema, endpoint) {
        (
            Schema::OpenAI { .. },
            Some(ChatCompletions | Completions | Embeddings | Models(ClientApi::OpenAI)),
        ) => Some(Pair::Same),
        (Schema::Anthropic { .. }, Some(Messages | Models(ClientApi::Anthropic))) => {
            Some(Pair::Same)
        }
        (Schema::Anthropic { .. }, Some(ChatCompletions)) => {
            Some(Pair::Chat(ChatProvider::Anthropic))
        }
        (Schema::AzureOpenAI { .. }, Some(ChatCompletions | Completions | Embeddings)) => {
            Some(Pair::Azure)
        }
        (Schema::AWSBedrock, Some(ChatCompletions)) => Some(Pair::Chat(ChatProvider::Bedrock)),
        (Schema::AWSAnthropic { .. }, Some(ChatCompletions)) => {
            Some(Pair::Chat(ChatProvider::AwsAnthropic))
        }
        (Schema::AWSAnthropic { .. }, Some(Messages)) => {
            Some(Pair::Messages(ChatProvider::AwsAnthropic))
        }
        (Schema::OpenAI { .. }, Some(Messages)) => Some(Pair::Messages(ChatProvider::OpenAi)),
        (Schema::GCPVertexAI, Some(ChatCompletions)) => Some(Pair::Chat(ChatProvider::Gemini)),
        (Schema::GCPVertexAI, Some(Embeddings)) => Some(Pair::Embeddings(ChatProvider::Gemini)),
        (Schema::GCPAnthropic { .. }, Some(ChatCompletions)) => {
            Some(Pair::Chat(ChatProvider::GcpAnthropic))
        }
        (Schema::GCPAnthropic { .. }, Some(Messages)) => {
            Some(Pair::Messages(ChatProvider::GcpAnthropic))
        }
        // Paths the router leg does not know pass under the prefix, in their own API.
        (Schema::OpenAI { .. }, None) if api == ClientApi::OpenAI => Some(Pair::Same),
        (Schema::Anthropic { .. }, None) if api == ClientApi::Anthropic => Some(Pair::Same),
        _ => None,
    }
}

/// What the upstream gets instead of the client's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamRequest {
    /// `:path`, query included.
    pub path: String,
    /// Headers to set (lower-case names), credentials excluded.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A request the translator cannot express for the provider; the client gets a 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RequestError {
    pub message: String,
}

impl RequestError {
    pub fn new(message: impl Into<String>) -> RequestError {
        RequestError {
            message: message.into(),
        }
    }
}

/// What a response translator needs to know of its request.
#[derive(Debug, Clone, Default)]
pub struct ResponseContext {
    /// The model the upstream was asked for (the answer's `model` when it names none).
    pub model: String,
    /// The client streams.
    pub stream: bool,
    /// End the stream with a usage-only chunk (the client asked, or the router leg needs it).
    pub usage_chunk: bool,
    /// The client speaks Anthropic Messages (the answer goes back in that shape).
    pub anthropic_client: bool,
    /// The request is for embeddings, not a chat.
    pub embeddings: bool,
}

/// Translates a provider's stream into OpenAI SSE, a chunk at a time.
pub trait StreamTranslator: Send {
    /// OpenAI SSE bytes for the next bytes of the provider's stream (maybe none yet).
    fn push(&mut self, bytes: &[u8]) -> Vec<u8>;
    /// The provider's stream ended: what is left, then `data: [DONE]` if the provider ended
    /// it properly.
    fn finish(&mut self) -> Vec<u8>;
}

/// The response side of a translated request.
pub struct ResponseTranslator {
    provider: ChatProvider,
    cx: ResponseContext,
    created: i64,
    /// The response's id where the provider's body has none (Bedrock's request id).
    id: String,
    mode: Mode,
    /// The provider's answer is gzip-encoded: decoded before translation.
    gunzip: Option<gzip::Gunzip>,
    /// The answer could not be decoded: the client got an error, the rest is dropped.
    failed: bool,
}

enum Mode {
    Json(Vec<u8>),
    Error {
        status: u16,
        /// The provider's error type header (Bedrock's `x-amzn-errortype`).
        kind: Option<String>,
        body: Vec<u8>,
    },
    Stream(Box<dyn StreamTranslator>),
}

impl ResponseTranslator {
    /// Starts translating a response whose status and headers are `status` and `headers`, and
    /// returns the header changes the client's response needs.
    pub fn start(
        provider: ChatProvider,
        cx: ResponseContext,
        status: u16,
        headers: &Headers,
    ) -> (ResponseTranslator, HeaderChanges) {
        let created = headers
            .get("date")
            .and_then(|d| jiff::fmt::rfc2822::parse(d).ok())
            .map(|z| z.timestamp().as_second())
            .unwrap_or_else(|| jiff::Timestamp::now().as_second());
        let id = match headers.get("x-amzn-requestid") {
            Some(request_id) if !request_id.is_empty() => format!("chatcmpl-{request_id}"),
            _ => format!("chatcmpl-{}", jiff::Timestamp::now().as_nanosecond()),
        };
        let mut changes = HeaderChanges::default();
        changes.remove(keys::CONTENT_LENGTH_HEADER);
        let gunzip = headers
            .get(keys::CONTENT_ENCODING_HEADER)
            .is_some_and(|e| e.trim().eq_ignore_ascii_case("gzip"))
            .then(|| {
                changes.remove(keys::CONTENT_ENCODING_HEADER);
                gzip::Gunzip::default()
            });
        let success = (200..300).contains(&status);
        let mode = if !success {
            changes.set(keys::CONTENT_TYPE_HEADER, "application/json");
            Mode::Error {
                status,
                kind: headers.get("x-amzn-errortype").map(str::to_string),
                body: Vec::new(),
            }
        } else if cx.stream {
            changes.set(keys::CONTENT_TYPE_HEADER, "text/event-stream");
            Mode::Stream(stream(provider, &cx, id.clone(), created))
        } else {
            changes.set(keys::CONTENT_TYPE_HEADER, "application/json");
            Mode::Json(Vec::new())
        };
        let translator = ResponseTranslator {
            provider,
            cx,
            created,
            id,
            mode,
            gunzip,
            failed: false,
        };
        (translator, changes)
    }

    /// The client's bytes for the next chunk of the provider's body.
    pub fn body(&mut self, bytes: &[u8], end_of_stream: bool) -> Vec<u8> {
        if self.failed {
            return Vec::new();
        }
        let decoded;
        let bytes = match &mut self.gunzip {
            None => bytes,
            Some(gunzip) => match gunzip.push(bytes, end_of_stream) {
                Ok(plain) => {
                    decoded = plain;
                    &decoded[..]
                }
                Err(message) => {
                    tracing::warn!(%message, "untranslatable provider response");
                    self.failed = true;
                    return match self.mode {
                        Mode::Stream(_) => openai::error_event("server_error", &message),
                        _ => openai::error_body(
                            "upstream_error",
                            Some("invalid_upstream_response"),
                            &message,
                        ),
                    };
                }
            },
        };
        match &mut self.mode {
            Mode::Stream(stream) => {
                let mut out = stream.push(bytes);
                if end_of_stream {
                    out.extend(stream.finish());
                }
                out
            }
            Mode::Json(buf) | Mode::Error { body: buf, .. } => {
                buf.extend_from_slice(bytes);
                if !end_of_stream {
                    return Vec::new();
                }
                let whole = std::mem::take(buf);
                match &self.mode {
                    Mode::Error { status, kind, .. } if self.cx.anthropic_client => {
                        messages_error(self.provider, *status, kind.as_deref(), &whole)
                    }
                    Mode::Error { status, kind, .. } => {
                        error(self.provider, *status, kind.as_deref(), &whole)
                    }
                    _ => self.json(&whole),
                }
            }
        }
    }

    fn json(&self, body: &[u8]) -> Vec<u8> {
        if self.cx.anthropic_client {
            if self.provider != ChatProvider::OpenAi {
                return body.to_vec();
            }
            return openai::from_anthropic::response(body, &self.cx.model).unwrap_or_else(
                |message| {
                    tracing::warn!(%message, "untranslatable provider response");
                    openai::from_anthropic::error(
                        502,
                        b"the provider's response could not be translated",
                    )
                },
            );
        }
        if self.cx.embeddings {
            return gemini::embeddings_response(body, &self.cx.model).unwrap_or_else(|message| {
                tracing::warn!(%message, "untranslatable provider response");
                openai::error_body(
                    "upstream_error",
                    Some("invalid_upstream_response"),
                    "the provider's response could not be translated",
                )
            });
        }
        let translated = match self.provider {
            // Chat completions clients reach OpenAI backends untranslated.
            ChatProvider::OpenAi => return body.to_vec(),
            ChatProvider::Gemini => gemini::response(body, &self.id, &self.cx.model, self.created),
            ChatProvider::Anthropic | ChatProvider::AwsAnthropic | ChatProvider::GcpAnthropic => {
                anthropic::from_openai::response(body, &self.cx.model, self.created)
            }
            ChatProvider::Bedrock => {
                bedrock::from_openai::response(body, &self.id, &self.cx.model, self.created)
            }
        };
        match translated {
            Ok(completion) => serde_json::to_vec(&completion).unwrap_or_default(),
            Err(message) => {
                tracing::warn!(provider = ?self.provider, %message, "untranslatable provider response");
                openai::error_body(
                    "upstream_error",
                    Some("invalid_upstream_response"),
                    "the provider's response could not be translated",
                )
            }
        }
    }
}

fn stream(
    provider: ChatProvider,
    cx: &ResponseContext,
    id: String,
    created: i64,
) -> Box<dyn StreamTranslator> {
    match (provider, cx.anthropic_client) {
        (ChatProvider::AwsAnthropic, true) => Box::new(aws_anthropic::EventsToSse::new()),
        (ChatProvider::AwsAnthropic, false) => {
            Box::new(aws_anthropic::ChatStream::new(cx, created))
        }
        (ChatProvider::Anthropic, _) => Box::new(anthropic::from_openai::Stream::new(cx, created)),
        (ChatProvider::Bedrock, _) => Box::new(bedrock::from_openai::Stream::new(cx, id, created)),
        (ChatProvider::OpenAi, _) => Box::new(openai::from_anthropic::Stream::new(&cx.model)),
        (ChatProvider::GcpAnthropic, true) => Box::new(gcp_anthropic::Unchanged),
        (ChatProvider::Gemini, _) => Box::new(gemini::Stream::new(cx, id, created)),
        (ChatProvider::GcpAnthropic, false) => {
            Box::new(anthropic::from_openai::Stream::new(cx, created))
        }
    }
}

/// A provider's error body in Anthropic's shape, for a client of `/anthropic/v1/messages`.
pub fn messages_error(
    provider: ChatProvider,
    status: u16,
    kind: Option<&str>,
    body: &[u8],
) -> Vec<u8> {
    match provider {
        ChatProvider::AwsAnthropic | ChatProvider::Bedrock => {
            aws_anthropic::anthropic_error(status, kind, body)
        }
        ChatProvider::Anthropic | ChatProvider::GcpAnthropic | ChatProvider::Gemini => {
            body.to_vec()
        }
        ChatProvider::OpenAi => openai::from_anthropic::error(status, body),
    }
}

/// A provider's error body in OpenAI's shape (the status stays the provider's); `kind` is the
/// provider's error type header, for providers that send one.
pub fn error(provider: ChatProvider, status: u16, kind: Option<&str>, body: &[u8]) -> Vec<u8> {
    match provider {
        ChatProvider::Anthropic | ChatProvider::GcpAnthropic => {
            anthropic::from_openai::error(status, body)
        }
        ChatProvider::Bedrock | ChatProvider::AwsAnthropic => {
            bedrock::from_openai::error(status, kind, body)
        }
        ChatProvider::OpenAi => body.to_vec(),
        ChatProvider::Gemini => gemini::error(status, body),
    }
}

/// The text of a non-JSON error body, bounded, for an error message.
pub fn error_text(body: &[u8]) -> String {
    const MAX: usize = 512;
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "the provider returned an error without a body".into();
    }
    match text.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// OpenAI's error `type` for an HTTP status (as the gateway's own errors use).
pub fn error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        s if s >= 500 => "server_error",
        _ => "invalid_request_error",
    }
}
