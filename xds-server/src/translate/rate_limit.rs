//! `BackendTrafficPolicy.spec.rateLimit.global` → rate limit descriptors on the routes the policy
//! targets (DESIGN.md §6).
//!
//! The rate limit service holds no configuration: every descriptor carries its rule id and limit
//! as entries (ratelimit/README.md), so a policy edit applies as soon as Envoy has the new
//! routes. A rule whose response cost is an `io.envoy.ai_gateway` key becomes a reservation:
//! a request-time descriptor charging the router leg's estimate of that cost (admitted while
//! the budget is not spent), and a stream-end descriptor that replaces the estimate with the
//! real cost. Other rules count as Envoy Gateway counts them.
//!
//! A bad rule (unknown key, unsupported selector) is a condition on the policy naming the rule;
//! the policy's other rules still apply.

use std::collections::{BTreeMap, BTreeSet};

use infergate_crds::envoy_gateway::{
    RateLimitCostFrom, RateLimitCostSpecifier, RateLimitHeaderMatch, RateLimitMatchType,
    RateLimitRule, RateLimitSelectCondition, RateLimitUnit,
};
use infergate_crds::refs::LocalPolicyTargetReferenceWithSectionName;

use super::Cx;
use super::ir::{DescriptorEntryIr, HitsIr, RateLimitIr, StringMatchIr};
use crate::keys::{
    AI_GATEWAY_METADATA_NAMESPACE, METADATA_RESERVE_SUFFIX, METADATA_RESERVED_SUFFIX,
    RATELIMIT_ENTRY_LIMIT, RATELIMIT_ENTRY_MODE, RATELIMIT_ENTRY_RESERVED, RATELIMIT_ENTRY_RULE,
    RATELIMIT_ENTRY_SHADOW, RATELIMIT_MODE_RESERVE, RATELIMIT_MODE_SETTLE, RATELIMIT_SHADOW_TRUE,
};
use crate::object::{Kind, ObjectKey};
use crate::status::{Condition, reason};

/// The compiled limits, by what they target.
#[derive(Debug, Default)]
pub struct RateLimits {
    /// By route (HTTPRoute or AIGatewayRoute key).
    routes: BTreeMap<ObjectKey, Vec<RateLimitIr>>,
    /// By Gateway: limits for the whole Gateway or one listener of it (`sectionName`).
    gateways: BTreeMap<ObjectKey, Vec<ListenerLimits>>,
}

/// A Gateway's limits: for one listener (`sectionName`) or, with `None`, all of them.
type ListenerLimits = (Option<String>, Vec<RateLimitIr>);

impl RateLimits {
    /// The descriptors of a route placed on `listener` of `gateway`: a policy on the route
    /// wins over one on its Gateway (Envoy Gateway's precedence).
    pub fn for_placement(
        &self,
        route: &ObjectKey,
        gateway: &ObjectKey,
        listener: &str,
    ) -> Vec<RateLimitIr> {
        if let Some(limits) = self.routes.get(route) {
            return limits.clone();
        }
        self.gateways
            .get(gateway)
            .into_iter()
            .flatten()
            .filter(|(section, _)| section.as_deref().is_none_or(|s| s == listener))
            .flat_map(|(_, limits)| limits.iter().cloned())
            .collect()
    }
}

/// A policy target that exists.
pub(super) enum Target {
    Route(ObjectKey),
    Gateway(ObjectKey, Option<String>),
}

