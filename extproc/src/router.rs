//! Router leg: the ext_proc filter in the listener's HTTP filter chain, once per request.
//!
//! On the request it validates the body, sets `x-ai-eg-model` and `x-ai-eg-original-path` and
//! clears the route cache so routes match on the model; it answers `/v1/models` itself. Envoy
//! streams the body right behind the headers without waiting for their answer
//! (`send_body_without_waiting_for_header_response`), so the headers' answer is held until the
//! body's last chunk, and then the headers and every chunk are answered at once: one round trip
//! to the extproc instead of two. On the response (already in the client's schema) it reads token usage
//! from the JSON body or the SSE stream as chunks pass, drops the usage chunk the upstream leg
//! asked for on the client's behalf, records metrics, and at the end of a successful response
//! writes costs to `io.envoy.ai_gateway` dynamic metadata.
//!
//! The backend that answered comes from Envoy's response attributes or from the internal
//! response headers the upstream leg set (and this leg removes): no memory is shared between
//! the legs, so any replica can serve either.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::ext_proc::v3::{
    HttpBody, HttpHeaders, ProcessingRequest, ProcessingResponse,
};
use envoy_types::pb::google::protobuf::Struct;

use crate::api::{self, ClientApi, Endpoint, ParsedRequest};
use crate::config::{Backend, ConfigStore, Route, Schema};
use crate::costs::{self, CostInputs};
use crate::envoy::{self, HeaderChanges, Headers};
use crate::metrics::{Labels, Metrics};
use crate::reserve::Reservation;
use crate::sse::SseParser;
use crate::target::Target;
use crate::usage::TokenUsage;
use crate::{Error, Result, keys};

/// Most of a non-streamed response body kept to read its usage; past this it passes through
/// unread (no usage, no costs).
const MAX_RESPONSE_READ: usize = 64 * 1024 * 1024;

/// The first bytes of a gzip stream: an encoded body whose headers were not sent.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

pub struct RouterLeg {
    store: Arc<ConfigStore>,
    metrics: Metrics,
    started: Instant,
    api: ClientApi,
    endpoint: Option<Endpoint>,
    path: String,
    limit: u64,
    body: Vec<u8>,
    request: Option<ParsedRequest>,
    /// This leg added `stream_options.include_usage` for the costs; the usage chunk the
    /// client did not ask for is dropped again on the way back.
    usage_injected: bool,
    /// Estimates the rate limit filter may have reserved for this request.
    reservation: Reservation,
    /// The request headers' answer, held until the body's end (the model is in the body).
    held: Option<HeaderChanges>,
    /// Body chunks received while the headers' answer was held: each is answered after it.
    held_chunks: usize,
    response: Option<ResponseState>,
}

enum Reading {
    /// Not read: an error status, an encoded body, or a body too large.
    Skip,
    Json(Vec<u8>),
    Sse(SseParser),
}

struct ResponseState {
    success: bool,
    /// The response's `:status`.
    status: u16,
    backend: Option<Arc<Backend>>,
    route: Option<Arc<Route>>,
    model_override: Option<String>,
    strip_usage_chunk: bool,
    reading: Reading,
    usage: TokenUsage,
    response_model: Option<String>,
    first_token: Option<Duration>,
    /// The body was read to its end marker (`[DONE]`, `message_stop`) or parsed whole.
    complete: bool,
    finished: bool,
}

impl RouterLeg {
    pub fn new(store: Arc<ConfigStore>, metrics: Metrics) -> RouterLeg {
        RouterLeg {
            store,
            metrics,
            started: Instant::now(),
            api: ClientApi::OpenAI,
            endpoint: None,
            path: String::new(),
            limit: crate::keys::DEFAULT_REQUEST_BODY_LIMIT,
            body: Vec::new(),
            request: None,
            usage_injected: false,
            reservation: Reservation::default(),
            held: None,
            held_chunks: 0,
            response: None,
        }
    }

