//! Deserialization that rejects fields our types do not know.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Error, Result};

/// Deserializes an object into `T`, failing when the object has fields `T` would ignore.
///
/// `apiVersion` and `kind` at the root are allowed: the kube root types do not store them.
pub fn from_value_strict<T: DeserializeOwned>(value: &Value) -> Result<T> {
    let mut ignored = Vec::new();
    let parsed = serde_ignored::deserialize(value, |path| {
        let path = path.to_string();
        if path != "apiVersion" && path != "kind" {
            ignored.push(path);
        }
    });
    let parsed = parsed.map_err(|source| Error::Deserialize {
        what: describe(value),
        source,
    })?;
    if ignored.is_empty() {
        Ok(parsed)
    } else {
        Err(Error::UnknownFields {
            what: describe(value),
            fields: ignored,
        })
    }
}

/// `Kind namespace/name`, for messages.
fn describe(value: &Value) -> String {
    let text = |pointer: &str| value.pointer(pointer).and_then(Value::as_str).unwrap_or("");
    let (kind, namespace, name) = (
        text("/kind"),
        text("/metadata/namespace"),
        text("/metadata/name"),
    );
    if namespace.is_empty() {
        format!("{kind} {name}")
    } else {
        format!("{kind} {namespace}/{name}")
    }
}
