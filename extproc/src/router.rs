//! Router leg: the ext_proc filter in the listener's HTTP filter chain, once per request.
//!
//! On the request it validates the body (buffered by Envoy), sets `x-ai-eg-model` and
//! `x-ai-eg-original-path` and clears the route cache so routes match on the model; it answers
//! `/v1/models` itself. On the response (already in the client's schema) it reads token usage
//! from the JSON body or the SSE stream as chunks pass, drops the usage chunk the upstream leg
//! asked for on the client's behalf, records metrics, and at the end of a successful response
//! writes costs to `io.envoy.ai_gateway` dynamic metadata.
//!
//! The backend that answered comes from Envoy's response attributes or from the internal
//! response headers the upstream leg set (and this leg removes): no memory is shared between
//! the legs, so any replica can serve either.

use std::collections::HashMap;
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

/// A JSON response up to this `content-length` comes in one buffered message; well under
/// Envoy's default stream buffer (1 MiB), so buffering never hits the limit.
const BUFFERED_RESPONSE_MAX: u64 = 256 * 1024;

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
    /// Envoy sends the request body in one message (its first message said so): a body
    /// message without `end_of_stream` is then whole, with trailers to follow.
    whole_bodies: bool,
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
            whole_bodies: false,
            response: None,
        }
    }

    /// The answer to one message; errors become the client's error response.
    pub fn handle(&mut self, request: ProcessingRequest) -> ProcessingResponse {
        use envoy_types::pb::envoy::service::ext_proc::v3::processing_request::Request;
        if let Some(config) = &request.protocol_config {
            self.whole_bodies = envoy::sends_whole_request_body(config);
        }
        let result = match request.request {
            Some(Request::RequestHeaders(headers)) => self.request_headers(&headers),
            Some(Request::RequestBody(body)) => self.request_body(body),
            Some(Request::RequestTrailers(_)) => Ok(envoy::request_trailers()),
            Some(Request::ResponseHeaders(headers)) => {
                Ok(self.response_headers(&request.attributes, &headers))
            }
            Some(Request::ResponseBody(body)) => Ok(self.response_body(body)),
            Some(Request::ResponseTrailers(_)) => {
                let mut response = envoy::response_trailers();
                response.dynamic_metadata = self.finish();
                Ok(response)
            }
            None => Ok(ProcessingResponse::default()),
        };
        result.unwrap_or_else(|err| envoy::immediate(err.into_immediate_response(self.api)))
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

    fn request_headers(&mut self, message: &HttpHeaders) -> Result<ProcessingResponse> {
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
            // Not an endpoint we know: leave the request alone.
            let mut response = envoy::request_headers(envoy::common(changes, None, false));
            response.mode_override = Some(envoy::headers_only_mode());
            return Ok(response);
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
            return Ok(envoy::immediate(envoy::immediate_response(
                200,
                "application/json",
                body,
            )));
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
        Ok(envoy::request_headers(envoy::common(changes, None, false)))
    }

    fn method_not_allowed(&self, method: &str) -> Error {
        Error::MethodNotAllowed {
            method: method.to_string(),
            path: self.path.clone(),
        }
    }

    fn request_body(&mut self, body: HttpBody) -> Result<ProcessingResponse> {
        let Some(endpoint) = self.endpoint else {
            return Ok(envoy::request_body(None));
        };
        if self.request.is_some() {
            return Ok(envoy::request_body(None));
        }
        if (self.body.len() + body.body.len()) as u64 > self.limit {
            return Err(Error::BodyTooLarge { limit: self.limit });
        }
        self.body.extend_from_slice(&body.body);
        if !body.end_of_stream && !self.whole_bodies {
            // A chunk of a body Envoy streams (not the filter's mode): wait for the rest.
            return Ok(envoy::request_body(None));
        }
        let bytes = std::mem::take(&mut self.body);
        let parsed = api::parse_request(endpoint, &bytes)?;
        let config = self.store.load();
        self.reservation = Reservation::estimate(&config, endpoint, &parsed, bytes.len());
        let mut changes = HeaderChanges::default();
        changes.set(keys::MODEL_HEADER, parsed.model.clone());
        changes.set(keys::ORIGINAL_PATH_HEADER, self.path.clone());
        let mut body = None;
        if self.api == ClientApi::OpenAI && parsed.stream && !parsed.include_usage {
            changes.set(keys::STREAM_WITHOUT_USAGE_HEADER, "true");
            // Costs need the usage a stream reports only when asked. Asking here, before
            // routing, serves every backend the same way, including those Envoy reaches
            // without the upstream leg (DESIGN.md §4).
            if endpoint.streams_usage() && !config.costed.for_model(&parsed.model).is_empty() {
                let injected = api::openai::with_usage_requested(&bytes)?;
                changes.set(keys::CONTENT_LENGTH_HEADER, injected.len().to_string());
                body = Some(injected);
                self.usage_injected = true;
            }
        }
        self.request = Some(parsed);
        let mut response = envoy::request_body(envoy::common(changes, body, true));
        response.dynamic_metadata = self.reservation.request_metadata();
        Ok(response)
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
        let Some(request) = &self.request else {
            let mut response = envoy::response_headers(envoy::common(changes, None, false));
            response.mode_override = Some(envoy::headers_only_mode());
            return response;
        };
        let status = headers
            .get(keys::STATUS_PSEUDO_HEADER)
            .and_then(|s| s.parse::<u16>().ok())
            .unwrap_or(0);
        let success = (200..300).contains(&status);
        let config = self.store.load();
        let target = Target::from_attributes(attributes).or_else(|| Target::from_headers(&headers));
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
        let encoded = headers
            .get(keys::CONTENT_ENCODING_HEADER)
            .is_some_and(|e| !e.trim().eq_ignore_ascii_case("identity"));
        let streaming = headers
            .get(keys::CONTENT_TYPE_HEADER)
            .is_some_and(|t| t.trim_start().starts_with("text/event-stream"));
        let reading = match (success, encoded, streaming) {
            (true, false, true) => Reading::Sse(SseParser::new()),
            (true, false, false) => Reading::Json(Vec::new()),
            _ => Reading::Skip,
        };
        if success && encoded {
            tracing::debug!(path = %self.path, "encoded response body: usage not read");
        }
        let state = ResponseState {
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
        };
        let skip_body = matches!(state.reading, Reading::Skip);
        let small_json = matches!(state.reading, Reading::Json(_))
            && headers
                .get(keys::CONTENT_LENGTH_HEADER)
                .and_then(|l| l.trim().parse::<u64>().ok())
                .is_some_and(|l| l <= BUFFERED_RESPONSE_MAX);
        self.response = Some(state);
        let mut response = envoy::response_headers(envoy::common(changes, None, false));
        if small_json && !message.end_of_stream {
            response.mode_override = Some(envoy::buffered_response_mode());
        }
        if skip_body {
            // Errors and unreadable bodies pass through untouched; the response is over for us.
            response.mode_override = Some(envoy::headers_only_mode());
            response.dynamic_metadata = self.finish();
        } else if message.end_of_stream {
            response.dynamic_metadata = self.finish();
        }
        response
    }

    fn response_body(&mut self, body: HttpBody) -> ProcessingResponse {
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
