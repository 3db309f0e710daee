//! AIGatewayRoute → routes matching on `x-ai-eg-model` (and other headers), each rule with a
//! cluster of its own whose localities are its backends: weights split traffic within a
//! priority, priorities fail over, and each host's metadata names its AIServiceBackend so the
//! extproc's upstream leg knows which provider it is talking to on every attempt.

use std::collections::BTreeMap;
use std::time::Duration;

use infergate_crds::AIGatewayRoute;
use infergate_crds::ai_gateway::AIGatewayRouteRule;
use infergate_crds::refs::HeaderMatchType;

use super::Cx;
use super::assemble::RouteModel;
use super::attach::Attachments;
use super::backend::{self, BackendRef};
use super::ir::{
    ActionIr, ClusterIr, ClusterProtocolIr, DiscoveryIr, EndpointIr, EndpointsIr, ForwardIr,
    HeaderMatchIr, LocalityIr, MatchIr, RouteIr, StringMatchIr, TlsIr,
};
use super::pool::{self, RuleOutcome, RuleRef, RuleSink};
use super::refs::From;
use super::route_common::{report_resolved, route_name, rule_timeouts};
use crate::keys::{
    BACKEND_METADATA_NAME, BACKEND_METADATA_NAMESPACE, BACKEND_METADATA_ROUTE,
    BACKEND_METADATA_RULE, DEFAULT_AI_ROUTE_TIMEOUT_SECS, TRANSPORT_SOCKET_MATCH_NAMESPACE,
};
use crate::object::ObjectKey;
use crate::status::{Condition, reason};

/// Most retries a rule gets for failing over across its backends.
const MAX_FAILOVER_RETRIES: u32 = 5;

pub fn translate_all(cx: &mut Cx<'_>, attachments: &Attachments<'_>, out: &mut Vec<RouteModel>) {
    let snapshot = cx.snapshot;
    for (key, route) in snapshot.ai_gateway_routes() {
        out.push(translate(cx, attachments, key, route));
    }
}

fn translate(
    cx: &mut Cx<'_>,
    attachments: &Attachments<'_>,
    key: &ObjectKey,
    route: &AIGatewayRoute,
) -> RouteModel {
    let attached = attachments.attach(cx, key, &route.spec.parent_refs, &route.spec.hostnames);
    let mut model = RouteModel::new(
        key,
        route
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| format!("{:?}", t.0)),
        route.spec.hostnames.clone(),
        attached,
        true,
    );
    let mut refs_ok = true;
    for (i, rule) in route.spec.rules.iter().enumerate() {
        refs_ok &= translate_rule(cx, key, i, rule, &mut model);
    }
    report_resolved(cx, key, refs_ok);
    model
}

