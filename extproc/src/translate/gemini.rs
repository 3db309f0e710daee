//! Google Gemini on Vertex AI (`GCPVertexAI`): OpenAI chat completions to `generateContent`
//! and `streamGenerateContent?alt=sse`, and the answers back.
//!
//! Request: system and developer messages become `systemInstruction`; user and assistant turns
//! become `contents` with roles `user` and `model` (consecutive turns of one role merged, as
//! Gemini wants them alternating); tool calls become `functionCall` parts and tool messages
//! `functionResponse` parts named after the call they answer; `data:` images go inline, URLs
//! as `fileData`; tools become `functionDeclarations`, `tool_choice` a function-calling mode;
//! sampling, stop sequences, `n`, `seed` and `response_format` go to `generationConfig`.
//!
//! Response: text parts are joined (thought parts become `reasoning_content`), function calls
//! become tool calls with ids `call_<n>`; finish reasons map to OpenAI's; usage counts thought
//! tokens as completion tokens (as OpenAI does) and cached content as cached prompt tokens. A
//! stream is one `GenerateContentResponse` per SSE event; each becomes chunks, and the usage of
//! the last event that carries it ends the stream.

use serde_json::{Map, Value, json};

use crate::sse::SseParser;
use crate::translate::openai::{
    self, ChatCompletion, ChatRequest, Choice, ChunkWriter, CompletionTokensDetails, Content,
    ContentPart, Delta, FunctionCall, FunctionDelta, Image, PromptTokensDetails, ResponseMessage,
    Stop, ToolCall, ToolCallDelta, ToolChoice, Usage,
};
use crate::translate::{RequestError, ResponseContext, StreamTranslator, UpstreamRequest};

/// `…/publishers/google/models/{model}:generateContent` (or `:streamGenerateContent?alt=sse`).
pub fn path(project: &str, region: &str, model: &str, stream: bool) -> String {
    let action = if stream {
        "streamGenerateContent?alt=sse"
    } else {
        "generateContent"
    };
    let encode = crate::translate::azure::encode;
    format!(
        "/v1/projects/{}/locations/{}/publishers/google/models/{}:{action}",
        encode(project),
        encode(region),
        encode(model)
    )
}

/// `…/publishers/google/models/{model}:predict`, Vertex's embeddings.
pub fn embeddings_path(project: &str, region: &str, model: &str) -> String {
    let encode = crate::translate::azure::encode;
    format!(
        "/v1/projects/{}/locations/{}/publishers/google/models/{}:predict",
        encode(project),
        encode(region),
        encode(model)
    )
}

fn image_part(url: &str) -> Result<Value, RequestError> {
    match Image::parse(url) {
        Some(Image::Base64 { media_type, data }) => {
            Ok(json!({"inlineData": {"mimeType": media_type, "data": data}}))
        }
        Some(Image::Url(url)) => {
            let lower = url.to_ascii_lowercase();
            let mime = if lower.ends_with(".png") {
                "image/png"
            } else if lower.ends_with(".gif") {
                "image/gif"
            } else if lower.ends_with(".webp") {
                "image/webp"
            } else {
                "image/jpeg"
            };
            Ok(json!({"fileData": {"mimeType": mime, "fileUri": url}}))
        }
        None => Err(RequestError::new(
            "an image must be a data: URL or an http(s) URL",
        )),
    }
}

fn content_parts(content: &Content) -> Result<Vec<Value>, RequestError> {
    match content {
        Content::Text(text) => Ok(vec![json!({"text": text})]),
        Content::Parts(parts) => parts
            .iter()
            .map(|p| match p {
                ContentPart::Text { text } => Ok(json!({"text": text})),
                ContentPart::ImageUrl { image_url } => image_part(&image_url.url),
            })
            .collect(),
    }
}

