//! Turns a Kubernetes structural schema (OpenAPI v3 subset) into a JSON Schema (draft 7).
//!
//! - `nullable: true` becomes a `null` alternative of the node's type;
//! - `x-kubernetes-int-or-string` becomes "integer or string";
//! - other `x-kubernetes-*` keys are annotations and are dropped;
//! - an object node that lists `properties` and neither `additionalProperties` nor
//!   `x-kubernetes-preserve-unknown-fields` rejects other properties (strict field validation);
//! - the root accepts `apiVersion`, `kind` and `metadata`, which the API server adds to every CRD.

use serde_json::{Map, Value, json};

pub(super) fn to_json_schema(structural: &Value) -> Value {
    let mut root = convert(structural);
    if let Some(properties) = root.get_mut("properties").and_then(Value::as_object_mut) {
        properties
            .entry("apiVersion")
            .or_insert_with(|| json!({"type": "string"}));
        properties
            .entry("kind")
            .or_insert_with(|| json!({"type": "string"}));
        properties
            .entry("metadata")
            .or_insert_with(|| json!({"type": "object"}));
    }
    root
}

fn convert(node: &Value) -> Value {
    let Some(object) = node.as_object() else {
        return node.clone();
    };
    let mut out = Map::new();
    for (key, value) in object {
        let converted = match key.as_str() {
            "properties" | "patternProperties" | "definitions" => map_values(value),
            "items" | "additionalProperties" | "not" if value.is_object() => convert(value),
            "allOf" | "anyOf" | "oneOf" => match value.as_array() {
                Some(list) => Value::Array(list.iter().map(convert).collect()),
                None => value.clone(),
            },
            "nullable" => continue,
            k if k.starts_with("x-kubernetes-") => continue,
            _ => value.clone(),
        };
        out.insert(key.clone(), converted);
    }

    let flag = |name: &str| object.get(name).and_then(Value::as_bool).unwrap_or(false);
    if flag("x-kubernetes-int-or-string") && !out.contains_key("type") {
        out.insert(
            "anyOf".into(),
            json!([{"type": "integer"}, {"type": "string"}]),
        );
    }
    if out.contains_key("properties")
        && !out.contains_key("additionalProperties")
        && !flag("x-kubernetes-preserve-unknown-fields")
    {
        out.insert("additionalProperties".into(), Value::Bool(false));
    }
    if flag("nullable") {
        allow_null(&mut out);
    }
    Value::Object(out)
}

fn map_values(value: &Value) -> Value {
    match value.as_object() {
        Some(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), convert(v))).collect()),
        None => value.clone(),
    }
}

fn allow_null(node: &mut Map<String, Value>) {
    if let Some(Value::String(t)) = node.get("type") {
        let t = t.clone();
        node.insert("type".into(), json!([t, "null"]));
    }
    if let Some(Value::Array(values)) = node.get_mut("enum")
        && !values.contains(&Value::Null)
    {
        values.push(Value::Null);
    }
    if let Some(Value::Array(alternatives)) = node.get_mut("anyOf") {
        alternatives.push(json!({"type": "null"}));
    }
}

/// The same schema with every `required` list removed, for checking excerpts.
pub(super) fn without_required(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| k.as_str() != "required")
                .map(|(k, v)| (k.clone(), without_required(v)))
                .collect(),
        ),
        Value::Array(list) => Value::Array(list.iter().map(without_required).collect()),
        other => other.clone(),
    }
}
