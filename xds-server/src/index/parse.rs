//! Turns a [`RawObject`] into its typed form. Unknown fields are errors (a typo such as
//! `matchs:` would otherwise silently widen a route), reported with their full path.

use serde::de::DeserializeOwned;

use super::Body;
use crate::object::{Kind, RawObject};

/// Parses `raw` into the typed body for its kind, or a message naming the offending field.
pub fn parse(raw: &RawObject) -> Result<Body, String> {
    // Status is written by controllers and (but for a Pod's) never read by us: don't let a
    // partial one reject the object.
    let without_status;
    let v = match raw.value.get("status") {
        Some(_) => {
            let mut value = raw.value.clone();
            if let Some(map) = value.as_object_mut() {
                map.remove("status");
            }
            without_status = value;
            &without_status
        }
        None => &raw.value,
    };
    Ok(match raw.key.kind {
        Kind::GatewayClass => Body::GatewayClass(typed(v)?),
        Kind::Gateway => Body::Gateway(typed(v)?),
        Kind::HTTPRoute => Body::HTTPRoute(typed(v)?),
        Kind::ReferenceGrant => Body::ReferenceGrant(typed(v)?),
        Kind::BackendTLSPolicy => Body::BackendTLSPolicy(typed(v)?),
        Kind::AIGatewayRoute => Body::AIGatewayRoute(typed(v)?),
        Kind::AIServiceBackend => Body::AIServiceBackend(typed(v)?),
        Kind::BackendSecurityPolicy => Body::BackendSecurityPolicy(typed(v)?),
        Kind::GatewayConfig => Body::GatewayConfig(typed(v)?),
        Kind::Backend => Body::Backend(typed(v)?),
        Kind::BackendTrafficPolicy => Body::BackendTrafficPolicy(typed(v)?),
        Kind::InferencePool => Body::InferencePool(typed(v)?),
        Kind::InferenceObjective => Body::InferenceObjective(typed(v)?),
        Kind::Secret => Body::Secret(typed(v)?),
        Kind::Service => Body::Service(typed(v)?),
        Kind::Pod => Body::Pod(pod(v, raw.value.get("status"))?),
        // Written by Kubernetes, not users: read leniently, so a field added by a newer
        // Kubernetes does not drop a Service's endpoints.
        Kind::EndpointSlice => {
            Body::EndpointSlice(serde_json::from_value(v.clone()).map_err(|e| e.to_string())?)
        }
    })
}

/// A Pod's status is the one we read (its IP and readiness pick an InferencePool's endpoints):
/// kept, read leniently so a field of a newer Kubernetes does not reject the Pod.
fn pod(
    value: &serde_json::Value,
    status: Option<&serde_json::Value>,
) -> Result<k8s_openapi::api::core::v1::Pod, String> {
    let mut pod: k8s_openapi::api::core::v1::Pod = typed(value)?;
    pod.status = status.and_then(|s| serde_json::from_value(s.clone()).ok());
    Ok(pod)
}

fn typed<T: DeserializeOwned>(value: &serde_json::Value) -> Result<T, String> {
    let mut unknown = Vec::new();
    let mut record = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
    let ignoring = serde_ignored::Deserializer::new(value, &mut record);
    let parsed: T = serde_path_to_error::deserialize(ignoring).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if path == "." {
            inner.to_string()
        } else {
            format!("{path}: {inner}")
        }
    })?;
    // Type meta is read by the source; anything else unknown is a mistake.
    unknown.retain(|path| !matches!(path.as_str(), "apiVersion" | "kind"));
    if unknown.is_empty() {
        Ok(parsed)
    } else {
        Err(format!("unknown field(s): {}", unknown.join(", ")))
    }
}
