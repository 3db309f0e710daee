//! The generated CRD manifests: committed copies are current, and each is a well-formed,
//! structural `apiextensions.k8s.io/v1` CRD.

use std::collections::BTreeSet;

use infergate_crds::{all_crds, file_name, render_all_yaml, to_yaml};
use serde_json::Value;

#[test]
fn committed_manifests_match_the_rust_types() {
    let dir = crate::support::crate_dir().join("manifests");
    let mut expected = BTreeSet::new();
    for crd in all_crds() {
        let name = file_name(&crd);
        let generated = to_yaml(&crd).expect("render");
        let committed = std::fs::read_to_string(dir.join(&name)).unwrap_or_default();
        assert!(
            committed == generated,
            "crds/manifests/{name} is out of date with the Rust types; run `make gen` \
             (cargo run -p infergate-crds --bin crdgen -- crds/manifests) and commit the result"
        );
        expected.insert(name);
    }
    let present: BTreeSet<String> = crate::support::yaml_files(&dir)
        .iter()
        .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
        .collect();
    let stale: Vec<_> = present.difference(&expected).collect();
    assert!(
        stale.is_empty(),
        "crds/manifests has files no CRD generates: {stale:?}; run `make gen`"
    );
}

#[test]
fn manifest_generation_is_deterministic() {
    let first: Vec<String> = all_crds()
        .iter()
        .map(|c| to_yaml(c).expect("render"))
        .collect();
    let second: Vec<String> = all_crds()
        .iter()
        .map(|c| to_yaml(c).expect("render"))
        .collect();
    assert_eq!(first, second);
}

#[test]
fn rendered_stream_holds_one_document_per_crd() {
    let stream = render_all_yaml().expect("render");
    let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&stream)
        .map(|d| serde::Deserialize::deserialize(d).expect("parse"))
        .collect();
    assert_eq!(docs.len(), all_crds().len());
    assert!(docs.iter().all(|d| d["kind"] == "CustomResourceDefinition"));
}

#[test]
fn every_manifest_is_a_valid_structural_crd() {
    for crd in all_crds() {
        let doc = serde_json::to_value(&crd).expect("to json");
        let name = file_name(&crd);
        let mut problems = Vec::new();
        check_crd(&doc, &mut problems);
        assert!(problems.is_empty(), "{name}:\n  {}", problems.join("\n  "));
    }
}

#[test]
fn ai_gateway_crds_serve_v1alpha1_and_store_v1beta1_with_the_same_schema() {
    for crd in all_crds()
        .iter()
        .filter(|c| c.spec.group == "aigateway.envoyproxy.io")
    {
        let versions: Vec<_> = crd
            .spec
            .versions
            .iter()
            .map(|v| (v.name.as_str(), v.served, v.storage))
            .collect();
        assert_eq!(
            versions,
            [("v1alpha1", true, false), ("v1beta1", true, true)],
            "{}",
            crd.spec.names.kind
        );
        assert_eq!(crd.spec.versions[0].schema, crd.spec.versions[1].schema);
    }
}

#[test]
fn the_crd_set_covers_every_kind_we_define() {
    let kinds: BTreeSet<(String, String)> = all_crds()
        .iter()
        .map(|c| (c.spec.group.clone(), c.spec.names.kind.clone()))
        .collect();
    let expected = [
        ("aigateway.envoyproxy.io", "AIGatewayRoute"),
        ("aigateway.envoyproxy.io", "AIServiceBackend"),
        ("aigateway.envoyproxy.io", "BackendSecurityPolicy"),
        ("aigateway.envoyproxy.io", "GatewayConfig"),
        ("gateway.envoyproxy.io", "Backend"),
        ("gateway.envoyproxy.io", "BackendTrafficPolicy"),
        ("inference.networking.k8s.io", "InferencePool"),
        ("inference.networking.x-k8s.io", "InferenceObjective"),
    ];
    let expected: BTreeSet<(String, String)> = expected
        .iter()
        .map(|(g, k)| ((*g).to_owned(), (*k).to_owned()))
        .collect();
    assert_eq!(kinds, expected);
}

fn check_crd(doc: &Value, problems: &mut Vec<String>) {
    let text = |pointer: &str| doc.pointer(pointer).and_then(Value::as_str).unwrap_or("");
    if text("/apiVersion") != "apiextensions.k8s.io/v1" {
        problems.push("apiVersion is not apiextensions.k8s.io/v1".into());
    }
    if text("/kind") != "CustomResourceDefinition" {
        problems.push("kind is not CustomResourceDefinition".into());
    }
    let group = text("/spec/group");
    let plural = text("/spec/names/plural");
    if group.is_empty() {
        problems.push("spec.group is empty".into());
    }
    for field in ["plural", "singular", "kind", "listKind"] {
        if text(&format!("/spec/names/{field}")).is_empty() {
            problems.push(format!("spec.names.{field} is empty"));
        }
    }
    if text("/metadata/name") != format!("{plural}.{group}") {
        problems.push(format!("metadata.name is not {plural}.{group}"));
    }
    if !matches!(text("/spec/scope"), "Namespaced" | "Cluster") {
        problems.push("spec.scope is neither Namespaced nor Cluster".into());
    }
    let versions = doc
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        problems.push("spec.versions is empty".into());
    }
    let mut storage = 0;
    for version in &versions {
        let name = version.get("name").and_then(Value::as_str).unwrap_or("");
        if name.is_empty() {
            problems.push("a version has no name".into());
        }
        for flag in ["served", "storage"] {
            if !version.get(flag).is_some_and(Value::is_boolean) {
                problems.push(format!("version {name}: {flag} is not a boolean"));
            }
        }
        if version.get("storage") == Some(&Value::Bool(true)) {
            storage += 1;
        }
        match version.pointer("/schema/openAPIV3Schema") {
            Some(schema) => {
                if schema.get("type").and_then(Value::as_str) != Some("object") {
                    problems.push(format!(
                        "version {name}: openAPIV3Schema.type is not object"
                    ));
                }
                check_structural(schema, &format!("{name}:openAPIV3Schema"), problems);
            }
            None => problems.push(format!("version {name}: no openAPIV3Schema")),
        }
    }
    if storage != 1 {
        problems.push(format!("{storage} storage versions instead of exactly one"));
    }
}

/// Every node (properties, items, additionalProperties) has a type or an allowed escape hatch.
fn check_structural(node: &Value, path: &str, problems: &mut Vec<String>) {
    let flag = |name: &str| node.get(name).and_then(Value::as_bool).unwrap_or(false);
    let typed = node.get("type").is_some_and(Value::is_string)
        || flag("x-kubernetes-int-or-string")
        || flag("x-kubernetes-preserve-unknown-fields");
    if !typed {
        problems.push(format!("{path}: no type"));
    }
    for forbidden in ["$ref", "definitions", "$schema"] {
        if node.get(forbidden).is_some() {
            problems.push(format!(
                "{path}: {forbidden} is not allowed in a structural schema"
            ));
        }
    }
    if let Some(properties) = node.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            check_structural(child, &format!("{path}.{name}"), problems);
        }
    }
    if let Some(items) = node.get("items") {
        check_structural(items, &format!("{path}[]"), problems);
    }
    if let Some(additional) = node.get("additionalProperties").filter(|a| a.is_object()) {
        check_structural(additional, &format!("{path}{{}}"), problems);
    }
}