/// The `generateContent` request for `request`.
pub fn request(
    request: &ChatRequest,
    project: &str,
    region: &str,
    model: &str,
) -> Result<UpstreamRequest, RequestError> {
    let mut system = Vec::new();
    let mut contents: Vec<(String, Vec<Value>)> = Vec::new();
    // Tool call id → function name, for the responses that answer them.
    let mut call_names: Vec<(String, String)> = Vec::new();
    for message in &request.messages {
        let (role, parts) = match message {
            openai::Message::System { content } | openai::Message::Developer { content } => {
                system.push(json!({"text": content.text()}));
                continue;
            }
            openai::Message::User { content } => ("user", content_parts(content)?),
            openai::Message::Assistant {
                content,
                tool_calls,
            } => {
                let mut parts = match content {
                    Some(content) => content_parts(content)?
                        .into_iter()
                        .filter(|p| p["text"] != "")
                        .collect(),
                    None => Vec::new(),
                };
                for call in tool_calls.iter().flatten() {
                    let args: Value = serde_json::from_str(&call.function.arguments)
                        .unwrap_or_else(|_| json!({}));
                    call_names.push((call.id.clone(), call.function.name.clone()));
                    parts.push(json!({"functionCall": {"name": call.function.name, "args": args}}));
                }
                ("model", parts)
            }
            openai::Message::Tool {
                content,
                tool_call_id,
            } => {
                let name = call_names
                    .iter()
                    .find(|(id, _)| id == tool_call_id)
                    .map(|(_, n)| n.clone())
                    .ok_or_else(|| {
                        RequestError::new(format!(
                            "tool message {tool_call_id:?} answers no earlier tool call"
                        ))
                    })?;
                let text = content.text();
                let response = serde_json::from_str::<Value>(&text)
                    .ok()
                    .filter(Value::is_object)
                    .unwrap_or_else(|| json!({"content": text}));
                (
                    "user",
                    vec![json!({"functionResponse": {"name": name, "response": response}})],
                )
            }
        };
        if parts.is_empty() {
            continue;
        }
        match contents.last_mut() {
            Some((last, existing)) if last == role => existing.extend(parts),
            _ => contents.push((role.to_string(), parts)),
        }
    }
    let mut body = Map::new();
    body.insert(
        "contents".into(),
        Value::Array(
            contents
                .into_iter()
                .map(|(role, parts)| json!({"role": role, "parts": parts}))
                .collect(),
        ),
    );
    if !system.is_empty() {
        body.insert("systemInstruction".into(), json!({"parts": system}));
    }
    let mut config = Map::new();
    if let Some(t) = request.temperature {
        config.insert("temperature".into(), json!(t));
    }
    if let Some(p) = request.top_p {
        config.insert("topP".into(), json!(p));
    }
    if let Some(max) = request.max_output_tokens() {
        config.insert("maxOutputTokens".into(), json!(max));
    }
    if let Some(stop) = request.stop.clone() {
        config.insert("stopSequences".into(), json!(Stop::into_vec(stop)));
    }
    if let Some(n) = request.n {
        config.insert("candidateCount".into(), json!(n));
    }
    if let Some(effort) = request.reasoning_effort.as_deref() {
        let budget = match effort {
            "minimal" | "low" => 1024,
            "medium" => 8192,
            "high" => 24576,
            other => {
                return Err(RequestError::new(format!(
                    "reasoning_effort {other:?} must be one of minimal, low, medium, high"
                )));
            }
        };
        config.insert(
            "thinkingConfig".into(),
            json!({"thinkingBudget": budget, "includeThoughts": true}),
        );
    }
    match request
        .response_format
        .as_ref()
        .and_then(|f| f["type"].as_str())
    {
        Some("json_object") => {
            config.insert("responseMimeType".into(), json!("application/json"));
        }
        Some("json_schema") => {
            config.insert("responseMimeType".into(), json!("application/json"));
            let schema = request
                .response_format
                .as_ref()
                .map(|f| f["json_schema"]["schema"].clone())
                .filter(|s| !s.is_null());
            if let Some(schema) = schema {
                config.insert("responseJsonSchema".into(), schema);
            }
        }
        _ => {}
    }
    if !config.is_empty() {
        body.insert("generationConfig".into(), Value::Object(config));
    }
    if let Some(tools) = &request.tools {
        let declarations: Vec<Value> = tools
            .iter()
            .map(|t| {
                let mut f = json!({"name": t.function.name});
                if let Some(d) = &t.function.description {
                    f["description"] = json!(d);
                }
                if let Some(p) = &t.function.parameters {
                    f["parameters"] = p.clone();
                }
                f
            })
            .collect();
        body.insert(
            "tools".into(),
            json!([{"functionDeclarations": declarations}]),
        );
    }
    if let Some(choice) = &request.tool_choice {
        let config = match choice {
            ToolChoice::Mode(mode) => match mode.as_str() {
                "none" => json!({"mode": "NONE"}),
                "auto" => json!({"mode": "AUTO"}),
                "required" => json!({"mode": "ANY"}),
                other => {
                    return Err(RequestError::new(format!(
                        "tool_choice {other:?} must be none, auto, required or a function"
                    )));
                }
            },
            ToolChoice::Named { function } => {
                json!({"mode": "ANY", "allowedFunctionNames": [function.name]})
            }
        };
        body.insert(
            "toolConfig".into(),
            json!({"functionCallingConfig": config}),
        );
    }
    let body = serde_json::to_vec(&Value::Object(body))
        .map_err(|e| RequestError::new(format!("the request cannot be written: {e}")))?;
    Ok(UpstreamRequest {
        path: path(project, region, model, request.stream),
        headers: vec![("content-type".into(), "application/json".into())],
        body,
    })
}

