//! The rate limit HTTP filter and each route's descriptors (DESIGN.md §6). Descriptors sit in
//! the route's `typed_per_filter_config` because only there does Envoy honour `hits_addend`
//! and `apply_on_stream_done`.

use envoy_types::pb::envoy::config::core::v3::{ApiVersion, GrpcService, grpc_service};
use envoy_types::pb::envoy::config::ratelimit::v3::RateLimitServiceConfig;
use envoy_types::pb::envoy::config::route::v3::{
    HeaderMatcher, RateLimit,
    header_matcher::HeaderMatchSpecifier,
    rate_limit::{
        Action, HitsAddend,
        action::{
            ActionSpecifier, GenericKey, HeaderValueMatch, MetaData, RequestHeaders,
            meta_data::Source,
        },
    },
};
use envoy_types::pb::envoy::extensions::filters::http::ratelimit::v3::{
    RateLimit as RateLimitFilter, RateLimitPerRoute, rate_limit::XRateLimitHeadersRfcVersion,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpFilter, http_filter,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher::MatchPattern};
use envoy_types::pb::envoy::r#type::metadata::v3::{MetadataKey, metadata_key::PathSegment};
use envoy_types::pb::google::protobuf::{Any, BoolValue, UInt64Value};

use super::{duration, pack};
use crate::keys::{RATELIMIT_DOMAIN, RATELIMIT_FILTER};
use crate::translate::ir::{
    DescriptorEntryIr, HitsIr, RateLimitFilterIr, RateLimitIr, StringMatchIr,
};

/// `:authority` of the gRPC calls to the rate limit service (the cluster name's `/` is not a
/// valid one).
pub const RATELIMIT_AUTHORITY: &str = "ratelimit.infergate";

pub fn filter(ir: &RateLimitFilterIr) -> HttpFilter {
    let config = RateLimitFilter {
        domain: RATELIMIT_DOMAIN.into(),
        // Both internal and external requests are limited.
        request_type: "both".into(),
        timeout: Some(duration(ir.timeout)),
        failure_mode_deny: ir.failure_mode_deny,
        rate_limit_service: Some(RateLimitServiceConfig {
            grpc_service: Some(GrpcService {
                target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
                    grpc_service::EnvoyGrpc {
                        cluster_name: ir.cluster.clone(),
                        authority: RATELIMIT_AUTHORITY.into(),
                        ..Default::default()
                    },
                )),
                ..Default::default()
            }),
            transport_api_version: ApiVersion::V3 as i32,
        }),
        // `x-ratelimit-limit`, `-remaining` and `-reset` on every limited response.
        enable_x_ratelimit_headers: XRateLimitHeadersRfcVersion::DraftVersion03 as i32,
        ..Default::default()
    };
    HttpFilter {
        name: RATELIMIT_FILTER.into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack(&config))),
        ..Default::default()
    }
}

/// A route's descriptors as the filter's per-route config.
pub fn per_route(limits: &[RateLimitIr]) -> Any {
    pack(&RateLimitPerRoute {
        rate_limits: limits.iter().map(rate_limit).collect(),
        ..Default::default()
    })
}

fn rate_limit(ir: &RateLimitIr) -> RateLimit {
    let hits = match &ir.hits {
        HitsIr::Number(n) => HitsAddend {
            number: Some(UInt64Value { value: *n }),
            ..Default::default()
        },
        HitsIr::Format(format) => HitsAddend {
            format: format.clone(),
            ..Default::default()
        },
    };
    RateLimit {
        actions: ir.entries.iter().map(action).collect(),
        hits_addend: Some(hits),
        apply_on_stream_done: ir.on_stream_done,
        ..Default::default()
    }
}

fn action(entry: &DescriptorEntryIr) -> Action {
    let specifier = match entry {
        DescriptorEntryIr::Fixed { key, value } => ActionSpecifier::GenericKey(GenericKey {
            descriptor_key: key.clone(),
            descriptor_value: value.clone(),
            ..Default::default()
        }),
        DescriptorEntryIr::RequestHeader { header, key } => {
            ActionSpecifier::RequestHeaders(RequestHeaders {
                header_name: header.clone(),
                descriptor_key: key.clone(),
                skip_if_absent: false,
            })
        }
        DescriptorEntryIr::HeaderMatch {
            key,
            value,
            header,
            matcher,
            expect_match,
        } => ActionSpecifier::HeaderValueMatch(HeaderValueMatch {
            descriptor_key: key.clone(),
            descriptor_value: value.clone(),
            expect_match: Some(BoolValue {
                value: *expect_match,
            }),
            headers: vec![HeaderMatcher {
                name: header.clone(),
                header_match_specifier: Some(HeaderMatchSpecifier::StringMatch(StringMatcher {
                    match_pattern: Some(match matcher {
                        StringMatchIr::Exact(v) => MatchPattern::Exact(v.clone()),
                        StringMatchIr::Regex(r) => MatchPattern::SafeRegex(
                            envoy_types::pb::envoy::r#type::matcher::v3::RegexMatcher {
                                regex: r.clone(),
                                ..Default::default()
                            },
                        ),
                    }),
                    ignore_case: false,
                })),
                ..Default::default()
            }],
            ..Default::default()
        }),
        DescriptorEntryIr::Metadata {
            key,
            namespace,
            metadata_key,
        } => ActionSpecifier::Metadata(MetaData {
            descriptor_key: key.clone(),
            metadata_key: Some(MetadataKey {
                key: namespace.clone(),
                path: vec![PathSegment {
                    segment: Some(
                        envoy_types::pb::envoy::r#type::metadata::v3::metadata_key::path_segment::Segment::Key(
                            metadata_key.clone(),
                        ),
                    ),
                }],
            }),
            source: Source::Dynamic as i32,
            ..Default::default()
        }),
    };
    Action {
        action_specifier: Some(specifier),
    }
}
