//! Validation of objects against the `openAPIV3Schema` of our generated CRDs.
//!
//! This mirrors what the API server does with `kubectl apply --validate=strict`: null values of
//! non-nullable fields are dropped, the object is checked against its version's schema, and
//! fields the schema does not declare are reported (except under
//! `x-kubernetes-preserve-unknown-fields`).

mod convert;
mod prune;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::Value;

/// The compiled schemas, keyed by (`apiVersion`, `kind`).
type Validators = BTreeMap<(String, String), Compiled>;

/// One version of one CRD: its structural schema and the validator built from it.
struct Compiled {
    structural: Value,
    validator: Result<jsonschema::Validator, String>,
}

fn validators() -> &'static Validators {
    static VALIDATORS: OnceLock<Validators> = OnceLock::new();
    VALIDATORS.get_or_init(|| {
        let mut out = BTreeMap::new();
        for crd in crate::all_crds() {
            for version in &crd.spec.versions {
                let Some(schema) = version
                    .schema
                    .as_ref()
                    .and_then(|s| s.open_api_v3_schema.as_ref())
                else {
                    continue;
                };
                let structural = serde_json::to_value(schema).unwrap_or(Value::Null);
                let json_schema = convert::to_json_schema(&structural);
                let validator = jsonschema::draft7::new(&json_schema).map_err(|e| {
                    format!(
                        "schema of {}/{} does not compile: {e}",
                        crd.spec.group, version.name
                    )
                });
                let api_version = format!("{}/{}", crd.spec.group, version.name);
                out.insert(
                    (api_version, crd.spec.names.kind.clone()),
                    Compiled {
                        structural,
                        validator,
                    },
                );
            }
        }
        out
    })
}

/// True when `apiVersion`/`kind` is one of the CRD kinds (and served versions) this crate defines.
pub fn is_crd_kind(api_version: &str, kind: &str) -> bool {
    validators().contains_key(&(api_version.to_owned(), kind.to_owned()))
}

/// Validates an object of one of our CRD kinds against the schema of its `apiVersion`.
///
/// Returns every problem found, each naming the field (`spec.rules[0].matches: ...`).
pub fn validate(object: &Value) -> Result<(), Vec<String>> {
    validate_with(object, Mode::Complete)
}

/// How much of an object must be present.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A whole object: required fields must be set.
    Complete,
    /// An excerpt: only fields that are present are checked.
    #[cfg_attr(not(test), allow(dead_code))]
    Partial,
}

pub(crate) fn validate_with(object: &Value, mode: Mode) -> Result<(), Vec<String>> {
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(compiled) = validators().get(&(api_version.to_owned(), kind.to_owned())) else {
        return Err(vec![format!(
            "no CRD for apiVersion {api_version:?} kind {kind:?}"
        )]);
    };
    let mut object = object.clone();
    prune::drop_non_nullable_nulls(&mut object, &compiled.structural);

    let mut errors = Vec::new();
    match mode {
        Mode::Complete => {
            let name = object.pointer("/metadata/name").and_then(Value::as_str);
            let generate_name = object
                .pointer("/metadata/generateName")
                .and_then(Value::as_str);
            if name.is_none_or(str::is_empty) && generate_name.is_none_or(str::is_empty) {
                errors.push("metadata.name: required".to_owned());
            }
            check(&compiled.validator, &object, &mut errors);
        }
        Mode::Partial => {
            let relaxed = convert::without_required(&convert::to_json_schema(&compiled.structural));
            match jsonschema::draft7::new(&relaxed) {
                Ok(validator) => check(&Ok(validator), &object, &mut errors),
                Err(e) => errors.push(format!("relaxed schema does not compile: {e}")),
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn check(
    validator: &Result<jsonschema::Validator, String>,
    object: &Value,
    errors: &mut Vec<String>,
) {
    match validator {
        Ok(validator) => errors.extend(
            validator
                .iter_errors(object)
                .map(|e| format!("{}: {}", field_path(e.instance_path.as_str()), e)),
        ),
        Err(e) => errors.push(e.clone()),
    }
}

/// `/spec/rules/0/matches` -> `spec.rules[0].matches`; the root is `<object>`.
fn field_path(pointer: &str) -> String {
    let mut out = String::new();
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&segment);
        }
    }
    if out.is_empty() {
        "<object>".to_owned()
    } else {
        out
    }
}

#[cfg(test)]
mod tests;
