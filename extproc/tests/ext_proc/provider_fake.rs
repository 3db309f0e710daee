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
    let key = backend.credential.as_ref().and_then(|c| match c {
        CredentialConfig::ApiKey { key } => Some(key.as_str()),
        _ => None,
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
        "AWSBedrock" => {
            let rest = path
                .strip_prefix("/model/")
                .ok_or_else(|| format!("Bedrock path {path} is not under /model/"))?;
            let (model, action) = rest
                .split_once('/')
                .ok_or_else(|| format!("Bedrock path {path} names no action"))?;
            if model.is_empty() || model.contains('/') || model.contains(':') {
                return Err(format!(
                    "Bedrock model id in {path} is not one encoded segment"
                ));
            }
            if action != "converse" && action != "converse-stream" {
                return Err(format!("Bedrock action {action} is not converse(-stream)"));
            }
            bedrock_body(&request["body"])?;
            verify_signature(backend, record, path, headers)?;
        }
        "AWSAnthropic" => {
            let rest = path
                .strip_prefix("/model/")
                .ok_or_else(|| format!("InvokeModel path {path} is not under /model/"))?;
            let (model, action) = rest
                .split_once('/')
                .ok_or_else(|| format!("InvokeModel path {path} names no action"))?;
            if model.is_empty() || model.contains('/') || model.contains(':') {
                return Err(format!(
                    "InvokeModel model id in {path} is not one encoded segment"
                ));
            }
            if action != "invoke" && action != "invoke-with-response-stream" {
                return Err(format!(
                    "InvokeModel action {action} is not invoke(-with-response-stream)"
                ));
            }
            let body = &request["body"];
            if body.get("model").is_some() || body.get("stream").is_some() {
                return Err("InvokeModel bodies carry neither model nor stream".into());
            }
            if body["anthropic_version"] != "bedrock-2023-05-31" {
                return Err(format!(
                    "InvokeModel needs anthropic_version bedrock-2023-05-31, got {}",
                    body["anthropic_version"]
                ));
            }
            if !body["max_tokens"].is_u64() || !body["messages"].is_array() {
                return Err("an Anthropic body needs max_tokens and messages".into());
            }
            verify_signature(backend, record, path, headers)?;
        }
        "GCPVertexAI" | "GCPAnthropic" => {
            let Some(CredentialConfig::GcpCredentials {
                project_name,
                region,
                ..
            }) = &backend.credential
            else {
                return Err("a Vertex backend needs GCPCredentials".into());
            };
            let bearer = format!("Bearer {}", super::harness::GOLDEN_GCP_TOKEN);
            expect(
                header("authorization"),
                Some(bearer.as_str()),
                "authorization",
            )?;
            let publisher = if backend.schema.name == "GCPVertexAI" {
                "google"
            } else {
                "anthropic"
            };
            let prefix = format!(
                "/v1/projects/{project_name}/locations/{region}/publishers/{publisher}/models/"
            );
            let rest = path
                .strip_prefix(&prefix)
                .ok_or_else(|| format!("Vertex path {path} is not under {prefix}"))?;
            let (model, action) = rest
                .split_once(':')
                .ok_or_else(|| format!("Vertex path {path} names no method"))?;
            if model.is_empty() || model.contains('/') || model.contains('@') {
                return Err(format!("Vertex model in {path} is not one encoded segment"));
            }
            let body = &request["body"];
            let allowed: &[&str] = if publisher == "google" {
                &[
                    "generateContent",
                    "streamGenerateContent?alt=sse",
                    "predict",
                ]
            } else {
                &["rawPredict", "streamRawPredict"]
            };
            if !allowed.contains(&action) {
                return Err(format!("Vertex method {action} is not one of {allowed:?}"));
            }
            if body.get("model").is_some()
                || (body.get("messages").is_some() && publisher == "google")
            {
                return Err("a Vertex body names no model (and Gemini takes contents)".into());
            }
            match action {
                "predict" if !body["instances"].is_array() => {
                    return Err("predict needs instances".into());
                }
                "generateContent" | "streamGenerateContent?alt=sse"
                    if !body["contents"].is_array() =>
                {
                    return Err("generateContent needs contents".into());
                }
                "rawPredict" | "streamRawPredict"
                    if body["anthropic_version"] != "vertex-2023-10-16" =>
                {
                    return Err("Claude on Vertex needs anthropic_version vertex-2023-10-16".into());
                }
                _ => {}
            }
        }
        other => return Err(format!("no fake for schema {other}")),
    }
    Ok(())
}

