use serde_json::{Value, json};

use super::{Mode, field_path, validate, validate_with};

fn route(spec: Value) -> Value {
    json!({
        "apiVersion": "aigateway.envoyproxy.io/v1beta1",
        "kind": "AIGatewayRoute",
        "metadata": {"name": "r", "namespace": "default"},
        "spec": spec,
    })
}

fn errors(object: &Value) -> Vec<String> {
    validate(object).err().unwrap_or_default()
}

#[test]
fn a_minimal_route_is_valid_in_both_served_versions() {
    let mut object = route(json!({"rules": [{"backendRefs": [{"name": "openai"}]}]}));
    assert_eq!(validate(&object), Ok(()));
    object["apiVersion"] = json!("aigateway.envoyproxy.io/v1alpha1");
    assert_eq!(validate(&object), Ok(()));
}

#[test]
fn unknown_fields_are_reported_with_their_path() {
    let object = route(json!({"rules": [{"backendRefs": [{"name": "a", "wieght": 2}]}]}));
    let errors = errors(&object);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("spec.rules[0].backendRefs[0]:"),
        "{errors:?}"
    );
    assert!(errors[0].contains("wieght"), "{errors:?}");
}

#[test]
fn wrong_enum_values_and_missing_required_fields_are_errors() {
    let object =
        route(json!({"rules": [{"matches": [{"headers": [{"type": "Prefix", "name": "x"}]}]}]}));
    let errors = errors(&object);
    assert!(errors.iter().any(|e| e.contains("Prefix")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("value")), "{errors:?}");
}

#[test]
fn nulls_of_non_nullable_fields_are_dropped_like_the_api_server_does() {
    let object = route(
        json!({"hostnames": null, "rules": [{"backendRefs": [{"name": "a", "weight": null}]}]}),
    );
    assert_eq!(validate(&object), Ok(()));
}

#[test]
fn preserve_unknown_fields_accepts_any_content() {
    let object =
        route(json!({"rules": [], "filterConfig": {"type": "ExternalProcessor", "anything": [1]}}));
    assert_eq!(validate(&object), Ok(()));
}

#[test]
fn durations_must_use_the_gateway_api_syntax() {
    let object = route(json!({"rules": [{"timeouts": {"request": "60 seconds"}}]}));
    assert!(
        errors(&object)
            .iter()
            .any(|e| e.starts_with("spec.rules[0].timeouts.request"))
    );
}

#[test]
fn objects_of_unknown_kinds_and_versions_are_rejected() {
    let mut object = route(json!({"rules": []}));
    object["apiVersion"] = json!("aigateway.envoyproxy.io/v2");
    assert!(errors(&object)[0].contains("no CRD"));
    let deployment =
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}});
    assert!(validate(&deployment).is_err());
}

#[test]
fn a_missing_name_is_an_error() {
    let mut object = route(json!({"rules": []}));
    object["metadata"] = json!({"namespace": "default"});
    assert_eq!(errors(&object), ["metadata.name: required"]);
}

#[test]
fn int_or_string_and_nested_kubernetes_types_validate() {
    let object = json!({
        "apiVersion": "aigateway.envoyproxy.io/v1beta1",
        "kind": "GatewayConfig",
        "metadata": {"name": "gc"},
        "spec": {"extProc": {"kubernetes": {
            "resources": {"limits": {"cpu": 1, "memory": "512Mi"}},
            "env": [{"name": "LOG_LEVEL", "value": "debug"}],
        }}},
    });
    assert_eq!(validate(&object), Ok(()));
}

#[test]
fn field_paths_read_like_yaml_paths() {
    assert_eq!(field_path(""), "<object>");
    assert_eq!(field_path("/spec/rules/0/matches"), "spec.rules[0].matches");
    assert_eq!(
        field_path("/metadata/annotations/a~1b"),
        "metadata.annotations.a/b"
    );
}

#[test]
fn seed_excerpts_use_only_known_fields() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/fragments");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let doc: Value = serde::Deserialize::deserialize(doc).unwrap_or(Value::Null);
            if doc.is_null() {
                continue;
            }
            assert_eq!(
                validate_with(&doc, Mode::Partial),
                Ok(()),
                "{}",
                entry.path().display()
            );
            checked += 1;
        }
    }
    assert!(checked > 0, "no excerpts in {}", dir.display());
}
