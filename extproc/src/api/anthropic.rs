//! Anthropic's Messages API shapes: errors, the models list, usage in responses and events.
//!
//! Input tokens are reported as Envoy AI Gateway does: `input_tokens + cache_read_input_tokens
//! + cache_creation_input_tokens`, so "input" means the whole prompt whichever API served it.

use serde_json::{Value, json};

use super::{EventFacts, count};
use crate::config::ListedModel;
use crate::usage::TokenUsage;

/// `{"type":"error","error":{"type","message"}}`.
pub fn error_body(status: u16, message: &str) -> Vec<u8> {
    let kind = match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        s if s >= 500 => "api_error",
        _ => "invalid_request_error",
    };
    json!({
        "type": "error",
        "error": { "type": kind, "message": message }
    })
    .to_string()
    .into_bytes()
}

/// `GET /anthropic/v1/models` in Anthropic's list shape.
pub fn models_body(models: &[ListedModel]) -> Vec<u8> {
    let data: Vec<Value> = models
        .iter()
        .map(|m| {
            json!({
                "type": "model",
                "id": m.id,
                "display_name": m.id,
                "created_at": m.created.to_string(),
            })
        })
        .collect();
    json!({
        "data": data,
        "has_more": false,
        "first_id": models.first().map(|m| m.id.as_str()),
        "last_id": models.last().map(|m| m.id.as_str()),
    })
    .to_string()
    .into_bytes()
}

/// `usage` of a message (or of a `message_start` / `message_delta` event).
pub fn usage(usage: &Value) -> TokenUsage {
    let raw_input = count(usage.get("input_tokens"));
    let cache_read = count(usage.get("cache_read_input_tokens"));
    let cache_creation = count(usage.get("cache_creation_input_tokens"));
    let input = match (raw_input, cache_read, cache_creation) {
        (None, None, None) => None,
        (a, b, c) => Some(
            a.unwrap_or(0)
                .saturating_add(b.unwrap_or(0))
                .saturating_add(c.unwrap_or(0)),
        ),
    };
    TokenUsage {
        input,
        cached_input: cache_read,
        cache_creation_input: cache_creation,
        output: count(usage.get("output_tokens")),
        reasoning: None,
        total: None,
    }
}

/// One event of a Messages stream.
pub fn read_event(event: Option<&str>, data: &str) -> EventFacts {
    let Ok(value) = serde_json::from_str::<Value>(data) else {
        return EventFacts::default();
    };
    let kind = event
        .or_else(|| value.get("type").and_then(Value::as_str))
        .unwrap_or_default();
    match kind {
        "message_start" => EventFacts {
            usage: value.pointer("/message/usage").map(usage),
            model: value
                .pointer("/message/model")
                .and_then(Value::as_str)
                .map(str::to_string),
            ..EventFacts::default()
        },
        "message_delta" => EventFacts {
            usage: value.get("usage").map(usage).map(|mut u| {
                // A delta reports zero for counts it does not carry.
                if u.input == Some(0) {
                    u.input = None;
                }
                for c in [&mut u.cached_input, &mut u.cache_creation_input] {
                    if *c == Some(0) {
                        *c = None;
                    }
                }
                u
            }),
            ..EventFacts::default()
        },
        "content_block_delta" => EventFacts {
            output: true,
            ..EventFacts::default()
        },
        "message_stop" => EventFacts {
            done: true,
            ..EventFacts::default()
        },
        _ => EventFacts::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_includes_cache_reads_and_writes() {
        let u = usage(&json!({
            "input_tokens": 10, "output_tokens": 4,
            "cache_read_input_tokens": 5, "cache_creation_input_tokens": 2
        }));
        assert_eq!(u.input, Some(17));
        assert_eq!(u.cached_input, Some(5));
        assert_eq!(u.cache_creation_input, Some(2));
        assert_eq!(u.total_tokens(), 21);
    }

    #[test]
    fn stream_usage_is_message_start_then_message_delta() {
        let mut total = TokenUsage::default();
        let start = read_event(
            Some("message_start"),
            r#"{"type":"message_start","message":{"model":"claude","usage":{"input_tokens":9,"output_tokens":1}}}"#,
        );
        assert_eq!(start.model.as_deref(), Some("claude"));
        total.merge(start.usage.expect("usage"));
        let delta = read_event(
            Some("message_delta"),
            r#"{"type":"message_delta","usage":{"input_tokens":0,"output_tokens":12}}"#,
        );
        total.merge(delta.usage.expect("usage"));
        assert_eq!(total.input, Some(9));
        assert_eq!(total.output, Some(12));
    }

    #[test]
    fn error_body_has_anthropic_shape() {
        let body: Value = serde_json::from_slice(&error_body(413, "too big")).expect("json");
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], "request_too_large");
    }
}
