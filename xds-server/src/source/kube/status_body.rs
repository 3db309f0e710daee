//! The `status` the Kubernetes source writes back for an object, built from its conditions
//! in the [`crate::status::StatusReport`] (pure; the writer stamps transition times).
//!
//! - Gateway, AIServiceBackend, BackendSecurityPolicy: `status.conditions` from the object's
//!   unscoped conditions (a Gateway's per-listener conditions stay in `/status`).
//! - HTTPRoute, AIGatewayRoute: `status.parents`, one per `parent Gateway ns/name` scope, each
//!   with that parent's conditions plus the route's unscoped ones.
//! - InferencePool: `status.parents`, one per Gateway that accepted a route sending to the pool
//!   ([`crate::status::StatusReport::pool_parents`]), each with all the pool's conditions (an
//!   empty list when no Gateway reaches it).
//! - Conditions of one type are merged into one (Kubernetes keys conditions by type): the
//!   failure wins, with the failing messages joined.

use serde_json::{Value, json};

use crate::object::{Kind, ObjectKey};
use crate::status::{Condition, StatusReport, reason};

/// Server-side apply field manager.
pub const FIELD_MANAGER: &str = "infergate";

const PARENT_SCOPE: &str = "parent Gateway ";

/// The kinds whose status is written back.
pub fn writes_status(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Gateway
            | Kind::HTTPRoute
            | Kind::AIGatewayRoute
            | Kind::AIServiceBackend
            | Kind::BackendSecurityPolicy
            | Kind::InferencePool
    )
}

/// The `status` of `key` as `report` has it, without `lastTransitionTime`s; `None` for kinds
/// not written back and objects the report does not know.
pub fn status_of(key: &ObjectKey, report: &StatusReport, controller: &str) -> Option<Value> {
    let conditions = &report.objects.get(key)?.conditions;
    if key.kind != Kind::InferencePool {
        return status(key, conditions, controller);
    }
    let parents: Vec<Value> = report
        .pool_parents
        .get(key)
        .into_iter()
        .flatten()
        .map(|gateway| parent(gateway, controller, merge(conditions.iter())))
        .collect();
    Some(json!({ "parents": parents }))
}

/// One `status.parents` entry for the Gateway `namespace/name`.
fn parent(gateway: &str, controller: &str, conditions: Vec<Value>) -> Value {
    let (namespace, name) = gateway.split_once('/').unwrap_or(("", gateway));
    json!({
        "parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway",
                      "namespace": namespace, "name": name},
        "controllerName": controller,
        "conditions": conditions,
    })
}

/// The `status` of `key` from its conditions, without `lastTransitionTime`s; `None` for kinds
/// not written back and for InferencePools (see [`status_of`]).
pub fn status(key: &ObjectKey, conditions: &[Condition], controller: &str) -> Option<Value> {
    if !writes_status(key.kind) || key.kind == Kind::InferencePool {
        return None;
    }
    let unscoped = conditions.iter().filter(|c| c.scope.is_none());
    if !matches!(key.kind, Kind::HTTPRoute | Kind::AIGatewayRoute) {
        return Some(json!({ "conditions": merge(unscoped) }));
    }
    let mut parents: Vec<&str> = Vec::new();
    for c in conditions {
        if let Some(parent) = c
            .scope
            .as_deref()
            .and_then(|s| s.strip_prefix(PARENT_SCOPE))
            && !parents.contains(&parent)
        {
            parents.push(parent);
        }
    }
    let parents: Vec<Value> = parents
        .into_iter()
        .map(|gateway| {
            let scope = format!("{PARENT_SCOPE}{gateway}");
            let own = conditions
                .iter()
                .filter(|c| c.scope.as_deref() == Some(scope.as_str()) || c.scope.is_none());
            parent(gateway, controller, merge(own))
        })
        .collect();
    Some(json!({ "parents": parents }))
}

/// One Kubernetes condition per type, in first-seen order.
fn merge<'a>(conditions: impl Iterator<Item = &'a Condition>) -> Vec<Value> {
    let mut by_type: Vec<(&str, Vec<&Condition>)> = Vec::new();
    for c in conditions {
        match by_type.iter_mut().find(|(t, _)| *t == c.type_) {
            Some((_, group)) => group.push(c),
            None => by_type.push((c.type_, vec![c])),
        }
    }
    by_type
        .into_iter()
        .map(|(type_, group)| {
            // Conflicted is the one type where True is the problem.
            let bad = |c: &&Condition| (c.type_ == reason::CONFLICTED) == c.status;
            let failing: Vec<&Condition> = group.iter().copied().filter(bad).collect();
            let chosen = if failing.is_empty() { group } else { failing };
            let message: Vec<&str> = chosen.iter().map(|c| c.message.as_str()).collect();
            json!({
                "type": type_,
                "status": if chosen[0].status { "True" } else { "False" },
                "reason": chosen[0].reason,
                "message": message.join("; "),
            })
        })
        .collect()
}

/// The apply patch for the status subresource: type meta, name, namespace and `status`.
pub fn apply_patch(key: &ObjectKey, api_version: &str, status: Value) -> Value {
    let mut metadata = json!({ "name": key.name });
    if !key.namespace.is_empty() {
        metadata["namespace"] = Value::String(key.namespace.clone());
    }
    json!({ "apiVersion": api_version, "kind": key.kind.as_str(), "metadata": metadata, "status": status })
}