/// OpenAI's finish reason for a Gemini one.
fn finish_reason(reason: &str, called: bool) -> &'static str {
    match reason {
        _ if called => "tool_calls",
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            "content_filter"
        }
        _ => "stop",
    }
}

fn usage(metadata: &Value) -> Usage {
    let count = |k: &str| metadata[k].as_u64().unwrap_or(0);
    let prompt = count("promptTokenCount");
    let thoughts = count("thoughtsTokenCount");
    let completion = count("candidatesTokenCount") + thoughts;
    let cached = count("cachedContentTokenCount");
    Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: metadata["totalTokenCount"]
            .as_u64()
            .unwrap_or(prompt + completion),
        prompt_tokens_details: (cached > 0).then_some(PromptTokensDetails {
            cached_tokens: cached,
        }),
        completion_tokens_details: (thoughts > 0).then_some(CompletionTokensDetails {
            reasoning_tokens: thoughts,
        }),
    }
}

/// Text, thoughts and function calls of a candidate's parts.
fn parts_of(candidate: &Value) -> (String, String, Vec<(String, String)>) {
    let (mut text, mut thoughts, mut calls) = (String::new(), String::new(), Vec::new());
    for part in candidate["content"]["parts"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(t) = part["text"].as_str() {
            if part["thought"] == true {
                thoughts.push_str(t);
            } else {
                text.push_str(t);
            }
        }
        if let Some(call) = part.get("functionCall") {
            let name = call["name"].as_str().unwrap_or_default().to_string();
            let args = call.get("args").cloned().unwrap_or_else(|| json!({}));
            calls.push((name, args.to_string()));
        }
    }
    (text, thoughts, calls)
}

/// A `generateContent` answer as a chat completion.
pub fn response(
    body: &[u8],
    id: &str,
    model: &str,
    created: i64,
) -> Result<ChatCompletion, String> {
    let answer: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let candidates = answer["candidates"].as_array().cloned().unwrap_or_default();
    let mut choices = Vec::new();
    let mut call_number = 0;
    for (i, candidate) in candidates.iter().enumerate() {
        let (text, thoughts, calls) = parts_of(candidate);
        let tool_calls: Vec<ToolCall> = calls
            .into_iter()
            .map(|(name, arguments)| {
                call_number += 1;
                ToolCall {
                    id: format!("call_{call_number}"),
                    kind: "function".into(),
                    function: FunctionCall { name, arguments },
                }
            })
            .collect();
        let called = !tool_calls.is_empty();
        choices.push(Choice {
            index: candidate["index"].as_u64().unwrap_or(i as u64) as u32,
            message: ResponseMessage {
                role: "assistant",
                content: (!text.is_empty() || !called).then_some(text),
                reasoning_content: (!thoughts.is_empty()).then_some(thoughts),
                tool_calls,
            },
            finish_reason: Some(finish_reason(
                candidate["finishReason"].as_str().unwrap_or("STOP"),
                called,
            )),
        });
    }
    if choices.is_empty() {
        let reason = answer["promptFeedback"]["blockReason"]
            .as_str()
            .unwrap_or("no candidates");
        return Err(format!("the prompt was blocked: {reason}"));
    }
    Ok(ChatCompletion {
        id: answer["responseId"]
            .as_str()
            .map_or_else(|| id.to_string(), |r| format!("chatcmpl-{r}")),
        object: "chat.completion",
        created,
        model: answer["modelVersion"].as_str().unwrap_or(model).to_string(),
        choices,
        usage: usage(&answer["usageMetadata"]),
    })
}

