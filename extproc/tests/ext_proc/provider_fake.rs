//! What each provider would check of the request it gets: path, API version, its own
//! credential header and no client credential, and the body's shape. Every golden case's
//! upstream request passes through here, so a translation that a real provider would refuse
//! fails the test even when its golden file was regenerated.

use extproc::config::{Config, CredentialConfig};
use serde_json::Value;

/// Checks the upstream request of a golden record against the backend it was routed to.
pub fn verify(config: &Config, record: &Value) -> Result<(), String> {
    let Some(request) = record.get("upstream_request") else {
        return Ok(());
    };
    let backend_name = record["routed_to"]["backend"].as_str().unwrap_or_default();
    let backend = config
        .backends
        .iter()
        .find(|b| b.name == backend_name)
        .ok_or_else(|| format!("routed to unknown backend {backend_name}"))?;
    let headers = &request["headers"];
    let header = |name: &str| headers.get(name).and_then(Value::as_str);
    let path = request["path"].as_str().unwrap_or_default();
    let key = backend.credential.as_ref().map(|c| match c {
        CredentialConfig::ApiKey { key } => key.as_str(),
    });
    for (name, value) in headers.as_object().into_iter().flatten() {
        if value.as_str().is_some_and(|v| v.contains("client")) {
            return Err(format!("client credential {name} reached the provider"));
        }
    }
    match backend.schema.name.as_str() {
        "OpenAI" => {
            if let Some(key) = key {
                expect(
                    header("authorization"),
                    Some(&format!("Bearer {key}")),
                    "authorization",
                )?;
            }
        }
        "AzureOpenAI" => {
            let version = backend.schema.version.as_deref().unwrap_or_default();
            let rest = path
                .strip_prefix("/openai/deployments/")
                .ok_or_else(|| format!("Azure path {path} is not under /openai/deployments/"))?;
            let (deployment, rest) = rest.split_once('/').unwrap_or_default();
            if deployment.is_empty() {
                return Err(format!("Azure path {path} names no deployment"));
            }
            let query = rest.split_once('?').map(|(_, q)| q).unwrap_or_default();
            if !query
                .split('&')
                .any(|p| p == format!("api-version={version}"))
            {
                return Err(format!("Azure path {path} lacks api-version={version}"));
            }
            expect(header("api-key"), key, "api-key")?;
            expect(header("authorization"), None, "authorization")?;
        }
        "Anthropic" => {
            if !path.ends_with("/messages") {
                return Err(format!("Anthropic path {path} is not /v1/messages"));
            }
            expect(header("x-api-key"), key, "x-api-key")?;
            expect(header("authorization"), None, "authorization")?;
            if header("anthropic-version").is_none() {
                return Err("Anthropic request without anthropic-version".into());
            }
            anthropic_body(&request["body"])?;
        }
        other => return Err(format!("no fake for schema {other}")),
    }
    Ok(())
}

fn expect(got: Option<&str>, want: Option<&str>, name: &str) -> Result<(), String> {
    if got == want {
        return Ok(());
    }
    Err(format!(
        "{name}: got {}, want {}",
        got.map_or("nothing".into(), |_| "a value".to_string()),
        want.map_or("nothing".into(), |_| "the backend's".to_string())
    ))
}

/// What the Messages API validates: a model, `max_tokens`, and messages that start with the
/// user, alternate roles, and answer every `tool_use` with a `tool_result` in the next message.
fn anthropic_body(body: &Value) -> Result<(), String> {
    if !body["model"].is_string() || !body["max_tokens"].is_u64() {
        return Err("Anthropic body needs model and max_tokens".into());
    }
    let messages = body["messages"]
        .as_array()
        .filter(|m| !m.is_empty())
        .ok_or("Anthropic body needs messages")?;
    let mut expected = "user";
    let mut pending_tools: Vec<String> = Vec::new();
    for message in messages {
        let role = message["role"].as_str().unwrap_or_default();
        if role != expected {
            return Err(format!("message role {role}, expected {expected}"));
        }
        let text = message["content"].is_string();
        let blocks = message["content"].as_array();
        if !text && blocks.is_none() {
            return Err("content is neither text nor blocks".into());
        }
        for block in blocks.into_iter().flatten() {
            match block["type"].as_str().unwrap_or_default() {
                "text" if block["text"].is_string() => {}
                "image" if block["source"]["type"].is_string() => {}
                "tool_use" if role == "assistant" && block["input"].is_object() => {
                    pending_tools.push(block["id"].as_str().unwrap_or_default().into());
                }
                "tool_result" if role == "user" => {
                    let id = block["tool_use_id"].as_str().unwrap_or_default();
                    pending_tools.retain(|t| t != id);
                }
                other => return Err(format!("block {other} is not valid for {role}")),
            }
        }
        if role == "user" && !pending_tools.is_empty() {
            return Err(format!("tool_use {pending_tools:?} without a tool_result"));
        }
        expected = if role == "user" { "assistant" } else { "user" };
    }
    Ok(())
}