pub fn compile(cx: &mut Cx<'_>) -> RateLimits {
    let snapshot = cx.snapshot;
    let mut out = RateLimits::default();
    for (key, policy) in snapshot.backend_traffic_policies() {
        let spec = &policy.spec;
        // `retry` is compiled by `retry.rs`.
        let mut extras = Vec::new();
        if spec.timeout.is_some() {
            extras.push("timeout");
        }
        let not_applied = if extras.is_empty() {
            String::new()
        } else {
            format!(
                "; {} from this policy {} not applied by this version yet",
                extras.join(" and "),
                if extras.len() == 1 { "is" } else { "are" }
            )
        };
        let Some(rate_limit) = &spec.rate_limit else {
            let message = format!("loaded; no rate limits{not_applied}");
            cx.status.push(
                key,
                Condition::ok(reason::ACCEPTED, reason::ACCEPTED, message),
            );
            continue;
        };
        if rate_limit.local.is_some() {
            cx.status.push(
                key,
                Condition::fail(
                    reason::ACCEPTED,
                    reason::UNSUPPORTED_VALUE,
                    "local rate limits are not supported; use rateLimit.global",
                )
                .scoped("rateLimit.local"),
            );
        }
        let Some(global) = &rate_limit.global else {
            continue;
        };
        if cx.options.ratelimit.is_none() {
            cx.status.push(
                key,
                Condition::fail(
                    reason::ACCEPTED,
                    reason::NO_RATELIMIT_SERVICE,
                    "no rate limit service is configured (xds-server --ratelimit HOST:PORT); these limits are not enforced",
                ),
            );
            continue;
        }
        let targets = resolve_targets(
            cx,
            key,
            spec.target_ref.iter().chain(&spec.target_refs),
            true,
        );
        if !spec.target_selectors.is_empty() {
            cx.status.push(
                key,
                Condition::fail(
                    reason::ACCEPTED,
                    reason::UNSUPPORTED_VALUE,
                    "targetSelectors are not supported; use targetRefs",
                )
                .scoped("targetSelectors"),
            );
        }
        if targets.is_empty() {
            continue;
        }
        let defined = defined_cost_keys(cx, &targets);
        let mut limits = Vec::new();
        let mut applied = 0;
        for (i, rule) in global.rules.iter().enumerate() {
            let id = format!("{}/{i}", key.namespaced_name());
            match compile_rule(&id, rule, &defined) {
                Ok(descriptors) => {
                    applied += 1;
                    limits.extend(descriptors);
                }
                Err(message) => cx.status.push(
                    key,
                    Condition::fail(reason::ACCEPTED, reason::INVALID, message)
                        .scoped(format!("rateLimit.global.rules[{i}]")),
                ),
            }
        }
        let names: Vec<String> = targets
            .iter()
            .map(|t| match t {
                Target::Route(k) => format!("{} {}", k.kind, k.namespaced_name()),
                Target::Gateway(k, None) => format!("Gateway {}", k.namespaced_name()),
                Target::Gateway(k, Some(s)) => {
                    format!("Gateway {} listener {s}", k.namespaced_name())
                }
            })
            .collect();
        if applied > 0 {
            let message = format!(
                "{applied} of {} rate limit rule(s) applied to {}{not_applied}",
                global.rules.len(),
                names.join(", ")
            );
            cx.status.push(
                key,
                Condition::ok(reason::ACCEPTED, reason::ACCEPTED, message),
            );
        }
        if limits.is_empty() {
            continue;
        }
        for target in targets {
            match target {
                Target::Route(route) => out.routes.entry(route).or_default().extend(limits.clone()),
                Target::Gateway(gateway, section) => out
                    .gateways
                    .entry(gateway)
                    .or_default()
                    .push((section, limits.clone())),
            }
        }
    }
    out
}

