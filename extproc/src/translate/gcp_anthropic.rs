//! Claude on Google Vertex AI (`GCPAnthropic`): the Anthropic Messages body without `model`
//! (it is in the path), with Vertex's `anthropic_version`, sent to `rawPredict` or, for a
//! stream, `streamRawPredict`. Vertex answers in Anthropic's own JSON and SSE, so chat
//! completions reuse the Anthropic translators and Messages clients get the answer as it is.

use serde_json::Value;

use crate::translate::{RequestError, StreamTranslator};

/// `anthropic_version` of Vertex bodies unless the schema names one.
pub const DEFAULT_VERSION: &str = "vertex-2023-10-16";

/// `/v1/projects/{project}/locations/{region}/publishers/anthropic/models/{model}:rawPredict`
/// (or `:streamRawPredict`).
pub fn path(project: &str, region: &str, model: &str, stream: bool) -> String {
    let action = if stream {
        "streamRawPredict"
    } else {
        "rawPredict"
    };
    let encode = crate::translate::azure::encode;
    format!(
        "/v1/projects/{}/locations/{}/publishers/anthropic/models/{}:{action}",
        encode(project),
        encode(region),
        encode(model)
    )
}

/// An Anthropic Messages body as Vertex takes it, and whether it asked for a stream.
pub fn wrap(body: &[u8], version: Option<&str>) -> Result<(Vec<u8>, bool), RequestError> {
    let mut object: serde_json::Map<String, Value> = serde_json::from_slice(body)
        .map_err(|e| RequestError::new(format!("the Messages body is not a JSON object: {e}")))?;
    object.remove("model");
    let stream = object.get("stream") == Some(&Value::Bool(true));
    object
        .entry("anthropic_version")
        .or_insert_with(|| Value::String(version.unwrap_or(DEFAULT_VERSION).to_string()));
    let bytes = serde_json::to_vec(&object)
        .map_err(|e| RequestError::new(format!("the Messages body cannot be written: {e}")))?;
    Ok((bytes, stream))
}

/// A stream the client gets as the provider sent it.
pub struct Unchanged;

impl StreamTranslator for Unchanged {
    fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        bytes.to_vec()
    }

    fn finish(&mut self) -> Vec<u8> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn vertex_bodies_lose_model_keep_stream_and_gain_vertexs_version() {
        let (body, stream) = wrap(
            br#"{"model":"claude","stream":true,"max_tokens":5,"messages":[]}"#,
            None,
        )
        .expect("wrap");
        assert!(stream);
        let body: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(
            body,
            json!({"stream": true, "max_tokens": 5, "messages": [],
                   "anthropic_version": DEFAULT_VERSION})
        );
        assert_eq!(
            path("proj", "us-east5", "claude-sonnet-4@20250514", false),
            "/v1/projects/proj/locations/us-east5/publishers/anthropic/models/claude-sonnet-4%4020250514:rawPredict"
        );
    }
}