/// A Gemini error body (`{"error": {"code", "message", "status"}}`) in OpenAI's shape.
pub fn error(status: u16, body: &[u8]) -> Vec<u8> {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().map(|v| &v["error"]);
    let message = error
        .and_then(|e| e["message"].as_str())
        .map_or_else(|| crate::translate::error_text(body), str::to_string);
    let code = error.and_then(|e| e["status"].as_str());
    let kind = match code {
        Some("RESOURCE_EXHAUSTED") => "rate_limit_error",
        Some("INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE") => {
            "invalid_request_error"
        }
        Some("PERMISSION_DENIED") => "permission_error",
        Some("UNAUTHENTICATED") => "authentication_error",
        Some("NOT_FOUND") => "not_found_error",
        _ => crate::translate::error_type(status),
    };
    openai::error_body(kind, code, &message)
}

/// A `streamGenerateContent` SSE stream as OpenAI chunks.
pub struct Stream {
    parser: SseParser,
    writer: ChunkWriter,
    usage_chunk: bool,
    usage: Option<Usage>,
    started: bool,
    calls: u32,
    finished: bool,
    done: bool,
}

impl Stream {
    pub fn new(cx: &ResponseContext, id: String, created: i64) -> Stream {
        Stream {
            parser: SseParser::new(),
            writer: ChunkWriter {
                id,
                model: cx.model.clone(),
                created,
            },
            usage_chunk: cx.usage_chunk,
            usage: None,
            started: false,
            calls: 0,
            finished: false,
            done: false,
        }
    }

    fn event(&mut self, data: &str, out: &mut Vec<u8>) {
        let Ok(answer) = serde_json::from_str::<Value>(data) else {
            tracing::debug!("skipping a Gemini stream event that does not parse");
            return;
        };
        if let Some(error) = answer.get("error") {
            let message = error["message"].as_str().unwrap_or("the provider failed");
            out.extend(openai::error_event("server_error", message));
            return;
        }
        if let Some(model) = answer["modelVersion"].as_str() {
            self.writer.model = model.to_string();
        }
        if answer["usageMetadata"].is_object() {
            self.usage = Some(usage(&answer["usageMetadata"]));
        }
        if !self.started {
            self.started = true;
            if let Some(id) = answer["responseId"].as_str() {
                self.writer.id = format!("chatcmpl-{id}");
            }
            out.extend(self.writer.delta(
                Delta {
                    role: Some("assistant"),
                    content: Some(String::new()),
                    ..Delta::default()
                },
                None,
            ));
        }
        let Some(candidate) = answer["candidates"].get(0) else {
            return;
        };
        let (text, thoughts, calls) = parts_of(candidate);
        if !thoughts.is_empty() {
            out.extend(self.writer.delta(
                Delta {
                    reasoning_content: Some(thoughts),
                    ..Delta::default()
                },
                None,
            ));
        }
        if !text.is_empty() {
            out.extend(self.writer.delta(
                Delta {
                    content: Some(text),
                    ..Delta::default()
                },
                None,
            ));
        }
        for (name, arguments) in calls {
            self.calls += 1;
            out.extend(self.writer.delta(
                Delta {
                    tool_calls: vec![ToolCallDelta {
                        index: self.calls - 1,
                        id: Some(format!("call_{}", self.calls)),
                        kind: Some("function"),
                        function: FunctionDelta {
                            name: Some(name),
                            arguments: Some(arguments),
                        },
                    }],
                    ..Delta::default()
                },
                None,
            ));
        }
        if let Some(reason) = candidate["finishReason"].as_str() {
            self.finished = true;
            out.extend(self.writer.delta(
                Delta::default(),
                Some(finish_reason(reason, self.calls > 0)),
            ));
        }
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        if self.usage_chunk {
            out.extend(self.writer.usage(self.usage.unwrap_or_default()));
        }
        out.extend_from_slice(openai::DONE);
        self.done = true;
    }
}

