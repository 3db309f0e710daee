//! Request body edits on the upstream leg: model override, `stream_options.include_usage`,
//! and `bodyMutation`.
//!
//! The body is parsed one level deep: top-level fields keep their order and their values are
//! kept as the client wrote them (a 1 MB `messages` array is copied, not re-encoded); only a
//! field a path reaches into is parsed.

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::config::BodyMutation;

/// A JSON object with its top-level fields in order and their values unparsed.
#[derive(Debug)]
pub struct JsonObject {
    fields: Vec<(String, Box<RawValue>)>,
}

impl JsonObject {
    pub fn parse(bytes: &[u8]) -> Result<JsonObject, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    pub fn to_vec(&self) -> Vec<u8> {
        // Serialising strings and already-valid raw JSON cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn get(&self, key: &str) -> Option<&RawValue> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_ref())
    }

    /// Sets the field at `path` (creating objects on the way), replacing what was there.
    pub fn set(&mut self, path: &[String], value: &Value) -> Result<(), String> {
        let Some((first, rest)) = path.split_first() else {
            return Err("empty path".into());
        };
        let new = if rest.is_empty() {
            value.clone()
        } else {
            let mut top = match self.get(first) {
                Some(raw) => serde_json::from_str(raw.get()).map_err(|e| e.to_string())?,
                None => Value::Object(serde_json::Map::new()),
            };
            set_in(&mut top, rest, value, first)?;
            top
        };
        let raw = serde_json::value::to_raw_value(&new).map_err(|e| e.to_string())?;
        match self.fields.iter().position(|(k, _)| k == first) {
            Some(i) => {
                self.fields[i].1 = raw;
                // Later duplicates of the key would win in most parsers: drop them.
                let mut seen = false;
                self.fields.retain(|(k, _)| {
                    if k != first {
                        return true;
                    }
                    let keep = !seen;
                    seen = true;
                    keep
                });
            }
            None => self.fields.push((first.clone(), raw)),
        }
        Ok(())
    }

    /// Removes the field at `path`; a missing field is not an error.
    pub fn remove(&mut self, path: &[String]) -> Result<(), String> {
        let Some((first, rest)) = path.split_first() else {
            return Err("empty path".into());
        };
        if rest.is_empty() {
            self.fields.retain(|(k, _)| k != first);
            return Ok(());
        }
        let Some(raw) = self.get(first) else {
            return Ok(());
        };
        let mut top: Value = serde_json::from_str(raw.get()).map_err(|e| e.to_string())?;
        if remove_in(&mut top, rest) {
            let raw = serde_json::value::to_raw_value(&top).map_err(|e| e.to_string())?;
            if let Some(slot) = self.fields.iter_mut().find(|(k, _)| k == first) {
                slot.1 = raw;
            }
        }
        Ok(())
    }

    /// Applies a configured mutation: removals first, then sets (Envoy AI Gateway's order).
    pub fn apply(&mut self, mutation: &BodyMutation) -> Result<(), String> {
        for path in &mutation.remove {
            self.remove(path)?;
        }
        for (path, value) in &mutation.set {
            self.set(path, value)
                .map_err(|e| format!("setting {}: {e}", path.join(".")))?;
        }
        Ok(())
    }

    /// `true` when the top-level `key` is the JSON literal `true`.
    pub fn is_true(&self, key: &str) -> bool {
        self.get(key).is_some_and(|v| v.get().trim() == "true")
    }
}

fn set_in(target: &mut Value, path: &[String], value: &Value, at: &str) -> Result<(), String> {
    let Some((first, rest)) = path.split_first() else {
        *target = value.clone();
        return Ok(());
    };
    let Value::Object(map) = target else {
        return Err(format!("{at} is not an object"));
    };
    let slot = map
        .entry(first.clone())
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    set_in(slot, rest, value, first)
}

fn remove_in(target: &mut Value, path: &[String]) -> bool {
    let Value::Object(map) = target else {
        return false;
    };
    match path {
        [] => false,
        [last] => map.remove(last).is_some(),
        [first, rest @ ..] => map.get_mut(first).is_some_and(|v| remove_in(v, rest)),
    }
}

impl<'de> Deserialize<'de> for JsonObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = JsonObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonObject, A::Error> {
                let mut fields = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Box<RawValue>>()? {
                    fields.push((k, v));
                }
                Ok(JsonObject { fields })
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

impl Serialize for JsonObject {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.fields.iter().map(|(k, v)| (k, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(p: &str) -> Vec<String> {
        p.split('.').map(str::to_string).collect()
    }

    #[test]
    fn untouched_fields_keep_their_order_and_text() {
        let mut body = JsonObject::parse(
            br#"{"model":"a","messages":[{"role":"user","content":"hi"}],"n":1}"#,
        )
        .expect("object");
        body.set(&path("model"), &json!("b")).expect("set");
        assert_eq!(
            String::from_utf8(body.to_vec()).expect("utf8"),
            r#"{"model":"b","messages":[{"role":"user","content":"hi"}],"n":1}"#
        );
    }

    #[test]
    fn nested_paths_create_objects_and_remove_fields() {
        let mut body =
            JsonObject::parse(br#"{"model":"a","stream":true,"x":{"y":1,"z":2}}"#).expect("object");
        body.set(&path("stream_options.include_usage"), &json!(true))
            .expect("set");
        body.remove(&path("x.y")).expect("remove");
        body.remove(&path("absent.field")).expect("remove");
        let out: Value = serde_json::from_slice(&body.to_vec()).expect("json");
        assert_eq!(out["stream_options"]["include_usage"], json!(true));
        assert_eq!(out["x"], json!({"z": 2}));
        assert!(body.is_true("stream"));
    }

    #[test]
    fn setting_inside_a_non_object_is_an_error() {
        let mut body = JsonObject::parse(br#"{"model":"a"}"#).expect("object");
        let err = body
            .set(&path("model.name"), &json!(1))
            .expect_err("not object");
        assert!(err.contains("model is not an object"), "{err}");
    }
}