    /// The answers to one message, in the order Envoy expects them, pushed onto `out`: none while
    /// the request headers' answer is held for the body, several when the body's end releases
    /// it. An error becomes the client's error response (and ends the exchange).
    pub fn handle(&mut self, request: ProcessingRequest, out: &mut VecDeque<ProcessingResponse>) {
        use envoy_types::pb::envoy::service::ext_proc::v3::processing_request::Request;
        let result = match request.request {
            Some(Request::RequestHeaders(headers)) => self
                .request_headers(&headers)
                .map(|answer| out.extend(answer)),
            Some(Request::RequestBody(body)) => self.request_body(body, out),
            Some(Request::RequestTrailers(_)) => {
                out.push_back(envoy::request_trailers());
                Ok(())
            }
            Some(Request::ResponseHeaders(headers)) => {
                out.push_back(self.response_headers(&request.attributes, &headers));
                Ok(())
            }
            Some(Request::ResponseBody(body)) => {
                out.push_back(self.response_body(&request.attributes, body));
                Ok(())
            }
            Some(Request::ResponseTrailers(_)) => {
                let mut response = envoy::response_trailers();
                response.dynamic_metadata = self.finish();
                out.push_back(response);
                Ok(())
            }
            None => {
                out.push_back(ProcessingResponse::default());
                Ok(())
            }
        };
        if let Err(err) = result {
            self.held = None;
            out.push_back(envoy::immediate(err.into_immediate_response(self.api)));
        }
    }

    /// The stream ended (Envoy closed it): a response not finished by now was cut, so it is
    /// recorded without usage or costs.
    pub fn close(&mut self) {
        if let Some(state) = self.response.as_mut()
            && !state.finished
        {
            state.success = false;
            state.complete = false;
            let _ = self.finish();
        }
    }

    /// The headers' answer now, or `None` when it is held for the body.
    fn request_headers(&mut self, message: &HttpHeaders) -> Result<Option<ProcessingResponse>> {
        self.started = Instant::now();
        let headers = Headers::from_map(message.headers.as_ref());
        let method = headers.get(keys::METHOD_PSEUDO_HEADER).unwrap_or("GET");
        self.path = headers
            .get(keys::PATH_PSEUDO_HEADER)
            .unwrap_or("/")
            .to_string();
        let mut changes = HeaderChanges::default();
        for name in keys::INTERNAL_HEADERS {
            if headers.contains(name) {
                changes.remove(name);
            }
        }
        let Some(endpoint) = Endpoint::from_path(&self.path) else {
            // Not an endpoint we know: leave the request alone. Bodies may already be on their
            // way (they are not waited for), so only a request without one turns them off.
            let mut response = envoy::request_headers(envoy::common(changes, None, false));
            if message.end_of_stream {
                response.mode_override = Some(envoy::headers_only_mode());
            }
            return Ok(Some(response));
        };
        self.endpoint = Some(endpoint);
        self.api = endpoint.api();
        let config = self.store.load();
        self.limit = config.request_body_limit;

        if let Endpoint::Models(api) = endpoint {
            if method != "GET" && method != "HEAD" {
                return Err(self.method_not_allowed(method));
            }
            let host = headers
                .get(keys::AUTHORITY_PSEUDO_HEADER)
                .or_else(|| headers.get(keys::HOST_HEADER));
            let models = config.listed_models(host);
            let body = match api {
                ClientApi::OpenAI => api::openai::models_body(&models),
                ClientApi::Anthropic => api::anthropic::models_body(&models),
            };
            return Ok(Some(envoy::immediate(envoy::immediate_response(
                200,
                "application/json",
                body,
            ))));
        }
        if method != "POST" {
            return Err(self.method_not_allowed(method));
        }
        if let Some(content_type) = headers.get(keys::CONTENT_TYPE_HEADER)
            && !is_json(content_type)
        {
            return Err(Error::UnsupportedContentType {
                content_type: content_type.to_string(),
            });
        }
        if let Some(length) = headers
            .get(keys::CONTENT_LENGTH_HEADER)
            .and_then(|l| l.trim().parse::<u64>().ok())
            && length > self.limit
        {
            return Err(Error::BodyTooLarge { limit: self.limit });
        }
        if message.end_of_stream {
            return Err(Error::MissingBody);
        }
        self.held = Some(changes);
        Ok(None)
    }

    fn method_not_allowed(&self, method: &str) -> Error {
        Error::MethodNotAllowed {
            method: method.to_string(),
            path: self.path.clone(),
        }
    }

