//! OpenAI chat completions → Anthropic Messages, and the answer back.
//!
//! Request: system and developer messages become `system`; consecutive messages of one role
//! are merged (tool results of parallel calls go back in one user message, as Anthropic
//! requires); tool calls become `tool_use` blocks and tool messages `tool_result` blocks;
//! `data:` URL images are sent inline, `http(s)` ones by URL; `stop` becomes
//! `stop_sequences`; `reasoning_effort` (or an Anthropic-style `thinking` field) becomes
//! `thinking` with its budget added to `max_tokens`, so the client's limit still bounds the
//! visible answer. `n` other than 1 cannot be expressed and is rejected.
//!
//! Response: text blocks are joined, `tool_use` blocks become tool calls, thinking becomes
//! `reasoning_content`; `prompt_tokens` counts cached and cache-writing input as OpenAI does,
//! with the cached part in `prompt_tokens_details.cached_tokens`.

use serde_json::Value;

use super::{
    BlockDelta, ContentBlock, ErrorResponse, ImageSource, Message, MessagesRequest,
    MessagesResponse, Metadata, ResponseBlock, Role, StreamEvent, TextBlock, Tool, ToolChoice,
    Usage,
};
use crate::sse::SseParser;
use crate::translate::openai::{
    self, ChatCompletion, ChatRequest, Choice, ChunkWriter, Content, ContentPart, Delta,
    FunctionCall, FunctionDelta, Image, PromptTokensDetails, ResponseMessage, ToolCall,
    ToolCallDelta,
};
use crate::translate::{RequestError, ResponseContext, StreamTranslator, UpstreamRequest};

/// Thinking budget of each `reasoning_effort`.
fn effort_budget(effort: &str) -> Option<u32> {
    match effort {
        "minimal" | "low" => Some(1024),
        "medium" => Some(4096),
        "high" => Some(16384),
        _ => None,
    }
}

/// The Messages request for `request`, sent to `{prefix}/messages` for `model`.
pub fn request(
    request: &ChatRequest,
    model: &str,
    prefix: &str,
    version: Option<&str>,
) -> Result<UpstreamRequest, RequestError> {
    if request.n.is_some_and(|n| n != 1) {
        return Err(RequestError::new("n must be 1 for this model"));
    }
    let mut system = Vec::new();
    let mut messages: Vec<Message> = Vec::new();
    for message in &request.messages {
        let (role, blocks) = match message {
            openai::Message::System { content } | openai::Message::Developer { content } => {
                system.push(TextBlock::new(content.text()));
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
                vec![ContentBlock::ToolResult {
                    tool_use_id: tool_call_id.clone(),
                    content: content.text(),
                }],
            ),
        };
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

    let mut max_tokens = request
        .max_output_tokens()
        .unwrap_or(super::DEFAULT_MAX_TOKENS);
    let thinking = match (&request.thinking, request.reasoning_effort.as_deref()) {
        (Some(thinking), _) => Some(thinking.clone()),
        (None, Some(effort)) => {
            let budget = effort_budget(effort).ok_or_else(|| {
                RequestError::new(format!(
                    "reasoning_effort {effort:?} must be one of minimal, low, medium, high"
                ))
            })?;
            max_tokens = max_tokens.saturating_add(budget);
            Some(serde_json::json!({"type": "enabled", "budget_tokens": budget}))
        }
        (None, None) => None,
    };
    let disable_parallel = request.parallel_tool_calls.map(|p| !p);
    let tool_choice = match &request.tool_choice {
        None => disable_parallel.map(|d| ToolChoice::Auto {
            disable_parallel_tool_use: Some(d),
        }),
        Some(openai::ToolChoice::Mode(mode)) => Some(match mode.as_str() {
            "auto" => ToolChoice::Auto {
                disable_parallel_tool_use: disable_parallel,
            },
            "required" => ToolChoice::Any {
                disable_parallel_tool_use: disable_parallel,
            },
            "none" => ToolChoice::None,
            other => {
                return Err(RequestError::new(format!(
                    "tool_choice {other:?} must be none, auto, required or a function"
                )));
            }
        }),
        Some(openai::ToolChoice::Named { function }) => Some(ToolChoice::Tool {
            name: function.name.clone(),
            disable_parallel_tool_use: disable_parallel,
        }),
    };
    let tools = request
        .tools
        .iter()
        .flatten()
        .filter(|t| t.kind == "function")
        .map(|t| Tool {
            name: t.function.name.clone(),
            description: t.function.description.clone(),
            input_schema: t
                .function
                .parameters
                .clone()
                .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}})),
        })
        .collect();
    let body = MessagesRequest {
        model: model.to_string(),
        max_tokens,
        messages,
        system,
        temperature: request.temperature,
        top_p: request.top_p,
        stop_sequences: request
            .stop
            .clone()
            .map(openai::Stop::into_vec)
            .unwrap_or_default(),
        stream: request.stream,
        tools,
        tool_choice,
        thinking,
        metadata: request.user.clone().map(|user_id| Metadata { user_id }),
    };
    Ok(UpstreamRequest {
        path: format!("{prefix}/messages"),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            (
                "anthropic-version".into(),
                version.unwrap_or(super::DEFAULT_VERSION).to_string(),
            ),
        ],
        // Serialising these plain structs cannot fail.
        body: serde_json::to_vec(&body).unwrap_or_default(),
    })
}

