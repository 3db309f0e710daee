//! Translation cost per request, in process: what the upstream leg spends translating a chat
//! completion for each provider (request, JSON response, stream), at 1 KB, 64 KB and 1 MB
//! prompts, and what one in-flight stream holds in memory.
//!
//!     cargo run --release -p extproc --example translate_bench
//!
//! Request: the client's JSON parsed and written in the provider's schema. Response: the
//! provider's answer (a quarter of the prompt's size, at most 64 KB of text) translated back.
//! Stream: the same answer as the provider streams it (about 24-byte text deltas), fed in
//! 1 KB network chunks, translated chunk by chunk. Memory: the resident set's growth with
//! 2,000 stream translators open, each fed the first 4 KB of its stream, per stream.

use std::time::{Duration, Instant};

use aws_smithy_types::event_stream::{Header, HeaderValue, Message as Frame};
use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue as EnvoyHeader};
use extproc::envoy::Headers;
use extproc::translate::openai::ChatRequest;
use extproc::translate::{self, ChatProvider, ResponseContext, ResponseTranslator};
use serde_json::{Value, json};

const SIZES: [(&str, usize); 3] = [("1 KB", 1 << 10), ("64 KB", 64 << 10), ("1 MB", 1 << 20)];
const DELTA: &str = "lorem ipsum dolor sit am";

#[derive(Clone, Copy)]
enum Provider {
    Anthropic,
    Bedrock,
    AwsAnthropic,
    Gemini,
}

impl Provider {
    const ALL: [Provider; 4] = [
        Provider::Anthropic,
        Provider::Bedrock,
        Provider::AwsAnthropic,
        Provider::Gemini,
    ];

    fn name(self) -> &'static str {
        match self {
            Provider::Anthropic => "Anthropic (Messages)",
            Provider::Bedrock => "AWSBedrock (Converse)",
            Provider::AwsAnthropic => "AWSAnthropic (InvokeModel)",
            Provider::Gemini => "GCPVertexAI (Gemini)",
        }
    }

    fn chat(self) -> ChatProvider {
        match self {
            Provider::Anthropic => ChatProvider::Anthropic,
            Provider::Bedrock => ChatProvider::Bedrock,
            Provider::AwsAnthropic => ChatProvider::AwsAnthropic,
            Provider::Gemini => ChatProvider::Gemini,
        }
    }

    fn request(self, request: &ChatRequest) -> Vec<u8> {
        let translated = match self {
            Provider::Anthropic => {
                translate::anthropic::from_openai::request(request, "claude", "/v1", None)
            }
            Provider::Bedrock => translate::bedrock::from_openai::request(request, "nova"),
            Provider::Gemini => translate::gemini::request(request, "project", "region", "gemini"),
            Provider::AwsAnthropic => translate::anthropic::from_openai::request(
                request, "claude", "", None,
            )
            .and_then(|m| {
                translate::aws_anthropic::wrap(&m.body, None)
                    .map(|(body, _)| body)
                    .map(|body| translate::UpstreamRequest {
                        path: translate::aws_anthropic::path("claude", false),
                        headers: Vec::new(),
                        body,
                    })
            }),
        };
        translated.map(|u| u.body).unwrap_or_default()
    }

    /// The provider's JSON answer with `text`.
    fn answer(self, text: &str) -> Vec<u8> {
        let body = match self {
            Provider::Anthropic | Provider::AwsAnthropic => json!({
                "id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
                "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
                "usage": {"input_tokens": 100, "output_tokens": 50}}),
            Provider::Bedrock => json!({
                "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
                "stopReason": "end_turn",
                "usage": {"inputTokens": 100, "outputTokens": 50, "totalTokens": 150}}),
            Provider::Gemini => json!({
                "candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
                    "finishReason": "STOP"}],
                "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 50,
                    "totalTokenCount": 150},
                "modelVersion": "gemini", "responseId": "r1"}),
        };
        body.to_string().into_bytes()
    }

    /// The provider's stream of `text` in [`DELTA`]-sized pieces.
    fn stream(self, text: &str) -> Vec<u8> {
        let pieces: Vec<&str> = text
            .as_bytes()
            .chunks(DELTA.len())
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect();
        let anthropic_events = || {
            let mut events = vec![
                json!({"type": "message_start", "message": {"id": "msg_1", "type": "message",
                    "role": "assistant", "model": "claude", "content": [],
                    "usage": {"input_tokens": 100, "output_tokens": 1}}}),
                json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}}),
            ];
            events.extend(pieces.iter().map(|p| {
                json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": p}})
            }));
            events.push(json!({"type": "content_block_stop", "index": 0}));
            events.push(
                json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": 50}}),
            );
            events.push(json!({"type": "message_stop"}));
            events
        };
        match self {
            Provider::Anthropic => anthropic_events()
                .iter()
                .flat_map(|e| {
                    format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap_or(""))
                        .into_bytes()
                })
                .collect(),
            Provider::AwsAnthropic => anthropic_events()
                .iter()
                .flat_map(|e| {
                    let bytes = aws_smithy_types::base64::encode(e.to_string());
                    frame("chunk", json!({"bytes": bytes}))
                })
                .collect(),
            Provider::Gemini => pieces
                .iter()
                .map(|p| {
                    json!({"candidates": [{"content": {"role": "model", "parts": [{"text": p}]}}],
                        "modelVersion": "gemini"})
                })
                .chain(std::iter::once(
                    json!({"candidates": [{"content": {"role": "model",
                    "parts": [{"text": ""}]}, "finishReason": "STOP"}],
                    "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 50,
                        "totalTokenCount": 150}}),
                ))
                .flat_map(|e| format!("data: {e}\r\n\r\n").into_bytes())
                .collect(),
            Provider::Bedrock => {
                let mut out = frame("messageStart", json!({"role": "assistant"}));
                for p in &pieces {
                    out.extend(frame(
                        "contentBlockDelta",
                        json!({"contentBlockIndex": 0, "delta": {"text": p}}),
                    ));
                }
                out.extend(frame("contentBlockStop", json!({"contentBlockIndex": 0})));
                out.extend(frame("messageStop", json!({"stopReason": "end_turn"})));
                out.extend(frame(
                    "metadata",
                    json!({"usage": {"inputTokens": 100, "outputTokens": 50, "totalTokens": 150},
                        "metrics": {"latencyMs": 10}}),
                ));
                out
            }
        }
    }

    fn stream_content_type(self) -> &'static str {
        match self {
            Provider::Anthropic | Provider::Gemini => "text/event-stream",
            Provider::Bedrock | Provider::AwsAnthropic => "application/vnd.amazon.eventstream",
        }
    }
}

