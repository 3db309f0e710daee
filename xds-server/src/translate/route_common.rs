//! What HTTPRoute and AIGatewayRoute translation share: names, rule timeouts, the route summary.

use std::time::Duration;

use super::assemble::RouteModel;
use super::attach::ListenerRef;
use super::{Cx, duration};
use crate::object::ObjectKey;
use crate::status::{Condition, reason};

/// `kind/namespace/name` in lower case: the prefix of route and cluster names.
pub fn route_name(key: &ObjectKey) -> String {
    format!(
        "{}/{}",
        key.kind.as_str().to_ascii_lowercase(),
        key.namespaced_name()
    )
}

impl RouteModel {
    pub fn new(
        key: &ObjectKey,
        created: Option<String>,
        hostnames: Vec<String>,
        attached: Vec<ListenerRef>,
        ai: bool,
    ) -> Self {
        RouteModel {
            key: key.clone(),
            created,
            hostnames,
            attached,
            rules: Vec::new(),
            clusters: Vec::new(),
            endpoints: Vec::new(),
            ai,
        }
    }
}

/// A rule's `request` and `backendRequest` timeouts. A malformed one is a condition on the rule
/// and `None`: the rule is not served.
pub fn rule_timeouts(
    cx: &mut Cx<'_>,
    key: &ObjectKey,
    scope: &str,
    request: Option<&str>,
    backend_request: Option<&str>,
) -> Option<(Option<Duration>, Option<Duration>)> {
    let mut parse = |value: Option<&str>| -> Result<Option<Duration>, ()> {
        let Some(value) = value else { return Ok(None) };
        duration::parse(value).map(Some).ok_or_else(|| {
            let message = format!(
                "timeout {value:?} is not a valid duration (e.g. 30s, 1m, 500ms); the rule is not served"
            );
            let condition = Condition::fail(reason::ACCEPTED, reason::UNSUPPORTED_VALUE, message);
            cx.status.push(key, condition.scoped(scope));
        })
    };
    Some((parse(request).ok()?, parse(backend_request).ok()?))
}

/// The route-level `ResolvedRefs=True` when no rule reported an unresolved reference.
pub fn report_resolved(cx: &mut Cx<'_>, key: &ObjectKey, all_resolved: bool) {
    if all_resolved {
        let condition = Condition::ok(
            reason::RESOLVED_REFS,
            reason::RESOLVED_REFS,
            "all references resolved",
        );
        cx.status.push(key, condition);
    }
}
