//! OpenAI chat completions → Bedrock Converse, and the answer back.
//!
//! Request: system and developer messages become `system`; consecutive messages of one role
//! are merged (Converse, like Anthropic, wants alternating roles, tool results in the user
//! message after the tool use); tool calls become `toolUse` blocks and tool messages
//! `toolResult` blocks; `data:` URL images are sent as bytes (Converse takes no image URLs);
//! `max_tokens`, `temperature`, `top_p` and `stop` go in `inferenceConfig`; for Anthropic
//! models, `reasoning_effort` (or an Anthropic-style `thinking`) becomes `thinking` in
//! `additionalModelRequestFields`, its budget added to `maxTokens`. `n` other than 1 cannot be
//! expressed and is rejected.
//!
//! Response: text blocks are joined, `toolUse` blocks become tool calls, reasoning becomes
//! `reasoning_content`; `prompt_tokens` counts cache reads and writes (Bedrock's
//! `inputTokens` does not), the reads in `prompt_tokens_details.cached_tokens`. A stream is
//! the AWS binary event stream, decoded frame by frame however Envoy splits it.

use aws_smithy_types::event_stream::Message as Frame;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{
    BlockDelta, BlockStart, ContentBlock, ConverseRequest, ConverseResponse, ErrorResponse,
    ImageBlock, ImageSource, InferenceConfig, InputSchema, Message, MessageStop, Metadata, Role,
    SystemBlock, Tool, ToolChoice, ToolConfig, ToolResultBlock, ToolResultContent, ToolSpec,
    ToolUseBlock, Usage,
};
use crate::translate::openai::{
    self, ChatCompletion, ChatRequest, Choice, ChunkWriter, Content, ContentPart, Delta,
    FunctionCall, FunctionDelta, Image, PromptTokensDetails, ResponseMessage, ToolCall,
    ToolCallDelta,
};
use crate::translate::{RequestError, ResponseContext, StreamTranslator, UpstreamRequest};

/// Thinking budget of each `reasoning_effort` (Anthropic models).
fn effort_budget(effort: &str) -> Option<u32> {
    match effort {
        "minimal" | "low" => Some(1024),
        "medium" => Some(4096),
        "high" => Some(16384),
        _ => None,
    }
}

/// Whether a Bedrock model id (or inference profile / ARN) names an Anthropic model.
fn is_anthropic(model: &str) -> bool {
    model.contains("anthropic.")
}

/// `/model/{modelId}/converse` (or `converse-stream`), the id percent-encoded.
pub fn path(model: &str, stream: bool) -> String {
    let action = if stream {
        "converse-stream"
    } else {
        "converse"
    };
    format!("/model/{}/{action}", crate::translate::azure::encode(model))
}