/// The targets of a policy that exist; with `report`, the others are conditions on it.
pub(super) fn resolve_targets<'a>(
    cx: &mut Cx<'_>,
    policy: &ObjectKey,
    refs: impl Iterator<Item = &'a LocalPolicyTargetReferenceWithSectionName>,
    report: bool,
) -> Vec<Target> {
    let snapshot = cx.snapshot;
    let ns = &policy.namespace;
    let mut targets = Vec::new();
    for target in refs {
        let scope = format!("targetRef {}/{}", target.kind, target.name);
        let found: Vec<Target> = match (target.group.as_str(), target.kind.as_str()) {
            ("gateway.networking.k8s.io", "Gateway") => snapshot
                .gateway(ns, &target.name)
                .map(|_| {
                    Target::Gateway(
                        ObjectKey::new(Kind::Gateway, ns, &target.name),
                        target.section_name.clone(),
                    )
                })
                .into_iter()
                .collect(),
            // Envoy AI Gateway turns an AIGatewayRoute into an HTTPRoute of the same name, so
            // policies written for it target `HTTPRoute <name>`: both are matched.
            ("gateway.networking.k8s.io", "HTTPRoute") => {
                let mut found = Vec::new();
                if snapshot.http_route(ns, &target.name).is_some() {
                    found.push(Target::Route(ObjectKey::new(
                        Kind::HTTPRoute,
                        ns,
                        &target.name,
                    )));
                }
                if snapshot.ai_gateway_route(ns, &target.name).is_some() {
                    found.push(Target::Route(ObjectKey::new(
                        Kind::AIGatewayRoute,
                        ns,
                        &target.name,
                    )));
                }
                found
            }
            ("aigateway.envoyproxy.io", "AIGatewayRoute") => snapshot
                .ai_gateway_route(ns, &target.name)
                .map(|_| Target::Route(ObjectKey::new(Kind::AIGatewayRoute, ns, &target.name)))
                .into_iter()
                .collect(),
            (group, kind) => {
                let message = format!(
                    "target kind {group}/{kind} is not supported; target a Gateway, HTTPRoute or AIGatewayRoute"
                );
                if report {
                    cx.status.push(
                        policy,
                        Condition::fail(reason::ACCEPTED, reason::INVALID_KIND, message)
                            .scoped(scope),
                    );
                }
                continue;
            }
        };
        if found.is_empty() && report {
            let message = format!("{} {ns}/{} does not exist", target.kind, target.name);
            cx.status.push(
                policy,
                Condition::fail(reason::ACCEPTED, reason::TARGET_NOT_FOUND, message).scoped(scope),
            );
        }
        targets.extend(found);
    }
    targets
}

/// The `llmRequestCosts` metadata keys of the AIGatewayRoutes a policy reaches.
fn defined_cost_keys(cx: &Cx<'_>, targets: &[Target]) -> BTreeSet<String> {
    let snapshot = cx.snapshot;
    let mut keys = BTreeSet::new();
    for (route_key, route) in snapshot.ai_gateway_routes() {
        let reached = targets.iter().any(|t| match t {
            Target::Route(k) => k == route_key,
            Target::Gateway(gateway, _) => route.spec.parent_refs.iter().any(|p| {
                p.name == gateway.name
                    && p.namespace.as_deref().unwrap_or(&route_key.namespace) == gateway.namespace
            }),
        });
        if reached {
            keys.extend(
                route
                    .spec
                    .llm_request_costs
                    .iter()
                    .map(|c| c.metadata_key.clone()),
            );
        }
    }
    keys
}