fn frame(event: &str, payload: Value) -> Vec<u8> {
    let string = |s: &str| HeaderValue::String(s.to_string().into());
    let message = Frame::new(payload.to_string().into_bytes())
        .add_header(Header::new(":message-type", string("event")))
        .add_header(Header::new(":event-type", string(event)))
        .add_header(Header::new(":content-type", string("application/json")));
    let mut out = Vec::new();
    let _ = aws_smithy_eventstream::frame::write_message_to(&message, &mut out);
    out
}

fn headers(content_type: &str) -> Headers {
    Headers::from_map(Some(&HeaderMap {
        headers: vec![EnvoyHeader {
            key: "content-type".into(),
            value: content_type.into(),
            ..Default::default()
        }],
    }))
}

fn client_request(size: usize, stream: bool) -> Vec<u8> {
    let prompt: String = DELTA.chars().cycle().take(size).collect();
    json!({"model": "m", "stream": stream, "max_tokens": 256, "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": prompt}]})
    .to_string()
    .into_bytes()
}

/// Mean time of `f` over enough runs to fill about 200 ms.
fn time(mut f: impl FnMut()) -> Duration {
    f();
    let start = Instant::now();
    let mut runs = 0u32;
    while start.elapsed() < Duration::from_millis(200) || runs < 3 {
        f();
        runs += 1;
    }
    start.elapsed() / runs
}

fn cx(stream: bool) -> ResponseContext {
    ResponseContext {
        model: "m".into(),
        stream,
        usage_chunk: stream,
        anthropic_client: false,
        embeddings: false,
    }
}

fn micros(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

fn throughput(bytes: usize, d: Duration) -> String {
    format!("{:.0}", bytes as f64 / d.as_secs_f64() / 1e6)
}

fn main() {
    println!("# Translation cost per request (extproc upstream leg, in process, one core)\n");
    println!(
        "| provider | prompt | request µs (MB/s) | answer bytes | JSON response µs (MB/s) | stream µs (MB/s) |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for provider in Provider::ALL {
        for (label, size) in SIZES {
            let body = client_request(size, false);
            let request = time(|| {
                let parsed: ChatRequest = serde_json::from_slice(&body).expect("request");
                std::hint::black_box(provider.request(&parsed));
            });
            let text: String = DELTA
                .chars()
                .cycle()
                .take((size / 4).min(64 << 10))
                .collect();
            let answer = provider.answer(&text);
            let json_headers = headers("application/json");
            let response = time(|| {
                let (mut t, _) =
                    ResponseTranslator::start(provider.chat(), cx(false), 200, &json_headers);
                std::hint::black_box(t.body(&answer, true));
            });
            let stream = provider.stream(&text);
            let stream_headers = headers(provider.stream_content_type());
            let streamed = time(|| {
                let (mut t, _) =
                    ResponseTranslator::start(provider.chat(), cx(true), 200, &stream_headers);
                let chunks: Vec<&[u8]> = stream.chunks(1024).collect();
                let last = chunks.len() - 1;
                for (i, chunk) in chunks.iter().enumerate() {
                    std::hint::black_box(t.body(chunk, i == last));
                }
            });
            println!(
                "| {} | {label} | {} ({}) | {} | {} ({}) | {} ({}) |",
                provider.name(),
                micros(request),
                throughput(body.len(), request),
                answer.len(),
                micros(response),
                throughput(answer.len(), response),
                micros(streamed),
                throughput(stream.len(), streamed),
            );
        }
    }
    println!(
        "\n# Memory per in-flight stream (RSS growth with {STREAMS} open streams, each fed 4 KB)\n"
    );
    println!("| provider | bytes per stream |");
    println!("|---|---:|");
    // Every provider's streams stay open to the end, so none reuses another's freed pages.
    let mut all_open = Vec::new();
    for provider in Provider::ALL {
        let text: String = DELTA.chars().cycle().take(16 << 10).collect();
        let stream = provider.stream(&text);
        let stream_headers = headers(provider.stream_content_type());
        let before = rss_bytes();
        let mut open = Vec::with_capacity(STREAMS);
        for _ in 0..STREAMS {
            let (mut t, _) =
                ResponseTranslator::start(provider.chat(), cx(true), 200, &stream_headers);
            for chunk in stream[..4096].chunks(1024) {
                drop(std::hint::black_box(t.body(chunk, false)));
            }
            open.push(t);
        }
        let after = rss_bytes();
        println!(
            "| {} | {} |",
            provider.name(),
            after.saturating_sub(before) / STREAMS as u64
        );
        all_open.push(open);
    }
}

const STREAMS: usize = 2000;

/// The process's resident set, from `/proc/self/statm` (0 where it is not readable).
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}