fn user_blocks(content: &Content) -> Result<Vec<ContentBlock>, RequestError> {
    match content {
        Content::Text(text) => Ok(vec![ContentBlock::Text { text: text.clone() }]),
        Content::Parts(parts) => parts
            .iter()
            .map(|part| match part {
                ContentPart::Text { text } => Ok(ContentBlock::Text { text: text.clone() }),
                ContentPart::ImageUrl { image_url } => {
                    let source = match Image::parse(&image_url.url) {
                        Some(Image::Base64 { media_type, data }) => {
                            ImageSource::Base64 { media_type, data }
                        }
                        Some(Image::Url(url)) => ImageSource::Url { url },
                        None => {
                            return Err(RequestError::new(
                                "image_url.url must be a data:<type>;base64 URL or an http(s) URL",
                            ));
                        }
                    };
                    Ok(ContentBlock::Image { source })
                }
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
        blocks.push(ContentBlock::Text { text });
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
        blocks.push(ContentBlock::ToolUse {
            id: call.id.clone(),
            name: call.function.name.clone(),
            input,
        });
    }
    Ok(blocks)
}

/// OpenAI's `finish_reason` for Anthropic's `stop_reason`.
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// OpenAI usage: input counts cache reads and writes, as OpenAI's `prompt_tokens` does.
pub fn usage(usage: &Usage) -> openai::Usage {
    let cached = usage.cache_read_input_tokens.unwrap_or(0);
    let prompt =
        usage.input_tokens.unwrap_or(0) + cached + usage.cache_creation_input_tokens.unwrap_or(0);
    let completion = usage.output_tokens.unwrap_or(0);
    openai::Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: prompt + completion,
        prompt_tokens_details: Some(PromptTokensDetails {
            cached_tokens: cached,
        }),
        completion_tokens_details: None,
    }
}

/// A whole Messages response as a chat completion.
pub fn response(body: &[u8], model: &str, created: i64) -> Result<ChatCompletion, String> {
    let message: MessagesResponse = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut tool_calls = Vec::new();
    for block in message.content {
        match block {
            ResponseBlock::Text { text: t } => text.push_str(&t),
            ResponseBlock::Thinking { thinking } => reasoning.push_str(&thinking),
            ResponseBlock::ToolUse { id, name, input } => tool_calls.push(ToolCall {
                id,
                kind: "function".into(),
                function: FunctionCall {
                    name,
                    arguments: input.to_string(),
                },
            }),
            ResponseBlock::Other => {}
        }
    }
    Ok(ChatCompletion {
        id: message.id,
        object: "chat.completion",
        created,
        model: message.model.unwrap_or_else(|| model.to_string()),
        choices: vec![Choice {
            index: 0,
            message: ResponseMessage {
                role: "assistant",
                content: (!text.is_empty() || tool_calls.is_empty()).then_some(text),
                reasoning_content: (!reasoning.is_empty()).then_some(reasoning),
                tool_calls,
            },
            finish_reason: Some(finish_reason(message.stop_reason.as_deref().unwrap_or(""))),
        }],
        usage: usage(&message.usage),
    })
}

/// An Anthropic error body (`{"type":"error","error":{…}}`) in OpenAI's shape.
pub fn error(status: u16, body: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<ErrorResponse>(body) {
        Ok(e) => openai::error_body(&e.error.kind, None, &e.error.message),
        Err(_) => openai::error_body(
            crate::translate::error_type(status),
            None,
            &crate::translate::error_text(body),
        ),
    }
}

/// An Anthropic event stream as OpenAI chunks.
pub struct Stream {
    parser: SseParser,
    writer: ChunkWriter,
    usage_chunk: bool,
    usage: Usage,
    /// Anthropic block index → OpenAI tool call index, for `tool_use` blocks.
    tools: Vec<(u32, u32)>,
    done: bool,
}

impl Stream {
    pub fn new(cx: &ResponseContext, created: i64) -> Stream {
        Stream {
            parser: SseParser::new(),
            writer: ChunkWriter {
                id: String::new(),
                model: cx.model.clone(),
                created,
            },
            usage_chunk: cx.usage_chunk,
            usage: Usage::default(),
            tools: Vec::new(),
            done: false,
        }
    }

    fn event(&mut self, data: &str, out: &mut Vec<u8>) {
        let Ok(event) = serde_json::from_str::<StreamEvent>(data) else {
            tracing::debug!("skipping an Anthropic stream event that does not parse");
            return;
        };
        match event {
            StreamEvent::MessageStart { message } => {
                self.writer.id = message.id;
                if let Some(model) = message.model {
                    self.writer.model = model;
                }
                self.usage.merge(message.usage);
                out.extend(self.writer.delta(
                    Delta {
                        role: Some("assistant"),
                        content: Some(String::new()),
                        ..Delta::default()
                    },
                    None,
                ));
            }
            StreamEvent::ContentBlockStart {
                index,
                content_block: ResponseBlock::ToolUse { id, name, .. },
            } => {
                let call = self.tools.len() as u32;
                self.tools.push((index, call));
                out.extend(self.writer.delta(
                    Delta {
                        tool_calls: vec![ToolCallDelta {
                            index: call,
                            id: Some(id),
                            kind: Some("function"),
                            function: FunctionDelta {
                                name: Some(name),
                                arguments: Some(String::new()),
                            },
                        }],
                        ..Delta::default()
                    },
                    None,
                ));
            }
            StreamEvent::ContentBlockDelta { index, delta } => {
                let delta = match delta {
                    BlockDelta::TextDelta { text } => Delta {
                        content: Some(text),
                        ..Delta::default()
                    },
                    BlockDelta::ThinkingDelta { thinking } => Delta {
                        reasoning_content: Some(thinking),
                        ..Delta::default()
                    },
                    BlockDelta::InputJsonDelta { partial_json } => {
                        let Some(&(_, call)) = self.tools.iter().find(|(i, _)| *i == index) else {
                            return;
                        };
                        Delta {
                            tool_calls: vec![ToolCallDelta {
                                index: call,
                                id: None,
                                kind: None,
                                function: FunctionDelta {
                                    name: None,
                                    arguments: Some(partial_json),
                                },
                            }],
                            ..Delta::default()
                        }
                    }
                    BlockDelta::Other => return,
                };
                out.extend(self.writer.delta(delta, None));
            }
            StreamEvent::MessageDelta { delta, usage } => {
                self.usage.merge(usage);
                if let Some(reason) = delta.stop_reason {
                    out.extend(
                        self.writer
                            .delta(Delta::default(), Some(finish_reason(&reason))),
                    );
                }
            }
            StreamEvent::MessageStop => {
                if self.usage_chunk {
                    out.extend(self.writer.usage(usage(&self.usage)));
                }
                out.extend_from_slice(openai::DONE);
                self.done = true;
            }
            StreamEvent::Error { error } => {
                out.extend(openai::error_event(&error.kind, &error.message));
            }
            StreamEvent::ContentBlockStart { .. } | StreamEvent::Other => {}
        }
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
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn translate_all(chunks: &[&[u8]]) -> String {
        let cx = ResponseContext {
            model: "claude".into(),
            stream: true,
            usage_chunk: true,
            anthropic_client: false,
            embeddings: false,
        };
        let mut stream = Stream::new(&cx, 1);
        let mut out = Vec::new();
        for chunk in chunks {
            out.extend(stream.push(chunk));
        }
        out.extend(stream.finish());
        String::from_utf8(out).expect("utf-8")
    }

    const EVENTS: &str = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude-x\",\"usage\":{\"input_tokens\":10,\"cache_read_input_tokens\":4,\"output_tokens\":1}}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":7}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

    #[test]
    fn a_stream_split_at_every_byte_translates_the_same() {
        let whole = translate_all(&[EVENTS.as_bytes()]);
        assert!(whole.ends_with("data: [DONE]\n\n"), "{whole}");
        assert!(
            whole.contains(r#""usage":{"prompt_tokens":14,"completion_tokens":7,"total_tokens":21,"prompt_tokens_details":{"cached_tokens":4}}"#),
            "{whole}"
        );
        let bytes = EVENTS.as_bytes();
        for split in 0..bytes.len() {
            assert_eq!(
                translate_all(&[&bytes[..split], &bytes[split..]]),
                whole,
                "split at {split}"
            );
        }
    }

    #[test]
    fn crlf_framing_and_data_without_a_space_are_read() {
        let crlf = EVENTS.replace("data: ", "data:").replace('\n', "\r\n");
        assert_eq!(
            translate_all(&[crlf.as_bytes()]),
            translate_all(&[EVENTS.as_bytes()])
        );
    }

    #[test]
    fn a_stream_cut_before_message_stop_has_no_done() {
        let cut = &EVENTS[..EVENTS.find("event: message_stop").expect("stop")];
        assert!(!translate_all(&[cut.as_bytes()]).contains("[DONE]"));
    }

    #[test]
    fn an_error_that_is_not_json_keeps_its_text() {
        let body: Value =
            serde_json::from_slice(&error(502, b"<html>bad gateway</html>")).expect("json");
        assert_eq!(body["error"]["type"], "server_error");
        assert_eq!(body["error"]["message"], "<html>bad gateway</html>");
    }
}