/// The Converse request for `request`, for `model`.
pub fn request(request: &ChatRequest, model: &str) -> Result<UpstreamRequest, RequestError> {
    if request.n.is_some_and(|n| n != 1) {
        return Err(RequestError::new("n must be 1 for this model"));
    }
    let mut system = Vec::new();
    let mut messages: Vec<Message> = Vec::new();
    let mut has_tool_blocks = false;
    for message in &request.messages {
        let (role, blocks) = match message {
            openai::Message::System { content } | openai::Message::Developer { content } => {
                let text = content.text();
                if !text.is_empty() {
                    system.push(SystemBlock { text });
                }
                continue;
            }
            openai::Message::User { content } => (Role::User, user_blocks(content)?),
            openai::Message::Assistant {
                content,
                tool_calls,
            } => (
                Role::Assistant,
                assistant_blocks(content.as_ref(), tool_calls.as_deref())?,
            ),
            openai::Message::Tool {
                content,
                tool_call_id,
            } => (
                Role::User,
                vec![ContentBlock::ToolResult(ToolResultBlock {
                    tool_use_id: tool_call_id.clone(),
                    content: vec![ToolResultContent {
                        text: content.text(),
                    }],
                })],
            ),
        };
        has_tool_blocks |= blocks
            .iter()
            .any(|b| matches!(b, ContentBlock::ToolUse(_) | ContentBlock::ToolResult(_)));
        if blocks.is_empty() {
            continue;
        }
        match messages.last_mut() {
            Some(last) if last.role == role => last.content.extend(blocks),
            _ => messages.push(Message {
                role,
                content: blocks,
            }),
        }
    }

    let mut max_tokens = request.max_output_tokens();
    let thinking = match (&request.thinking, request.reasoning_effort.as_deref()) {
        _ if !is_anthropic(model) => None,
        (Some(thinking), _) => Some(thinking.clone()),
        (None, Some(effort)) => {
            let budget = effort_budget(effort).ok_or_else(|| {
                RequestError::new(format!(
                    "reasoning_effort {effort:?} must be one of minimal, low, medium, high"
                ))
            })?;
            max_tokens = Some(
                max_tokens
                    .unwrap_or(crate::translate::anthropic::DEFAULT_MAX_TOKENS)
                    .saturating_add(budget),
            );
            Some(serde_json::json!({"type": "enabled", "budget_tokens": budget}))
        }
        (None, None) => None,
    };
    let tools: Vec<Tool> =
        request
            .tools
            .iter()
            .flatten()
            .filter(|t| t.kind == "function")
            .map(|t| Tool {
                tool_spec: ToolSpec {
                    name: t.function.name.clone(),
                    description: t.function.description.clone(),
                    input_schema: InputSchema {
                        json: t.function.parameters.clone().unwrap_or_else(
                            || serde_json::json!({"type": "object", "properties": {}}),
                        ),
                    },
                },
            })
            .collect();
    let (tool_choice, offer_tools) = match &request.tool_choice {
        None => (None, true),
        Some(openai::ToolChoice::Mode(mode)) => match mode.as_str() {
            "auto" => (Some(ToolChoice::Auto {}), true),
            "required" => (Some(ToolChoice::Any {}), true),
            // Converse has no "none": the tools stay only where the history needs them.
            "none" => (None, has_tool_blocks),
            other => {
                return Err(RequestError::new(format!(
                    "tool_choice {other:?} must be none, auto, required or a function"
                )));
            }
        },
        Some(openai::ToolChoice::Named { function }) => (
            Some(ToolChoice::Tool {
                name: function.name.clone(),
            }),
            true,
        ),
    };
    let tool_config =
        (offer_tools && !tools.is_empty()).then_some(ToolConfig { tools, tool_choice });
    let body = ConverseRequest {
        messages,
        system,
        inference_config: InferenceConfig {
            max_tokens,
            temperature: request.temperature,
            top_p: request.top_p,
            stop_sequences: request
                .stop
                .clone()
                .map(openai::Stop::into_vec)
                .unwrap_or_default(),
        },
        tool_config,
        additional_model_request_fields: thinking.map(|t| serde_json::json!({"thinking": t})),
    };
    Ok(UpstreamRequest {
        path: path(model, request.stream),
        headers: vec![("content-type".into(), "application/json".into())],
        // Serialising these plain structs cannot fail.
        body: serde_json::to_vec(&body).unwrap_or_default(),
    })
}

/// Converse's image `format` for a media type.
fn image_format(media_type: &str) -> Option<&'static str> {
    match media_type {
        "image/png" => Some("png"),
        "image/jpeg" | "image/jpg" => Some("jpeg"),
        "image/gif" => Some("gif"),
        "image/webp" => Some("webp"),
        _ => None,
    }
}

fn user_blocks(content: &Content) -> Result<Vec<ContentBlock>, RequestError> {
    match content {
        Content::Text(text) => Ok(vec![ContentBlock::Text(text.clone())]),
        Content::Parts(parts) => parts
            .iter()
            .map(|part| match part {
                ContentPart::Text { text } => Ok(ContentBlock::Text(text.clone())),
                ContentPart::ImageUrl { image_url } => match Image::parse(&image_url.url) {
                    Some(Image::Base64 { media_type, data }) => {
                        let format = image_format(&media_type).ok_or_else(|| {
                            RequestError::new(format!(
                                "image type {media_type} must be png, jpeg, gif or webp"
                            ))
                        })?;
                        if aws_smithy_types::base64::decode(&data).is_err() {
                            return Err(RequestError::new("image_url.url is not valid base64"));
                        }
                        Ok(ContentBlock::Image(ImageBlock {
                            format,
                            source: ImageSource { bytes: data },
                        }))
                    }
                    _ => Err(RequestError::new(
                        "image_url.url must be a data:<type>;base64 URL for this model",
                    )),
                },
            })
            .collect(),
    }
}