    /// A request body chunk. While the headers' answer is held, chunks are collected; the last
    /// one releases the headers' answer (model, route cache) and one answer per chunk (the
    /// first carrying a rewritten body, the others emptied). Any other chunk passes unchanged.
    fn request_body(
        &mut self,
        body: HttpBody,
        out: &mut VecDeque<ProcessingResponse>,
    ) -> Result<()> {
        let (Some(endpoint), Some(_)) = (self.endpoint, self.held.as_ref()) else {
            out.push_back(envoy::request_body(None));
            return Ok(());
        };
        self.held_chunks += 1;
        if (self.body.len() + body.body.len()) as u64 > self.limit {
            return Err(Error::BodyTooLarge { limit: self.limit });
        }
        self.body.extend_from_slice(&body.body);
        if !body.end_of_stream {
            return Ok(());
        }
        let bytes = std::mem::take(&mut self.body);
        let parsed = api::parse_request(endpoint, &bytes)?;
        let config = self.store.load();
        self.reservation = Reservation::estimate(&config, endpoint, &parsed, bytes.len());
        let mut changes = self.held.take().unwrap_or_default();
        changes.set(keys::MODEL_HEADER, parsed.model.clone());
        changes.set(keys::ORIGINAL_PATH_HEADER, self.path.clone());
        let mut replacement = None;
        if self.api == ClientApi::OpenAI && parsed.stream && !parsed.include_usage {
            changes.set(keys::STREAM_WITHOUT_USAGE_HEADER, "true");
            // Costs need the usage a stream reports only when asked. Asking here, before
            // routing, serves every backend the same way, including those Envoy reaches
            // without the upstream leg (DESIGN.md §4).
            if endpoint.streams_usage() && !config.costed.for_model(&parsed.model).is_empty() {
                replacement = Some(api::openai::with_usage_requested(&bytes)?);
                self.usage_injected = true;
            }
        }
        let streaming = parsed.stream;
        self.request = Some(parsed);
        // Envoy drops the `content-length` of a streamed body (the upstream request is sent
        // chunked), so a rewritten body needs no new length.
        let mut headers = envoy::request_headers(envoy::common(changes, None, true));
        headers.dynamic_metadata = self.reservation.request_metadata();
        // The answer to a non-streaming request is read as one body message, its status and
        // backend as attributes: one message instead of two.
        headers.mode_override = Some(if streaming {
            envoy::streaming_response_mode()
        } else {
            envoy::body_only_response_mode()
        });
        out.push_back(headers);
        let chunks = std::mem::take(&mut self.held_chunks);
        match replacement {
            None => out.extend((0..chunks).map(|_| envoy::request_body(None))),
            Some(new) => {
                out.push_back(envoy::request_body(envoy::common(
                    HeaderChanges::default(),
                    Some(new),
                    false,
                )));
                out.extend((1..chunks).map(|_| envoy::request_body(envoy::cleared_body())));
            }
        }
        Ok(())
    }

    fn response_headers(
        &mut self,
        attributes: &HashMap<String, Struct>,
        message: &HttpHeaders,
    ) -> ProcessingResponse {
        let headers = Headers::from_map(message.headers.as_ref());
        let mut changes = HeaderChanges::default();
        for name in keys::INTERNAL_HEADERS {
            if headers.contains(name) {
                changes.remove(name);
            }
        }
        if self.request.is_none() {
            // Not ours (body chunks, if any, may already be on their way: each is answered).
            return envoy::response_headers(envoy::common(changes, None, false));
        }
        let status = headers
            .get(keys::STATUS_PSEUDO_HEADER)
            .and_then(|s| s.parse::<u16>().ok())
            .unwrap_or(0);
        let encoded = headers
            .get(keys::CONTENT_ENCODING_HEADER)
            .is_some_and(|e| !e.trim().eq_ignore_ascii_case("identity"));
        let streaming = headers
            .get(keys::CONTENT_TYPE_HEADER)
            .is_some_and(|t| t.trim_start().starts_with("text/event-stream"));
        self.start_response(attributes, &headers, status, encoded, streaming);
        let skip_body = self
            .response
            .as_ref()
            .is_some_and(|r| matches!(r.reading, Reading::Skip));
        let mut response = envoy::response_headers(envoy::common(changes, None, false));
        // No mode override: the body is streamed right behind the headers, so chunks may already
        // be on their way; those of a body we do not read are answered unchanged.
        if skip_body || message.end_of_stream {
            // Errors and unreadable bodies pass through untouched; the response is over for us.
            response.dynamic_metadata = self.finish();
        }
        response
    }

