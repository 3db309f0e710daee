//! Which Gateways reach each InferencePool: the Gateways that accepted a route (HTTPRoute or
//! AIGatewayRoute) with a backendRef to the pool. The pool's `status.parents` lists them.
//!
//! Read from the routes' `parent Gateway ns/name` `Accepted` conditions, so it follows
//! attachment exactly as the route translation decided it.

use std::collections::{BTreeMap, BTreeSet};

use super::pool::{POOL_GROUP, POOL_KIND};
use crate::index::IndexSnapshot;
use crate::object::{Kind, ObjectKey};
use crate::status::{StatusReport, reason};

const PARENT_SCOPE: &str = "parent Gateway ";

/// Pool key → the `namespace/name` of every Gateway that reaches it.
pub(crate) fn collect(
    snapshot: &IndexSnapshot,
    status: &StatusReport,
) -> BTreeMap<ObjectKey, BTreeSet<String>> {
    let mut parents: BTreeMap<ObjectKey, BTreeSet<String>> = BTreeMap::new();
    let http = snapshot.http_routes().map(|(key, route)| {
        let pools = route
            .spec
            .rules
            .iter()
            .flatten()
            .flat_map(|rule| rule.backend_refs.iter().flatten())
            .filter(|r| {
                r.kind.as_deref() == Some(POOL_KIND) && r.group.as_deref() == Some(POOL_GROUP)
            })
            .map(|r| pool_key(key, r.namespace.as_deref(), &r.name))
            .collect::<Vec<_>>();
        (key, pools)
    });
    let ai = snapshot.ai_gateway_routes().map(|(key, route)| {
        let pools = route
            .spec
            .rules
            .iter()
            .flat_map(|rule| &rule.backend_refs)
            .filter(|r| r.kind.as_deref() == Some(POOL_KIND))
            .map(|r| pool_key(key, r.namespace.as_deref(), &r.name))
            .collect::<Vec<_>>();
        (key, pools)
    });
    for (route, pools) in http.chain(ai) {
        let gateways = accepted_parents(status, route);
        for pool in pools {
            if snapshot
                .inference_pool(&pool.namespace, &pool.name)
                .is_some()
            {
                parents
                    .entry(pool)
                    .or_default()
                    .extend(gateways.iter().cloned());
            }
        }
    }
    parents
}

fn pool_key(route: &ObjectKey, namespace: Option<&str>, name: &str) -> ObjectKey {
    ObjectKey::new(
        Kind::InferencePool,
        namespace.unwrap_or(&route.namespace),
        name,
    )
}

/// The Gateways that accepted `route`.
fn accepted_parents(status: &StatusReport, route: &ObjectKey) -> Vec<String> {
    let Some(object) = status.objects.get(route) else {
        return Vec::new();
    };
    object
        .conditions
        .iter()
        .filter(|c| c.type_ == reason::ACCEPTED && c.status)
        .filter_map(|c| c.scope.as_deref()?.strip_prefix(PARENT_SCOPE))
        .map(str::to_string)
        .collect()
}