impl StreamTranslator for Stream {
    fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for event in self.parser.push(bytes) {
            if let Some(data) = event.data.as_deref()
                && !self.done
            {
                self.event(data, &mut out);
            }
        }
        out
    }

    fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some(event) = self.parser.finish()
            && let Some(data) = event.data.as_deref()
            && !self.done
        {
            self.event(data, &mut out);
        }
        // Gemini ends a stream by closing it; a stream that reached a finish reason ended well.
        if self.finished && !self.done {
            self.end(&mut out);
        }
        out
    }
}

/// OpenAI embeddings input → Vertex `predict` instances.
pub fn embeddings_request(body: &[u8]) -> Result<Vec<u8>, RequestError> {
    let request: Value = serde_json::from_slice(body)
        .map_err(|e| RequestError::new(format!("the embeddings request does not parse: {e}")))?;
    let inputs: Vec<String> = match &request["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => {
            return Err(RequestError::new(
                "input must be a string or a list of strings for this model",
            ));
        }
    };
    let mut body =
        json!({"instances": inputs.iter().map(|t| json!({"content": t})).collect::<Vec<_>>()});
    if let Some(dimensions) = request["dimensions"].as_u64() {
        body["parameters"] = json!({"outputDimensionality": dimensions});
    }
    serde_json::to_vec(&body).map_err(|e| RequestError::new(e.to_string()))
}

