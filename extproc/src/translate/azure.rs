//! Azure OpenAI: OpenAI bodies and answers; the deployment (the model) goes in the path and
//! the backend's `schema.version` in `api-version`, and the key in `api-key`.

use crate::api::Endpoint;

/// `/openai/deployments/{model}/{suffix}?api-version={version}`, with the client's own query
/// parameters after it.
pub fn path(endpoint: Endpoint, model: &str, version: &str, query: &str) -> String {
    let mut path = format!(
        "/openai/deployments/{}/{}?api-version={}",
        encode(model),
        endpoint.upstream_suffix(),
        encode(version)
    );
    for param in query.trim_start_matches('?').split('&') {
        if !param.is_empty() && !param.starts_with("api-version=") {
            path.push('&');
            path.push_str(param);
        }
    }
    path
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub(crate) fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_and_api_version_go_in_the_path() {
        assert_eq!(
            path(
                Endpoint::ChatCompletions,
                "gpt-4o",
                "2024-10-21",
                "?trace=1&api-version=x"
            ),
            "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21&trace=1"
        );
        assert_eq!(
            path(Endpoint::Embeddings, "my model/1", "v", ""),
            "/openai/deployments/my%20model%2F1/embeddings?api-version=v"
        );
    }
}