/// Recomputes the SigV4 signature of a backend with AWS keys (others are not signed).
fn verify_signature(
    backend: &extproc::config::BackendConfig,
    record: &Value,
    path: &str,
    headers: &Value,
) -> Result<(), String> {
    let Some(CredentialConfig::AwsCredentials {
        region,
        access_key_id,
        secret_access_key,
        session_token,
    }) = &backend.credential
    else {
        return Ok(());
    };
    let raw = &record["_raw"];
    sigv4::verify(
        &sigv4::Keys {
            region,
            access_key_id,
            secret_access_key,
            session_token: session_token.as_deref(),
        },
        raw["authority"].as_str().unwrap_or_default(),
        path,
        headers,
        raw["body"].as_str().unwrap_or_default().as_bytes(),
    )
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

/// What Converse validates: messages that start with the user and alternate roles, blocks with
/// exactly one known member, and every `toolUse` answered by a `toolResult` in the next message.
fn bedrock_body(body: &Value) -> Result<(), String> {
    let messages = body["messages"]
        .as_array()
        .filter(|m| !m.is_empty())
        .ok_or("Converse body needs messages")?;
    let mut expected = "user";
    let mut pending_tools: Vec<String> = Vec::new();
    let mut uses_tools = false;
    for message in messages {
        let role = message["role"].as_str().unwrap_or_default();
        if role != expected {
            return Err(format!("message role {role}, expected {expected}"));
        }
        let blocks = message["content"]
            .as_array()
            .filter(|b| !b.is_empty())
            .ok_or("Converse content must be a non-empty list of blocks")?;
        for block in blocks {
            let object = block.as_object().ok_or("a block is not an object")?;
            if object.len() != 1 {
                return Err(format!("block {block} must set exactly one member"));
            }
            let (kind, value) = object.iter().next().ok_or("empty block")?;
            match kind.as_str() {
                "text" if value.is_string() => {}
                "image" if role == "user" => {
                    let format = value["format"].as_str().unwrap_or_default();
                    if !["png", "jpeg", "gif", "webp"].contains(&format) {
                        return Err(format!("image format {format} is not valid"));
                    }
                    if !value["source"]["bytes"].is_string() {
                        return Err("image source needs bytes".into());
                    }
                }
                "toolUse" if role == "assistant" && value["input"].is_object() => {
                    uses_tools = true;
                    pending_tools.push(value["toolUseId"].as_str().unwrap_or_default().into());
                }
                "toolResult" if role == "user" => {
                    uses_tools = true;
                    let id = value["toolUseId"].as_str().unwrap_or_default();
                    pending_tools.retain(|t| t != id);
                }
                other => return Err(format!("block {other} is not valid for {role}")),
            }
        }
        if role == "user" && !pending_tools.is_empty() {
            return Err(format!("toolUse {pending_tools:?} without a toolResult"));
        }
        expected = if role == "user" { "assistant" } else { "user" };
    }
    if uses_tools
        && body["toolConfig"]["tools"]
            .as_array()
            .is_none_or(Vec::is_empty)
    {
        return Err("tool blocks need a toolConfig".into());
    }
    for (i, system) in body["system"].as_array().into_iter().flatten().enumerate() {
        if !system["text"].is_string() {
            return Err(format!("system block {i} has no text"));
        }
    }
    Ok(())
}

/// SigV4 recomputed from the request as received, independently of the gateway's signer
/// (`aws-sigv4`): sha2 and hmac over the canonical request AWS documents.
mod sigv4 {
    use hmac::{Hmac, KeyInit, Mac};
    use serde_json::Value;
    use sha2::{Digest, Sha256};

    pub struct Keys<'a> {
        pub region: &'a str,
        pub access_key_id: &'a str,
        pub secret_access_key: &'a str,
        pub session_token: Option<&'a str>,
    }

    fn hmac(key: &[u8], data: &str) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key size");
        mac.update(data.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    fn sha256_hex(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    /// Each segment encoded again (AWS services other than S3 sign the double-encoded path).
    fn canonical_uri(path: &str) -> String {
        let mut out = String::new();
        for b in path.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }

    pub fn verify(
        keys: &Keys<'_>,
        authority: &str,
        path: &str,
        headers: &Value,
        body: &[u8],
    ) -> Result<(), String> {
        let header = |name: &str| headers.get(name).and_then(Value::as_str);
        let auth = header("authorization").ok_or("no authorization header")?;
        let rest = auth
            .strip_prefix("AWS4-HMAC-SHA256 ")
            .ok_or("authorization is not AWS4-HMAC-SHA256")?;
        let mut credential = None;
        let mut signed_headers = None;
        let mut signature = None;
        for part in rest.split(", ") {
            match part.split_once('=') {
                Some(("Credential", v)) => credential = Some(v),
                Some(("SignedHeaders", v)) => signed_headers = Some(v),
                Some(("Signature", v)) => signature = Some(v),
                _ => return Err(format!("authorization part {part:?} unknown")),
            }
        }
        let (credential, signed_headers, signature) = match (credential, signed_headers, signature)
        {
            (Some(c), Some(h), Some(s)) => (c, h, s),
            _ => return Err("authorization lacks Credential, SignedHeaders or Signature".into()),
        };
        let scope: Vec<&str> = credential.split('/').collect();
        let [akid, date, region, service, terminator] = scope[..] else {
            return Err(format!("credential scope {credential} is malformed"));
        };
        if akid != keys.access_key_id {
            return Err("signed with another access key id".into());
        }
        if region != keys.region || service != "bedrock" || terminator != "aws4_request" {
            return Err(format!(
                "scope {region}/{service}/{terminator} is not {}/bedrock",
                keys.region
            ));
        }
        let amz_date = header("x-amz-date").ok_or("no x-amz-date")?;
        if !amz_date.starts_with(date) || amz_date.len() != 16 {
            return Err(format!(
                "x-amz-date {amz_date} does not match the scope date {date}"
            ));
        }
        let payload_hash = sha256_hex(body);
        if header("x-amz-content-sha256") != Some(payload_hash.as_str()) {
            return Err("x-amz-content-sha256 is not the body's hash".into());
        }
        if header("x-amz-security-token") != keys.session_token {
            return Err("x-amz-security-token is not the session token".into());
        }
        let names: Vec<&str> = signed_headers.split(';').collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        if sorted != names {
            return Err("SignedHeaders is not sorted".into());
        }
        for required in ["host", "x-amz-date", "x-amz-content-sha256"] {
            if !names.contains(&required) {
                return Err(format!("{required} is not signed"));
            }
        }
        if keys.session_token.is_some() && !names.contains(&"x-amz-security-token") {
            return Err("x-amz-security-token is not signed".into());
        }
        let mut canonical_headers = String::new();
        for name in &names {
            let value = if *name == "host" {
                Some(authority)
            } else {
                header(name)
            };
            let value = value.ok_or_else(|| format!("signed header {name} was not received"))?;
            canonical_headers.push_str(&format!("{name}:{}\n", value.trim()));
        }
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        if !query.is_empty() {
            return Err("Converse takes no query".into());
        }
        let canonical_request = format!(
            "POST\n{}\n\n{canonical_headers}\n{signed_headers}\n{payload_hash}",
            canonical_uri(path)
        );
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{date}/{region}/{service}/aws4_request\n{}",
            sha256_hex(canonical_request.as_bytes())
        );
        let mut key = hmac(format!("AWS4{}", keys.secret_access_key).as_bytes(), date);
        for part in [region, service, "aws4_request"] {
            key = hmac(&key, part);
        }
        let expected = hex::encode(hmac(&key, &string_to_sign));
        if expected != signature {
            return Err("the SigV4 signature does not match the request received".into());
        }
        Ok(())
    }
}