/// Vertex `predict` embeddings → an OpenAI embeddings list.
pub fn embeddings_response(body: &[u8], model: &str) -> Result<Vec<u8>, String> {
    let answer: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let predictions = answer["predictions"]
        .as_array()
        .ok_or("the answer has no predictions")?;
    let mut tokens = 0;
    let data: Vec<Value> = predictions
        .iter()
        .enumerate()
        .map(|(i, p)| {
            tokens += p["embeddings"]["statistics"]["token_count"]
                .as_u64()
                .unwrap_or(0);
            json!({"object": "embedding", "index": i, "embedding": p["embeddings"]["values"]})
        })
        .collect();
    let out = json!({"object": "list", "data": data, "model": model,
                     "usage": {"prompt_tokens": tokens, "total_tokens": tokens}});
    serde_json::to_vec(&out).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(body: Value) -> ChatRequest {
        serde_json::from_value(body).expect("chat request")
    }

    #[test]
    fn a_chat_request_becomes_generate_content() {
        let request = chat(json!({
            "model": "gemini", "temperature": 0.2, "max_tokens": 100, "stop": "END",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c1",
                    "type": "function", "function": {"name": "look", "arguments": "{\"x\":1}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "{\"seen\":\"a cat\"}"}],
            "tools": [{"type": "function", "function": {"name": "look",
                "parameters": {"type": "object"}}}],
            "tool_choice": "required"}));
        let upstream = super::request(&request, "proj", "us-central1", "gemini-2.5-flash")
            .expect("translates");
        assert_eq!(
            upstream.path,
            "/v1/projects/proj/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent"
        );
        let body: Value = serde_json::from_slice(&upstream.body).expect("json");
        assert_eq!(
            body,
            json!({
                "systemInstruction": {"parts": [{"text": "Be brief."}]},
                "contents": [
                    {"role": "user", "parts": [{"text": "What is this?"},
                        {"inlineData": {"mimeType": "image/png", "data": "AAAA"}}]},
                    {"role": "model", "parts": [{"functionCall": {"name": "look", "args": {"x": 1}}}]},
                    {"role": "user", "parts": [{"functionResponse": {"name": "look",
                        "response": {"seen": "a cat"}}}]}],
                "generationConfig": {"temperature": 0.2, "maxOutputTokens": 100,
                    "stopSequences": ["END"]},
                "tools": [{"functionDeclarations": [{"name": "look",
                    "parameters": {"type": "object"}}]}],
                "toolConfig": {"functionCallingConfig": {"mode": "ANY"}}})
        );
    }

    #[test]
    fn a_json_schema_response_format_becomes_gemini_structured_output() {
        let request = chat(
            json!({"model": "g", "messages": [{"role": "user", "content": "x"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "out",
                "schema": {"type": "object", "properties": {"a": {"type": "integer"}}}}}}),
        );
        let upstream = super::request(&request, "p", "r", "g").expect("translates");
        let body: Value = serde_json::from_slice(&upstream.body).expect("json");
        assert_eq!(
            body["generationConfig"],
            json!({"responseMimeType": "application/json", "responseJsonSchema":
                {"type": "object", "properties": {"a": {"type": "integer"}}}})
        );
    }

    #[test]
    fn an_answer_becomes_a_completion_with_thoughts_and_cache_counted() {
        let answer = json!({"responseId": "r1", "modelVersion": "gemini-2.5-flash",
            "candidates": [{"index": 0, "finishReason": "STOP", "content": {"role": "model",
                "parts": [{"text": "Thinking…", "thought": true}, {"text": "A cat."}]}}],
            "usageMetadata": {"promptTokenCount": 30, "candidatesTokenCount": 3,
                "thoughtsTokenCount": 5, "cachedContentTokenCount": 10, "totalTokenCount": 38}});
        let completion = response(answer.to_string().as_bytes(), "id", "m", 1).expect("translates");
        let value = serde_json::to_value(&completion).expect("json");
        assert_eq!(value["choices"][0]["message"]["content"], "A cat.");
        assert_eq!(
            value["choices"][0]["message"]["reasoning_content"],
            "Thinking…"
        );
        assert_eq!(value["usage"]["completion_tokens"], 8);
        assert_eq!(value["usage"]["prompt_tokens_details"]["cached_tokens"], 10);
        assert_eq!(value["id"], "chatcmpl-r1");
    }

    #[test]
    fn a_stream_split_anywhere_ends_with_its_last_usage() {
        let events = [
            json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hel"}]}}],
                   "usageMetadata": {"promptTokenCount": 4}, "modelVersion": "gemini-2.5-flash"}),
            json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "lo"}]},
                   "finishReason": "STOP"}],
                   "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 2,
                       "totalTokenCount": 6}}),
        ];
        let text: String = events
            .iter()
            .map(|e| format!("data: {e}\r\n\r\n"))
            .collect();
        let cx = ResponseContext {
            model: "m".into(),
            stream: true,
            usage_chunk: true,
            anthropic_client: false,
            embeddings: false,
        };
        let mut whole = Stream::new(&cx, "id".into(), 1);
        let mut expected = whole.push(text.as_bytes());
        expected.extend(whole.finish());
        let mut split = Stream::new(&cx, "id".into(), 1);
        let mut got: Vec<u8> = text
            .as_bytes()
            .iter()
            .flat_map(|b| split.push(&[*b]))
            .collect();
        got.extend(split.finish());
        assert_eq!(got, expected);
        let out = String::from_utf8(got).expect("utf-8");
        assert!(out.contains(r#""content":"Hel""#), "{out}");
        assert!(out.contains(r#""finish_reason":"stop""#), "{out}");
        assert!(out.contains(r#""total_tokens":6"#), "{out}");
        assert!(out.ends_with("data: [DONE]\n\n"), "{out}");
    }

    #[test]
    fn errors_and_embeddings_translate() {
        let body = error(
            429,
            br#"{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED"}}"#,
        );
        let value: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(value["error"]["type"], "rate_limit_error");
        assert_eq!(value["error"]["code"], "RESOURCE_EXHAUSTED");
        let request = embeddings_request(br#"{"model":"m","input":["a","b"],"dimensions":8}"#)
            .expect("embeddings");
        let value: Value = serde_json::from_slice(&request).expect("json");
        assert_eq!(
            value,
            json!({"instances": [{"content": "a"}, {"content": "b"}],
                   "parameters": {"outputDimensionality": 8}})
        );
        let answer = json!({"predictions": [
            {"embeddings": {"values": [0.1, 0.2], "statistics": {"token_count": 3}}}]});
        let out = embeddings_response(answer.to_string().as_bytes(), "m").expect("response");
        let value: Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(value["data"][0]["embedding"], json!([0.1, 0.2]));
        assert_eq!(value["usage"]["prompt_tokens"], 3);
    }
}
