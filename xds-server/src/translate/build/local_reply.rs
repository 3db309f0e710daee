//! Errors Envoy itself produces on AI listeners, in the client API's own error shape (DESIGN.md
//! §4): an unknown model (the catch-all route's 404), an unreachable or failing upstream (503),
//! an upstream timeout (504), a spent rate limit budget (429; 503 when the rate limit service
//! fails closed), and a body over the buffer limit (413). Requests under
//! `/anthropic/` get Anthropic's shape, the rest OpenAI's. Mappers match on response flags or
//! status, never on anything the extproc answered itself with another status, and JSON format
//! escapes every client-supplied value.

use envoy_types::pb::envoy::config::accesslog::v3::{
    AccessLogFilter, AndFilter, ComparisonFilter, HeaderFilter, ResponseFlagFilter,
    StatusCodeFilter, access_log_filter::FilterSpecifier, comparison_filter::Op,
};
use envoy_types::pb::envoy::config::core::v3::{
    RuntimeUInt32, SubstitutionFormatString, substitution_format_string::Format,
};
use envoy_types::pb::envoy::config::route::v3::{
    HeaderMatcher, header_matcher::HeaderMatchSpecifier,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    LocalReplyConfig, ResponseMapper,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher::MatchPattern};
use envoy_types::pb::google::protobuf::{Struct, UInt32Value, Value, value::Kind as ValueKind};

use super::string_value;
use crate::keys::MODEL_HEADER;

/// Path prefix of the Anthropic-compatible API.
const ANTHROPIC_PREFIX: &str = "/anthropic/";

/// One kind of gateway-made error.
struct GatewayError {
    filter: AccessLogFilter,
    status: u32,
    message: String,
    openai_type: &'static str,
    openai_code: &'static str,
    openai_param: Option<&'static str>,
    anthropic_type: &'static str,
}

fn errors() -> Vec<GatewayError> {
    vec![
        GatewayError {
            filter: status(404),
            status: 404,
            message: format!("model \"%REQ({MODEL_HEADER})%\" is not served by this gateway"),
            openai_type: "invalid_request_error",
            openai_code: "model_not_found",
            openai_param: Some("model"),
            anthropic_type: "not_found_error",
        },
        GatewayError {
            // Connection failure, no healthy host, retries exhausted, reset, overflow.
            filter: flags(&["UF", "UH", "URX", "UC", "UO", "UR"]),
            status: 503,
            message: "the model's upstream is unavailable (%RESPONSE_CODE_DETAILS%)".into(),
            openai_type: "server_error",
            openai_code: "upstream_unavailable",
            openai_param: None,
            anthropic_type: "api_error",
        },
        GatewayError {
            filter: flags(&["UT"]),
            status: 504,
            message: "the model's upstream did not answer in time".into(),
            openai_type: "server_error",
            openai_code: "upstream_timeout",
            openai_param: None,
            anthropic_type: "api_error",
        },
        GatewayError {
            // Refused by the rate limit service (a token or request budget is spent).
            filter: flags(&["RL"]),
            status: 429,
            message: "rate limit exceeded: this client's budget for the current window is spent; retry after the time in x-ratelimit-reset".into(),
            openai_type: "requests",
            openai_code: "rate_limit_exceeded",
            openai_param: None,
            anthropic_type: "rate_limit_error",
        },
        GatewayError {
            // The rate limit service could not decide and the policy fails closed.
            filter: flags(&["RLSE"]),
            status: 503,
            message: "the rate limit service is unavailable".into(),
            openai_type: "server_error",
            openai_code: "rate_limit_service_unavailable",
            openai_param: None,
            anthropic_type: "api_error",
        },
        GatewayError {
            filter: status(413),
            status: 413,
            message: "the request body is larger than this gateway accepts".into(),
            openai_type: "invalid_request_error",
            openai_code: "request_too_large",
            openai_param: None,
            anthropic_type: "request_too_large",
        },
    ]
}

pub fn ai_local_replies() -> LocalReplyConfig {
    let mut mappers = Vec::new();
    for error in errors() {
        let anthropic = fields([
            ("type", string_value("error")),
            (
                "error",
                object([
                    ("type", string_value(error.anthropic_type)),
                    ("message", string_value(&error.message)),
                ]),
            ),
        ]);
        mappers.push(mapper(
            and(error.filter.clone(), anthropic_path()),
            error.status,
            anthropic,
        ));
        let param = match error.openai_param {
            Some(p) => string_value(p),
            None => Value {
                kind: Some(ValueKind::NullValue(0)),
            },
        };
        let openai = fields([(
            "error",
            object([
                ("message", string_value(&error.message)),
                ("type", string_value(error.openai_type)),
                ("param", param),
                ("code", string_value(error.openai_code)),
            ]),
        )]);
        mappers.push(mapper(error.filter, error.status, openai));
    }
    LocalReplyConfig {
        mappers,
        ..Default::default()
    }
}

fn mapper(filter: AccessLogFilter, status: u32, body: Struct) -> ResponseMapper {
    ResponseMapper {
        filter: Some(filter),
        status_code: Some(UInt32Value { value: status }),
        body_format_override: Some(SubstitutionFormatString {
            format: Some(Format::JsonFormat(body)),
            content_type: "application/json".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn status(code: u32) -> AccessLogFilter {
    AccessLogFilter {
        filter_specifier: Some(FilterSpecifier::StatusCodeFilter(StatusCodeFilter {
            comparison: Some(ComparisonFilter {
                op: Op::Eq as i32,
                value: Some(RuntimeUInt32 {
                    default_value: code,
                    runtime_key: format!("infergate.local_reply_{code}"),
                }),
            }),
        })),
    }
}

fn flags(flags: &[&str]) -> AccessLogFilter {
    AccessLogFilter {
        filter_specifier: Some(FilterSpecifier::ResponseFlagFilter(ResponseFlagFilter {
            flags: flags.iter().map(|f| f.to_string()).collect(),
        })),
    }
}

fn anthropic_path() -> AccessLogFilter {
    AccessLogFilter {
        filter_specifier: Some(FilterSpecifier::HeaderFilter(HeaderFilter {
            header: Some(HeaderMatcher {
                name: ":path".into(),
                header_match_specifier: Some(HeaderMatchSpecifier::StringMatch(StringMatcher {
                    match_pattern: Some(MatchPattern::Prefix(ANTHROPIC_PREFIX.into())),
                    ignore_case: false,
                })),
                ..Default::default()
            }),
        })),
    }
}

fn and(a: AccessLogFilter, b: AccessLogFilter) -> AccessLogFilter {
    AccessLogFilter {
        filter_specifier: Some(FilterSpecifier::AndFilter(AndFilter {
            filters: vec![a, b],
        })),
    }
}

fn fields<const N: usize>(fields: [(&str, Value); N]) -> Struct {
    Struct {
        fields: fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    }
}

fn object<const N: usize>(entries: [(&str, Value); N]) -> Value {
    Value {
        kind: Some(ValueKind::StructValue(fields(entries))),
    }
}
