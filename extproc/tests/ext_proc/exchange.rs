//! One client request through both legs and a scripted upstream, as Envoy would run it, and
//! what each side saw: the golden record of a case.

use serde::Deserialize;
use serde_json::{Value, json};

use super::harness::{
    Harness, Headers, apply_body, apply_headers, common, get, golden_config, host_attributes,
    immediate, immediate_json, metadata_json, request_body, request_headers, response_body,
    response_headers, skips_body,
};

/// `testdata/in/<case>.json`.
#[derive(Debug, Deserialize)]
pub struct Case {
    pub request: ClientRequest,
    #[serde(default)]
    pub upstream: Option<UpstreamResponse>,
}

#[derive(Debug, Deserialize)]
pub struct ClientRequest {
    pub method: String,
    pub path: String,
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// JSON body (sent compact), or `body_text` for anything else.
    #[serde(default)]
    pub body: Option<Value>,
    #[serde(default)]
    pub body_text: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct UpstreamResponse {
    pub status: u16,
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// The body as the upstream sends it, chunk by chunk.
    #[serde(default)]
    pub chunks: Vec<String>,
    /// Or an AWS event stream (Bedrock's ConverseStream): these frames, encoded, then cut
    /// every `split_every` bytes, so frames and their preludes straddle chunks.
    #[serde(default)]
    pub eventstream: Vec<EventFrame>,
    #[serde(default)]
    pub split_every: Option<usize>,
    /// The body is sent gzip-encoded (then cut every `split_every` bytes).
    #[serde(default)]
    pub gzip: bool,
}

/// One event-stream frame: an `event` of that type, or an `exception`.
#[derive(Debug, Deserialize)]
pub struct EventFrame {
    #[serde(default)]
    pub event: Option<String>,
    #[serde(default)]
    pub exception: Option<String>,
    pub payload: Value,
}

impl UpstreamResponse {
    fn body_chunks(&self) -> Vec<Vec<u8>> {
        use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
        if self.gzip {
            use std::io::Write;
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder
                .write_all(self.chunks.concat().as_bytes())
                .expect("gzip");
            let bytes = encoder.finish().expect("gzip");
            return bytes
                .chunks(self.split_every.unwrap_or(bytes.len()).max(1))
                .map(<[u8]>::to_vec)
                .collect();
        }
        if self.eventstream.is_empty() {
            return self.chunks.iter().map(|c| c.clone().into_bytes()).collect();
        }
        let mut bytes = Vec::new();
        for frame in &self.eventstream {
            let string = |s: &str| HeaderValue::String(s.to_string().into());
            let message = Message::new(frame.payload.to_string().into_bytes());
            let message = match (&frame.event, &frame.exception) {
                (Some(event), _) => message
                    .add_header(Header::new(":message-type", string("event")))
                    .add_header(Header::new(":event-type", string(event))),
                (None, Some(exception)) => message
                    .add_header(Header::new(":message-type", string("exception")))
                    .add_header(Header::new(":exception-type", string(exception))),
                (None, None) => panic!("an eventstream frame needs an event or an exception"),
            }
            .add_header(Header::new(":content-type", string("application/json")));
            aws_smithy_eventstream::frame::write_message_to(&message, &mut bytes)
                .expect("encode frame");
        }
        bytes
            .chunks(self.split_every.unwrap_or(bytes.len()).max(1))
            .map(<[u8]>::to_vec)
            .collect()
    }
}

/// Which backend Envoy's routes pick for a model: the first backendRef of the first rule
/// listing it (what the xds-server's routes do for a single backend).
fn route_for(model: &str) -> Option<(String, String, usize)> {
    let config = golden_config();
    config.routes.iter().find_map(|route| {
        route.rules.iter().enumerate().find_map(|(i, rule)| {
            rule.models
                .iter()
                .any(|m| m == model)
                .then(|| rule.backend_refs.first())
                .flatten()
                .map(|b| (b.name.clone(), route.name.clone(), i))
        })
    })
}

fn headers_json(headers: &Headers) -> Value {
    let mut sorted = headers.clone();
    sorted.sort();
    Value::Object(sorted.into_iter().map(|(k, v)| (k, json!(v))).collect())
}

/// Whether the upstream leg gets response bodies after `answer`: its mode override says, or
/// else it stays as it was.
fn reads_response_body(
    answer: &envoy_types::pb::envoy::service::ext_proc::v3::ProcessingResponse,
    before: bool,
) -> bool {
    use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::processing_mode::BodySendMode;
    answer.mode_override.as_ref().map_or(before, |m| {
        m.response_body_mode != BodySendMode::None as i32
    })
}

/// Whether the upstream leg gets the response headers after `answer`.
fn reads_response_headers(
    answer: &envoy_types::pb::envoy::service::ext_proc::v3::ProcessingResponse,
    before: bool,
) -> bool {
    use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::processing_mode::HeaderSendMode;
    answer.mode_override.as_ref().map_or(before, |m| {
        m.response_header_mode != HeaderSendMode::Skip as i32
    })
}

/// Runs a case and returns its record.
pub async fn run(harness: &Harness, case: &Case) -> Value {
    let mut record = serde_json::Map::new();
    let request = &case.request;
    let mut headers: Headers = vec![
        (":method".into(), request.method.clone()),
        (":path".into(), request.path.clone()),
    ];
    if !request.headers.iter().any(|(k, _)| k == ":authority") {
        headers.push((":authority".into(), "gateway.example.com".into()));
    }
    headers.extend(request.headers.iter().cloned());
    let mut body = match (&request.body, &request.body_text) {
        (Some(v), _) => serde_json::to_vec(v).expect("body"),
        (None, Some(t)) => t.clone().into_bytes(),
        (None, None) => Vec::new(),
    };

    // Router leg, request path.
    let mut router = harness.open("router").await;
    let answer = router
        .send(request_headers(&headers, body.is_empty()))
        .await;
    if let Some(i) = immediate(&answer) {
        record.insert("client_response".into(), immediate_json(i));
        return Value::Object(record);
    }
    apply_headers(&mut headers, &answer);
    if !body.is_empty() && !skips_body(&answer, true) {
        let answer = router.send(request_body(&body, true)).await;
        if let Some(i) = immediate(&answer) {
            record.insert("client_response".into(), immediate_json(i));
            return Value::Object(record);
        }
        apply_headers(&mut headers, &answer);
        body = apply_body(&body, &answer);
        record.insert(
            "route_cache_cleared".into(),
            json!(common(&answer).is_some_and(|c| c.clear_route_cache)),
        );
    }

    // Envoy's routes.
    let model = get(&headers, "x-ai-eg-model")
        .unwrap_or_default()
        .to_string();
    let Some((backend, route, rule)) = route_for(&model) else {
        record.insert(
            "client_response".into(),
            json!({"status": 404, "note": "no route"}),
        );
        return Value::Object(record);
    };
    record.insert(
        "routed_to".into(),
        json!({"backend": backend, "route": route, "rule": rule}),
    );

    // Upstream leg, request path.
    let mut upstream = harness.open("upstream").await;
    let mut message = request_headers(&headers, body.is_empty());
    message.attributes = host_attributes(&backend, &route, rule);
    let answer = upstream.send(message).await;
    if let Some(i) = immediate(&answer) {
        record.insert("client_response".into(), immediate_json(i));
        return Value::Object(record);
    }
    // The upstream leg's filter config sends neither response headers nor body; a mode
    // override may ask for them.
    let mut upstream_response_body = reads_response_body(&answer, false);
    let upstream_response_headers = reads_response_headers(&answer, false);
    apply_headers(&mut headers, &answer);
    let body_sent = !body.is_empty() && !skips_body(&answer, true);
    if body_sent {
        let answer = upstream.send(request_body(&body, true)).await;
        if let Some(i) = immediate(&answer) {
            record.insert("client_response".into(), immediate_json(i));
            return Value::Object(record);
        }
        apply_headers(&mut headers, &answer);
        body = apply_body(&body, &answer);
    }
    record.insert("upstream_leg_read_body".into(), json!(body_sent));
    // What a provider's signature check needs exactly as sent (not part of the golden file).
    record.insert(
        "_raw".into(),
        json!({
            "authority": get(&headers, ":authority"),
            "body": String::from_utf8_lossy(&body),
        }),
    );
    let method = get(&headers, ":method").unwrap_or_default().to_string();
    let path = get(&headers, ":path").unwrap_or_default().to_string();
    headers.retain(|(k, _)| !k.starts_with(':'));
    record.insert(
        "upstream_request".into(),
        json!({
            "method": method,
            "path": path,
            "headers": headers_json(&headers),
            "body": super::harness::body_json(&body),
        }),
    );

    // The upstream answers; response path through the upstream leg, then the router leg.
    let Some(reply) = &case.upstream else {
        return Value::Object(record);
    };
    let mut response: Headers = vec![(":status".into(), reply.status.to_string())];
    response.extend(reply.headers.iter().cloned());
    let mut chunks = reply.body_chunks();
    let no_body = chunks.is_empty();
    if upstream_response_headers {
        let answer = upstream.send(response_headers(&response, no_body)).await;
        apply_headers(&mut response, &answer);
        upstream_response_body = reads_response_body(&answer, upstream_response_body);
    } else {
        upstream_response_body = false;
    }
    let upstream_reads_response = upstream_response_body && !no_body;
    record.insert(
        "upstream_leg_read_response".into(),
        json!(upstream_reads_response),
    );
    if upstream_reads_response {
        let last = chunks.len().saturating_sub(1);
        for (i, chunk) in chunks.iter_mut().enumerate() {
            let answer = upstream.send(response_body(chunk, i == last)).await;
            *chunk = apply_body(chunk, &answer);
        }
    }
    upstream.close().await;

    // Envoy gives the router leg the chosen host's metadata with the response headers.
    let mut message = response_headers(&response, no_body);
    message.attributes = host_attributes(&backend, &route, rule);
    let answer = router.send(message).await;
    apply_headers(&mut response, &answer);
    let mut metadata = metadata_json(&answer);
    let mut client_chunks = Vec::new();
    if skips_body(&answer, false) {
        client_chunks = chunks;
    } else {
        let last = chunks.len().saturating_sub(1);
        for (i, chunk) in chunks.iter().enumerate() {
            let answer = router.send(response_body(chunk, i == last)).await;
            client_chunks.push(apply_body(chunk, &answer));
            if answer.dynamic_metadata.is_some() {
                metadata = metadata_json(&answer);
            }
        }
    }
    router.close().await;

    let status: u16 = get(&response, ":status")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    response.retain(|(k, _)| !k.starts_with(':'));
    let body: Vec<u8> = client_chunks.concat();
    let streamed =
        get(&response, "content-type").is_some_and(|t| t.starts_with("text/event-stream"));
    let shown_body = if streamed {
        json!(
            String::from_utf8_lossy(&body)
                .split_inclusive('\n')
                .collect::<Vec<_>>()
        )
    } else {
        super::harness::body_json(&body)
    };
    record.insert(
        "client_response".into(),
        json!({
            "status": status,
            "headers": headers_json(&response),
            "body": shown_body,
        }),
    );
    record.insert("dynamic_metadata".into(), metadata);
    Value::Object(record)
}
