//! `AIServiceBackend`: one AI provider endpoint and the API schema it speaks.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{HttpBodyMutation, HttpHeaderMutation, VersionedApiSchema};
use crate::refs::{
    BackendObjectReference, ConditionsStatus, HttpRouteTimeouts, LocalObjectReference,
};

/// Spec of an `AIServiceBackend`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "aigateway.envoyproxy.io",
    version = "v1beta1",
    kind = "AIServiceBackend",
    doc = "AIServiceBackend is one AI provider endpoint and the API schema it serves.",
    plural = "aiservicebackends",
    namespaced,
    status = "AIServiceBackendStatus",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct AIServiceBackendSpec {
    /// API schema the backend serves; requests are translated into it.
    pub schema: VersionedApiSchema,
    /// Where the traffic goes: usually an Envoy Gateway `Backend`, or a Service.
    pub backend_ref: BackendObjectReference,
    /// Older `v1alpha1` link to a BackendSecurityPolicy; superseded by the policy's `targetRefs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_security_policy_ref: Option<LocalObjectReference>,
    /// Older `v1alpha1` request timeouts for this backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<HttpRouteTimeouts>,
    /// Header changes for every request to this backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_mutation: Option<HttpHeaderMutation>,
    /// Body changes for every request to this backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_mutation: Option<HttpBodyMutation>,
}

/// Status of an `AIServiceBackend`.
pub type AIServiceBackendStatus = ConditionsStatus;