/// One rule → its descriptors, or what is wrong with it.
fn compile_rule(
    id: &str,
    rule: &RateLimitRule,
    defined: &BTreeSet<String>,
) -> Result<Vec<RateLimitIr>, String> {
    if rule.limit.from_metadata.is_some() {
        return Err("limit.fromMetadata is not supported; set limit.requests".into());
    }
    let mut entries = vec![
        fixed(RATELIMIT_ENTRY_RULE, id),
        fixed(
            RATELIMIT_ENTRY_LIMIT,
            &format!("{}/{}", rule.limit.requests, unit(rule.limit.unit)),
        ),
    ];
    if rule.shadow_mode == Some(true) {
        entries.push(fixed(RATELIMIT_ENTRY_SHADOW, RATELIMIT_SHADOW_TRUE));
    }
    for (i, selector) in rule.client_selectors.iter().enumerate() {
        selector_entries(selector, &mut entries)
            .map_err(|message| format!("clientSelectors[{i}]: {message}"))?;
    }
    let cost = rule.cost.as_ref();
    let response = cost.and_then(|c| c.response.as_ref());
    let request = match cost.and_then(|c| c.request.as_ref()) {
        Some(spec) => hits(spec).map_err(|m| format!("cost.request: {m}"))?,
        // A token budget charges on the response; a plain limit counts requests.
        None if response.is_some() => HitsIr::Number(0),
        None => HitsIr::Number(1),
    };
    let mut out = Vec::new();
    let Some(response) = response else {
        out.push(descriptor(entries, request, false));
        return Ok(out);
    };
    let response_hits = hits(response).map_err(|m| format!("cost.response: {m}"))?;
    let metadata = response
        .metadata
        .as_ref()
        .filter(|_| response.from == RateLimitCostFrom::Metadata);
    match metadata {
        Some(m) if m.namespace == AI_GATEWAY_METADATA_NAMESPACE => {
            if !defined.contains(&m.key) {
                let known: Vec<&str> = defined.iter().map(String::as_str).collect();
                return Err(format!(
                    "cost.response.metadata.key {:?} is not defined by the llmRequestCosts of any AIGatewayRoute this policy reaches (defined: {})",
                    m.key,
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ));
            }
            if request != HitsIr::Number(0) {
                out.push(descriptor(entries.clone(), request, false));
            }
            let mut reserve = entries.clone();
            reserve.push(fixed(RATELIMIT_ENTRY_MODE, RATELIMIT_MODE_RESERVE));
            let estimate = format!("{}{METADATA_RESERVE_SUFFIX}", m.key);
            out.push(descriptor(
                reserve,
                HitsIr::Format(metadata_format(AI_GATEWAY_METADATA_NAMESPACE, &estimate)),
                false,
            ));
            let mut settle = entries;
            settle.push(fixed(RATELIMIT_ENTRY_MODE, RATELIMIT_MODE_SETTLE));
            settle.push(DescriptorEntryIr::Metadata {
                key: RATELIMIT_ENTRY_RESERVED.into(),
                namespace: AI_GATEWAY_METADATA_NAMESPACE.into(),
                metadata_key: format!("{}{METADATA_RESERVED_SUFFIX}", m.key),
            });
            out.push(descriptor(settle, response_hits, true));
        }
        _ => {
            // Counted as Envoy Gateway counts: checked at request time, charged at stream end.
            out.push(descriptor(entries.clone(), request, false));
            out.push(descriptor(entries, response_hits, true));
        }
    }
    Ok(out)
}

fn descriptor(entries: Vec<DescriptorEntryIr>, hits: HitsIr, on_stream_done: bool) -> RateLimitIr {
    RateLimitIr {
        entries,
        hits,
        on_stream_done,
    }
}

fn fixed(key: &str, value: &str) -> DescriptorEntryIr {
    DescriptorEntryIr::Fixed {
        key: key.into(),
        value: value.into(),
    }
}

fn metadata_format(namespace: &str, key: &str) -> String {
    format!("%DYNAMIC_METADATA({namespace}:{key})%")
}

fn hits(spec: &RateLimitCostSpecifier) -> Result<HitsIr, String> {
    match spec.from {
        RateLimitCostFrom::Number => Ok(HitsIr::Number(spec.number.unwrap_or(1))),
        RateLimitCostFrom::Metadata => {
            let m = spec
                .metadata
                .as_ref()
                .ok_or("from: Metadata needs metadata.namespace and metadata.key")?;
            if m.namespace.is_empty() || m.key.is_empty() {
                return Err("metadata.namespace and metadata.key must not be empty".into());
            }
            if m.namespace.contains([':', ')', '%']) || m.key.contains([':', ')', '%']) {
                return Err(
                    "metadata.namespace and metadata.key cannot contain ':', ')' or '%'".into(),
                );
            }
            Ok(HitsIr::Format(metadata_format(&m.namespace, &m.key)))
        }
    }
}

fn unit(unit: RateLimitUnit) -> &'static str {
    match unit {
        RateLimitUnit::Second => "second",
        RateLimitUnit::Minute => "minute",
        RateLimitUnit::Hour => "hour",
        RateLimitUnit::Day => "day",
        RateLimitUnit::Week => "week",
        RateLimitUnit::Month => "month",
        RateLimitUnit::Year => "year",
    }
}

