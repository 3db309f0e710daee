//! Schemas for fields we carry without interpreting them.

use schemars::{Schema, SchemaGenerator, json_schema};

/// An object whose contents the API server keeps as written (`x-kubernetes-preserve-unknown-fields`).
pub(crate) fn object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// A list of objects kept as written.
pub(crate) fn object_list(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true,
        },
    })
}