fn assistant_blocks(
    content: Option<&Content>,
    tool_calls: Option<&[ToolCall]>,
) -> Result<Vec<ContentBlock>, RequestError> {
    let mut blocks = Vec::new();
    if let Some(text) = content.map(Content::text).filter(|t| !t.is_empty()) {
        blocks.push(ContentBlock::Text(text));
    }
    for call in tool_calls.unwrap_or_default() {
        let arguments = if call.function.arguments.trim().is_empty() {
            "{}"
        } else {
            &call.function.arguments
        };
        let input: Value = serde_json::from_str(arguments).map_err(|_| {
            RequestError::new(format!(
                "tool call {}: function.arguments is not JSON",
                call.id
            ))
        })?;
        blocks.push(ContentBlock::ToolUse(ToolUseBlock {
            tool_use_id: call.id.clone(),
            name: call.function.name.clone(),
            input,
        }));
    }
    Ok(blocks)
}

/// OpenAI's `finish_reason` for Converse's `stopReason`.
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "guardrail_intervened" | "content_filtered" => "content_filter",
        _ => "stop",
    }
}

/// OpenAI usage: input counts cache reads and writes, as OpenAI's `prompt_tokens` does.
pub fn usage(usage: &Usage) -> openai::Usage {
    let cached = usage.cache_read_input_tokens;
    let prompt = usage.input_tokens + cached + usage.cache_write_input_tokens;
    openai::Usage {
        prompt_tokens: prompt,
        completion_tokens: usage.output_tokens,
        total_tokens: prompt + usage.output_tokens,
        prompt_tokens_details: Some(PromptTokensDetails {
            cached_tokens: cached,
        }),
        completion_tokens_details: None,
    }
}

/// A whole Converse response as a chat completion (Converse names no id: `id` is the
/// response's request id).
pub fn response(
    body: &[u8],
    id: &str,
    model: &str,
    created: i64,
) -> Result<ChatCompletion, String> {
    let answer: ConverseResponse = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut tool_calls = Vec::new();
    for block in answer.output.message.content {
        if let Some(t) = block.text {
            text.push_str(&t);
        }
        if let Some(r) = block.reasoning_content.and_then(|r| r.reasoning_text) {
            reasoning.push_str(&r.text);
        }
        if let Some(tool) = block.tool_use {
            tool_calls.push(ToolCall {
                id: tool.tool_use_id,
                kind: "function".into(),
                function: FunctionCall {
                    name: tool.name,
                    arguments: tool.input.to_string(),
                },
            });
        }
    }
    Ok(ChatCompletion {
        id: id.to_string(),
        object: "chat.completion",
        created,
        model: model.to_string(),
        choices: vec![Choice {
            index: 0,
            message: ResponseMessage {
                role: "assistant",
                content: (!text.is_empty() || tool_calls.is_empty()).then_some(text),
                reasoning_content: (!reasoning.is_empty()).then_some(reasoning),
                tool_calls,
            },
            finish_reason: Some(finish_reason(answer.stop_reason.as_deref().unwrap_or(""))),
        }],
        usage: usage(&answer.usage),
    })
}

/// The exception name of an `x-amzn-errortype` value (`ValidationException:http://…`).
pub fn exception_name(header: &str) -> &str {
    header.split(':').next().unwrap_or(header).trim()
}

/// A Bedrock error body (`{"message": …}`, the exception in `x-amzn-errortype`) in OpenAI's
/// shape: `type` from the status as OpenAI's own errors, `code` the exception.
pub fn error(status: u16, error_type: Option<&str>, body: &[u8]) -> Vec<u8> {
    let code = error_type.map(exception_name).filter(|c| !c.is_empty());
    let message = match serde_json::from_slice::<ErrorResponse>(body) {
        Ok(e) => e.message,
        Err(_) => crate::translate::error_text(body),
    };
    openai::error_body(crate::translate::error_type(status), code, &message)
}

/// OpenAI error `type` of a stream exception.
fn exception_type(exception: &str) -> &'static str {
    match exception {
        "throttlingException" | "ThrottlingException" => "rate_limit_error",
        "validationException" | "ValidationException" => "invalid_request_error",
        _ => "server_error",
    }
}

/// A ConverseStream event stream as OpenAI chunks.
pub struct Stream {
    frames: crate::translate::eventstream::Frames,
    writer: ChunkWriter,
    usage_chunk: bool,
    usage: Usage,
    /// Bedrock block index → OpenAI tool call index, for `toolUse` blocks.
    tools: Vec<(u32, u32)>,
    stopped: bool,
    done: bool,
}

