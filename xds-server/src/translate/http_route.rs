//! HTTPRoute → route rules and per-backend clusters.

use std::collections::BTreeMap;

use gateway_api::httproutes::{
    HttpRoute, HttpRouteRules, HttpRouteRulesMatches, HttpRouteRulesMatchesHeadersType,
    HttpRouteRulesMatchesPathType, HttpRouteRulesMatchesQueryParamsType,
};
use infergate_crds::refs::ParentReference;

use super::Cx;
use super::assemble::RouteModel;
use super::attach::Attachments;
use super::backend::{self, BackendRef};
use super::ir::{
    ActionIr, ClusterIr, ClusterProtocolIr, DiscoveryIr, EndpointIr, EndpointsIr, ForwardIr,
    HeaderMatchIr, LocalityIr, MatchIr, PathMatchIr, QueryMatchIr, RouteIr, StringMatchIr,
};
use super::pool::{self, RuleOutcome, RuleRef, RuleSink};
use super::refs::From;
use super::route_common::{report_resolved, route_name, rule_timeouts};
use crate::keys::TRANSPORT_SOCKET_MATCH_NAMESPACE;
use crate::object::ObjectKey;
use crate::status::{Condition, reason};

pub fn translate_all(cx: &mut Cx<'_>, attachments: &Attachments<'_>, out: &mut Vec<RouteModel>) {
    let snapshot = cx.snapshot;
    for (key, route) in snapshot.http_routes() {
        out.push(translate(cx, attachments, key, route));
    }
}

fn translate(
    cx: &mut Cx<'_>,
    attachments: &Attachments<'_>,
    key: &ObjectKey,
    route: &HttpRoute,
) -> RouteModel {
    let parents: Vec<ParentReference> = route
        .spec
        .parent_refs
        .iter()
        .flatten()
        .map(|p| ParentReference {
            group: p.group.clone(),
            kind: p.kind.clone(),
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            section_name: p.section_name.clone(),
            port: p.port,
        })
        .collect();
    let hostnames = route.spec.hostnames.clone().unwrap_or_default();
    let attached = attachments.attach(cx, key, &parents, &hostnames);
    let mut model = RouteModel::new(
        key,
        route
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| format!("{:?}", t.0)),
        hostnames,
        attached,
        false,
    );
    let mut refs_ok = true;
    for (i, rule) in route.spec.rules.iter().flatten().enumerate() {
        refs_ok &= translate_rule(cx, key, i, rule, &mut model);
    }
    report_resolved(cx, key, refs_ok);
    model
}

/// Returns whether every backendRef of the rule resolved.
fn translate_rule(
    cx: &mut Cx<'_>,
    key: &ObjectKey,
    i: usize,
    rule: &HttpRouteRules,
    model: &mut RouteModel,
) -> bool {
    let scope = format!("rule {i}");
    if rule.filters.as_ref().is_some_and(|f| !f.is_empty()) {
        let message = "HTTPRoute filters are not supported yet; the rule is not served";
        cx.status.push(
            key,
            Condition::fail(reason::ACCEPTED, reason::UNSUPPORTED_VALUE, message).scoped(&scope),
        );
        return true;
    }
    let timeouts = rule.timeouts.as_ref();
    let request = timeouts.and_then(|t| t.request.as_deref());
    let backend_request = timeouts.and_then(|t| t.backend_request.as_deref());
    let Some((timeout, per_try_timeout)) = rule_timeouts(cx, key, &scope, request, backend_request)
    else {
        return true;
    };
    let mut clusters = Vec::new();
    let mut invalid_weight = 0;
    let mut all_ok = true;
    let from = From {
        group: "gateway.networking.k8s.io",
        kind: "HTTPRoute",
        namespace: &key.namespace,
    };
    let pool_refs: Vec<RuleRef<'_>> = rule
        .backend_refs
        .iter()
        .flatten()
        .map(|r| RuleRef {
            pool: (r.kind.as_deref() == Some(pool::POOL_KIND)).then(|| {
                (
                    r.namespace.as_deref().unwrap_or(&key.namespace),
                    r.name.as_str(),
                )
            }),
            group: r.group.as_deref().unwrap_or(""),
            weight: u32::try_from(r.weight.unwrap_or(1)).unwrap_or(0),
        })
        .collect();
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
        (timeout, per_try_timeout),
        sink,
    ) {
        RuleOutcome::NoPool => {}
        RuleOutcome::Forward { action, epps } => {
            push_matches(key, i, rule, action, epps, model);
            return true;
        }
        RuleOutcome::Invalid { resolved } => {
            push_matches(key, i, rule, no_backend(), BTreeMap::new(), model);
            return resolved;
        }
    }
    for (j, r) in rule.backend_refs.iter().flatten().enumerate() {
        let weight = u32::try_from(r.weight.unwrap_or(1)).unwrap_or(0);
        let reference = BackendRef {
            group: r.group.as_deref().unwrap_or(""),
            kind: r.kind.as_deref().unwrap_or("Service"),
            name: &r.name,
            namespace: r.namespace.as_deref().unwrap_or(&key.namespace),
            port: r.port,
        };
        match backend::resolve(cx, &from, &reference) {
            Ok(resolved) => {
                let (cluster, endpoints) = backend_cluster(cx, &resolved);
                model.clusters.push(cluster);
                model.endpoints.extend(endpoints);
                if weight > 0 {
                    clusters.push((resolved.cluster, weight));
                }
            }
            Err((why, message)) => {
                all_ok = false;
                invalid_weight += weight;
                let scope = format!("{scope} backendRef {j}");
                cx.status.push(
                    key,
                    Condition::fail(reason::RESOLVED_REFS, why, message).scoped(scope),
                );
            }
        }
    }
    let action = if clusters.is_empty() {
        no_backend()
    } else {
        ActionIr::Forward(ForwardIr {
            clusters,
            invalid_weight,
            timeout,
            per_try_timeout,
            failover_retries: 0,
            auto_host_rewrite: false,
            retry: None,
            names_backend: false,
        })
    };
    push_matches(key, i, rule, action, BTreeMap::new(), model);
    all_ok
}

