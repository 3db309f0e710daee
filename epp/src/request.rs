//! Reading an OpenAI request body into what the scheduler needs: `model`, the prompt text and
//! `cache_salt`.
//!
//! The prompt is the text a model server would put through its prefix cache, in a fixed shape
//! so equal conversations hash equally:
//! - chat (`messages`): `"{role}: {content}\n"` per message, where a content array contributes
//!   its `text` parts;
//! - completions (`prompt`): the string, or the strings of an array joined by `"\n"` (token-id
//!   arrays are written as numbers);
//! - responses / embeddings (`input`): the string, or the strings of an array joined by `"\n"`.
//!
//! An empty body is a request without a body (picked without a prompt). Anything else that is
//! not a JSON object with a string `model` is a 400.

use serde_json::Value;

use crate::scheduling::InferenceRequest;
use crate::{Error, Result};

/// Parses a complete request body.
pub fn parse_body(body: &[u8]) -> Result<InferenceRequest> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(InferenceRequest::default());
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|source| Error::InvalidJson { source })?;
    let Value::Object(object) = value else {
        return Err(Error::NotAnObject);
    };
    let model = match object.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        Some(Value::String(_)) | None => return Err(Error::MissingModel),
        Some(_) => {
            return Err(Error::InvalidField {
                field: "model",
                expected: "a string",
            });
        }
    };
    let prompt = if let Some(messages) = object.get("messages") {
        Some(chat_prompt(messages)?)
    } else if let Some(prompt) = object.get("prompt") {
        Some(text_or_list(prompt, "prompt")?)
    } else if let Some(input) = object.get("input") {
        Some(text_or_list(input, "input")?)
    } else {
        None
    };
    let cache_salt = match object.get("cache_salt") {
        Some(Value::String(s)) => Some(s.clone()),
        None | Some(Value::Null) => None,
        Some(_) => {
            return Err(Error::InvalidField {
                field: "cache_salt",
                expected: "a string",
            });
        }
    };
    Ok(InferenceRequest {
        model,
        prompt,
        cache_salt,
    })
}

fn chat_prompt(messages: &Value) -> Result<String> {
    let Value::Array(messages) = messages else {
        return Err(Error::InvalidField {
            field: "messages",
            expected: "an array",
        });
    };
    let mut out = String::new();
    for message in messages {
        let Value::Object(message) = message else {
            return Err(Error::InvalidField {
                field: "messages",
                expected: "an array of objects",
            });
        };
        let role = message.get("role").and_then(Value::as_str).unwrap_or("");
        out.push_str(role);
        out.push_str(": ");
        match message.get("content") {
            Some(Value::String(text)) => out.push_str(text),
            Some(Value::Array(parts)) => {
                for part in parts {
                    match part {
                        Value::String(text) => out.push_str(text),
                        Value::Object(p) => {
                            if let Some(text) = p.get("text").and_then(Value::as_str) {
                                out.push_str(text);
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        out.push('\n');
    }
    Ok(out)
}

fn text_or_list(value: &Value, field: &'static str) -> Result<String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Array(items) => {
            let mut parts = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s) => parts.push(s.clone()),
                    Value::Number(n) => parts.push(n.to_string()),
                    Value::Array(tokens) => parts.push(
                        tokens
                            .iter()
                            .map(|t| t.to_string())
                            .collect::<Vec<_>>()
                            .join(" "),
                    ),
                    Value::Object(o) => {
                        if let Some(text) = o.get("text").and_then(Value::as_str) {
                            parts.push(text.to_owned());
                        }
                    }
                    _ => {}
                }
            }
            Ok(parts.join("\n"))
        }
        _ => Err(Error::InvalidField {
            field,
            expected: "a string or an array",
        }),
    }
}
