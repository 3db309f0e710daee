//! GatewayClasses and Gateways → the listeners we will serve, with their conditions.

use std::collections::BTreeMap;

use gateway_api::gateways::{Gateway, GatewayListenersAllowedRoutes};

use super::Cx;
use crate::object::{Kind, ObjectKey};
use crate::status::{Condition, reason};

/// A Gateway we serve.
#[derive(Debug)]
pub struct GatewayModel {
    pub key: ObjectKey,
    pub listeners: Vec<ListenerModel>,
}

/// One Gateway listener.
#[derive(Debug)]
pub struct ListenerModel {
    pub name: String,
    /// The port Envoy binds (after the privileged-port offset).
    pub port: u16,
    pub hostname: Option<String>,
    pub allowed_routes: Option<GatewayListenersAllowedRoutes>,
    /// False when conflicted or unsupported: routes cannot attach to it.
    pub valid: bool,
}

pub fn resolve(cx: &mut Cx<'_>) -> Vec<GatewayModel> {
    let managed = managed_classes(cx);
    let mut gateways = Vec::new();
    // (address, port) → gateway that owns it, for conflicts across Gateways.
    let mut port_owner: BTreeMap<u16, ObjectKey> = BTreeMap::new();
    let snapshot = cx.snapshot;
    for (key, gateway) in snapshot.gateways() {
        let class = &gateway.spec.gateway_class_name;
        if !managed.contains_key(class) {
            let message = if snapshot.gateway_class("", class).is_some() {
                format!("GatewayClass {class} is managed by another controller")
            } else {
                format!("GatewayClass {class} not found")
            };
            cx.status.push(
                key,
                Condition::fail(reason::ACCEPTED, reason::INVALID_PARAMETERS, message),
            );
            continue;
        }
        let model = listeners(cx, key, gateway, &mut port_owner);
        let valid = model.listeners.iter().filter(|l| l.valid).count();
        if valid == 0 {
            cx.status.push(
                key,
                Condition::fail(
                    reason::ACCEPTED,
                    "ListenersNotValid",
                    "no listener can be served",
                ),
            );
        } else {
            cx.status.push(
                key,
                Condition::ok(reason::ACCEPTED, reason::ACCEPTED, "gateway accepted"),
            );
            let ports: Vec<String> = model
                .listeners
                .iter()
                .filter(|l| l.valid)
                .map(|l| format!("{}:{}", cx.options.listener_address, l.port))
                .collect();
            cx.status.push(
                key,
                Condition::ok(
                    reason::PROGRAMMED,
                    reason::PROGRAMMED,
                    format!("serving on {}", ports.join(", ")),
                ),
            );
        }
        gateways.push(model);
    }
    gateways
}

/// GatewayClasses whose controller we serve, with their conditions written.
fn managed_classes(cx: &mut Cx<'_>) -> BTreeMap<String, ()> {
    let mut managed = BTreeMap::new();
    for (key, class) in cx.snapshot.gateway_classes() {
        let controller = &class.spec.controller_name;
        if cx.options.controller_names.iter().any(|c| c == controller) {
            cx.status.push(
                key,
                Condition::ok(reason::ACCEPTED, reason::ACCEPTED, "gateway class accepted"),
            );
            managed.insert(key.name.clone(), ());
        } else {
            let message = format!(
                "controllerName {controller} is not served here (served: {})",
                cx.options.controller_names.join(", ")
            );
            cx.status.push(
                key,
                Condition::fail(reason::ACCEPTED, reason::NOT_MANAGED, message),
            );
        }
    }
    managed
}