    /// The response begins: what answered (from the attributes, or headers in tests) and how
    /// its body will be read.
    fn start_response(
        &mut self,
        attributes: &HashMap<String, Struct>,
        headers: &Headers,
        status: u16,
        encoded: bool,
        streaming: bool,
    ) {
        let Some(request) = &self.request else {
            return;
        };
        let success = (200..300).contains(&status);
        let config = self.store.load();
        let target = Target::from_attributes(attributes).or_else(|| Target::from_headers(headers));
        let backend = target
            .as_ref()
            .and_then(|t| config.backends.get(&t.backend).cloned());
        // What the upstream leg did, as the config says it would: it answers the response
        // headers only for translated responses, so the override and the usage injection are
        // derived here, the same way, when it did not name them.
        let found = target.as_ref().and_then(|t| {
            config.find_backend_ref(&t.backend, t.route.as_deref(), t.rule, Some(&request.model))
        });
        let route = target
            .as_ref()
            .and_then(|t| t.route.as_ref())
            .and_then(|r| config.routes.get(r).cloned())
            .or_else(|| found.map(|(route, _, _)| route.clone()));
        let model_override = headers
            .get(keys::MODEL_OVERRIDE_HEADER)
            .map(str::to_string)
            .or_else(|| found.and_then(|(_, _, r)| r.model_name_override.clone()));
        let usage_injected = self.usage_injected
            || headers.get(keys::USAGE_INJECTED_HEADER) == Some("true")
            || (found.is_some_and(|(route, _, _)| !route.costs.is_empty())
                && backend.as_ref().is_some_and(|b| {
                    matches!(b.schema, Schema::OpenAI { .. } | Schema::AzureOpenAI { .. })
                }));
        let reading = match (success, encoded, streaming) {
            (true, false, true) => Reading::Sse(SseParser::new()),
            (true, false, false) => Reading::Json(Vec::new()),
            _ => Reading::Skip,
        };
        if success && encoded {
            tracing::debug!(path = %self.path, "encoded response body: usage not read");
        }
        self.response = Some(ResponseState {
            success,
            status,
            model_override,
            strip_usage_chunk: usage_injected && request.stream && !request.include_usage,
            backend,
            route,
            reading,
            usage: TokenUsage::default(),
            response_model: None,
            first_token: None,
            complete: false,
            finished: false,
        });
    }

    fn response_body(
        &mut self,
        attributes: &HashMap<String, Struct>,
        body: HttpBody,
    ) -> ProcessingResponse {
        if self.response.is_none() && self.request.is_some() {
            // A non-streaming request's answer: no headers message, so the status comes as an
            // attribute, and a body that is not JSON shows in its first bytes.
            let status = Target::response_code(attributes).unwrap_or(0);
            let encoded = body.body.starts_with(&GZIP_MAGIC);
            self.start_response(attributes, &Headers::default(), status, encoded, false);
            if self
                .response
                .as_ref()
                .is_some_and(|r| matches!(r.reading, Reading::Skip))
            {
                let mut response = envoy::response_body(None);
                response.dynamic_metadata = self.finish();
                return response;
            }
        }
        let Some(state) = self.response.as_mut() else {
            return envoy::response_body(None);
        };
        if state.finished {
            return envoy::response_body(None);
        }
        let api = self.api;
        let started = self.started;
        let mut replacement = None;
        match &mut state.reading {
            Reading::Skip => {}
            Reading::Json(buf) => {
                if buf.len() + body.body.len() > MAX_RESPONSE_READ {
                    tracing::debug!("response body too large to read usage from");
                    state.reading = Reading::Skip;
                } else {
                    buf.extend_from_slice(&body.body);
                    if body.end_of_stream {
                        if let Some((usage, model)) = api::usage_from_json(api, buf) {
                            state.usage = usage;
                            state.response_model = model;
                            state.complete = true;
                        }
                        buf.clear();
                    }
                }
            }
            Reading::Sse(parser) => {
                let mut events = parser.push(&body.body);
                if body.end_of_stream {
                    events.extend(parser.finish());
                }
                let mut out = Vec::with_capacity(body.body.len());
                for event in events {
                    let facts = event
                        .data
                        .as_deref()
                        .map(|data| api::read_event(api, event.event.as_deref(), data))
                        .unwrap_or_default();
                    if let Some(usage) = facts.usage {
                        state.usage.merge(usage);
                    }
                    if facts.model.is_some() {
                        state.response_model = facts.model;
                    }
                    if facts.output && state.first_token.is_none() {
                        state.first_token = Some(started.elapsed());
                    }
                    state.complete |= facts.done;
                    if !(state.strip_usage_chunk && facts.usage_only) {
                        out.extend_from_slice(&event.raw);
                    }
                }
                if state.strip_usage_chunk {
                    replacement = Some(out);
                }
            }
        }
        let mut response =
            envoy::response_body(envoy::common(HeaderChanges::default(), replacement, false));
        if body.end_of_stream {
            response.dynamic_metadata = self.finish();
        }
        response
    }