fn selector_entries(
    selector: &RateLimitSelectCondition,
    entries: &mut Vec<DescriptorEntryIr>,
) -> Result<(), String> {
    if selector.source_cidr.is_some() {
        return Err("sourceCIDR is not supported yet".into());
    }
    if !selector.query_params.is_empty() {
        return Err("queryParams are not supported yet".into());
    }
    for header in &selector.headers {
        entries.push(header_entry(header)?);
    }
    if !selector.methods.is_empty() {
        if selector.methods.iter().any(|m| m.invert == Some(true)) {
            return Err("inverted method matches are not supported".into());
        }
        let mut names = Vec::new();
        for m in &selector.methods {
            if m.value.is_empty() || !m.value.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(format!("method {:?} is not an HTTP method", m.value));
            }
            names.push(m.value.to_ascii_uppercase());
        }
        entries.push(DescriptorEntryIr::HeaderMatch {
            key: ":method".into(),
            value: names.join("|"),
            header: ":method".into(),
            matcher: StringMatchIr::Regex(format!("^({})$", names.join("|"))),
            expect_match: true,
        });
    }
    if let Some(path) = &selector.path {
        let escaped = regex_escape(&path.value);
        let pattern = match path.type_.as_deref().unwrap_or("PathPrefix") {
            "Exact" => format!("^{escaped}([?#].*)?$"),
            "PathPrefix" => format!(
                "^{}(/.*)?([?#].*)?$",
                regex_escape(path.value.trim_end_matches('/'))
            ),
            "RegularExpression" => {
                super::regex_check::check(&path.value).map_err(|e| format!("path: {e}"))?;
                path.value.clone()
            }
            other => return Err(format!("path type {other:?} is not supported")),
        };
        entries.push(DescriptorEntryIr::HeaderMatch {
            key: ":path".into(),
            value: path.value.clone(),
            header: ":path".into(),
            matcher: StringMatchIr::Regex(pattern),
            expect_match: path.invert != Some(true),
        });
    }
    Ok(())
}

fn header_entry(header: &RateLimitHeaderMatch) -> Result<DescriptorEntryIr, String> {
    let name = header.name.to_ascii_lowercase();
    if name.is_empty() {
        return Err("a header match needs a name".into());
    }
    let invert = header.invert == Some(true);
    match header.type_.unwrap_or_default() {
        RateLimitMatchType::Distinct => {
            if invert {
                return Err(format!(
                    "header {name}: invert is not supported with type Distinct"
                ));
            }
            Ok(DescriptorEntryIr::RequestHeader {
                header: name.clone(),
                key: name,
            })
        }
        kind => {
            let value = header
                .value
                .clone()
                .ok_or_else(|| format!("header {name}: type {kind:?} needs a value"))?;
            let matcher = match kind {
                RateLimitMatchType::RegularExpression => {
                    super::regex_check::check(&value).map_err(|e| format!("header {name}: {e}"))?;
                    StringMatchIr::Regex(value.clone())
                }
                _ => StringMatchIr::Exact(value.clone()),
            };
            Ok(DescriptorEntryIr::HeaderMatch {
                key: name.clone(),
                value,
                header: name,
                matcher,
                expect_match: !invert,
            })
        }
    }
}