fn listeners(
    cx: &mut Cx<'_>,
    key: &ObjectKey,
    gateway: &Gateway,
    port_owner: &mut BTreeMap<u16, ObjectKey>,
) -> GatewayModel {
    let mut models = Vec::new();
    // port → (protocol, hostnames) seen within this Gateway.
    let mut seen: BTreeMap<u16, (String, Vec<Option<String>>)> = BTreeMap::new();
    for listener in &gateway.spec.listeners {
        let scope = format!("listener {}", listener.name);
        let fail = |cx: &mut Cx<'_>, type_: &'static str, why: &'static str, message: String| {
            let status = type_ == reason::CONFLICTED;
            let condition = Condition {
                type_,
                status,
                reason: why,
                message,
                scope: Some(scope.clone()),
            };
            cx.status.push(key, condition);
        };
        let Some(port) = effective_port(listener.port, cx.options.privileged_port_offset) else {
            fail(
                cx,
                reason::ACCEPTED,
                reason::UNSUPPORTED_VALUE,
                format!("port {} is out of range", listener.port),
            );
            continue;
        };
        let mut model = ListenerModel {
            name: listener.name.clone(),
            port,
            hostname: listener.hostname.clone(),
            allowed_routes: listener.allowed_routes.clone(),
            valid: false,
        };
        if listener.protocol != "HTTP" {
            let message = format!(
                "protocol {} is not supported yet; use HTTP (TLS termination comes with SDS support)",
                listener.protocol
            );
            fail(cx, reason::ACCEPTED, reason::UNSUPPORTED_PROTOCOL, message);
            models.push(model);
            continue;
        }
        if let Some(owner) = port_owner.get(&port).filter(|owner| *owner != key) {
            let message = format!(
                "port {port} is already used by Gateway {}",
                owner.namespaced_name()
            );
            fail(cx, reason::CONFLICTED, reason::PORT_CONFLICT, message);
            models.push(model);
            continue;
        }
        let entry = seen
            .entry(port)
            .or_insert_with(|| (listener.protocol.clone(), Vec::new()));
        if entry.0 != listener.protocol {
            fail(
                cx,
                reason::CONFLICTED,
                reason::PROTOCOL_CONFLICT,
                format!("port {port} is used with protocol {}", entry.0),
            );
            models.push(model);
            continue;
        }
        if entry.1.contains(&listener.hostname) {
            let host = listener.hostname.as_deref().unwrap_or("*");
            fail(
                cx,
                reason::CONFLICTED,
                reason::HOSTNAME_CONFLICT,
                format!("another listener serves hostname {host} on port {port}"),
            );
            models.push(model);
            continue;
        }
        entry.1.push(listener.hostname.clone());
        port_owner.insert(port, key.clone());
        let note = if i64::from(port) != i64::from(listener.port) {
            format!(
                "listening on port {port} (port {} + {} for an unprivileged process)",
                listener.port, cx.options.privileged_port_offset
            )
        } else {
            format!("listening on port {port}")
        };
        cx.status.push(
            key,
            Condition::ok(reason::ACCEPTED, reason::ACCEPTED, note).scoped(&scope),
        );
        cx.status.push(
            key,
            Condition::fail(reason::CONFLICTED, "NoConflicts", "no conflicts").scoped(&scope),
        );
        model.valid = true;
        models.push(model);
    }
    GatewayModel {
        key: key.clone(),
        listeners: models,
    }
}

fn effective_port(port: i32, offset: u16) -> Option<u16> {
    let port = u16::try_from(port).ok().filter(|p| *p > 0)?;
    if port < 1024 && offset > 0 {
        port.checked_add(offset)
    } else {
        Some(port)
    }
}

/// Is a route of `route_kind` from `route_namespace` allowed on `listener` of `gateway`?
pub fn allows(
    listener: &ListenerModel,
    gateway: &ObjectKey,
    route_kind: Kind,
    route_namespace: &str,
) -> Result<(), String> {
    use gateway_api::gateways::GatewayListenersAllowedRoutesNamespacesFrom as From;
    let allowed = listener.allowed_routes.as_ref();
    let from = allowed
        .and_then(|a| a.namespaces.as_ref())
        .and_then(|n| n.from.clone())
        .unwrap_or(From::Same);
    match from {
        From::All => {}
        From::Same if route_namespace == gateway.namespace => {}
        From::Same => {
            return Err(format!(
                "listener {} only allows routes from namespace {}",
                listener.name, gateway.namespace
            ));
        }
        From::Selector => {
            return Err(format!(
                "listener {} selects route namespaces by label, which needs the Kubernetes source",
                listener.name
            ));
        }
    }
    if let Some(kinds) = allowed
        .and_then(|a| a.kinds.as_ref())
        .filter(|k| !k.is_empty())
    {
        // An AIGatewayRoute is served as HTTP routes, so listeners that allow HTTPRoute take it.
        let ok = kinds
            .iter()
            .any(|k| k.kind == route_kind.as_str() || k.kind == "HTTPRoute");
        if !ok {
            return Err(format!(
                "listener {} does not allow {route_kind}",
                listener.name
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn privileged_ports_move_by_the_offset() {
        assert_eq!(effective_port(80, 10000), Some(10080));
        assert_eq!(effective_port(8080, 10000), Some(8080));
        assert_eq!(effective_port(80, 0), Some(80));
        assert_eq!(effective_port(0, 0), None);
        assert_eq!(effective_port(70000, 0), None);
    }
}