impl Stream {
    pub fn new(cx: &ResponseContext, id: String, created: i64) -> Stream {
        Stream {
            frames: Default::default(),
            writer: ChunkWriter {
                id,
                model: cx.model.clone(),
                created,
            },
            usage_chunk: cx.usage_chunk,
            usage: Usage::default(),
            tools: Vec::new(),
            stopped: false,
            done: false,
        }
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        if self.usage_chunk {
            out.extend(self.writer.usage(usage(&self.usage)));
        }
        out.extend_from_slice(openai::DONE);
        self.done = true;
    }

    fn frame(&mut self, frame: &Frame, out: &mut Vec<u8>) {
        let header = |name: &str| crate::translate::eventstream::header(frame, name);
        let payload: &[u8] = frame.payload();
        if header(":message-type").as_deref() == Some("exception") {
            let exception = header(":exception-type").unwrap_or_default();
            let message = serde_json::from_slice::<ErrorResponse>(payload)
                .map(|e| e.message)
                .unwrap_or_else(|_| crate::translate::error_text(payload));
            out.extend(openai::event(&openai::error_body(
                exception_type(&exception),
                Some(&exception),
                &message,
            )));
            return;
        }
        let Some(event) = header(":event-type") else {
            return;
        };
        fn parse<T: DeserializeOwned>(payload: &[u8]) -> Option<T> {
            serde_json::from_slice(payload)
                .map_err(|_| tracing::debug!("skipping a Bedrock stream event that does not parse"))
                .ok()
        }
        match event.as_str() {
            "messageStart" => out.extend(self.writer.delta(
                Delta {
                    role: Some("assistant"),
                    content: Some(String::new()),
                    ..Delta::default()
                },
                None,
            )),
            "contentBlockStart" => {
                let Some(start) = parse::<BlockStart>(payload) else {
                    return;
                };
                let Some(tool) = start.start.tool_use else {
                    return;
                };
                let call = self.tools.len() as u32;
                self.tools.push((start.content_block_index, call));
                out.extend(self.writer.delta(
                    Delta {
                        tool_calls: vec![ToolCallDelta {
                            index: call,
                            id: Some(tool.tool_use_id),
                            kind: Some("function"),
                            function: FunctionDelta {
                                name: Some(tool.name),
                                arguments: Some(String::new()),
                            },
                        }],
                        ..Delta::default()
                    },
                    None,
                ));
            }
            "contentBlockDelta" => {
                let Some(BlockDelta {
                    content_block_index,
                    delta,
                }) = parse::<BlockDelta>(payload)
                else {
                    return;
                };
                let delta = if let Some(text) = delta.text {
                    Delta {
                        content: Some(text),
                        ..Delta::default()
                    }
                } else if let Some(text) = delta.reasoning_content.and_then(|r| r.text) {
                    Delta {
                        reasoning_content: Some(text),
                        ..Delta::default()
                    }
                } else if let Some(tool) = delta.tool_use {
                    let Some(&(_, call)) =
                        self.tools.iter().find(|(i, _)| *i == content_block_index)
                    else {
                        return;
                    };
                    Delta {
                        tool_calls: vec![ToolCallDelta {
                            index: call,
                            id: None,
                            kind: None,
                            function: FunctionDelta {
                                name: None,
                                arguments: Some(tool.input),
                            },
                        }],
                        ..Delta::default()
                    }
                } else {
                    return;
                };
                out.extend(self.writer.delta(delta, None));
            }
            "messageStop" => {
                let stop = parse::<MessageStop>(payload).unwrap_or_default();
                self.stopped = true;
                out.extend(self.writer.delta(
                    Delta::default(),
                    Some(finish_reason(stop.stop_reason.as_deref().unwrap_or(""))),
                ));
            }
            "metadata" => {
                if let Some(metadata) = parse::<Metadata>(payload) {
                    self.usage = metadata.usage;
                }
                if self.stopped {
                    self.end(out);
                }
            }
            // contentBlockStop and events added later.
            _ => {}
        }
    }
}

