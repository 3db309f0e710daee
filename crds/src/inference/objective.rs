//! `InferenceObjective`: the priority of requests for a pool (used when the pool is saturated).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::refs::ConditionsStatus;

/// Spec of an `InferenceObjective`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "inference.networking.x-k8s.io",
    version = "v1alpha2",
    kind = "InferenceObjective",
    doc = "InferenceObjective sets the priority of requests served by an InferencePool.",
    plural = "inferenceobjectives",
    namespaced,
    status = "InferenceObjectiveStatus",
    derive = "Default",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct InferenceObjectiveSpec {
    /// Higher values are served first; unset means 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// The pool these requests go to.
    pub pool_ref: PoolObjectReference,
}

/// Status of an `InferenceObjective`.
pub type InferenceObjectiveStatus = ConditionsStatus;

/// Reference to an `InferencePool` in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolObjectReference {
    /// API group; `inference.networking.k8s.io` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind; `InferencePool` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name of the pool.
    pub name: String,
}
