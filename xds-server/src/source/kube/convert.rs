//! A watched Kubernetes object → the [`RawObject`] the index parses.
//!
//! Server-maintained bookkeeping (`resourceVersion`, `managedFields`) and `status` (but a Pod's,
//! which the index reads) are dropped, so a status write or a no-op update is not a change.

use kube::api::DynamicObject;

use crate::object::{Kind, ObjectKey, RawObject};

/// Converts an object of `kind`; `None` (logged) for one without a name.
pub fn raw_object(kind: Kind, object: DynamicObject) -> Option<RawObject> {
    let name = object.metadata.name.clone().filter(|n| !n.is_empty())?;
    let namespace = object.metadata.namespace.clone().unwrap_or_default();
    let api_version = object
        .types
        .as_ref()
        .map(|t| t.api_version.clone())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| kind.served_versions()[0].to_string());
    let mut value = match serde_json::to_value(&object) {
        Ok(value) => value,
        Err(err) => {
            tracing::warn!(%kind, %name, error = %err, "kubernetes object not representable as JSON");
            return None;
        }
    };
    if let Some(map) = value.as_object_mut() {
        // List items come without type meta; the index and `/status` want it.
        map.insert("apiVersion".into(), api_version.clone().into());
        map.insert("kind".into(), kind.as_str().into());
        if kind != Kind::Pod {
            map.remove("status");
        }
        if let Some(meta) = map.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            meta.remove("resourceVersion");
            meta.remove("managedFields");
        }
    }
    Some(RawObject {
        key: ObjectKey::new(kind, namespace, name),
        api_version,
        origin: None,
        value,
    })
}

/// The index key of a deleted object.
pub fn key(kind: Kind, object: &DynamicObject) -> Option<ObjectKey> {
    let name = object.metadata.name.clone()?;
    let namespace = object.metadata.namespace.clone().unwrap_or_default();
    Some(ObjectKey::new(kind, namespace, name))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn dynamic(value: serde_json::Value) -> DynamicObject {
        serde_json::from_value(value).expect("dynamic object")
    }

    #[test]
    fn bookkeeping_and_status_are_dropped_but_a_pods_status_is_kept() {
        let route = dynamic(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "r", "namespace": "ns", "resourceVersion": "7",
                         "managedFields": [{"manager": "infergate"}]},
            "spec": {}, "status": {"parents": []},
        }));
        let raw = raw_object(Kind::HTTPRoute, route).expect("named");
        assert_eq!(raw.key, ObjectKey::new(Kind::HTTPRoute, "ns", "r"));
        assert_eq!(
            raw.value,
            json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                   "metadata": {"name": "r", "namespace": "ns"}, "spec": {}})
        );
        let pod = dynamic(json!({"metadata": {"name": "p", "namespace": "ns"},
                                 "status": {"podIP": "10.0.0.1"}}));
        let raw = raw_object(Kind::Pod, pod).expect("named");
        assert_eq!(raw.value["status"]["podIP"], "10.0.0.1");
        assert_eq!(raw.value["apiVersion"], "v1", "list items get type meta");
    }
}