fn translate_rule(
    cx: &mut Cx<'_>,
    key: &ObjectKey,
    i: usize,
    rule: &AIGatewayRouteRule,
    model: &mut RouteModel,
) -> bool {
    let scope = format!("rule {i}");
    let timeouts = rule.timeouts.as_ref();
    let request = timeouts.and_then(|t| t.request.as_deref());
    let backend_request = timeouts.and_then(|t| t.backend_request.as_deref());
    let Some((timeout, per_try_timeout)) = rule_timeouts(cx, key, &scope, request, backend_request)
    else {
        return true;
    };
    let cluster_name = format!("{}/rule/{i}", route_name(key));
    let from = From {
        group: "aigateway.envoyproxy.io",
        kind: "AIGatewayRoute",
        namespace: &key.namespace,
    };
    let pool_refs: Vec<RuleRef<'_>> = rule
        .backend_refs
        .iter()
        .map(|r| RuleRef {
            pool: r.is_inference_pool().then(|| {
                (
                    r.namespace.as_deref().unwrap_or(&key.namespace),
                    r.name.as_str(),
                )
            }),
            group: r.group.as_deref().unwrap_or(pool::POOL_GROUP),
            weight: u32::try_from(r.weight()).unwrap_or(0),
        })
        .collect();
    let pool_timeout = Some(timeout.unwrap_or(Duration::from_secs(DEFAULT_AI_ROUTE_TIMEOUT_SECS)));
    let sink = RuleSink {
        clusters: &mut model.clusters,
        endpoints: &mut model.endpoints,
    };
    match pool::translate_rule(
        cx,
        key,
        &from,
        &scope,
        &pool_refs,
        (pool_timeout, per_try_timeout),
        sink,
    ) {
        RuleOutcome::NoPool => {}
        RuleOutcome::Forward { action, epps } => {
            push_matches(key, i, rule, action, epps, model);
            return true;
        }
        RuleOutcome::Invalid { resolved } => {
            let action = ActionIr::Respond {
                status: 500,
                body: no_backend_body(),
            };
            push_matches(key, i, rule, action, BTreeMap::new(), model);
            return resolved;
        }
    }
    let mut localities = Vec::new();
    let mut tls: Vec<TlsIr> = Vec::new();
    let mut all_ok = true;
    for (j, r) in rule.backend_refs.iter().enumerate() {
        // InferencePools were handled above.
        let reference = BackendRef {
            group: r.group.as_deref().unwrap_or("aigateway.envoyproxy.io"),
            kind: r.kind.as_deref().unwrap_or("AIServiceBackend"),
            name: &r.name,
            namespace: r.namespace.as_deref().unwrap_or(&key.namespace),
            port: None,
        };
        let resolved = match backend::resolve(cx, &from, &reference) {
            Ok(resolved) => resolved,
            Err((why, message)) => {
                all_ok = false;
                let scope = format!("{scope} backendRef {j}");
                cx.status.push(
                    key,
                    Condition::fail(reason::RESOLVED_REFS, why, message).scoped(scope),
                );
                continue;
            }
        };
        let backend_name = resolved
            .ai_backend
            .as_ref()
            .unwrap_or(&resolved.target)
            .namespaced_name();
        let mut metadata = BTreeMap::new();
        metadata.insert(
            BACKEND_METADATA_NAMESPACE.to_string(),
            BTreeMap::from([
                (BACKEND_METADATA_NAME.to_string(), backend_name.clone()),
                (BACKEND_METADATA_ROUTE.to_string(), key.namespaced_name()),
                (BACKEND_METADATA_RULE.to_string(), i.to_string()),
            ]),
        );
        if let Some(t) = &resolved.tls {
            metadata.insert(
                TRANSPORT_SOCKET_MATCH_NAMESPACE.to_string(),
                BTreeMap::from([("tls".to_string(), t.name.clone())]),
            );
            if !tls.iter().any(|existing| existing.name == t.name) {
                tls.push(t.clone());
            }
        }
        let endpoints = resolved
            .endpoints
            .iter()
            .map(|(address, port)| EndpointIr {
                address: address.clone(),
                port: *port,
                metadata: metadata.clone(),
            })
            .collect();
        localities.push(LocalityIr {
            name: format!("{j}/{backend_name}"),
            priority: r.priority(),
            weight: u32::try_from(r.weight()).unwrap_or(0),
            endpoints,
        });
    }
    let action = if localities.iter().all(|l| l.weight == 0) {
        ActionIr::Respond {
            status: 500,
            body: no_backend_body(),
        }
    } else {
        let assignment = EndpointsIr {
            cluster: cluster_name.clone(),
            localities,
        };
        let all_ip = assignment
            .localities
            .iter()
            .flat_map(|l| &l.endpoints)
            .all(EndpointIr::is_ip);
        let backends = u32::try_from(assignment.localities.len()).unwrap_or(u32::MAX);
        model.clusters.push(ClusterIr {
            name: cluster_name.clone(),
            discovery: if all_ip {
                DiscoveryIr::Eds
            } else {
                DiscoveryIr::StrictDns(assignment.clone())
            },
            tls,
            outlier_detection: true,
            connect_timeout: cx.options.connect_timeout,
            protocol: match &cx.options.extproc {
                Some(extproc) => ClusterProtocolIr::UpstreamExtproc(extproc.ir()),
                None => ClusterProtocolIr::Default,
            },
            override_host: None,
            tcp_health_check: false,
        });
        if all_ip {
            model.endpoints.push(assignment);
        }
        ActionIr::Forward(ForwardIr {
            clusters: vec![(cluster_name.clone(), 1)],
            invalid_weight: 0,
            timeout: Some(timeout.unwrap_or(Duration::from_secs(DEFAULT_AI_ROUTE_TIMEOUT_SECS))),
            per_try_timeout,
            failover_retries: backends.saturating_sub(1).min(MAX_FAILOVER_RETRIES),
            auto_host_rewrite: !all_ip,
            retry: None,
            names_backend: false,
        })
    };
    push_matches(key, i, rule, action, BTreeMap::new(), model);
    all_ok
}

/// One route per match of the rule, all with `action`.
fn push_matches(
    key: &ObjectKey,
    i: usize,
    rule: &AIGatewayRouteRule,
    action: ActionIr,
    epps: BTreeMap<String, String>,
    model: &mut RouteModel,
) {
    let matches = if rule.matches.is_empty() {
        vec![Default::default()]
    } else {
        rule.matches.clone()
    };
    for (m, matcher) in matches.iter().enumerate() {
        let headers = matcher
            .headers
            .iter()
            .map(|h| HeaderMatchIr {
                name: h.name.to_ascii_lowercase(),
                value: if h.match_type() == HeaderMatchType::RegularExpression {
                    StringMatchIr::Regex(h.value.clone())
                } else {
                    StringMatchIr::Exact(h.value.clone())
                },
            })
            .collect();
        model.rules.push(RouteIr {
            name: format!("{}/rule/{i}/match/{m}", route_name(key)),
            matcher: MatchIr {
                headers,
                ..Default::default()
            },
            action: action.clone(),
            metadata: BTreeMap::new(),
            extproc_disabled: false,
            epps: epps.clone(),
            epp_disabled: Vec::new(),
            rate_limits: Vec::new(),
        });
    }
}

fn no_backend_body() -> String {
    serde_json::json!({"error": {
        "message": "no valid backend is configured for this model; see the route's status",
        "type": "server_error", "param": null, "code": "no_backend",
    }})
    .to_string()
}
