//! Small builders and readers for ext_proc messages, so the legs read as what they decide
//! rather than as nested protobuf literals.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue, HeaderValueOption};
use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::ProcessingMode;
use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::processing_mode::{
    BodySendMode, HeaderSendMode,
};
use envoy_types::pb::envoy::service::ext_proc::v3::{
    BodyMutation, BodyResponse, CommonResponse, HeaderMutation, HeadersResponse, ImmediateResponse,
    ProcessingResponse, ProtocolConfiguration, TrailersResponse, body_mutation,
    processing_response,
};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::google::protobuf::{Struct, Value, value};

/// Request or response headers as Envoy sent them: lower-case names, values from `raw_value`
/// (or `value` when Envoy is configured to send that instead).
#[derive(Debug, Clone, Default)]
pub struct Headers {
    entries: Vec<(String, String)>,
}

impl Headers {
    pub fn from_map(map: Option<&HeaderMap>) -> Headers {
        let entries = map
            .map(|m| {
                m.headers
                    .iter()
                    .map(|h| {
                        let value = if h.raw_value.is_empty() {
                            h.value.clone()
                        } else {
                            String::from_utf8_lossy(&h.raw_value).into_owned()
                        };
                        (h.key.to_ascii_lowercase(), value)
                    })
                    .collect()
            })
            .unwrap_or_default();
        Headers { entries }
    }

    /// First value of `name` (lower-case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// Collects header changes for one ext_proc response.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeaderChanges {
    set: Vec<(String, String)>,
    remove: Vec<String>,
}

impl HeaderChanges {
    /// Sets `name`, replacing any value (and any earlier `set` or `remove` of it here).
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let name = name.to_ascii_lowercase();
        self.remove.retain(|r| *r != name);
        self.set.retain(|(k, _)| *k != name);
        self.set.push((name, value.into()));
    }

    /// Removes `name`, dropping any earlier `set` of it here.
    pub fn remove(&mut self, name: &str) {
        let name = name.to_ascii_lowercase();
        self.set.retain(|(k, _)| *k != name);
        if !self.remove.contains(&name) {
            self.remove.push(name);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty()
    }

    /// Applies `later`'s removals and sets after ours.
    pub fn extend(&mut self, later: HeaderChanges) {
        for name in later.remove {
            self.remove(&name);
        }
        for (name, value) in later.set {
            self.set(&name, value);
        }
    }

    pub fn into_mutation(self) -> Option<HeaderMutation> {
        if self.is_empty() {
            return None;
        }
        Some(HeaderMutation {
            set_headers: self
                .set
                .into_iter()
                .map(|(key, value)| header_option(&key, &value))
                .collect(),
            remove_headers: self.remove,
        })
    }
}

fn header_option(key: &str, value: &str) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.to_string(),
            raw_value: value.as_bytes().to_vec(),
            ..HeaderValue::default()
        }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..HeaderValueOption::default()
    }
}

/// `CommonResponse` with header changes, optional new body and route-cache clearing.
pub fn common(
    headers: HeaderChanges,
    body: Option<Vec<u8>>,
    clear_route_cache: bool,
) -> Option<CommonResponse> {
    let header_mutation = headers.into_mutation();
    if header_mutation.is_none() && body.is_none() && !clear_route_cache {
        return None;
    }
    Some(CommonResponse {
        header_mutation,
        body_mutation: body.map(|b| BodyMutation {
            mutation: Some(body_mutation::Mutation::Body(b)),
        }),
        clear_route_cache,
        ..CommonResponse::default()
    })
}

/// Whether Envoy's filter sends the request body as one message (BUFFERED), as the first
/// message's `protocol_config` says: such a body message is the whole body even without
/// `end_of_stream`, which Envoy leaves off when trailers follow the body.
pub fn sends_whole_request_body(config: &ProtocolConfiguration) -> bool {
    config.request_body_mode == BodySendMode::Buffered as i32
}

pub fn request_headers(response: Option<CommonResponse>) -> ProcessingResponse {
    wrap(processing_response::Response::RequestHeaders(
        HeadersResponse { response },
    ))
}

pub fn request_body(response: Option<CommonResponse>) -> ProcessingResponse {
    wrap(processing_response::Response::RequestBody(BodyResponse {
        response,
    }))
}

pub fn response_headers(response: Option<CommonResponse>) -> ProcessingResponse {
    wrap(processing_response::Response::ResponseHeaders(
        HeadersResponse { response },
    ))
}

pub fn response_body(response: Option<CommonResponse>) -> ProcessingResponse {
    wrap(processing_response::Response::ResponseBody(BodyResponse {
        response,
    }))
}

