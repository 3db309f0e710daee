//! `AIGatewayRoute`: routes OpenAI-style requests to AI backends by model name and headers.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{HttpBodyMutation, HttpHeaderMutation, LlmRequestCost, VersionedApiSchema};
use crate::refs::{
    ConditionsStatus, DURATION_PATTERN, HttpHeaderMatch, HttpRouteTimeouts,
    LocalPolicyTargetReferenceWithSectionName, ParentReference,
};

/// Spec of an `AIGatewayRoute`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "aigateway.envoyproxy.io",
    version = "v1beta1",
    kind = "AIGatewayRoute",
    doc = "AIGatewayRoute routes OpenAI-style requests to AI service backends or InferencePools by model name and headers.",
    plural = "aigatewayroutes",
    namespaced,
    status = "AIGatewayRouteStatus",
    derive = "Default",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.conditions[-1:].type"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AIGatewayRouteSpec {
    /// Gateways this route attaches to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parent_refs: Vec<ParentReference>,
    /// Host names this route serves; all hosts of the listener when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    /// Routing rules, evaluated as one HTTPRoute.
    pub rules: Vec<AIGatewayRouteRule>,
    /// Costs computed from token usage, for token rate limiting.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub llm_request_costs: Vec<LlmRequestCost>,
    /// Older `v1alpha1` attachment: the Gateways this route attaches to, like `parentRefs`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<LocalPolicyTargetReferenceWithSectionName>,
    /// Older `v1alpha1` field: the API schema clients use (OpenAI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<VersionedApiSchema>,
    /// Older `v1alpha1` external-processor settings; accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::opaque::object")]
    pub filter_config: Option<serde_json::Value>,
}

/// Status of an `AIGatewayRoute`.
pub type AIGatewayRouteStatus = ConditionsStatus;

/// One rule: matches plus the backends that serve them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AIGatewayRouteRule {
    /// Optional rule name, unique within the route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Backends (AIServiceBackend or InferencePool) that serve matching requests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backend_refs: Vec<AIGatewayRouteRuleBackendRef>,
    /// Conditions, ORed; headers within one match are ANDed. The model is matched via `x-ai-eg-model`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<AIGatewayRouteRuleMatch>,
    /// Request timeouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<HttpRouteTimeouts>,
    /// Idle timeout of a streaming response (Gateway API duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub stream_idle_timeout: Option<String>,
    /// `owned_by` reported by `/v1/models` for the models of this rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models_owned_by: Option<String>,
    /// `created` reported by `/v1/models` for the models of this rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models_created_at: Option<Time>,
}

/// A reference from a rule to a backend.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AIGatewayRouteRuleBackendRef {
    /// Name of the AIServiceBackend or InferencePool.
    pub name: String,
    /// Namespace of the referent; the route's namespace when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `inference.networking.k8s.io` for an InferencePool; unset for an AIServiceBackend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// `InferencePool`; unset for an AIServiceBackend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Model name sent upstream instead of the client's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_name_override: Option<String>,
    /// Header changes for requests to this backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_mutation: Option<HttpHeaderMutation>,
    /// Body changes for requests to this backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_mutation: Option<HttpBodyMutation>,
    /// Relative share of traffic among backends of the same priority (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0), extend("default" = 1))]
    pub weight: Option<i32>,
    /// Failover tier; 0 is tried first (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = 0))]
    pub priority: Option<u32>,
}

impl AIGatewayRouteRuleBackendRef {
    /// Default weight of a backend reference.
    pub const DEFAULT_WEIGHT: i32 = 1;

    /// The weight with the default applied.
    pub fn weight(&self) -> i32 {
        self.weight.unwrap_or(Self::DEFAULT_WEIGHT)
    }

    /// The priority with the default applied.
    pub fn priority(&self) -> u32 {
        self.priority.unwrap_or(0)
    }

    /// True when this reference points at an InferencePool rather than an AIServiceBackend.
    pub fn is_inference_pool(&self) -> bool {
        self.kind.as_deref() == Some("InferencePool")
    }
}

/// Header conditions of a rule.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AIGatewayRouteRuleMatch {
    /// Headers that must all match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HttpHeaderMatch>,
}
