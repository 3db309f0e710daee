//! Route parentRefs → the Gateway listeners a route attaches to.

use std::collections::BTreeMap;

use infergate_crds::refs::ParentReference;

use super::Cx;
use super::gateway::{self, GatewayModel};
use crate::object::ObjectKey;
use crate::status::{Condition, reason};

/// A listener a route attached to: indexes into the gateway list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListenerRef {
    pub gateway: usize,
    pub listener: usize,
}

pub struct Attachments<'g> {
    gateways: &'g [GatewayModel],
    by_key: BTreeMap<(String, String), usize>,
}

impl<'g> Attachments<'g> {
    pub fn new(gateways: &'g [GatewayModel]) -> Self {
        let by_key = gateways
            .iter()
            .enumerate()
            .map(|(i, g)| ((g.key.namespace.clone(), g.key.name.clone()), i))
            .collect();
        Attachments { gateways, by_key }
    }

    /// Resolves every parentRef of `route`, writing one `Accepted` condition per parent.
    pub fn attach(
        &self,
        cx: &mut Cx<'_>,
        route: &ObjectKey,
        parents: &[ParentReference],
        hostnames: &[String],
    ) -> Vec<ListenerRef> {
        let mut attached = Vec::new();
        if parents.is_empty() {
            let message = "no parentRefs: the route is not attached to any Gateway";
            cx.status.push(
                route,
                Condition::fail(reason::ACCEPTED, reason::NO_MATCHING_PARENT, message),
            );
        }
        for parent in parents {
            let namespace = parent
                .namespace
                .clone()
                .unwrap_or_else(|| route.namespace.clone());
            let scope = format!("parent Gateway {namespace}/{}", parent.name);
            let kind = parent.kind.as_deref().unwrap_or("Gateway");
            let group = parent
                .group
                .as_deref()
                .unwrap_or("gateway.networking.k8s.io");
            if kind != "Gateway" || group != "gateway.networking.k8s.io" {
                let message =
                    format!("parentRef kind {group}/{kind} is not supported; use a Gateway");
                cx.status.push(
                    route,
                    Condition::fail(reason::ACCEPTED, reason::INVALID_KIND, message).scoped(scope),
                );
                continue;
            }
            match self.attach_one(route, parent, &namespace, hostnames) {
                Ok(listeners) => {
                    let names: Vec<&str> = listeners
                        .iter()
                        .map(|l| self.gateways[l.gateway].listeners[l.listener].name.as_str())
                        .collect();
                    let message = format!("attached to listener(s) {}", names.join(", "));
                    cx.status.push(
                        route,
                        Condition::ok(reason::ACCEPTED, reason::ACCEPTED, message).scoped(scope),
                    );
                    attached.extend(listeners);
                }
                Err((why, message)) => {
                    cx.status.push(
                        route,
                        Condition::fail(reason::ACCEPTED, why, message).scoped(scope),
                    );
                }
            }
        }
        attached.sort();
        attached.dedup();
        attached
    }

    fn attach_one(
        &self,
        route: &ObjectKey,
        parent: &ParentReference,
        namespace: &str,
        hostnames: &[String],
    ) -> Result<Vec<ListenerRef>, (&'static str, String)> {
        let Some(&gateway) = self
            .by_key
            .get(&(namespace.to_string(), parent.name.clone()))
        else {
            let message = format!(
                "Gateway {namespace}/{} not found or not accepted",
                parent.name
            );
            return Err((reason::NO_MATCHING_PARENT, message));
        };
        let model = &self.gateways[gateway];
        let mut refusals = Vec::new();
        let mut listeners = Vec::new();
        for (index, listener) in model.listeners.iter().enumerate() {
            if parent
                .section_name
                .as_ref()
                .is_some_and(|s| *s != listener.name)
            {
                continue;
            }
            if parent
                .port
                .is_some_and(|p| i64::from(p) != i64::from(listener.port))
            {
                continue;
            }
            if !listener.valid {
                refusals.push(format!("listener {} is not valid", listener.name));
                continue;
            }
            if let Err(why) = gateway::allows(listener, &model.key, route.kind, &route.namespace) {
                refusals.push(why);
                continue;
            }
            if !hostnames.is_empty()
                && !hostnames
                    .iter()
                    .any(|h| hostnames_intersect(listener.hostname.as_deref(), h))
            {
                refusals.push(format!(
                    "no route hostname matches listener {}",
                    listener.name
                ));
                continue;
            }
            listeners.push(ListenerRef {
                gateway,
                listener: index,
            });
        }
        if listeners.is_empty() {
            let message = if refusals.is_empty() {
                "no listener matches the parentRef's sectionName/port".to_string()
            } else {
                refusals.join("; ")
            };
            return Err((reason::NOT_ALLOWED_BY_LISTENERS, message));
        }
        Ok(listeners)
    }
}

/// Gateway API hostname intersection: `None` (any) matches everything; `*.example.com` matches
/// one or more labels in front of `example.com`.
pub fn hostnames_intersect(listener: Option<&str>, route: &str) -> bool {
    let Some(listener) = listener else {
        return true;
    };
    let matches = |pattern: &str, host: &str| match pattern.strip_prefix("*.") {
        Some(suffix) => host.len() > suffix.len() + 1 && host.ends_with(&format!(".{suffix}")),
        None => pattern.eq_ignore_ascii_case(host),
    };
    matches(listener, route) || matches(route, listener) || listener == route
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostname_intersection_follows_gateway_api() {
        assert!(hostnames_intersect(None, "a.example.com"));
        assert!(hostnames_intersect(Some("a.example.com"), "a.example.com"));
        assert!(hostnames_intersect(Some("*.example.com"), "a.example.com"));
        assert!(hostnames_intersect(Some("a.example.com"), "*.example.com"));
        assert!(!hostnames_intersect(Some("*.example.com"), "example.com"));
        assert!(!hostnames_intersect(Some("a.example.com"), "b.example.com"));
    }
}