pub fn request_trailers() -> ProcessingResponse {
    wrap(processing_response::Response::RequestTrailers(
        TrailersResponse::default(),
    ))
}

pub fn response_trailers() -> ProcessingResponse {
    wrap(processing_response::Response::ResponseTrailers(
        TrailersResponse::default(),
    ))
}

pub fn immediate(response: ImmediateResponse) -> ProcessingResponse {
    wrap(processing_response::Response::ImmediateResponse(response))
}

fn wrap(response: processing_response::Response) -> ProcessingResponse {
    ProcessingResponse {
        response: Some(response),
        ..ProcessingResponse::default()
    }
}

/// A local reply with a body of `content_type`.
pub fn immediate_response(status: u16, content_type: &str, body: Vec<u8>) -> ImmediateResponse {
    let mut headers = HeaderChanges::default();
    headers.set(crate::keys::CONTENT_TYPE_HEADER, content_type);
    ImmediateResponse {
        status: Some(HttpStatus {
            code: i32::from(status),
        }),
        headers: headers.into_mutation(),
        body,
        ..ImmediateResponse::default()
    }
}

/// Mode override asking Envoy to send no more bodies on this stream (headers still go).
pub fn headers_only_mode() -> ProcessingMode {
    ProcessingMode {
        request_header_mode: HeaderSendMode::Send as i32,
        response_header_mode: HeaderSendMode::Send as i32,
        request_body_mode: BodySendMode::None as i32,
        response_body_mode: BodySendMode::None as i32,
        request_trailer_mode: HeaderSendMode::Skip as i32,
        response_trailer_mode: HeaderSendMode::Skip as i32,
    }
}

/// The router leg's mode for a small JSON response of known length: the whole body in one
/// message (streamed, Envoy sends one message per chunk it reads from the upstream, and an
/// empty end-of-stream one when the end comes apart from the data).
pub fn buffered_response_mode() -> ProcessingMode {
    ProcessingMode {
        request_body_mode: BodySendMode::Buffered as i32,
        response_body_mode: BodySendMode::Buffered as i32,
        ..headers_only_mode()
    }
}

/// The upstream leg's mode for a request it is done with at its headers: nothing more, not
/// even the response headers (the router leg learns the backend from Envoy's attributes and
/// derives what else it needs from the config).
pub fn upstream_done_mode() -> ProcessingMode {
    ProcessingMode {
        response_header_mode: HeaderSendMode::Skip as i32,
        ..headers_only_mode()
    }
}

/// Mode override of a translated request on the upstream leg: the buffered request body, and
/// the response body as it streams (translated chunk by chunk).
pub fn translating_mode() -> ProcessingMode {
    ProcessingMode {
        request_header_mode: HeaderSendMode::Send as i32,
        response_header_mode: HeaderSendMode::Send as i32,
        request_body_mode: BodySendMode::Buffered as i32,
        response_body_mode: BodySendMode::Streamed as i32,
        request_trailer_mode: HeaderSendMode::Skip as i32,
        response_trailer_mode: HeaderSendMode::Skip as i32,
    }
}

/// `{namespace: {key: value…}}` as dynamic metadata.
pub fn metadata(namespace: &str, fields: Vec<(String, Value)>) -> Struct {
    let inner = Struct {
        fields: fields.into_iter().collect::<HashMap<_, _>>(),
    };
    Struct {
        fields: HashMap::from([(
            namespace.to_string(),
            Value {
                kind: Some(value::Kind::StructValue(inner)),
            },
        )]),
    }
}

pub fn string_value(s: impl Into<String>) -> Value {
    Value {
        kind: Some(value::Kind::StringValue(s.into())),
    }
}

pub fn number_value(n: f64) -> Value {
    Value {
        kind: Some(value::Kind::NumberValue(n)),
    }
}

/// The string at `key` of a protobuf `Struct`, if it is a string (numbers are formatted).
pub fn struct_string(s: &Struct, key: &str) -> Option<String> {
    match s.fields.get(key)?.kind.as_ref()? {
        value::Kind::StringValue(v) => Some(v.clone()),
        value::Kind::NumberValue(n) => Some(format!("{n}")),
        _ => None,
    }
}

/// The struct at `key` of a protobuf `Struct`.
pub fn struct_struct<'a>(s: &'a Struct, key: &str) -> Option<&'a Struct> {
    match s.fields.get(key)?.kind.as_ref()? {
        value::Kind::StructValue(v) => Some(v),
        _ => None,
    }
}
