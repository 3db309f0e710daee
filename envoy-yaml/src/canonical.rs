//! Deterministic key order for JSON values.

use serde_json::{Map, Value};

/// `value` with the keys of every object sorted, recursively.
///
/// prost decodes map fields into `HashMap`s, whose order changes from one process (and one
/// decode) to the next. `serde_json::Map` is a `BTreeMap` unless some crate in the build enables
/// serde_json's `preserve_order`, so sorting here keeps the output stable either way.
pub(crate) fn sort_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|(a, _), (b, _)| a.cmp(b));
            let sorted: Map<String, Value> = entries
                .into_iter()
                .map(|(k, v)| (k, sort_keys(v)))
                .collect();
            Value::Object(sorted)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sort_keys).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_object_keys_come_out_sorted() {
        let value = sort_keys(json!({"b": {"z": 1, "a": [{"y": 2, "x": 3}]}, "a": 0}));
        assert_eq!(
            value.to_string(),
            r#"{"a":0,"b":{"a":[{"x":3,"y":2}],"z":1}}"#
        );
    }
}
