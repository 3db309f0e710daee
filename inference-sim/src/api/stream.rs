//! Server-sent events as vLLM sends them: `data: {json}\n\n` per chunk, a usage chunk when asked
//! for, then `data: [DONE]\n\n`. Each endpoint supplies its chunk shapes through [`Chunks`].

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;

use super::{ApiError, Prepared, UsageInfo};
use crate::engine::{Emission, FinishReason};

/// The chunk shapes of one endpoint.
pub(crate) trait Chunks: Send + 'static {
    /// Chunks for one generated token; `first` is set on the first, `finish` on the last.
    fn token(
        &self,
        first: bool,
        text: &str,
        finish: Option<FinishReason>,
        usage: Option<UsageInfo>,
    ) -> Vec<String>;

    /// The closing chunk with `choices: []` and the usage.
    fn usage(&self, usage: UsageInfo) -> String;
}

struct State<C> {
    rx: mpsc::UnboundedReceiver<Emission>,
    chunks: C,
    tokens: Vec<String>,
    prompt_tokens: usize,
    include_usage: bool,
    continuous_usage: bool,
    done: bool,
}

/// Streams a submitted request's tokens.
pub(crate) fn respond<C: Chunks>(
    prepared: Prepared,
    rx: mpsc::UnboundedReceiver<Emission>,
    chunks: C,
) -> Response {
    let state = State {
        rx,
        chunks,
        tokens: prepared.output.tokens,
        prompt_tokens: prepared.spec.prompt_len,
        include_usage: prepared.include_usage,
        continuous_usage: prepared.continuous_usage,
        done: false,
    };
    let stream = futures::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        let mut frames = Vec::new();
        match st.rx.recv().await {
            Some(emission) => {
                let text = st.tokens.get(emission.index).map_or("", String::as_str);
                let usage = (st.include_usage && st.continuous_usage)
                    .then(|| UsageInfo::new(st.prompt_tokens, emission.index + 1, 0));
                frames.extend(st.chunks.token(
                    emission.index == 0,
                    text,
                    emission.done.map(|(reason, _)| reason),
                    usage,
                ));
                if let Some((_, usage)) = emission.done {
                    if st.include_usage {
                        frames.push(st.chunks.usage(usage.into()));
                    }
                    frames.push("[DONE]".to_owned());
                    st.done = true;
                }
            }
            None => {
                let error = ApiError::internal("the simulator stopped before the request finished");
                frames.push(serde_json::to_string(&error.body()).unwrap_or_default());
                frames.push("[DONE]".to_owned());
                st.done = true;
            }
        }
        let mut bytes = String::new();
        for frame in frames {
            bytes.push_str("data: ");
            bytes.push_str(&frame);
            bytes.push_str("\n\n");
        }
        Some((Ok::<_, Infallible>(Bytes::from(bytes)), st))
    });
    (
        [(header::CONTENT_TYPE, "text/event-stream; charset=utf-8")],
        Body::from_stream(stream),
    )
        .into_response()
}

/// Waits for a submitted request to finish; returns its text, finish reason and usage.
pub(crate) async fn collect(
    prepared: &Prepared,
    mut rx: mpsc::UnboundedReceiver<Emission>,
) -> Result<(String, FinishReason, UsageInfo), ApiError> {
    while let Some(emission) = rx.recv().await {
        if let Some((reason, usage)) = emission.done {
            let n = usage.completion_tokens.min(prepared.output.tokens.len());
            return Ok((prepared.output.tokens[..n].concat(), reason, usage.into()));
        }
    }
    Err(ApiError::internal(
        "the simulator stopped before the request finished",
    ))
}