/// No (valid) backend: Gateway API says 500.
fn no_backend() -> ActionIr {
    ActionIr::Respond {
        status: 500,
        body: "no valid backend for this route\n".into(),
    }
}

/// One route per match of the rule, all with `action`.
fn push_matches(
    key: &ObjectKey,
    i: usize,
    rule: &HttpRouteRules,
    action: ActionIr,
    epps: BTreeMap<String, String>,
    model: &mut RouteModel,
) {
    let matches = rule.matches.clone().unwrap_or_default();
    let matches = if matches.is_empty() {
        vec![HttpRouteRulesMatches::default()]
    } else {
        matches
    };
    for (m, matcher) in matches.iter().enumerate() {
        model.rules.push(RouteIr {
            name: format!("{}/rule/{i}/match/{m}", route_name(key)),
            matcher: match_ir(matcher),
            action: action.clone(),
            metadata: BTreeMap::new(),
            extproc_disabled: false,
            epps: epps.clone(),
            epp_disabled: Vec::new(),
            rate_limits: Vec::new(),
        });
    }
}

fn match_ir(m: &HttpRouteRulesMatches) -> MatchIr {
    let path = m.path.as_ref().map(|p| {
        let value = p.value.clone().unwrap_or_else(|| "/".into());
        match p
            .r#type
            .as_ref()
            .unwrap_or(&HttpRouteRulesMatchesPathType::PathPrefix)
        {
            HttpRouteRulesMatchesPathType::Exact => PathMatchIr::Exact(value),
            HttpRouteRulesMatchesPathType::PathPrefix => PathMatchIr::Prefix(value),
            HttpRouteRulesMatchesPathType::RegularExpression => PathMatchIr::Regex(value),
        }
    });
    let mut headers: Vec<HeaderMatchIr> = m
        .headers
        .iter()
        .flatten()
        .map(|h| HeaderMatchIr {
            name: h.name.to_ascii_lowercase(),
            value: match h.r#type {
                Some(HttpRouteRulesMatchesHeadersType::RegularExpression) => {
                    StringMatchIr::Regex(h.value.clone())
                }
                _ => StringMatchIr::Exact(h.value.clone()),
            },
        })
        .collect();
    if let Some(method) = &m.method {
        let method = serde_json::to_value(method)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        headers.push(HeaderMatchIr {
            name: ":method".into(),
            value: StringMatchIr::Exact(method),
        });
    }
    let query = m
        .query_params
        .iter()
        .flatten()
        .map(|q| QueryMatchIr {
            name: q.name.clone(),
            value: match q.r#type {
                Some(HttpRouteRulesMatchesQueryParamsType::RegularExpression) => {
                    StringMatchIr::Regex(q.value.clone())
                }
                _ => StringMatchIr::Exact(q.value.clone()),
            },
        })
        .collect();
    MatchIr {
        path: path.unwrap_or_default(),
        headers,
        query,
    }
}

/// The cluster of a Backend/Service: EDS when every endpoint is an IP, STRICT_DNS otherwise.
fn backend_cluster(cx: &Cx<'_>, resolved: &backend::Resolved) -> (ClusterIr, Option<EndpointsIr>) {
    let mut metadata = BTreeMap::new();
    if let Some(tls) = &resolved.tls {
        metadata.insert(
            TRANSPORT_SOCKET_MATCH_NAMESPACE.to_string(),
            [("tls".to_string(), tls.name.clone())].into(),
        );
    }
    let endpoints: Vec<EndpointIr> = resolved
        .endpoints
        .iter()
        .map(|(address, port)| EndpointIr {
            address: address.clone(),
            port: *port,
            metadata: metadata.clone(),
        })
        .collect();
    let all_ip = endpoints.iter().all(EndpointIr::is_ip);
    let assignment = EndpointsIr {
        cluster: resolved.cluster.clone(),
        localities: vec![LocalityIr {
            name: resolved.target.namespaced_name(),
            priority: 0,
            weight: 1,
            endpoints,
        }],
    };
    let cluster = ClusterIr {
        name: resolved.cluster.clone(),
        discovery: if all_ip {
            DiscoveryIr::Eds
        } else {
            DiscoveryIr::StrictDns(assignment.clone())
        },
        tls: resolved.tls.iter().cloned().collect(),
        outlier_detection: false,
        connect_timeout: cx.options.connect_timeout,
        protocol: ClusterProtocolIr::Default,
        override_host: None,
        tcp_health_check: false,
    };
    (cluster, all_ip.then_some(assignment))
}