    /// Records the response once, and for a complete successful one returns the cost metadata.
    fn finish(&mut self) -> Option<Struct> {
        let state = self.response.as_mut()?;
        if state.finished {
            return None;
        }
        state.finished = true;
        let request = self.request.as_ref()?;
        let backend = state.backend.as_ref()?;
        let endpoint = self.endpoint?;
        let request_model = state
            .model_override
            .clone()
            .unwrap_or_else(|| request.model.clone());
        let response_model = state
            .response_model
            .clone()
            .unwrap_or_else(|| request_model.clone());
        let succeeded = state.success && state.complete;
        let error_type = if !state.success {
            Some(state.status.to_string())
        } else if !state.complete {
            Some("incomplete".to_string())
        } else {
            None
        };
        let usage = if succeeded {
            state.usage
        } else {
            TokenUsage::default()
        };
        self.metrics.record(
            &Labels {
                gen_ai_operation_name: endpoint.operation().to_string(),
                gen_ai_provider_name: backend.schema.provider().to_string(),
                gen_ai_request_model: request_model.clone(),
                gen_ai_response_model: response_model.clone(),
            },
            error_type.as_deref(),
            self.started.elapsed(),
            &usage,
            state.first_token.filter(|_| succeeded && request.stream),
        );
        // Which backend and route answered, for the access log, successful or not.
        let mut fields = vec![
            (
                keys::METADATA_MODEL_NAME_OVERRIDE.to_string(),
                envoy::string_value(request_model.clone()),
            ),
            (
                keys::METADATA_BACKEND_NAME.to_string(),
                envoy::string_value(backend.name.clone()),
            ),
        ];
        if let Some(route) = &state.route {
            fields.push((
                keys::METADATA_ROUTE_NAME.to_string(),
                envoy::string_value(route.name.clone()),
            ));
        }
        if !succeeded {
            // An upstream error is refunded; a response that did not end cleanly keeps its
            // reservation charged (never less than the estimate).
            if !state.success {
                fields.extend(
                    self.reservation
                        .keys()
                        .map(|key| (key.to_string(), envoy::number_value(0.0))),
                );
                fields.extend(self.reservation.settle_fields());
            }
            return Some(envoy::metadata(keys::AI_GATEWAY_METADATA_NAMESPACE, fields));
        }
        fields.push((
            keys::METADATA_RESPONSE_MODEL.to_string(),
            envoy::string_value(response_model),
        ));
        if let Some(route) = &state.route {
            if state.usage.is_reported() {
                let inputs = CostInputs {
                    model: &request_model,
                    backend: &backend.name,
                    route_name: &route.name,
                    usage: &state.usage,
                };
                for (key, value) in costs::evaluate_all(&route.costs, &inputs) {
                    fields.push((key, envoy::number_value(value as f64)));
                }
                // The real costs replace what was reserved.
                fields.extend(self.reservation.settle_fields());
            } else if !route.costs.is_empty() {
                tracing::debug!(route = %route.name, "response reported no usage: no costs");
            }
        }
        Some(envoy::metadata(keys::AI_GATEWAY_METADATA_NAMESPACE, fields))
    }
}

/// `application/json`, with parameters, or any `+json` type.
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types_are_recognised() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(is_json("application/vnd.api+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("multipart/form-data; boundary=x"));
    }
}
