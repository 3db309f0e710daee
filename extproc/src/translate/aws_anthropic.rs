//! Claude on AWS Bedrock through InvokeModel (`AWSAnthropic`): the Anthropic Messages body,
//! without `model` (it is in the path) or `stream` (the action says it), with Bedrock's
//! `anthropic_version`; SigV4-signed like every Bedrock call.
//!
//! `/model/{id}/invoke` answers the Anthropic message JSON as it is. The streaming action
//! answers an AWS event stream whose `chunk` events each carry one Anthropic stream event,
//! base64-encoded (`{"bytes": "…"}`); [`EventsToSse`] turns it back into Anthropic's own SSE,
//! so a client of `/anthropic/v1/messages` gets what Anthropic would send, and chat
//! completions reuse the Anthropic stream translator on it.

use aws_smithy_types::event_stream::Message as Frame;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::translate::eventstream::{Frames, header};
use crate::translate::{RequestError, ResponseContext, StreamTranslator, anthropic};

/// `anthropic_version` of InvokeModel bodies unless the schema names one.
pub const DEFAULT_VERSION: &str = "bedrock-2023-05-31";

/// `/model/{modelId}/invoke` (or `invoke-with-response-stream`), the id percent-encoded.
pub fn path(model: &str, stream: bool) -> String {
    let action = if stream {
        "invoke-with-response-stream"
    } else {
        "invoke"
    };
    format!("/model/{}/{action}", crate::translate::azure::encode(model))
}

/// An Anthropic Messages body as InvokeModel takes it, and whether it asked for a stream.
pub fn wrap(body: &[u8], version: Option<&str>) -> Result<(Vec<u8>, bool), RequestError> {
    let mut object: serde_json::Map<String, Value> = serde_json::from_slice(body)
        .map_err(|e| RequestError::new(format!("the Messages body is not a JSON object: {e}")))?;
    object.remove("model");
    let by_url = object
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("content").and_then(Value::as_array))
        .flatten()
        .any(|block| block["type"] == "image" && block["source"]["type"] == "url");
    if by_url {
        return Err(RequestError::new(
            "Claude on AWS Bedrock takes images inline (data: URLs or base64), not by URL",
        ));
    }
    let stream = object
        .remove("stream")
        .is_some_and(|s| s == Value::Bool(true));
    object
        .entry("anthropic_version")
        .or_insert_with(|| Value::String(version.unwrap_or(DEFAULT_VERSION).to_string()));
    let bytes = serde_json::to_vec(&object)
        .map_err(|e| RequestError::new(format!("the Messages body cannot be written: {e}")))?;
    Ok((bytes, stream))
}

/// A Bedrock error (`{"message"}`, the exception in `x-amzn-errortype`) in Anthropic's shape.
pub fn anthropic_error(status: u16, error_type: Option<&str>, body: &[u8]) -> Vec<u8> {
    #[derive(Deserialize)]
    struct BedrockError {
        message: String,
    }
    let message = match serde_json::from_slice::<BedrockError>(body) {
        Ok(e) => e.message,
        Err(_) => crate::translate::error_text(body),
    };
    let exception = error_type.map(crate::translate::bedrock::from_openai::exception_name);
    error_json(anthropic_error_type(status, exception), &message)
}

fn error_json(kind: &str, message: &str) -> Vec<u8> {
    json!({"type": "error", "error": {"type": kind, "message": message}})
        .to_string()
        .into_bytes()
}

/// Anthropic's error `type` for a status or a Bedrock exception.
fn anthropic_error_type(status: u16, exception: Option<&str>) -> &'static str {
    match exception {
        Some("ThrottlingException" | "throttlingException") => return "rate_limit_error",
        Some("ValidationException" | "validationException") => return "invalid_request_error",
        Some("ModelNotReadyException" | "ServiceUnavailableException") => {
            return "overloaded_error";
        }
        _ => {}
    }
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    }
}

/// The InvokeModel event stream as Anthropic SSE (`event: <type>` / `data: <json>`), a chunk
/// at a time: frames split across chunks wait for their end.
#[derive(Default)]
pub struct EventsToSse {
    frames: Frames,
    done: bool,
}

impl EventsToSse {
    pub fn new() -> EventsToSse {
        EventsToSse::default()
    }

    fn frame(&mut self, frame: &Frame, out: &mut Vec<u8>) {
        let header = |name: &str| header(frame, name);
        let payload: &[u8] = frame.payload();
        if header(":message-type").as_deref() == Some("exception") {
            let exception = header(":exception-type");
            let error = anthropic_error(500, exception.as_deref(), payload);
            out.extend(sse("error", &error));
            return;
        }
        if header(":event-type").as_deref() != Some("chunk") {
            return;
        }
        #[derive(Deserialize)]
        struct Chunk {
            bytes: String,
        }
        let event = serde_json::from_slice::<Chunk>(payload)
            .ok()
            .and_then(|c| aws_smithy_types::base64::decode(&c.bytes).ok());
        let Some(event) = event else {
            tracing::debug!("skipping a Bedrock chunk that does not decode");
            return;
        };
        let kind = serde_json::from_slice::<Value>(&event)
            .ok()
            .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_string));
        match kind {
            Some(kind) => out.extend(sse(&kind, &event)),
            None => tracing::debug!("skipping a Bedrock chunk without an event type"),
        }
    }

    /// Anthropic SSE for the next bytes of the event stream (maybe none yet).
    pub fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        self.frames.push(bytes);
        while !self.done {
            match self.frames.next_frame() {
                Ok(Some(frame)) => self.frame(&frame, &mut out),
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "the Bedrock event stream is corrupt");
                    let error = error_json(
                        "api_error",
                        "the provider's event stream could not be decoded",
                    );
                    out.extend(sse("error", &error));
                    self.done = true;
                }
            }
        }
        out
    }
}

