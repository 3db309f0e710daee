//! Splits a multi-document YAML text into [`RawObject`]s, one error per bad document.

use std::path::Path;

use serde::Deserialize;

use super::SourceError;
use super::env;
use crate::object::{Kind, ObjectKey, Origin, RawObject, TypeMatch};

/// What one file yielded: the objects of kinds we act on, and the documents that failed.
#[derive(Debug, Default)]
pub struct Parsed {
    pub objects: Vec<RawObject>,
    pub errors: Vec<SourceError>,
    /// Set when the file as a whole is not YAML; the caller then keeps the file's last good
    /// objects instead of dropping them.
    pub file_error: bool,
}

/// Parses `text` (the content of `file`), substituting `${VAR}` through `lookup`.
pub fn parse(file: &Path, text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Parsed {
    let mut parsed = Parsed::default();
    for (doc, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let origin = Origin {
            file: file.to_path_buf(),
            doc,
        };
        let value = match serde_yaml::Value::deserialize(document) {
            Ok(value) => value,
            Err(err) => {
                // A syntax error ends the stream: nothing after it can be trusted.
                parsed.errors.push(SourceError {
                    origin,
                    object: None,
                    message: yaml_error(&err),
                });
                parsed.file_error = true;
                return parsed;
            }
        };
        match object(origin.clone(), value, lookup) {
            Ok(Some(object)) => parsed.objects.push(object),
            Ok(None) => {}
            Err((object, message)) => parsed.errors.push(SourceError {
                origin,
                object,
                message,
            }),
        }
    }
    parsed
}

fn yaml_error(err: &serde_yaml::Error) -> String {
    format!("invalid YAML: {err}")
}

type DocError = (Option<String>, String);

fn object(
    origin: Origin,
    value: serde_yaml::Value,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<RawObject>, DocError> {
    if value.is_null() {
        return Ok(None); // empty document, e.g. a trailing `---`
    }
    let mut value: serde_json::Value = serde_json::to_value(&value)
        .map_err(|err| (None, format!("not representable as JSON: {err}")))?;
    let Some(map) = value.as_object() else {
        return Err((
            None,
            "a document must be a mapping with apiVersion and kind".into(),
        ));
    };
    let field = |name: &str| map.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    let (Some(api_version), Some(kind_name)) = (field("apiVersion"), field("kind")) else {
        return Err((None, "missing apiVersion or kind".into()));
    };
    let kind = match Kind::classify(&api_version, &kind_name) {
        TypeMatch::Skipped => {
            tracing::debug!(%origin, %api_version, kind = %kind_name, "skipping kind the gateway does not act on");
            return Ok(None);
        }
        TypeMatch::WrongVersion { kind, served } => {
            return Err((
                Some(kind.to_string()),
                format!(
                    "apiVersion {api_version} is not served for {kind}; use {}",
                    served.join(" or ")
                ),
            ));
        }
        TypeMatch::Known(kind) => kind,
    };
    let meta = map.get("metadata").and_then(|m| m.as_object());
    let meta_field = |name: &str| meta.and_then(|m| m.get(name)).and_then(|v| v.as_str());
    let Some(name) = meta_field("name")
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
    else {
        return Err((Some(kind.to_string()), "metadata.name is missing".into()));
    };
    let namespace = meta_field("namespace").unwrap_or("default").to_owned();
    let key = ObjectKey::new(kind, namespace, name);
    let missing = env::substitute(&mut value, lookup);
    if !missing.is_empty() {
        return Err((
            Some(key.to_string()),
            format!("environment variable(s) not set: {}", missing.join(", ")),
        ));
    }
    Ok(Some(RawObject {
        key,
        api_version,
        origin: Some(origin),
        value,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn multi_document_files_yield_known_kinds_and_skip_others() {
        let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n---\n\
            apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: Backend\nmetadata: {name: b, namespace: ns}\n---\n";
        let parsed = parse(Path::new("a.yaml"), text, &no_env);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(parsed.objects.len(), 1);
        assert_eq!(
            parsed.objects[0].key,
            ObjectKey::new(Kind::Backend, "ns", "b")
        );
        assert_eq!(parsed.objects[0].origin.as_ref().map(|o| o.doc), Some(1));
    }

    #[test]
    fn namespace_defaults_to_default() {
        let text = "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g}\n";
        let parsed = parse(Path::new("a.yaml"), text, &no_env);
        assert_eq!(parsed.objects[0].key.namespace, "default");
    }

    #[test]
    fn malformed_yaml_is_a_file_error_naming_the_document() {
        let text = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n---\nkind: [unclosed\n";
        let parsed = parse(Path::new("bad.yaml"), text, &no_env);
        assert!(parsed.file_error);
        let err = &parsed.errors[0];
        assert_eq!(err.origin.doc, 1);
        assert!(
            err.to_string()
                .contains("bad.yaml (document 2): invalid YAML"),
            "{err}"
        );
    }

    #[test]
    fn documents_without_kind_or_name_are_errors() {
        let text = "apiVersion: v1\nmetadata: {name: s}\n---\napiVersion: v1\nkind: Secret\nmetadata: {}\n";
        let parsed = parse(Path::new("a.yaml"), text, &no_env);
        assert_eq!(parsed.errors.len(), 2);
        assert!(
            parsed.errors[0]
                .message
                .contains("missing apiVersion or kind")
        );
        assert!(
            parsed.errors[1]
                .message
                .contains("metadata.name is missing")
        );
        assert!(!parsed.file_error);
    }

    #[test]
    fn wrong_api_version_names_the_served_versions() {
        let text =
            "apiVersion: aigateway.envoyproxy.io/v2\nkind: AIGatewayRoute\nmetadata: {name: r}\n";
        let parsed = parse(Path::new("a.yaml"), text, &no_env);
        assert!(
            parsed.errors[0]
                .message
                .contains("aigateway.envoyproxy.io/v1beta1"),
            "{:?}",
            parsed.errors
        );
    }

    #[test]
    fn missing_environment_variables_name_the_object_and_variable() {
        let text = "apiVersion: v1\nkind: Secret\nmetadata: {name: key}\nstringData: {apiKey: '${OPENAI_KEY}'}\n";
        let parsed = parse(Path::new("a.yaml"), text, &no_env);
        assert_eq!(
            parsed.errors[0].object.as_deref(),
            Some("Secret default/key")
        );
        assert!(parsed.errors[0].message.contains("OPENAI_KEY"));
    }
}
