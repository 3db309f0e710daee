//! CRD manifests generated from the Rust types.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde_json::Value;

use crate::ai_gateway;
use crate::error::{Error, Result};

/// Every CRD this crate defines, in a stable order (Gateway API CRDs are not included).
///
/// The AI Gateway CRDs serve `v1alpha1` next to the `v1beta1` storage version, with the same schema.
pub fn all_crds() -> Vec<CustomResourceDefinition> {
    [
        with_alpha_version(crate::AIGatewayRoute::crd()),
        with_alpha_version(crate::AIServiceBackend::crd()),
        with_alpha_version(crate::BackendSecurityPolicy::crd()),
        with_alpha_version(crate::GatewayConfig::crd()),
        crate::Backend::crd(),
        crate::BackendTrafficPolicy::crd(),
        crate::InferencePool::crd(),
        crate::InferenceObjective::crd(),
    ]
    .into_iter()
    .map(with_list_kind)
    .collect()
}

/// kube leaves `listKind` unset; the API server would default it to `<Kind>List`, we write it out.
fn with_list_kind(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    if crd.spec.names.list_kind.is_none() {
        crd.spec.names.list_kind = Some(format!("{}List", crd.spec.names.kind));
    }
    crd
}

/// Adds a served, non-storage `v1alpha1` version with the storage version's schema.
fn with_alpha_version(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    let alpha = crd.spec.versions.iter().find(|v| v.storage).map(|storage| {
        let mut alpha = storage.clone();
        alpha.name = ai_gateway::ALPHA_VERSION.to_owned();
        alpha.storage = false;
        alpha.served = true;
        alpha
    });
    if let Some(alpha) = alpha {
        crd.spec.versions.insert(0, alpha);
    }
    crd
}

/// File name of a CRD's manifest: `<group>_<plural>.yaml`.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}_{}.yaml", crd.spec.group, crd.spec.names.plural)
}

/// A CRD as a YAML document (without the leading `---`).
///
/// Whole-number bounds (`maximum: 65535`) are written as integers; the CRD types hold them as `f64`.
pub fn to_yaml(crd: &CustomResourceDefinition) -> Result<String> {
    let name = || crd.metadata.name.clone().unwrap_or_default();
    let mut value = serde_json::to_value(crd).map_err(|source| Error::RenderJson {
        name: name(),
        source,
    })?;
    integral_numbers_as_integers(&mut value);
    serde_yaml::to_string(&value).map_err(|source| Error::RenderYaml {
        name: name(),
        source,
    })
}

fn integral_numbers_as_integers(value: &mut Value) {
    match value {
        Value::Number(n) => {
            if let Some(f) = n
                .as_f64()
                .filter(|f| n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15)
            {
                // Exact: |f| < 2^53 and f has no fractional part.
                *value = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_numbers_as_integers),
        Value::Object(map) => map.values_mut().for_each(integral_numbers_as_integers),
        _ => {}
    }
}

/// Every CRD as one multi-document YAML stream, for `infergate crds | kubectl apply -f -`.
pub fn render_all_yaml() -> Result<String> {
    let mut out = String::new();
    for crd in all_crds() {
        out.push_str("---\n");
        out.push_str(&to_yaml(&crd)?);
    }
    Ok(out)
}
