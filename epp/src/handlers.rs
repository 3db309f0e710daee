//! One ext_proc stream (one HTTP request) of the Endpoint Picker Protocol, as a state machine:
//! [`StreamHandler::handle`] takes each message Envoy sends and returns the messages to send
//! back, in order. No I/O, so it is tested message by message.
//!
//! The body mode comes from the stream's first message (`protocol_config`, which Envoy sends
//! since 1.34); without it, [`HandlerConfig::fallback_body_mode`] applies.
//!
//! **BUFFERED** (and BUFFERED_PARTIAL): request headers are answered at once (continue); the
//! single body message is parsed and picked on, and its `BodyResponse` carries the header
//! mutation (`x-gateway-destination-endpoint`), `clear_route_cache` and, on the
//! `ProcessingResponse`, the dynamic metadata `envoy.lb` / `x-gateway-destination-endpoint`.
//!
//! **FULL_DUPLEX_STREAMED**: nothing is answered until the body is complete (`end_of_stream`,
//! or trailers). Then, in order: the request-headers response with the mutation (plus
//! `content-length` of the unchanged body), `clear_route_cache` and the metadata; the body,
//! re-sent as `StreamedBodyResponse` chunks of at most 62 000 bytes, the last with
//! `end_of_stream` (or, with trailers, a trailers response after it). This is the sequence of
//! the Inference Extension's reference picker.
//!
//! **No body** (request headers with `end_of_stream`, e.g. `GET`), and the modes where Envoy
//! shows no complete body before the headers go (NONE, STREAMED): pick without a prompt at the
//! request headers and answer them with the mutation.
//!
//! Responses: headers and trailers are acknowledged; a response body is echoed in
//! FULL_DUPLEX_STREAMED and acknowledged otherwise. The served endpoint
//! (`envoy.lb` / `x-gateway-destination-endpoint-served` in `metadata_context`) is read from
//! whichever message carries it, once.
//!
//! Errors become one immediate response ([`immediate_error`]): 400 bad body, 413 body over
//! the limit, 429 sheddable under saturation, 503 no ready endpoint or empty subset. After it
//! the stream is done.

use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Metadata;
use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::processing_mode::BodySendMode;
use envoy_types::pb::envoy::service::ext_proc::v3::processing_request::Request;
use envoy_types::pb::envoy::service::ext_proc::v3::{ProcessingRequest, ProcessingResponse};

use crate::director::Director;
use crate::scheduling::{Decision, InferenceRequest};
use crate::{Error, envoy, keys, request};

/// How a body is exchanged on a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyMode {
    /// No body is sent.
    None,
    /// Sent in pieces; headers must be answered first (STREAMED).
    Streamed,
    /// Sent whole, after the headers are answered (BUFFERED, BUFFERED_PARTIAL).
    Buffered,
    /// Sent in pieces without waiting; answers stream back (FULL_DUPLEX_STREAMED).
    FullDuplexStreamed,
}

impl BodyMode {
    fn from_envoy(mode: i32) -> BodyMode {
        match BodySendMode::try_from(mode) {
            Ok(BodySendMode::Buffered | BodySendMode::BufferedPartial) => BodyMode::Buffered,
            Ok(BodySendMode::Streamed) => BodyMode::Streamed,
            Ok(BodySendMode::FullDuplexStreamed | BodySendMode::Grpc) => {
                BodyMode::FullDuplexStreamed
            }
            Ok(BodySendMode::None) | Err(_) => BodyMode::None,
        }
    }
}

/// Per-stream settings.
#[derive(Debug, Clone, Copy)]
pub struct HandlerConfig {
    /// Body mode assumed when Envoy sends no `protocol_config` (older Envoys).
    pub fallback_body_mode: BodyMode,
    /// Largest request body accepted (413 above).
    pub max_body_bytes: usize,
}