/// Sets `lastTransitionTime` on every condition of `status`: the time in `previous` (the last
/// status written) when the condition's type and status are unchanged, `now` otherwise.
pub fn stamp(status: &mut Value, previous: Option<&Value>, now: &str) {
    let old = |path: &[&str], type_: &Value, st: &Value| -> Option<Value> {
        let mut at = previous?;
        for p in path {
            at = at.get(p)?;
        }
        at.as_array()?
            .iter()
            .find(|c| &c["type"] == type_ && &c["status"] == st)
            .and_then(|c| c.get("lastTransitionTime").cloned())
    };
    let fill = |conditions: &mut Value, path: &[&str]| {
        for c in conditions.as_array_mut().into_iter().flatten() {
            let time = old(path, &c["type"], &c["status"]).unwrap_or_else(|| now.into());
            c["lastTransitionTime"] = time;
        }
    };
    if let Some(conditions) = status.get_mut("conditions") {
        fill(conditions, &["conditions"]);
    }
    let previous_parents = previous
        .and_then(|p| p.get("parents"))
        .and_then(Value::as_array);
    for parent in status
        .get_mut("parents")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        let matching = previous_parents
            .and_then(|ps| ps.iter().find(|p| p["parentRef"] == parent["parentRef"]))
            .cloned();
        let mut conditions = parent["conditions"].take();
        for c in conditions.as_array_mut().into_iter().flatten() {
            let time = matching
                .as_ref()
                .and_then(|p| p["conditions"].as_array())
                .and_then(|cs| {
                    cs.iter()
                        .find(|o| o["type"] == c["type"] && o["status"] == c["status"])
                })
                .and_then(|o| o.get("lastTransitionTime").cloned())
                .unwrap_or_else(|| now.into());
            c["lastTransitionTime"] = time;
        }
        parent["conditions"] = conditions;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route_conditions() -> Vec<Condition> {
        vec![
            Condition::ok(reason::ACCEPTED, reason::ACCEPTED, "attached")
                .scoped("parent Gateway default/gw"),
            Condition::ok(reason::RESOLVED_REFS, reason::RESOLVED_REFS, "all resolved"),
            Condition::fail(
                reason::RESOLVED_REFS,
                reason::BACKEND_NOT_FOUND,
                "b missing",
            )
            .scoped("rule 0 backendRef 1"),
        ]
    }

    #[test]
    fn route_status_has_a_parent_per_gateway_with_merged_conditions() {
        let key = ObjectKey::new(Kind::HTTPRoute, "default", "r");
        let status =
            status(&key, &route_conditions(), "infergate.io/gateway-controller").expect("route");
        let parent = &status["parents"][0];
        assert_eq!(parent["parentRef"]["name"], "gw");
        assert_eq!(parent["controllerName"], "infergate.io/gateway-controller");
        let conditions = parent["conditions"].as_array().expect("conditions");
        assert_eq!(conditions.len(), 2, "{conditions:?}");
        assert_eq!(conditions[0]["type"], "Accepted");
        // Only the unscoped ResolvedRefs counts for the parent; the rule-scoped one is not its.
        assert_eq!(conditions[1]["status"], "True");
    }

    #[test]
    fn the_failure_wins_when_conditions_of_a_type_disagree() {
        let key = ObjectKey::new(Kind::AIServiceBackend, "default", "b");
        let conditions = vec![
            Condition::ok(reason::ACCEPTED, reason::ACCEPTED, "fine"),
            Condition::fail(reason::ACCEPTED, reason::INVALID, "bad"),
        ];
        let status = status(&key, &conditions, "c").expect("written");
        assert_eq!(status["conditions"][0]["status"], "False");
        assert_eq!(status["conditions"][0]["reason"], "Invalid");
        assert_eq!(status["conditions"][0]["message"], "bad");
    }

    #[test]
    fn unchanged_conditions_keep_their_transition_time() {
        let key = ObjectKey::new(Kind::Gateway, "default", "gw");
        let ok = vec![Condition::ok(reason::ACCEPTED, reason::ACCEPTED, "ok")];
        let mut first = status(&key, &ok, "c").expect("gateway");
        stamp(&mut first, None, "T1");
        let mut again = status(&key, &ok, "c").expect("gateway");
        stamp(&mut again, Some(&first), "T2");
        assert_eq!(again["conditions"][0]["lastTransitionTime"], "T1");
        let failed = vec![Condition::fail(reason::ACCEPTED, reason::INVALID, "no")];
        let mut changed = status(&key, &failed, "c").expect("gateway");
        stamp(&mut changed, Some(&again), "T3");
        assert_eq!(changed["conditions"][0]["lastTransitionTime"], "T3");
        assert!(status(&ObjectKey::new(Kind::Secret, "default", "s"), &ok, "c").is_none());
    }

    #[test]
    fn a_pools_parents_are_the_gateways_that_reach_it_each_with_the_pools_conditions() {
        let pool = ObjectKey::new(Kind::InferencePool, "default", "mistral");
        let mut report = StatusReport::default();
        report.push(
            &pool,
            Condition::ok(reason::ACCEPTED, reason::ACCEPTED, "served"),
        );
        report.push(
            &pool,
            Condition::ok(reason::RESOLVED_REFS, reason::NO_READY_PODS, "no pod")
                .scoped("selector"),
        );
        let pool_status = status_of(&pool, &report, "c").expect("pool");
        assert_eq!(
            pool_status,
            json!({"parents": []}),
            "no Gateway reaches it yet"
        );
        report.pool_parents.insert(
            pool.clone(),
            ["default/gw".to_string(), "infra/edge".to_string()].into(),
        );
        let pool_status = status_of(&pool, &report, "c").expect("pool");
        let parents = pool_status["parents"].as_array().expect("parents");
        assert_eq!(parents.len(), 2);
        assert_eq!(parents[1]["parentRef"]["namespace"], "infra");
        assert_eq!(parents[1]["parentRef"]["name"], "edge");
        assert_eq!(parents[0]["conditions"][1]["reason"], "NoReadyPods");
        assert!(status(&pool, &report.objects[&pool].conditions, "c").is_none());
    }
}
