//! Strict deserialization reports fields our types would drop.

use infergate_crds::{AIGatewayRoute, Error, InferencePool, from_value_strict};
use serde_json::json;

#[test]
fn a_field_our_types_do_not_know_is_reported_with_its_path() {
    let object = json!({
        "apiVersion": "inference.networking.k8s.io/v1",
        "kind": "InferencePool",
        "metadata": {"name": "pool", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": "vllm"}},
            "targetPorts": [{"number": 8000}],
            "extensionRef": {"name": "epp"},
        },
    });
    match from_value_strict::<InferencePool>(&object) {
        Err(Error::UnknownFields { what, fields }) => {
            assert_eq!(what, "InferencePool default/pool");
            assert_eq!(fields, ["spec.extensionRef"]);
        }
        other => panic!("expected unknown fields, got {other:?}"),
    }
}

#[test]
fn v1alpha1_ai_gateway_objects_load_into_the_v1beta1_types() {
    let object = json!({
        "apiVersion": "aigateway.envoyproxy.io/v1alpha1",
        "kind": "AIGatewayRoute",
        "metadata": {"name": "r"},
        "spec": {"rules": [{
            "matches": [{"headers": [{"name": "x-ai-eg-model", "value": "gpt-4"}]}],
            "backendRefs": [{"name": "openai", "priority": 1}],
        }]},
    });
    let route = from_value_strict::<AIGatewayRoute>(&object).expect("loads");
    let backend = &route.spec.rules[0].backend_refs[0];
    assert_eq!((backend.weight(), backend.priority()), (1, 1));
    assert!(!backend.is_inference_pool());
}

#[test]
fn a_missing_required_field_is_a_deserialize_error() {
    let object = json!({"kind": "AIGatewayRoute", "metadata": {"name": "r"}, "spec": {}});
    let error = from_value_strict::<AIGatewayRoute>(&object).expect_err("rules are required");
    assert!(
        error
            .to_string()
            .starts_with("AIGatewayRoute r: missing field `rules`"),
        "{error}"
    );
}

#[test]
fn fields_of_older_v1alpha1_releases_still_load_and_validate() {
    use infergate_crds::{AIServiceBackend, GatewayConfig, validate};

    let route = json!({
        "apiVersion": "aigateway.envoyproxy.io/v1alpha1",
        "kind": "AIGatewayRoute",
        "metadata": {"name": "legacy", "namespace": "default"},
        "spec": {
            "schema": {"name": "OpenAI"},
            "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw"}],
            "rules": [{"backendRefs": [{"name": "openai"}]}],
            "filterConfig": {"type": "ExternalProcessor", "externalProcessor": {"resources": {}}},
        },
    });
    let backend = json!({
        "apiVersion": "aigateway.envoyproxy.io/v1alpha1",
        "kind": "AIServiceBackend",
        "metadata": {"name": "openai", "namespace": "default"},
        "spec": {
            "schema": {"name": "OpenAI"},
            "backendRef": {"name": "openai", "kind": "Backend", "group": "gateway.envoyproxy.io"},
            "backendSecurityPolicyRef": {"group": "aigateway.envoyproxy.io", "kind": "BackendSecurityPolicy", "name": "key"},
            "timeouts": {"request": "3m"},
        },
    });
    let config = json!({
        "apiVersion": "aigateway.envoyproxy.io/v1alpha1",
        "kind": "GatewayConfig",
        "metadata": {"name": "config", "namespace": "default"},
        "spec": {"extProc": {
            "env": [{"name": "LOG_LEVEL", "value": "debug"}],
            "resources": {"requests": {"cpu": "100m"}},
        }},
    });
    from_value_strict::<AIGatewayRoute>(&route).expect("route loads");
    from_value_strict::<AIServiceBackend>(&backend).expect("backend loads");
    from_value_strict::<GatewayConfig>(&config).expect("config loads");
    for object in [&route, &backend, &config] {
        assert_eq!(validate(object), Ok(()), "{}", object["kind"]);
    }
}
