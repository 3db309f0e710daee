//! The reconstructed seed manifests and the example folders load into our types without losing a
//! field, and validate against the generated schemas.

use std::path::Path;

use infergate_crds::{
    AIGatewayRoute, AIServiceBackend, Backend, BackendSecurityPolicy, BackendTrafficPolicy,
    Gateway, GatewayClass, GatewayConfig, HttpRoute, InferenceObjective, InferencePool,
    ReferenceGrant, from_value_strict, is_crd_kind, validate,
};
use serde_json::Value;

/// Deserializes a document of one of our kinds (or a re-exported Gateway API kind) strictly.
/// Returns `None` for kinds the gateway skips (Deployment, Service, ...).
fn load(doc: &Value) -> Option<Result<(), String>> {
    fn strict<T: serde::de::DeserializeOwned>(doc: &Value) -> Option<Result<(), String>> {
        Some(
            from_value_strict::<T>(doc)
                .map(drop)
                .map_err(|e| e.to_string()),
        )
    }
    match crate::support::type_of(doc) {
        ("aigateway.envoyproxy.io/v1beta1" | "aigateway.envoyproxy.io/v1alpha1", kind) => {
            match kind {
                "AIGatewayRoute" => strict::<AIGatewayRoute>(doc),
                "AIServiceBackend" => strict::<AIServiceBackend>(doc),
                "BackendSecurityPolicy" => strict::<BackendSecurityPolicy>(doc),
                "GatewayConfig" => strict::<GatewayConfig>(doc),
                other => Some(Err(format!("unexpected AI Gateway kind {other}"))),
            }
        }
        ("gateway.envoyproxy.io/v1alpha1", "Backend") => strict::<Backend>(doc),
        ("gateway.envoyproxy.io/v1alpha1", "BackendTrafficPolicy") => {
            strict::<BackendTrafficPolicy>(doc)
        }
        ("inference.networking.k8s.io/v1", "InferencePool") => strict::<InferencePool>(doc),
        ("inference.networking.x-k8s.io/v1alpha2", "InferenceObjective") => {
            strict::<InferenceObjective>(doc)
        }
        ("gateway.networking.k8s.io/v1", "GatewayClass") => strict::<GatewayClass>(doc),
        ("gateway.networking.k8s.io/v1", "Gateway") => strict::<Gateway>(doc),
        ("gateway.networking.k8s.io/v1", "HTTPRoute") => strict::<HttpRoute>(doc),
        ("gateway.networking.k8s.io/v1beta1", "ReferenceGrant") => strict::<ReferenceGrant>(doc),
        _ => None,
    }
}

/// Loads and validates every document of `files`; returns the problems and the number of our objects.
fn check_files(files: &[std::path::PathBuf], root: &Path) -> (Vec<String>, usize) {
    let mut problems = Vec::new();
    let mut ours = 0;
    for file in files {
        let shown = file
            .strip_prefix(root)
            .unwrap_or(file)
            .display()
            .to_string();
        for (index, doc) in crate::support::documents(file).iter().enumerate() {
            let (api_version, kind) = crate::support::type_of(doc);
            let at = format!("{shown} document {index} ({kind})");
            if let Some(Err(e)) = load(doc) {
                problems.push(format!("{at}: {e}"));
            }
            if is_crd_kind(api_version, kind) {
                ours += 1;
                if let Err(errors) = validate(doc) {
                    problems.extend(errors.into_iter().map(|e| format!("{at}: {e}")));
                }
            }
        }
    }
    (problems, ours)
}

#[test]
fn every_seed_document_of_our_kinds_loads_without_ignored_fields_and_validates() {
    let dir = crate::support::crate_dir().join("testdata/seeds");
    let files = crate::support::yaml_files(&dir);
    assert!(!files.is_empty(), "no seed files in {}", dir.display());
    let (problems, ours) = check_files(&files, &dir);
    assert!(
        problems.is_empty(),
        "seed problems:\n  {}",
        problems.join("\n  ")
    );
    assert!(
        ours >= 10,
        "expected the seeds to hold our kinds, found {ours}"
    );
}

#[test]
fn every_seed_file_holds_at_least_one_kubernetes_object() {
    for file in crate::support::yaml_files(&crate::support::crate_dir().join("testdata/seeds")) {
        let docs = crate::support::documents(&file);
        assert!(!docs.is_empty(), "{} is empty", file.display());
        for doc in docs {
            let (api_version, kind) = crate::support::type_of(&doc);
            assert!(
                !api_version.is_empty() && !kind.is_empty(),
                "{}: document without apiVersion/kind",
                file.display()
            );
        }
    }
}

#[test]
fn every_example_document_of_our_kinds_validates() {
    let root = crate::support::crate_dir().join("..");
    let files = crate::support::yaml_files(&root.join("examples"));
    let (problems, _) = check_files(&files, &root);
    assert!(
        problems.is_empty(),
        "example problems:\n  {}",
        problems.join("\n  ")
    );
}
