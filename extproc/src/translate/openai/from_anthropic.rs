//! Anthropic Messages (`/anthropic/v1/messages`) → an OpenAI chat completions backend, and the
//! answer back in Anthropic's shape, so Anthropic clients can use any OpenAI-compatible model
//! (vLLM, OpenAI, Groq…).
//!
//! Request: `system` becomes a system message; text and image blocks become content parts;
//! `tool_use` blocks become tool calls and `tool_result` blocks tool messages (placed before
//! the rest of their user turn, as OpenAI wants results right after the calls); tools and
//! `tool_choice` map one to one; `max_tokens` becomes `max_completion_tokens`, `stop_sequences`
//! `stop`; a stream asks for usage. Dropped, as OpenAI has no equivalent: `top_k`, `thinking`,
//! cache-control marks.
//!
//! Response: text and tool calls become `text` and `tool_use` blocks; finish reasons become
//! stop reasons; `input_tokens` excludes cached prompt tokens (Anthropic counts them apart, in
//! `cache_read_input_tokens`). A stream becomes Anthropic's event sequence, one content block
//! at a time, `message_delta` carrying the stop reason and usage once the usage chunk came.

use serde_json::{Map, Value, json};

use crate::sse::SseParser;
use crate::translate::{RequestError, StreamTranslator, UpstreamRequest};

