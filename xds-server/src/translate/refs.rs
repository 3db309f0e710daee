//! Cross-namespace references and the ReferenceGrants that permit them.

use super::Cx;

/// Who refers.
pub struct From<'a> {
    pub group: &'a str,
    pub kind: &'a str,
    pub namespace: &'a str,
}

/// Is a reference from `from` to `group/kind name` in `to_namespace` permitted?
/// Same-namespace references always are; others need a ReferenceGrant in the target namespace.
pub fn permitted(
    cx: &Cx<'_>,
    from: &From<'_>,
    group: &str,
    kind: &str,
    to_namespace: &str,
    name: &str,
) -> bool {
    if from.namespace == to_namespace {
        return true;
    }
    cx.snapshot
        .reference_grants()
        .filter(|(key, _)| key.namespace == to_namespace)
        .any(|(_, grant)| {
            let from_ok = grant.spec.from.iter().any(|f| {
                f.group == from.group && f.kind == from.kind && f.namespace == from.namespace
            });
            let to_ok = grant.spec.to.iter().any(|t| {
                t.group == group && t.kind == kind && t.name.as_deref().is_none_or(|n| n == name)
            });
            from_ok && to_ok
        })
}
