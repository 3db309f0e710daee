//! Small builders and readers for ext_proc messages, so the handler reads as what it decides
//! rather than as nested protobuf literals.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::{
    HeaderMap, HeaderValue, HeaderValueOption, Metadata,
};
use envoy_types::pb::envoy::service::ext_proc::v3::{
    BodyMutation, BodyResponse, CommonResponse, HeaderMutation, HeadersResponse, ImmediateResponse,
    ProcessingResponse, StreamedBodyResponse, TrailersResponse, body_mutation, processing_response,
};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::google::protobuf::{Struct, Value, value};

/// Largest body chunk sent back in streamed mode (Envoy's limit is 64 KiB; keep a margin, as
/// the Inference Extension does).
pub const STREAMED_CHUNK_BYTES: usize = 62_000;

/// The first value of header `name` (lower-case) in `map`, from `raw_value` or `value`.
pub fn header<'a>(map: Option<&'a HeaderMap>, name: &str) -> Option<std::borrow::Cow<'a, str>> {
    let h = map?
        .headers
        .iter()
        .find(|h| h.key.eq_ignore_ascii_case(name))?;
    Some(if h.raw_value.is_empty() {
        std::borrow::Cow::Borrowed(h.value.as_str())
    } else {
        String::from_utf8_lossy(&h.raw_value)
    })
}

/// Header mutation setting (overwriting) each `(name, value)`.
pub fn set_headers(headers: &[(&str, String)]) -> HeaderMutation {
    HeaderMutation {
        set_headers: headers
            .iter()
            .map(|(key, value)| HeaderValueOption {
                header: Some(HeaderValue {
                    key: (*key).to_owned(),
                    raw_value: value.as_bytes().to_vec(),
                    ..HeaderValue::default()
                }),
                append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
                ..HeaderValueOption::default()
            })
            .collect(),
        remove_headers: Vec::new(),
    }
}

/// A common response with a header mutation and route-cache clearing.
pub fn route_to(headers: HeaderMutation) -> CommonResponse {
    CommonResponse {
        header_mutation: Some(headers),
        clear_route_cache: true,
        ..CommonResponse::default()
    }
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

pub fn request_trailers() -> ProcessingResponse {
    wrap(processing_response::Response::RequestTrailers(
        TrailersResponse::default(),
    ))
}

pub fn response_headers() -> ProcessingResponse {
    wrap(processing_response::Response::ResponseHeaders(
        HeadersResponse::default(),
    ))
}

pub fn response_body(response: Option<CommonResponse>) -> ProcessingResponse {
    wrap(processing_response::Response::ResponseBody(BodyResponse {
        response,
    }))
}

pub fn response_trailers() -> ProcessingResponse {
    wrap(processing_response::Response::ResponseTrailers(
        TrailersResponse::default(),
    ))
}

/// A streamed body chunk (FULL_DUPLEX_STREAMED) as a common response.
pub fn streamed(body: Vec<u8>, end_of_stream: bool) -> CommonResponse {
    CommonResponse {
        body_mutation: Some(BodyMutation {
            mutation: Some(body_mutation::Mutation::StreamedResponse(
                StreamedBodyResponse {
                    body,
                    end_of_stream,
                    ..StreamedBodyResponse::default()
                },
            )),
        }),
        ..CommonResponse::default()
    }
}

/// `body` cut into streamed request-body responses of at most [`STREAMED_CHUNK_BYTES`]; the last
/// one carries `end_of_stream` (an empty body gives one empty chunk).
pub fn streamed_request_body(body: &[u8], end_of_stream: bool) -> Vec<ProcessingResponse> {
    if body.is_empty() {
        return vec![request_body(Some(streamed(Vec::new(), end_of_stream)))];
    }
    let chunks: Vec<&[u8]> = body.chunks(STREAMED_CHUNK_BYTES).collect();
    let last = chunks.len() - 1;
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, chunk)| request_body(Some(streamed(chunk.to_vec(), end_of_stream && i == last))))
        .collect()
}

pub fn immediate(status: u16, content_type: &str, body: Vec<u8>) -> ProcessingResponse {
    wrap(processing_response::Response::ImmediateResponse(
        ImmediateResponse {
            status: Some(HttpStatus {
                code: i32::from(status),
            }),
            headers: Some(set_headers(&[(
                crate::keys::CONTENT_TYPE_HEADER,
                content_type.to_owned(),
            )])),
            body,
            ..ImmediateResponse::default()
        },
    ))
}

fn wrap(response: processing_response::Response) -> ProcessingResponse {
    ProcessingResponse {
        response: Some(response),
        ..ProcessingResponse::default()
    }
}

/// `{namespace: {key: "value"}}` as dynamic metadata.
pub fn string_metadata(namespace: &str, key: &str, value: &str) -> Struct {
    let inner = Struct {
        fields: HashMap::from([(key.to_owned(), string_value(value))]),
    };
    Struct {
        fields: HashMap::from([(
            namespace.to_owned(),
            Value {
                kind: Some(value::Kind::StructValue(inner)),
            },
        )]),
    }
}

pub fn string_value(s: &str) -> Value {
    Value {
        kind: Some(value::Kind::StringValue(s.to_owned())),
    }
}

/// The value at `namespace` / `key` of request metadata.
pub fn metadata_value<'a>(
    metadata: Option<&'a Metadata>,
    namespace: &str,
    key: &str,
) -> Option<&'a Value> {
    metadata?.filter_metadata.get(namespace)?.fields.get(key)
}

/// A metadata value read as a string (`None` unless it is one).
pub fn as_string(value: &Value) -> Option<&str> {
    match value.kind.as_ref()? {
        value::Kind::StringValue(s) => Some(s),
        _ => None,
    }
}

/// A metadata value read as a list of strings: a list (non-strings skipped) or a
/// comma-separated string.
pub fn as_string_list(value: &Value) -> Option<Vec<String>> {
    match value.kind.as_ref()? {
        value::Kind::ListValue(list) => Some(
            list.values
                .iter()
                .filter_map(as_string)
                .map(str::to_owned)
                .collect(),
        ),
        value::Kind::StringValue(s) => Some(
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        ),
        _ => None,
    }
}
