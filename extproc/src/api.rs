//! The client-facing APIs: which endpoints exist, what a request must carry, and how usage and
//! errors look in each API's own schema.

pub mod anthropic;
pub mod openai;

use serde::Deserialize;
use serde_json::Value;

use crate::usage::TokenUsage;
use crate::{Error, Result};

/// The API family a client speaks, which decides the shape of errors and lists it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientApi {
    OpenAI,
    Anthropic,
}

impl ClientApi {
    pub fn error_body(self, status: u16, code: &str, message: &str) -> Vec<u8> {
        match self {
            ClientApi::OpenAI => openai::error_body(status, code, message),
            ClientApi::Anthropic => anthropic::error_body(status, message),
        }
    }
}

/// An endpoint the router leg serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    ChatCompletions,
    Completions,
    Embeddings,
    Messages,
    Models(ClientApi),
}

impl Endpoint {
    /// The endpoint of a request path (query string ignored), if the gateway serves it.
    pub fn from_path(path: &str) -> Option<Endpoint> {
        let path = path.split(['?', '#']).next().unwrap_or(path);
        let path = path.strip_suffix('/').unwrap_or(path);
        Some(match path {
            "/v1/chat/completions" => Endpoint::ChatCompletions,
            "/v1/completions" => Endpoint::Completions,
            "/v1/embeddings" => Endpoint::Embeddings,
            "/anthropic/v1/messages" => Endpoint::Messages,
            "/v1/models" => Endpoint::Models(ClientApi::OpenAI),
            "/anthropic/v1/models" => Endpoint::Models(ClientApi::Anthropic),
            _ => return None,
        })
    }

    /// Streams that report usage only when asked (`stream_options.include_usage`).
    pub fn streams_usage(self) -> bool {
        matches!(self, Endpoint::ChatCompletions | Endpoint::Completions)
    }

    pub fn api(self) -> ClientApi {
        match self {
            Endpoint::Messages | Endpoint::Models(ClientApi::Anthropic) => ClientApi::Anthropic,
            _ => ClientApi::OpenAI,
        }
    }

    /// `gen_ai.operation.name` (OpenTelemetry GenAI semantic conventions).
    pub fn operation(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "chat",
            Endpoint::Completions => "text_completion",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Messages => "messages",
            Endpoint::Models(_) => "models",
        }
    }

    /// The path below the API prefix, as an upstream of the same schema serves it
    /// (`/v1/chat/completions` → `chat/completions`).
    pub fn upstream_suffix(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "chat/completions",
            Endpoint::Completions => "completions",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Messages => "messages",
            Endpoint::Models(_) => "models",
        }
    }

    pub fn can_stream(self) -> bool {
        matches!(
            self,
            Endpoint::ChatCompletions | Endpoint::Completions | Endpoint::Messages
        )
    }
}

/// What the gateway needs from a request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedRequest {
    pub model: String,
    pub stream: bool,
    /// `stream_options.include_usage` (OpenAI); Anthropic streams always carry usage.
    pub include_usage: bool,
    /// The most output tokens the client allows (`max_completion_tokens`, `max_tokens`), if
    /// it says: the output part of a rate limit reservation.
    pub max_output_tokens: Option<u64>,
}

/// Top-level fields of any request body we route; everything else is validated as JSON and
/// skipped without being materialised.
#[derive(Deserialize)]
struct RequestHead {
    #[serde(default)]
    model: Option<Value>,
    #[serde(default)]
    stream: Option<Value>,
    #[serde(default)]
    stream_options: Option<Value>,
    #[serde(default)]
    max_tokens: Option<Value>,
    #[serde(default)]
    max_completion_tokens: Option<Value>,
}

