//! OpenAI's API shapes: errors, the models list, usage in responses and stream chunks.

use serde_json::{Value, json};

use super::{EventFacts, count};
use crate::config::ListedModel;
use crate::usage::TokenUsage;

/// `{"error":{"message","type","param":null,"code"}}`.
pub fn error_body(status: u16, code: &str, message: &str) -> Vec<u8> {
    let kind = match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        s if s >= 500 => "server_error",
        _ => "invalid_request_error",
    };
    json!({
        "error": {
            "message": message,
            "type": kind,
            "param": null,
            "code": code,
        }
    })
    .to_string()
    .into_bytes()
}

/// `GET /v1/models`: `{"object":"list","data":[{"id","object":"model","created","owned_by"}]}`.
/// The request body with `stream_options.include_usage` set, everything else kept.
pub fn with_usage_requested(body: &[u8]) -> crate::Result<Vec<u8>> {
    let mut object = crate::mutation::JsonObject::parse(body)
        .map_err(|source| crate::Error::InvalidJson { source })?;
    object
        .set(
            &["stream_options".to_string(), "include_usage".to_string()],
            &Value::Bool(true),
        )
        .map_err(|_| crate::Error::InvalidField {
            field: "stream_options",
            expected: "an object",
        })?;
    Ok(object.to_vec())
}

pub fn models_body(models: &[ListedModel]) -> Vec<u8> {
    let data: Vec<Value> = models
        .iter()
        .map(|m| {
            json!({
                "id": m.id,
                "object": "model",
                "created": m.created.as_second(),
                "owned_by": m.owned_by,
            })
        })
        .collect();
    json!({ "object": "list", "data": data })
        .to_string()
        .into_bytes()
}

/// `usage` of a chat, completion or embeddings response (or stream chunk).
pub fn usage(usage: &Value) -> TokenUsage {
    TokenUsage {
        input: count(usage.get("prompt_tokens")),
        cached_input: count(usage.pointer("/prompt_tokens_details/cached_tokens")),
        cache_creation_input: None,
        output: count(usage.get("completion_tokens")),
        reasoning: count(usage.pointer("/completion_tokens_details/reasoning_tokens")),
        total: count(usage.get("total_tokens")),
    }
}

/// One `data:` payload of a chat or completions stream.
pub fn read_event(data: &str) -> EventFacts {
    let data = data.trim();
    if data == "[DONE]" {
        return EventFacts {
            done: true,
            ..EventFacts::default()
        };
    }
    let Ok(chunk) = serde_json::from_str::<Value>(data) else {
        return EventFacts::default();
    };
    let reported = chunk.get("usage").filter(|u| u.is_object()).map(usage);
    let choices = chunk.get("choices").and_then(Value::as_array);
    let output = choices.is_some_and(|c| !c.is_empty());
    EventFacts {
        usage_only: reported.is_some() && choices.is_some_and(|c| c.is_empty()),
        usage: reported,
        model: chunk
            .get("model")
            .and_then(Value::as_str)
            .map(str::to_string),
        output,
        done: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_reads_cached_and_reasoning_details() {
        let u = usage(&json!({
            "prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
            "prompt_tokens_details": {"cached_tokens": 3},
            "completion_tokens_details": {"reasoning_tokens": 2}
        }));
        assert_eq!(
            u,
            TokenUsage {
                input: Some(10),
                cached_input: Some(3),
                cache_creation_input: None,
                output: Some(5),
                reasoning: Some(2),
                total: Some(15),
            }
        );
    }

    #[test]
    fn usage_only_chunk_is_recognised() {
        let facts = read_event(
            r#"{"id":"x","choices":[],"model":"m","usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#,
        );
        assert!(facts.usage_only);
        assert!(!facts.output);
        let facts = read_event(r#"{"choices":[{"delta":{"content":"hi"}}],"usage":null}"#);
        assert!(!facts.usage_only && facts.output && facts.usage.is_none());
        assert!(read_event("[DONE]").done);
    }

    #[test]
    fn error_body_has_openai_shape() {
        let body: Value =
            serde_json::from_slice(&error_body(400, "missing_model", "no model")).expect("json");
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["code"], "missing_model");
        assert_eq!(body["error"]["param"], Value::Null);
    }
}