impl Default for HandlerConfig {
    fn default() -> Self {
        HandlerConfig {
            fallback_body_mode: BodyMode::FullDuplexStreamed,
            max_body_bytes: 32 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for (more of) the request.
    Request,
    /// The pick was sent; the request goes on upstream.
    Picked,
    /// An immediate response was sent; nothing more to do.
    Done,
}

/// The state of one stream.
pub struct StreamHandler {
    director: Arc<Director>,
    config: HandlerConfig,
    request_mode: Option<BodyMode>,
    response_mode: BodyMode,
    objective: Option<String>,
    subset: Option<Vec<String>>,
    body: Vec<u8>,
    phase: Phase,
    decision: Option<Decision>,
    served: Option<String>,
}

impl StreamHandler {
    pub fn new(director: Arc<Director>, config: HandlerConfig) -> Self {
        StreamHandler {
            director,
            config,
            request_mode: None,
            response_mode: config.fallback_body_mode,
            objective: None,
            subset: None,
            body: Vec::new(),
            phase: Phase::Request,
            decision: None,
            served: None,
        }
    }

    /// True once an immediate response ended the exchange.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// The pick of this stream, once made.
    pub fn decision(&self) -> Option<&Decision> {
        self.decision.as_ref()
    }

    /// The endpoint the data plane reported as serving, once reported.
    pub fn served(&self) -> Option<&str> {
        self.served.as_deref()
    }

    fn request_mode(&self) -> BodyMode {
        self.request_mode.unwrap_or(self.config.fallback_body_mode)
    }

    /// Answers one message from Envoy.
    pub fn handle(&mut self, message: ProcessingRequest) -> Vec<ProcessingResponse> {
        if self.request_mode.is_none() {
            match &message.protocol_config {
                Some(pc) => {
                    self.request_mode = Some(BodyMode::from_envoy(pc.request_body_mode));
                    self.response_mode = BodyMode::from_envoy(pc.response_body_mode);
                }
                None => self.request_mode = Some(self.config.fallback_body_mode),
            }
        }
        self.read_metadata(message.metadata_context.as_ref());
        if self.phase == Phase::Done {
            return Vec::new();
        }
        match message.request {
            Some(Request::RequestHeaders(_)) if self.phase != Phase::Request => {
                // Envoy sends headers once; never pick twice for one stream.
                vec![envoy::request_headers(None)]
            }
            Some(Request::RequestHeaders(h)) => {
                self.objective = envoy::header(h.headers.as_ref(), keys::OBJECTIVE_HEADER)
                    .map(|v| v.into_owned());
                let no_body = h.end_of_stream
                    || matches!(self.request_mode(), BodyMode::None | BodyMode::Streamed);
                if no_body {
                    match self.pick(&InferenceRequest::default()) {
                        Ok(route) => vec![with_metadata(
                            envoy::request_headers(Some(route.common)),
                            route.metadata,
                        )],
                        Err(immediate) => immediate,
                    }
                } else if self.request_mode() == BodyMode::Buffered {
                    vec![envoy::request_headers(None)]
                } else {
                    Vec::new()
                }
            }
            Some(Request::RequestBody(b)) => {
                if self.phase != Phase::Request {
                    // Picked at the headers already (STREAMED): let the body through.
                    return match self.request_mode() {
                        BodyMode::FullDuplexStreamed => vec![envoy::request_body(Some(
                            envoy::streamed(b.body, b.end_of_stream),
                        ))],
                        _ => vec![envoy::request_body(None)],
                    };
                }
                if self.body.len().saturating_add(b.body.len()) > self.config.max_body_bytes {
                    return self.fail(Error::BodyTooLarge {
                        limit: self.config.max_body_bytes,
                    });
                }
                self.body.extend_from_slice(&b.body);
                match self.request_mode() {
                    BodyMode::FullDuplexStreamed if !b.end_of_stream => Vec::new(),
                    BodyMode::FullDuplexStreamed => self.pick_on_body(true),
                    // Buffered: the one body message is the whole body.
                    _ => self.pick_on_body(false),
                }
            }
            Some(Request::RequestTrailers(_)) => {
                if self.phase == Phase::Request
                    && self.request_mode() == BodyMode::FullDuplexStreamed
                {
                    let mut out = self.pick_on_body(false);
                    if self.phase == Phase::Picked {
                        out.push(envoy::request_trailers());
                    }
                    out
                } else {
                    vec![envoy::request_trailers()]
                }
            }
            Some(Request::ResponseHeaders(_)) => vec![envoy::response_headers()],
            Some(Request::ResponseBody(b)) => match self.response_mode {
                BodyMode::FullDuplexStreamed => vec![envoy::response_body(Some(envoy::streamed(
                    b.body,
                    b.end_of_stream,
                )))],
                _ => vec![envoy::response_body(None)],
            },
            Some(Request::ResponseTrailers(_)) => vec![envoy::response_trailers()],
            None => Vec::new(),
        }
    }

    /// Parses the complete body and picks. In FULL_DUPLEX_STREAMED the body goes back in
    /// chunks, the last with `end_of_stream` (false when trailers follow).
    fn pick_on_body(&mut self, end_of_stream: bool) -> Vec<ProcessingResponse> {
        let request = match request::parse_body(&self.body) {
            Ok(r) => r,
            Err(error) => return self.fail(error),
        };
        let body = std::mem::take(&mut self.body);
        let route = match self.pick(&request) {
            Ok(route) => route,
            Err(immediate) => return immediate,
        };
        if self.request_mode() == BodyMode::FullDuplexStreamed {
            let mut common = route.common;
            if !body.is_empty() {
                add_content_length(&mut common, body.len());
            }
            let mut out = vec![with_metadata(
                envoy::request_headers(Some(common)),
                route.metadata,
            )];
            out.extend(envoy::streamed_request_body(&body, end_of_stream));
            out
        } else {
            vec![with_metadata(
                envoy::request_body(Some(route.common)),
                route.metadata,
            )]
        }
    }

    /// Picks for `request`: the route to answer with, or the immediate response to send.
    fn pick(&mut self, request: &InferenceRequest) -> Result<Route, Vec<ProcessingResponse>> {
        let picked = self
            .director
            .pick(request, self.objective.as_deref(), self.subset.as_deref());
        match picked {
            Ok(decision) => {
                let value = decision.header_value();
                tracing::debug!(endpoints = %value, model = %request.model, "picked");
                self.decision = Some(decision);
                self.phase = Phase::Picked;
                if let Some(served) = self.served.clone() {
                    self.director.served(self.decision.as_ref(), &served);
                }
                Ok(route(&value))
            }
            Err(error) => Err(self.fail(error)),
        }
    }

    fn fail(&mut self, error: Error) -> Vec<ProcessingResponse> {
        tracing::debug!(%error, "answering with an immediate response");
        self.phase = Phase::Done;
        if !matches!(
            error,
            Error::Shed { .. } | Error::NoReadyEndpoint { .. } | Error::EmptySubset { .. }
        ) {
            // Pick failures are counted by the director; count the rest here.
            self.director
                .metrics()
                .record_reject(error.http_status().unwrap_or(500), error.reason());
        }
        vec![immediate_error(&error)]
    }

    fn read_metadata(&mut self, metadata: Option<&Metadata>) {
        if self.phase == Phase::Request
            && let Some(list) =
                envoy::metadata_value(metadata, keys::SUBSET_HINT_NAMESPACE, keys::SUBSET_HINT)
                    .and_then(envoy::as_string_list)
        {
            self.subset = Some(list);
        }
        if self.served.is_none()
            && let Some(served) = envoy::metadata_value(
                metadata,
                keys::DESTINATION_ENDPOINT_NAMESPACE,
                keys::DESTINATION_ENDPOINT_SERVED,
            )
            .and_then(envoy::as_string)
        {
            self.served = Some(served.to_owned());
            if self.decision.is_some() {
                self.director.served(self.decision.as_ref(), served);
            }
        }
    }
}

/// What routes a request to its pick: header mutation + route-cache clearing, and metadata.
struct Route {
    common: envoy_types::pb::envoy::service::ext_proc::v3::CommonResponse,
    metadata: envoy_types::pb::google::protobuf::Struct,
}

fn route(value: &str) -> Route {
    Route {
        common: envoy::route_to(envoy::set_headers(&[(
            keys::DESTINATION_ENDPOINT,
            value.to_owned(),
        )])),
        metadata: envoy::string_metadata(
            keys::DESTINATION_ENDPOINT_NAMESPACE,
            keys::DESTINATION_ENDPOINT,
            value,
        ),
    }
}

/// FULL_DUPLEX_STREAMED makes Envoy drop `content-length`; the body is re-sent unchanged, so
/// restore its length (as the reference picker does) and upstreams need not chunk.
fn add_content_length(
    common: &mut envoy_types::pb::envoy::service::ext_proc::v3::CommonResponse,
    len: usize,
) {
    if let Some(mutation) = common.header_mutation.as_mut() {
        let extra = envoy::set_headers(&[(keys::CONTENT_LENGTH_HEADER, len.to_string())]);
        mutation.set_headers.extend(extra.set_headers);
    }
}

fn with_metadata(
    mut response: ProcessingResponse,
    metadata: envoy_types::pb::google::protobuf::Struct,
) -> ProcessingResponse {
    response.dynamic_metadata = Some(metadata);
    response
}

/// The one place a request error becomes what the client sees: the status from
/// [`Error::http_status`] and an OpenAI-style error body.
pub fn immediate_error(error: &Error) -> ProcessingResponse {
    let status = error.http_status().unwrap_or(500);
    let error_type = match status {
        400 | 413 => "invalid_request_error",
        429 => "rate_limit_error",
        503 => "service_unavailable",
        _ => "internal_error",
    };
    let body = serde_json::json!({
        "error": {
            "message": error.to_string(),
            "type": error_type,
            "param": null,
            "code": error.reason(),
        }
    });
    envoy::immediate(status, "application/json", body.to_string().into_bytes())
}
