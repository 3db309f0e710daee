//! Drops `null` values of fields whose schema is not `nullable`, as the API server does before
//! defaulting and validation.

use serde_json::Value;

pub(super) fn drop_non_nullable_nulls(value: &mut Value, schema: &Value) {
    match value {
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|s| s.is_object());
            map.retain(|key, v| {
                let field_schema = properties.and_then(|p| p.get(key)).or(additional);
                match field_schema {
                    Some(s) if v.is_null() => is_nullable(s),
                    _ => true,
                }
            });
            for (key, v) in map.iter_mut() {
                if let Some(s) = properties.and_then(|p| p.get(key)).or(additional) {
                    drop_non_nullable_nulls(v, s);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    drop_non_nullable_nulls(item, item_schema);
                }
            }
        }
        _ => {}
    }
}

fn is_nullable(schema: &Value) -> bool {
    schema
        .get("nullable")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}