/// The chat completions request for a Messages `body`, sent to `{prefix}/chat/completions`.
pub fn request(
    body: &[u8],
    model: &str,
    prefix: &str,
) -> Result<(UpstreamRequest, bool), RequestError> {
    let messages_request: Map<String, Value> = serde_json::from_slice(body)
        .map_err(|e| RequestError::new(format!("the Messages body does not parse: {e}")))?;
    let field = |name: &str| messages_request.get(name).filter(|v| !v.is_null());
    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    let mut messages = Vec::new();
    match field("system") {
        Some(Value::String(text)) => messages.push(json!({"role": "system", "content": text})),
        Some(Value::Array(blocks)) => {
            let text = block_texts(blocks);
            messages.push(json!({"role": "system", "content": text}));
        }
        Some(_) => return Err(RequestError::new("system must be a string or text blocks")),
        None => {}
    }
    let Some(Value::Array(turns)) = field("messages") else {
        return Err(RequestError::new("messages must be a list"));
    };
    for turn in turns {
        let role = turn["role"].as_str().unwrap_or_default();
        match (role, &turn["content"]) {
            ("user" | "assistant", Value::String(text)) => {
                messages.push(json!({"role": role, "content": text}))
            }
            ("user", Value::Array(blocks)) => messages.extend(user_turn(blocks)?),
            ("assistant", Value::Array(blocks)) => messages.push(assistant_turn(blocks)),
            _ => {
                return Err(RequestError::new(format!(
                    "a message needs role user or assistant and content, got role {role:?}"
                )));
            }
        }
    }
    out.insert("messages".into(), Value::Array(messages));
    if let Some(max) = field("max_tokens") {
        out.insert("max_completion_tokens".into(), max.clone());
    }
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("stop_sequences", "stop"),
    ] {
        if let Some(value) = field(from) {
            out.insert(to.into(), value.clone());
        }
    }
    if let Some(user) = field("metadata").and_then(|m| m.get("user_id")) {
        out.insert("user".into(), user.clone());
    }
    if let Some(Value::Array(tools)) = field("tools") {
        let tools: Vec<Value> = tools
            .iter()
            .map(|t| {
                let mut function = json!({"name": t["name"], "parameters": t["input_schema"]});
                if let Some(description) = t.get("description").filter(|d| !d.is_null()) {
                    function["description"] = description.clone();
                }
                json!({"type": "function", "function": function})
            })
            .collect();
        out.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = field("tool_choice") {
        let mapped = match choice["type"].as_str() {
            Some("auto") => json!("auto"),
            Some("any") => json!("required"),
            Some("none") => json!("none"),
            Some("tool") => json!({"type": "function", "function": {"name": choice["name"]}}),
            _ => {
                return Err(RequestError::new(
                    "tool_choice type must be auto, any, tool or none",
                ));
            }
        };
        out.insert("tool_choice".into(), mapped);
        if choice["disable_parallel_tool_use"] == true {
            out.insert("parallel_tool_calls".into(), json!(false));
        }
    }
    let stream = field("stream") == Some(&Value::Bool(true));
    if stream {
        out.insert("stream".into(), json!(true));
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    let body = serde_json::to_vec(&Value::Object(out))
        .map_err(|e| RequestError::new(format!("the request cannot be written: {e}")))?;
    let upstream = UpstreamRequest {
        path: format!("{prefix}/chat/completions"),
        headers: vec![("content-type".into(), "application/json".into())],
        body,
    };
    Ok((upstream, stream))
}

fn block_texts(blocks: &[Value]) -> String {
    blocks
        .iter()
        .filter(|b| b["type"] == "text")
        .filter_map(|b| b["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A user turn: its tool results as tool messages first, then the rest as one user message.
fn user_turn(blocks: &[Value]) -> Result<Vec<Value>, RequestError> {
    let mut out = Vec::new();
    let mut parts = Vec::new();
    for block in blocks {
        match block["type"].as_str() {
            Some("text") => parts.push(json!({"type": "text", "text": block["text"]})),
            Some("image") => {
                let source = &block["source"];
                let url = match source["type"].as_str() {
                    Some("base64") => format!(
                        "data:{};base64,{}",
                        source["media_type"].as_str().unwrap_or("image/png"),
                        source["data"].as_str().unwrap_or_default()
                    ),
                    Some("url") => source["url"].as_str().unwrap_or_default().to_string(),
                    _ => return Err(RequestError::new("an image source must be base64 or url")),
                };
                parts.push(json!({"type": "image_url", "image_url": {"url": url}}));
            }
            Some("tool_result") => {
                let content = match &block["content"] {
                    Value::String(text) => text.clone(),
                    Value::Array(inner) => block_texts(inner),
                    _ => String::new(),
                };
                out.push(json!({
                    "role": "tool",
                    "tool_call_id": block["tool_use_id"],
                    "content": content,
                }));
            }
            // Documents, thinking and the like have no chat completions form.
            _ => {}
        }
    }
    if !parts.is_empty() {
        out.push(json!({"role": "user", "content": parts}));
    }
    Ok(out)
}

fn assistant_turn(blocks: &[Value]) -> Value {
    let text = block_texts(blocks);
    let calls: Vec<Value> = blocks
        .iter()
        .filter(|b| b["type"] == "tool_use")
        .map(|b| {
            json!({"id": b["id"], "type": "function",
                   "function": {"name": b["name"], "arguments": b["input"].to_string()}})
        })
        .collect();
    let mut message = json!({"role": "assistant", "content": text});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    message
}

/// Anthropic's stop reason for an OpenAI finish reason.
fn stop_reason(finish: &str) -> &'static str {
    match finish {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        _ => "end_turn",
    }
}

/// `(input_tokens, output_tokens, cache_read_input_tokens)` of an OpenAI usage object.
fn usage(usage: &Value) -> Value {
    let prompt = usage["prompt_tokens"].as_u64().unwrap_or(0);
    let cached = usage["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap_or(0);
    let mut out = json!({
        "input_tokens": prompt.saturating_sub(cached),
        "output_tokens": usage["completion_tokens"].as_u64().unwrap_or(0),
    });
    if cached > 0 {
        out["cache_read_input_tokens"] = json!(cached);
    }
    out
}

fn message_id(id: &Value) -> String {
    match id.as_str() {
        Some(id) if id.starts_with("msg_") => id.to_string(),
        Some(id) if !id.is_empty() => format!("msg_{id}"),
        _ => "msg_infergate".to_string(),
    }
}

/// An OpenAI chat completion as an Anthropic message.
pub fn response(body: &[u8], model: &str) -> Result<Vec<u8>, String> {
    let completion: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let choice = &completion["choices"][0];
    let message = &choice["message"];
    let mut content = Vec::new();
    if let Some(text) = message["content"].as_str().filter(|t| !t.is_empty()) {
        content.push(json!({"type": "text", "text": text}));
    }
    for call in message["tool_calls"].as_array().into_iter().flatten() {
        let arguments = call["function"]["arguments"].as_str().unwrap_or("{}");
        let input: Value = serde_json::from_str(arguments).unwrap_or_else(|_| json!({}));
        content.push(json!({"type": "tool_use", "id": call["id"],
                            "name": call["function"]["name"], "input": input}));
    }
    let answered = completion["model"].as_str().unwrap_or(model);
    let message = json!({
        "id": message_id(&completion["id"]),
        "type": "message",
        "role": "assistant",
        "model": answered,
        "content": content,
        "stop_reason": stop_reason(choice["finish_reason"].as_str().unwrap_or("stop")),
        "stop_sequence": null,
        "usage": usage(&completion["usage"]),
    });
    serde_json::to_vec(&message).map_err(|e| e.to_string())
}

/// An OpenAI error body in Anthropic's shape (the status stays the provider's).
pub fn error(status: u16, body: &[u8]) -> Vec<u8> {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| crate::translate::error_text(body));
    let kind = match status {
        400 | 413 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    };
    json!({"type": "error", "error": {"type": kind, "message": message}})
        .to_string()
        .into_bytes()
}

/// The content block being streamed.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Block {
    Text(u32),
    /// Anthropic block index, OpenAI tool call index.
    Tool(u32, u64),
}

/// An OpenAI chunk stream as Anthropic's event stream.
pub struct Stream {
    parser: SseParser,
    model: String,
    started: bool,
    block: Option<Block>,
    next_index: u32,
    finish: Option<String>,
    usage: Option<Value>,
    done: bool,
}

impl Stream {
    pub fn new(model: &str) -> Stream {
        Stream {
            parser: SseParser::new(),
            model: model.to_string(),
            started: false,
            block: None,
            next_index: 0,
            finish: None,
            usage: None,
            done: false,
        }
    }

    fn start(&mut self, chunk: &Value, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let model = chunk["model"].as_str().unwrap_or(&self.model).to_string();
        emit(
            out,
            "message_start",
            json!({"type": "message_start", "message": {
                "id": message_id(&chunk["id"]), "type": "message", "role": "assistant",
                "model": model, "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 0, "output_tokens": 0}}}),
        );
    }

    fn close_block(&mut self, out: &mut Vec<u8>) {
        if let Some(Block::Text(index) | Block::Tool(index, _)) = self.block.take() {
            emit(
                out,
                "content_block_stop",
                json!({"type": "content_block_stop", "index": index}),
            );
        }
    }

    fn open(&mut self, block: Value, out: &mut Vec<u8>) -> u32 {
        self.close_block(out);
        let index = self.next_index;
        self.next_index += 1;
        emit(
            out,
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": block}),
        );
        index
    }

    fn chunk(&mut self, chunk: &Value, out: &mut Vec<u8>) {
        if let Some(error) = chunk.get("error") {
            let message = error["message"]
                .as_str()
                .unwrap_or("the provider failed mid-stream");
            emit(
                out,
                "error",
                json!({"type": "error", "error": {"type": "api_error", "message": message}}),
            );
            return;
        }
        self.start(chunk, out);
        if chunk["usage"].is_object() {
            self.usage = Some(chunk["usage"].clone());
        }
        for choice in chunk["choices"].as_array().into_iter().flatten() {
            let delta = &choice["delta"];
            if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
                let index = match self.block {
                    Some(Block::Text(index)) => index,
                    _ => {
                        let index = self.open(json!({"type": "text", "text": ""}), out);
                        self.block = Some(Block::Text(index));
                        index
                    }
                };
                emit(
                    out,
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": index,
                           "delta": {"type": "text_delta", "text": text}}),
                );
            }
            for call in delta["tool_calls"].as_array().into_iter().flatten() {
                let call_index = call["index"].as_u64().unwrap_or(0);
                let index = match self.block {
                    Some(Block::Tool(index, current)) if current == call_index => index,
                    _ => {
                        let block = json!({"type": "tool_use", "id": call["id"],
                            "name": call["function"]["name"], "input": {}});
                        let index = self.open(block, out);
                        self.block = Some(Block::Tool(index, call_index));
                        index
                    }
                };
                if let Some(arguments) = call["function"]["arguments"]
                    .as_str()
                    .filter(|a| !a.is_empty())
                {
                    emit(
                        out,
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": index,
                               "delta": {"type": "input_json_delta", "partial_json": arguments}}),
                    );
                }
            }
            if let Some(finish) = choice["finish_reason"].as_str() {
                self.finish = Some(finish.to_string());
            }
        }
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        self.done = true;
        self.start(&Value::Null, out);
        self.close_block(out);
        let usage = self
            .usage
            .as_ref()
            .map(usage)
            .unwrap_or_else(|| json!({"input_tokens": 0, "output_tokens": 0}));
        let stop = stop_reason(self.finish.as_deref().unwrap_or("stop"));
        emit(
            out,
            "message_delta",
            json!({"type": "message_delta",
                   "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": usage}),
        );
        emit(out, "message_stop", json!({"type": "message_stop"}));
    }

    fn event(&mut self, data: &str, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        if data.trim() == "[DONE]" {
            self.end(out);
            return;
        }
        match serde_json::from_str::<Value>(data) {
            Ok(chunk) => self.chunk(&chunk, out),
            Err(_) => tracing::debug!("skipping a provider chunk that does not parse"),
        }
    }
}