fn sse(kind: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + kind.len() + 16);
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\n\n");
    out
}

/// The event stream for a client of `/anthropic/v1/messages`: Anthropic SSE.
impl StreamTranslator for EventsToSse {
    fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        EventsToSse::push(self, bytes)
    }

    fn finish(&mut self) -> Vec<u8> {
        Vec::new()
    }
}

/// The event stream for a chat completions client: Anthropic SSE, then OpenAI chunks.
pub struct ChatStream {
    events: EventsToSse,
    chat: anthropic::from_openai::Stream,
}

impl ChatStream {
    pub fn new(cx: &ResponseContext, created: i64) -> ChatStream {
        ChatStream {
            events: EventsToSse::new(),
            chat: anthropic::from_openai::Stream::new(cx, created),
        }
    }
}

impl StreamTranslator for ChatStream {
    fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        let sse = self.events.push(bytes);
        self.chat.push(&sse)
    }

    fn finish(&mut self) -> Vec<u8> {
        self.chat.finish()
    }
}

#[cfg(test)]
mod tests {
    use aws_smithy_types::event_stream::{Header, HeaderValue};

    use super::*;

    fn chunk(event: Value) -> Vec<u8> {
        let bytes = aws_smithy_types::base64::encode(event.to_string());
        let frame = Frame::new(json!({"bytes": bytes}).to_string().into_bytes())
            .add_header(Header::new(
                ":message-type",
                HeaderValue::String("event".into()),
            ))
            .add_header(Header::new(
                ":event-type",
                HeaderValue::String("chunk".into()),
            ))
            .add_header(Header::new(
                ":content-type",
                HeaderValue::String("application/json".into()),
            ));
        let mut out = Vec::new();
        aws_smithy_eventstream::frame::write_message_to(&frame, &mut out).expect("frame");
        out
    }

    fn stream() -> Vec<u8> {
        [
            chunk(
                json!({"type": "message_start", "message": {"id": "msg_1", "type": "message",
                "role": "assistant", "model": "claude", "content": [],
                "usage": {"input_tokens": 9, "output_tokens": 1}}}),
            ),
            chunk(json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "text", "text": ""}})),
            chunk(json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": "Hi there"}})),
            chunk(json!({"type": "content_block_stop", "index": 0})),
            chunk(
                json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": 4}}),
            ),
            chunk(json!({"type": "message_stop",
                "amazon-bedrock-invocationMetrics": {"inputTokenCount": 9}})),
        ]
        .concat()
    }

    #[test]
    fn the_body_loses_model_and_stream_and_gains_bedrocks_version() {
        let (body, stream) = wrap(
            br#"{"model":"claude","stream":true,"max_tokens":5,"messages":[]}"#,
            None,
        )
        .expect("wrap");
        assert!(stream);
        let body: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(
            body,
            json!({"max_tokens": 5, "messages": [], "anthropic_version": DEFAULT_VERSION})
        );
        assert!(wrap(b"[1]", None).is_err());
        assert_eq!(
            path("anthropic.claude-3-5-sonnet-20241022-v2:0", true),
            "/model/anthropic.claude-3-5-sonnet-20241022-v2%3A0/invoke-with-response-stream"
        );
    }

    #[test]
    fn an_event_stream_split_at_every_byte_is_the_same_anthropic_sse() {
        let bytes = stream();
        let whole = EventsToSse::new().push(&bytes);
        let mut split = EventsToSse::new();
        let pieces: Vec<u8> = bytes.iter().flat_map(|b| split.push(&[*b])).collect();
        assert_eq!(whole, pieces);
        let text = String::from_utf8(whole).expect("utf-8");
        assert!(text.starts_with("event: message_start\ndata: {"), "{text}");
        assert!(
            text.contains("event: content_block_delta\ndata: "),
            "{text}"
        );
        assert!(text.ends_with("\n\n"), "{text}");
    }

    #[test]
    fn chat_clients_get_openai_chunks_with_the_usage_at_the_end() {
        let cx = ResponseContext {
            model: "claude".into(),
            stream: true,
            usage_chunk: true,
            anthropic_client: false,
            embeddings: false,
        };
        let bytes = stream();
        let mut chat = ChatStream::new(&cx, 1);
        let mut out: Vec<u8> = bytes.chunks(7).flat_map(|c| chat.push(c)).collect();
        out.extend(chat.finish());
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.contains(r#""content":"Hi there""#), "{text}");
        assert!(text.contains(r#""finish_reason":"stop""#), "{text}");
        assert!(text.contains(r#""prompt_tokens":9"#), "{text}");
        assert!(text.contains(r#""completion_tokens":4"#), "{text}");
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    }

    #[test]
    fn exceptions_and_errors_take_anthropics_shape() {
        let body = anthropic_error(
            429,
            Some("ThrottlingException:http://internal"),
            br#"{"message":"slow down"}"#,
        );
        let body: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(
            body,
            json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})
        );
    }
}
