//! RouteConfiguration: virtual hosts, matches, weighted clusters, failover retries.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::{DataSource, HeaderValue, HeaderValueOption};
use envoy_types::pb::envoy::config::route::v3::{
    DirectResponseAction, HeaderMatcher, QueryParameterMatcher, RetryPolicy, Route, RouteAction,
    RouteConfiguration, RouteMatch, VirtualHost, WeightedCluster,
    header_matcher::HeaderMatchSpecifier,
    query_parameter_matcher::QueryParameterMatchSpecifier,
    retry_policy::{RetryHostPredicate, RetryPriority, retry_host_predicate, retry_priority},
    route::Action,
    route_action::{ClusterNotFoundResponseCode, ClusterSpecifier, HostRewriteSpecifier},
    route_match::PathSpecifier,
    weighted_cluster::ClusterWeight,
};
use envoy_types::pb::envoy::extensions::retry::host::previous_hosts::v3::PreviousHostsPredicate;
use envoy_types::pb::envoy::extensions::retry::priority::previous_priorities::v3::PreviousPrioritiesConfig;
use envoy_types::pb::envoy::r#type::matcher::v3::{
    RegexMatcher, StringMatcher, string_matcher::MatchPattern,
};
use envoy_types::pb::google::protobuf::{UInt32Value, UInt64Value};

use super::{duration, metadata, pack};
use crate::keys::{
    BACKEND_HEADER, BACKEND_METADATA_NAME, BACKEND_METADATA_NAMESPACE, BACKEND_METADATA_ROUTE,
    BACKEND_METADATA_RULE, EXTPROC_ROUTER_FILTER, RATELIMIT_FILTER, ROUTE_HEADER, RULE_HEADER,
};
use crate::translate::ir::{
    ActionIr, ForwardIr, MatchIr, PathMatchIr, RouteConfigIr, RouteIr, StringMatchIr, VirtualHostIr,
};

/// Cluster name a weighted share of unresolved backendRefs goes to: Envoy answers it with
/// `cluster_not_found_response_code` (500), as Gateway API asks for invalid backends.
pub const INVALID_BACKEND_CLUSTER: &str = "infergate/invalid-backend-ref";

pub fn route_configuration(ir: &RouteConfigIr) -> RouteConfiguration {
    RouteConfiguration {
        name: ir.name.clone(),
        virtual_hosts: ir.virtual_hosts.iter().map(virtual_host).collect(),
        // Clusters referenced by routes may arrive a moment later over CDS; don't reject.
        validate_clusters: Some(envoy_types::pb::google::protobuf::BoolValue { value: false }),
        ..Default::default()
    }
}

fn virtual_host(ir: &VirtualHostIr) -> VirtualHost {
    VirtualHost {
        name: ir.name.clone(),
        domains: ir.domains.clone(),
        routes: ir.routes.iter().map(route).collect(),
        request_body_buffer_limit: ir.body_limit.map(|value| UInt64Value { value }),
        ..Default::default()
    }
}

pub fn route(ir: &RouteIr) -> Route {
    Route {
        name: ir.name.clone(),
        r#match: Some(route_match(&ir.matcher)),
        action: Some(action(&ir.action, &ir.epps)),
        metadata: metadata(&ir.metadata),
        response_headers_to_add: match &ir.action {
            ActionIr::Forward(forward) if forward.names_backend => backend_headers(),
            _ => Vec::new(),
        },
        // The router leg off on HTTPRoutes of an AI listener; each InferencePool's picker off
        // on every route but its pool's.
        typed_per_filter_config: ir
            .extproc_disabled
            .then_some(EXTPROC_ROUTER_FILTER)
            .into_iter()
            .chain(ir.epp_disabled.iter().map(String::as_str))
            .map(|filter| (filter.to_string(), super::extproc::disabled_on_route()))
            .chain((!ir.rate_limits.is_empty()).then(|| {
                (
                    RATELIMIT_FILTER.to_string(),
                    super::ratelimit::per_route(&ir.rate_limits),
                )
            }))
            .collect(),
        ..Default::default()
    }
}