fn emit(out: &mut Vec<u8>, kind: &str, data: Value) {
    out.extend_from_slice(format!("event: {kind}\ndata: {data}\n\n").as_bytes());
}

impl StreamTranslator for Stream {
    fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for event in self.parser.push(bytes) {
            if let Some(data) = event.data.as_deref() {
                self.event(data, &mut out);
            }
        }
        out
    }

    fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some(event) = self.parser.finish()
            && let Some(data) = event.data.as_deref()
        {
            self.event(data, &mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_messages_request_becomes_chat_completions() {
        let body = json!({
            "model": "claude", "max_tokens": 100, "system": [{"type": "text", "text": "Be brief."}],
            "stop_sequences": ["END"], "top_k": 5, "stream": true,
            "tools": [{"name": "get_weather", "description": "Weather",
                       "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "any"},
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                     "input": {"city": "Paris"}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                  "data": "AAAA"}},
                    {"type": "text", "text": "And this?"}]}]});
        let (upstream, stream) =
            request(body.to_string().as_bytes(), "llama", "/v1").expect("translates");
        assert!(stream);
        assert_eq!(upstream.path, "/v1/chat/completions");
        let out: Value = serde_json::from_slice(&upstream.body).expect("json");
        assert_eq!(
            out,
            json!({
                "model": "llama", "max_completion_tokens": 100, "stop": ["END"], "stream": true,
                "stream_options": {"include_usage": true},
                "tools": [{"type": "function", "function": {"name": "get_weather",
                    "description": "Weather", "parameters": {"type": "object"}}}],
                "tool_choice": "required",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Weather in Paris?"},
                    {"role": "assistant", "content": "Checking.", "tool_calls": [
                        {"id": "toolu_1", "type": "function", "function":
                            {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                    {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
                    {"role": "user", "content": [
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                        {"type": "text", "text": "And this?"}]}]})
        );
        assert!(request(b"{\"messages\": 1}", "m", "").is_err());
    }

    #[test]
    fn a_completion_becomes_a_message_with_cached_tokens_apart() {
        let completion = json!({"id": "chatcmpl-1", "model": "llama-3", "choices": [{
            "index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant",
            "content": "Let me check.", "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]}}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29,
                      "prompt_tokens_details": {"cached_tokens": 8}}});
        let out = response(completion.to_string().as_bytes(), "m").expect("translates");
        let message: Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(message["id"], "msg_chatcmpl-1");
        assert_eq!(message["stop_reason"], "tool_use");
        assert_eq!(
            message["content"][0],
            json!({"type": "text", "text": "Let me check."})
        );
        assert_eq!(message["content"][1]["input"], json!({"city": "Paris"}));
        assert_eq!(
            message["usage"],
            json!({"input_tokens": 12, "output_tokens": 9, "cache_read_input_tokens": 8})
        );
    }

    fn openai_stream() -> String {
        [
            json!({"id": "c1", "model": "llama-3", "choices": [{"index": 0,
                "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]}),
            json!({"id": "c1", "model": "llama-3", "choices": [{"index": 0,
                "delta": {"content": "Hi "}, "finish_reason": null}]}),
            json!({"id": "c1", "model": "llama-3", "choices": [{"index": 0,
                "delta": {"content": "there"}, "finish_reason": null}]}),
            json!({"id": "c1", "model": "llama-3", "choices": [{"index": 0,
                "delta": {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                    "function": {"name": "get_weather", "arguments": ""}}]},
                "finish_reason": null}]}),
            json!({"id": "c1", "model": "llama-3", "choices": [{"index": 0,
                "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]},
                "finish_reason": null}]}),
            json!({"id": "c1", "model": "llama-3", "choices": [{"index": 0,
                "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]},
                "finish_reason": "tool_calls"}]}),
            json!({"id": "c1", "model": "llama-3", "choices": [],
                "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}}),
        ]
        .iter()
        .map(|c| format!("data: {c}\n\n"))
        .chain(std::iter::once("data: [DONE]\n\n".to_string()))
        .collect()
    }

    fn events(text: &str) -> Vec<Value> {
        text.lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str(d).ok())
            .collect()
    }

    #[test]
    fn a_chunk_stream_becomes_anthropic_events_whatever_the_split() {
        let input = openai_stream();
        let mut whole = Stream::new("m");
        let mut expected = whole.push(input.as_bytes());
        expected.extend(whole.finish());
        let mut split = Stream::new("m");
        let mut got: Vec<u8> = input
            .as_bytes()
            .iter()
            .flat_map(|b| split.push(&[*b]))
            .collect();
        got.extend(split.finish());
        assert_eq!(got, expected);
        let events = events(&String::from_utf8(got).expect("utf-8"));
        let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
        assert_eq!(
            kinds,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(events[5]["content_block"]["name"], "get_weather");
        assert_eq!(events[9]["delta"]["stop_reason"], "tool_use");
        assert_eq!(
            events[9]["usage"],
            json!({"input_tokens": 11, "output_tokens": 7})
        );
    }

    #[test]
    fn a_stream_cut_before_done_has_no_message_stop() {
        let input = openai_stream();
        let cut = &input[..input.find("[DONE]").unwrap_or(input.len()) - 6];
        let mut stream = Stream::new("m");
        let mut out = stream.push(cut.as_bytes());
        out.extend(stream.finish());
        let text = String::from_utf8(out).expect("utf-8");
        assert!(!text.contains("message_stop"), "{text}");
    }

    #[test]
    fn openai_errors_take_anthropics_shape() {
        let body = error(
            429,
            br#"{"error":{"message":"slow down","type":"rate_limit"}}"#,
        );
        let body: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(
            body,
            json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})
        );
    }
}
