//! Per-object conditions, as `/status` and `infergate validate` show them and as the Kubernetes
//! source will write them back.

use std::collections::BTreeMap;

use crate::object::{ObjectKey, Origin};
use crate::source::SourceError;

/// One condition (`Accepted`, `ResolvedRefs`, `Programmed`, `Conflicted`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: &'static str,
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
    /// What part of the object it is about: `listener http`, `parent Gateway default/gw`,
    /// `rule 0 backendRef 1`… `None` for the object as a whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl Condition {
    pub fn ok(type_: &'static str, reason: &'static str, message: impl Into<String>) -> Self {
        Condition {
            type_,
            status: true,
            reason,
            message: message.into(),
            scope: None,
        }
    }

    pub fn fail(type_: &'static str, reason: &'static str, message: impl Into<String>) -> Self {
        Condition {
            type_,
            status: false,
            reason,
            message: message.into(),
            scope: None,
        }
    }

    pub fn scoped(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }
}

/// Condition types and reasons, following Gateway API where it has one.
pub mod reason {
    pub const ACCEPTED: &str = "Accepted";
    pub const RESOLVED_REFS: &str = "ResolvedRefs";
    pub const PROGRAMMED: &str = "Programmed";
    pub const CONFLICTED: &str = "Conflicted";

    pub const INVALID: &str = "Invalid";
    pub const INVALID_PARAMETERS: &str = "InvalidParameters";
    pub const NO_MATCHING_PARENT: &str = "NoMatchingParent";
    pub const NOT_ALLOWED_BY_LISTENERS: &str = "NotAllowedByListeners";
    pub const BACKEND_NOT_FOUND: &str = "BackendNotFound";
    pub const REF_NOT_PERMITTED: &str = "RefNotPermitted";
    pub const INVALID_KIND: &str = "InvalidKind";
    pub const UNSUPPORTED_VALUE: &str = "UnsupportedValue";
    pub const PORT_CONFLICT: &str = "PortConflict";
    pub const HOSTNAME_CONFLICT: &str = "HostnameConflict";
    pub const PROTOCOL_CONFLICT: &str = "ProtocolConflict";
    pub const UNSUPPORTED_PROTOCOL: &str = "UnsupportedProtocol";
    pub const NOT_MANAGED: &str = "NotManaged";
    pub const TARGET_NOT_FOUND: &str = "TargetNotFound";
    /// A policy needs a service (the rate limit service) that is not configured.
    pub const NO_RATELIMIT_SERVICE: &str = "NoRateLimitService";
    /// An InferencePool's selector matches no ready Pod (a warning: the pool is served).
    pub const NO_READY_PODS: &str = "NoReadyPods";

    /// Reasons of conditions that hold but need attention; shown as warnings, not errors.
    pub const WARNINGS: &[&str] = &[NO_READY_PODS];
}

/// Conditions of one object and where it was read from.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ObjectStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    pub conditions: Vec<Condition>,
}

impl ObjectStatus {
    /// True when any condition is a failure (`status: false`, or `Conflicted: true`).
    pub fn has_errors(&self) -> bool {
        self.conditions.iter().any(is_error)
    }
}

/// A condition that holds but needs attention (see [`reason::WARNINGS`]).
pub fn is_warning(c: &Condition) -> bool {
    !is_error(c) && reason::WARNINGS.contains(&c.reason)
}

fn is_error(c: &Condition) -> bool {
    if c.type_ == reason::CONFLICTED {
        c.status
    } else {
        !c.status
    }
}

/// Everything `/status` shows about config: each object's conditions and the source's
/// document-level errors.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct StatusReport {
    pub objects: BTreeMap<ObjectKey, ObjectStatus>,
    pub source_errors: Vec<SourceError>,
    /// Each InferencePool's parents: the `namespace/name` of every Gateway that accepted a
    /// route sending to it (written to the pool's `status.parents`).
    #[serde(skip)]
    pub pool_parents: BTreeMap<ObjectKey, std::collections::BTreeSet<String>>,
}

impl StatusReport {
    pub fn push(&mut self, key: &ObjectKey, condition: Condition) {
        self.objects
            .entry(key.clone())
            .or_default()
            .conditions
            .push(condition);
    }

    pub fn has_errors(&self) -> bool {
        !self.source_errors.is_empty() || self.objects.values().any(ObjectStatus::has_errors)
    }

    /// Lines for a terminal: `Kind ns/name [file]: Type=Status Reason: message`.
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .source_errors
            .iter()
            .map(|e| format!("error: {e}"))
            .collect();
        for (key, status) in &self.objects {
            let at = status
                .origin
                .as_ref()
                .map(|o| format!(" [{o}]"))
                .unwrap_or_default();
            for c in &status.conditions {
                let scope = c
                    .scope
                    .as_ref()
                    .map(|s| format!(" ({s})"))
                    .unwrap_or_default();
                let mark = if is_error(c) {
                    "error"
                } else if is_warning(c) {
                    "warning"
                } else {
                    "ok"
                };
                lines.push(format!(
                    "{mark}: {key}{at}{scope}: {}={} {}: {}",
                    c.type_,
                    if c.status { "True" } else { "False" },
                    c.reason,
                    c.message
                ));
            }
        }
        lines
    }

    /// JSON for `/status`: objects as a list (keys are structs).
    pub fn to_json(&self) -> serde_json::Value {
        let objects: Vec<serde_json::Value> = self
            .objects
            .iter()
            .map(|(key, status)| {
                serde_json::json!({
                    "kind": key.kind,
                    "namespace": key.namespace,
                    "name": key.name,
                    "origin": status.origin,
                    "conditions": status.conditions,
                })
            })
            .collect();
        serde_json::json!({ "objects": objects, "sourceErrors": self.source_errors })
    }
}