/// Parses and validates a request body for `endpoint`.
pub fn parse_request(endpoint: Endpoint, body: &[u8]) -> Result<ParsedRequest> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(
            match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                Ok(_) => Error::NotAnObject,
                Err(source) => Error::InvalidJson { source },
            },
        );
    }
    let head: RequestHead = serde_json::from_slice(body).map_err(|source| {
        if source.classify() == serde_json::error::Category::Data {
            Error::NotAnObject
        } else {
            Error::InvalidJson { source }
        }
    })?;
    let model = match head.model {
        None | Some(Value::Null) => return Err(Error::MissingModel),
        Some(Value::String(m)) if m.trim().is_empty() => return Err(Error::MissingModel),
        Some(Value::String(m)) if m.chars().any(char::is_control) => {
            return Err(Error::InvalidField {
                field: "model",
                expected: "a name without control characters",
            });
        }
        Some(Value::String(m)) => m,
        Some(_) => {
            return Err(Error::InvalidField {
                field: "model",
                expected: "a string",
            });
        }
    };
    let stream = match head.stream {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(_) => {
            return Err(Error::InvalidField {
                field: "stream",
                expected: "a boolean",
            });
        }
    };
    if stream && !endpoint.can_stream() {
        return Err(Error::InvalidField {
            field: "stream",
            expected: "false for this endpoint",
        });
    }
    let include_usage = match endpoint.api() {
        ClientApi::Anthropic => true,
        ClientApi::OpenAI => head
            .stream_options
            .as_ref()
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false),
    };
    // A malformed limit is the provider's to reject; it only means no estimate here.
    let max_output_tokens = head
        .max_completion_tokens
        .as_ref()
        .and_then(Value::as_u64)
        .or_else(|| head.max_tokens.as_ref().and_then(Value::as_u64));
    Ok(ParsedRequest {
        model,
        stream,
        include_usage,
        max_output_tokens,
    })
}

/// Usage and model of a whole (non-streamed) JSON response.
pub fn usage_from_json(api: ClientApi, body: &[u8]) -> Option<(TokenUsage, Option<String>)> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let usage = match api {
        ClientApi::OpenAI => openai::usage(value.get("usage")?),
        ClientApi::Anthropic => anthropic::usage(value.get("usage")?),
    };
    let model = value
        .get("model")
        .and_then(Value::as_str)
        .map(str::to_string);
    Some((usage, model))
}

/// What one stream event says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFacts {
    /// Usage reported by this event (merged into what earlier events said).
    pub usage: Option<TokenUsage>,
    pub model: Option<String>,
    /// The event carries generated output (for time to first token).
    pub output: bool,
    /// An OpenAI usage-only chunk (`choices: []` with `usage`), which a client that did not ask
    /// for usage must not see.
    pub usage_only: bool,
    /// The end-of-stream marker or event (`[DONE]`, `message_stop`).
    pub done: bool,
}

/// Reads one SSE event of a streamed response.
pub fn read_event(api: ClientApi, event: Option<&str>, data: &str) -> EventFacts {
    match api {
        ClientApi::OpenAI => openai::read_event(data),
        ClientApi::Anthropic => anthropic::read_event(event, data),
    }
}

/// A JSON number as a token count (negative or fractional counts are not counts).
fn count(value: Option<&Value>) -> Option<u64> {
    value.and_then(Value::as_u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_endpoints_ignoring_query_and_trailing_slash() {
        assert_eq!(
            Endpoint::from_path("/v1/chat/completions?x=1"),
            Some(Endpoint::ChatCompletions)
        );
        assert_eq!(
            Endpoint::from_path("/v1/models/"),
            Some(Endpoint::Models(ClientApi::OpenAI))
        );
        assert_eq!(Endpoint::from_path("/v1/files"), None);
    }

    #[test]
    fn request_without_model_is_rejected() {
        let err = parse_request(Endpoint::ChatCompletions, b"{\"messages\":[]}");
        assert!(matches!(err, Err(Error::MissingModel)));
    }

    #[test]
    fn request_that_is_not_json_is_rejected() {
        let err = parse_request(Endpoint::ChatCompletions, b"{\"model\":");
        assert!(matches!(err, Err(Error::InvalidJson { .. })));
        let err = parse_request(Endpoint::ChatCompletions, b"[1]");
        assert!(matches!(err, Err(Error::NotAnObject)));
    }

    #[test]
    fn streaming_request_reports_whether_it_asked_for_usage() {
        let parsed = parse_request(
            Endpoint::ChatCompletions,
            br#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#,
        )
        .expect("valid");
        assert!(parsed.stream && parsed.include_usage);
        let parsed =
            parse_request(Endpoint::Completions, br#"{"model":"m","stream":true}"#).expect("valid");
        assert!(parsed.stream && !parsed.include_usage);
    }

    #[test]
    fn embeddings_cannot_stream() {
        let err = parse_request(Endpoint::Embeddings, br#"{"model":"m","stream":true}"#);
        assert!(matches!(err, Err(Error::InvalidField { .. })));
    }
}
