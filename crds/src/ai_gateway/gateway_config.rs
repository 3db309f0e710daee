//! `GatewayConfig`: gateway-wide settings, referenced from a Gateway's annotations.

use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements, SecurityContext, VolumeMount};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::LlmRequestCost;
use crate::refs::ConditionsStatus;

/// Spec of a `GatewayConfig`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "aigateway.envoyproxy.io",
    version = "v1beta1",
    kind = "GatewayConfig",
    doc = "GatewayConfig holds gateway-wide AI settings, such as the external processor and global request costs.",
    plural = "gatewayconfigs",
    namespaced,
    status = "GatewayConfigStatus",
    derive = "Default",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct GatewayConfigSpec {
    /// Settings of the external processor that runs next to Envoy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext_proc: Option<GatewayConfigExtProc>,
    /// Request costs applied to every route of the gateway.
    #[serde(
        default,
        rename = "globalLLMRequestCosts",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub global_llm_request_costs: Vec<LlmRequestCost>,
    /// Forward proxy for upstream connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_proxy: Option<GatewayConfigForwardProxy>,
}

/// Status of a `GatewayConfig`.
pub type GatewayConfigStatus = ConditionsStatus;

/// External processor settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayConfigExtProc {
    /// Container settings when running on Kubernetes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<ExtProcContainer>,
    /// Older `v1alpha1` shape: extra environment variables (now under `kubernetes`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Older `v1alpha1` shape: resource requirements (now under `kubernetes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

/// Container settings of the external processor (Envoy Gateway's `KubernetesContainerSpec`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExtProcContainer {
    /// Extra environment variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// CPU and memory requests and limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Container security context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,
    /// Full image reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Image repository; the tag stays the controller's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_repository: Option<String>,
    /// Extra volume mounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
}

/// A forward proxy for upstream connections.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayConfigForwardProxy {
    /// Proxy address, `host:port`.
    pub address: String,
}