impl StreamTranslator for Stream {
    fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        self.frames.push(bytes);
        while !self.done {
            match self.frames.next_frame() {
                Ok(Some(frame)) => self.frame(&frame, &mut out),
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "the Bedrock event stream is corrupt");
                    out.extend(openai::error_event(
                        "server_error",
                        "the provider's event stream could not be decoded",
                    ));
                    self.done = true;
                }
            }
        }
        out
    }

    fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        // A stream that stopped but sent no metadata still ends properly.
        if self.stopped && !self.done {
            self.end(&mut out);
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use aws_smithy_types::event_stream::{Header, HeaderValue};

    /// One ConverseStream event frame.
    pub(crate) fn event(kind: &'static str, payload: Value) -> Vec<u8> {
        let frame = Frame::new(payload.to_string().into_bytes())
            .add_header(Header::new(
                ":message-type",
                HeaderValue::String("event".into()),
            ))
            .add_header(Header::new(":event-type", HeaderValue::String(kind.into())))
            .add_header(Header::new(
                ":content-type",
                HeaderValue::String("application/json".into()),
            ));
        let mut out = Vec::new();
        aws_smithy_eventstream::frame::write_message_to(&frame, &mut out).expect("frame");
        out
    }

    fn events() -> Vec<u8> {
        use serde_json::json;
        [
            event("messageStart", json!({"p": "abc", "role": "assistant"})),
            event(
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"text": "Hi"}}),
            ),
            event("contentBlockStop", json!({"contentBlockIndex": 0})),
            event(
                "contentBlockStart",
                json!({"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "t1", "name": "f"}}}),
            ),
            event(
                "contentBlockDelta",
                json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"a\":"}}}),
            ),
            event(
                "contentBlockDelta",
                json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "1}"}}}),
            ),
            event("messageStop", json!({"stopReason": "tool_use"})),
            event(
                "metadata",
                json!({"usage": {"inputTokens": 10, "outputTokens": 7, "totalTokens": 21, "cacheReadInputTokens": 4}, "metrics": {"latencyMs": 5}}),
            ),
        ]
        .concat()
    }

    fn translate_all(chunks: &[&[u8]]) -> String {
        let cx = ResponseContext {
            model: "nova".into(),
            stream: true,
            usage_chunk: true,
            anthropic_client: false,
            embeddings: false,
        };
        let mut stream = Stream::new(&cx, "chatcmpl-1".into(), 1);
        let mut out = Vec::new();
        for chunk in chunks {
            out.extend(stream.push(chunk));
        }
        out.extend(stream.finish());
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn an_event_stream_split_at_every_byte_translates_the_same() {
        let bytes = events();
        let whole = translate_all(&[&bytes]);
        assert!(whole.ends_with("data: [DONE]\n\n"), "{whole}");
        assert!(whole.contains(r#""finish_reason":"tool_calls""#), "{whole}");
        assert!(
            whole.contains(r#""usage":{"prompt_tokens":14,"completion_tokens":7,"total_tokens":21,"prompt_tokens_details":{"cached_tokens":4}}"#),
            "{whole}"
        );
        for split in 0..bytes.len() {
            assert_eq!(
                translate_all(&[&bytes[..split], &bytes[split..]]),
                whole,
                "split at {split}"
            );
        }
        let bytewise: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(translate_all(&bytewise), whole);
    }

    #[test]
    fn a_stream_cut_before_message_stop_has_no_done() {
        let bytes = events();
        let cut = translate_all(&[&bytes[..bytes.len() / 2]]);
        assert!(!cut.contains("[DONE]"), "{cut}");
    }

    #[test]
    fn a_corrupt_frame_is_an_error_event() {
        let mut bytes = events();
        bytes[10] ^= 0xff;
        let out = translate_all(&[&bytes]);
        assert!(out.contains("could not be decoded"), "{out}");
        assert!(!out.contains("[DONE]"));
    }

    #[test]
    fn an_exception_frame_is_an_error_event() {
        let frame = Frame::new(br#"{"message":"slow down"}"#.to_vec())
            .add_header(Header::new(
                ":message-type",
                HeaderValue::String("exception".into()),
            ))
            .add_header(Header::new(
                ":exception-type",
                HeaderValue::String("throttlingException".into()),
            ));
        let mut bytes = Vec::new();
        aws_smithy_eventstream::frame::write_message_to(&frame, &mut bytes).expect("frame");
        let out = translate_all(&[&bytes]);
        assert!(out.contains(r#""type":"rate_limit_error""#), "{out}");
        assert!(out.contains("slow down"), "{out}");
    }

    #[test]
    fn errors_take_the_exception_from_x_amzn_errortype() {
        let body: Value = serde_json::from_slice(&error(
            400,
            Some("ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/"),
            br#"{"message":"bad input"}"#,
        ))
        .expect("json");
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["code"], "ValidationException");
        assert_eq!(body["error"]["message"], "bad input");
    }

    #[test]
    fn model_ids_are_encoded_in_the_path() {
        assert_eq!(
            path(
                "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-pro-v1:0",
                true
            ),
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A%3Afoundation-model%2Famazon.nova-pro-v1%3A0/converse-stream"
        );
    }
}