/// Escapes RE2 metacharacters.
fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use infergate_crds::envoy_gateway::{MetadataKey, RateLimitCost, RateLimitValue};

    fn token_rule(key: &str) -> RateLimitRule {
        RateLimitRule {
            client_selectors: vec![RateLimitSelectCondition {
                headers: vec![RateLimitHeaderMatch {
                    type_: Some(RateLimitMatchType::Distinct),
                    name: "x-user-id".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            limit: RateLimitValue {
                requests: 100,
                unit: RateLimitUnit::Minute,
                from_metadata: None,
            },
            cost: Some(RateLimitCost {
                request: Some(RateLimitCostSpecifier {
                    from: RateLimitCostFrom::Number,
                    number: Some(0),
                    metadata: None,
                }),
                response: Some(RateLimitCostSpecifier {
                    from: RateLimitCostFrom::Metadata,
                    number: None,
                    metadata: Some(MetadataKey {
                        namespace: AI_GATEWAY_METADATA_NAMESPACE.into(),
                        key: key.into(),
                    }),
                }),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_token_budget_reserves_at_request_time_and_settles_at_stream_end() {
        let defined = BTreeSet::from(["llm_total_token".to_string()]);
        let out = compile_rule("default/p/0", &token_rule("llm_total_token"), &defined)
            .expect("compiles");
        assert_eq!(out.len(), 2, "{out:#?}");
        assert!(!out[0].on_stream_done);
        assert_eq!(
            out[0].hits,
            HitsIr::Format(
                "%DYNAMIC_METADATA(io.envoy.ai_gateway:llm_total_token.reserve)%".into()
            )
        );
        assert!(
            out[0]
                .entries
                .contains(&fixed(RATELIMIT_ENTRY_MODE, RATELIMIT_MODE_RESERVE))
        );
        assert!(out[1].on_stream_done);
        assert_eq!(
            out[1].hits,
            HitsIr::Format("%DYNAMIC_METADATA(io.envoy.ai_gateway:llm_total_token)%".into())
        );
        assert!(out[1].entries.contains(&DescriptorEntryIr::Metadata {
            key: RATELIMIT_ENTRY_RESERVED.into(),
            namespace: AI_GATEWAY_METADATA_NAMESPACE.into(),
            metadata_key: "llm_total_token.reserved".into(),
        }));
        assert_eq!(out[0].entries[..3], out[1].entries[..3], "same counter");
    }

    #[test]
    fn a_cost_key_no_route_defines_is_named_in_the_error() {
        let defined = BTreeSet::from(["llm_total_token".to_string()]);
        let err = compile_rule("default/p/0", &token_rule("llm_typo_token"), &defined)
            .expect_err("rejected");
        assert!(
            err.contains("llm_typo_token") && err.contains("llm_total_token"),
            "{err}"
        );
    }

    #[test]
    fn a_plain_rule_counts_one_per_request() {
        let rule = RateLimitRule {
            limit: RateLimitValue {
                requests: 5,
                unit: RateLimitUnit::Second,
                from_metadata: None,
            },
            ..Default::default()
        };
        let out = compile_rule("ns/p/1", &rule, &BTreeSet::new()).expect("compiles");
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].hits, HitsIr::Number(1));
        assert_eq!(out[0].entries[1], fixed(RATELIMIT_ENTRY_LIMIT, "5/second"));
    }

    #[test]
    fn unsupported_selectors_are_errors() {
        let mut rule = token_rule("k");
        rule.client_selectors[0]
            .query_params
            .push(RateLimitHeaderMatch {
                name: "q".into(),
                ..Default::default()
            });
        let err = compile_rule("a/b/0", &rule, &BTreeSet::from(["k".into()])).expect_err("bad");
        assert!(
            err.contains("clientSelectors[0]") && err.contains("queryParams"),
            "{err}"
        );
    }

    #[test]
    fn exact_headers_and_methods_become_matches() {
        let mut rule = token_rule("k");
        rule.client_selectors[0].headers = vec![RateLimitHeaderMatch {
            type_: Some(RateLimitMatchType::Exact),
            name: "x-ai-eg-model".into(),
            value: Some("gpt-4o".into()),
            invert: None,
        }];
        rule.client_selectors[0].methods =
            vec![infergate_crds::envoy_gateway::RateLimitMethodMatch {
                value: "post".into(),
                invert: None,
            }];
        let out = compile_rule("a/b/0", &rule, &BTreeSet::from(["k".into()])).expect("ok");
        assert!(out[0].entries.contains(&DescriptorEntryIr::HeaderMatch {
            key: "x-ai-eg-model".into(),
            value: "gpt-4o".into(),
            header: "x-ai-eg-model".into(),
            matcher: StringMatchIr::Exact("gpt-4o".into()),
            expect_match: true,
        }));
        assert!(out[0].entries.iter().any(|e| matches!(e,
            DescriptorEntryIr::HeaderMatch { header, matcher: StringMatchIr::Regex(r), .. }
                if header == ":method" && r == "^(POST)$")));
    }
}