/// The chosen host's backend, route and rule as response headers for the router leg: one
/// formatter per header, much cheaper for Envoy than CEL response attributes. A host without
/// our metadata gets none of them; a provider's own copies are overwritten.
fn backend_headers() -> Vec<HeaderValueOption> {
    [
        (BACKEND_HEADER, BACKEND_METADATA_NAME),
        (ROUTE_HEADER, BACKEND_METADATA_ROUTE),
        (RULE_HEADER, BACKEND_METADATA_RULE),
    ]
    .into_iter()
    .map(|(header, key)| HeaderValueOption {
        header: Some(HeaderValue {
            key: header.to_string(),
            value: format!("%UPSTREAM_METADATA([\"{BACKEND_METADATA_NAMESPACE}\", \"{key}\"])%"),
            ..Default::default()
        }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..Default::default()
    })
    .collect()
}

fn route_match(ir: &MatchIr) -> RouteMatch {
    let path = match &ir.path {
        PathMatchIr::Exact(p) => PathSpecifier::Path(p.clone()),
        PathMatchIr::Prefix(p) if p == "/" => PathSpecifier::Prefix("/".into()),
        PathMatchIr::Prefix(p) => {
            PathSpecifier::PathSeparatedPrefix(p.trim_end_matches('/').into())
        }
        PathMatchIr::Regex(r) => PathSpecifier::SafeRegex(regex(r)),
    };
    RouteMatch {
        path_specifier: Some(path),
        headers: ir
            .headers
            .iter()
            .map(|h| HeaderMatcher {
                name: h.name.clone(),
                header_match_specifier: Some(HeaderMatchSpecifier::StringMatch(string_matcher(
                    &h.value,
                ))),
                ..Default::default()
            })
            .collect(),
        query_parameters: ir
            .query
            .iter()
            .map(|q| QueryParameterMatcher {
                name: q.name.clone(),
                query_parameter_match_specifier: Some(QueryParameterMatchSpecifier::StringMatch(
                    string_matcher(&q.value),
                )),
            })
            .collect(),
        ..Default::default()
    }
}

fn regex(r: &str) -> RegexMatcher {
    RegexMatcher {
        regex: r.to_string(),
        ..Default::default()
    }
}

fn string_matcher(ir: &StringMatchIr) -> StringMatcher {
    let pattern = match ir {
        StringMatchIr::Exact(v) => MatchPattern::Exact(v.clone()),
        StringMatchIr::Regex(r) => MatchPattern::SafeRegex(regex(r)),
    };
    StringMatcher {
        match_pattern: Some(pattern),
        ignore_case: false,
    }
}

fn action(ir: &ActionIr, epps: &BTreeMap<String, String>) -> Action {
    match ir {
        ActionIr::Forward(forward) => Action::Route(route_action(forward, epps)),
        ActionIr::Respond { status, body } => Action::DirectResponse(DirectResponseAction {
            status: *status,
            body: Some(DataSource {
                specifier: Some(Specifier::InlineString(body.clone())),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

/// `epps`: the picker filter of each InferencePool cluster (see [`RouteIr::epps`]).
fn route_action(ir: &ForwardIr, epps: &BTreeMap<String, String>) -> RouteAction {
    let single = ir.clusters.len() == 1 && ir.invalid_weight == 0;
    let cluster_specifier = if single {
        ClusterSpecifier::Cluster(ir.clusters[0].0.clone())
    } else {
        let mut clusters: Vec<ClusterWeight> = ir
            .clusters
            .iter()
            .map(|(name, weight)| {
                let mut cluster = cluster_weight(name, *weight);
                // Several pools: each share runs only its own pool's picker.
                if epps.len() > 1 {
                    cluster.typed_per_filter_config = epps
                        .iter()
                        .filter(|(pool_cluster, _)| *pool_cluster != name)
                        .map(|(_, filter)| (filter.clone(), super::extproc::disabled_on_route()))
                        .collect();
                }
                cluster
            })
            .collect();
        if ir.invalid_weight > 0 {
            clusters.push(cluster_weight(INVALID_BACKEND_CLUSTER, ir.invalid_weight));
        }
        ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters,
            ..Default::default()
        })
    };
    RouteAction {
        cluster_specifier: Some(cluster_specifier),
        cluster_not_found_response_code: ClusterNotFoundResponseCode::InternalServerError as i32,
        timeout: ir.timeout.map(duration),
        retry_policy: (ir.failover_retries > 0
            || ir.per_try_timeout.is_some()
            || ir.retry.is_some())
        .then(|| retry_policy(ir)),
        host_rewrite_specifier: ir.auto_host_rewrite.then_some(
            HostRewriteSpecifier::AutoHostRewrite(envoy_types::pb::google::protobuf::BoolValue {
                value: true,
            }),
        ),
        ..Default::default()
    }
}

fn cluster_weight(name: &str, weight: u32) -> ClusterWeight {
    ClusterWeight {
        name: name.to_string(),
        weight: Some(UInt32Value { value: weight }),
        ..Default::default()
    }
}

/// Without a BackendTrafficPolicy retry, retries only what never reached an upstream (connect
/// failure, refused stream, reset before the request was sent), each on a host and priority
/// not tried yet: priority failover that is safe for non-idempotent completions. A policy's
/// retry replaces the conditions and count (keeping the move to untried hosts and priorities).
fn retry_policy(ir: &ForwardIr) -> RetryPolicy {
    let failover = ir.failover_retries > 0 || ir.retry.is_some();
    let (retry_on, num_retries) = match &ir.retry {
        Some(retry) => (retry.retry_on.clone(), retry.num_retries),
        None if ir.failover_retries > 0 => (
            "connect-failure,refused-stream,reset-before-request".into(),
            ir.failover_retries,
        ),
        None => (String::new(), 0),
    };
    let policy = ir.retry.as_ref();
    RetryPolicy {
        retry_on,
        num_retries: Some(UInt32Value { value: num_retries }),
        per_try_timeout: policy
            .and_then(|r| r.per_try_timeout)
            .or(ir.per_try_timeout)
            .map(duration),
        retriable_status_codes: policy.map(|r| r.status_codes.clone()).unwrap_or_default(),
        retry_back_off: policy.and_then(|r| r.back_off).map(|(base, max)| {
            envoy_types::pb::envoy::config::route::v3::retry_policy::RetryBackOff {
                base_interval: Some(duration(base)),
                max_interval: max.map(duration),
            }
        }),
        retry_priority: failover.then(|| RetryPriority {
            name: "envoy.retry_priorities.previous_priorities".into(),
            config_type: Some(retry_priority::ConfigType::TypedConfig(pack(
                &PreviousPrioritiesConfig {
                    update_frequency: policy
                        .and_then(|r| r.attempts_per_priority)
                        .map_or(1, |n| i32::try_from(n).unwrap_or(i32::MAX)),
                },
            ))),
        }),
        retry_host_predicate: if failover {
            vec![RetryHostPredicate {
                name: "envoy.retry_host_predicates.previous_hosts".into(),
                config_type: Some(retry_host_predicate::ConfigType::TypedConfig(pack(
                    &PreviousHostsPredicate::default(),
                ))),
            }]
        } else {
            Vec::new()
        },
        host_selection_retry_max_attempts: if failover { 3 } else { 0 },
        ..Default::default()
    }
}
