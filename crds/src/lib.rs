//! Kubernetes resource types for infergate: the AI Gateway, Envoy Gateway and Inference Extension
//! kinds we honour (with generated CRD manifests and schema validation), plus re-exports of the
//! Gateway API kinds.
//!
//! Field names and shapes follow the upstream Go APIs, so manifests written for Envoy AI Gateway,
//! Envoy Gateway and the Gateway API Inference Extension deserialize unchanged.

pub mod ai_gateway;
pub mod envoy_gateway;
pub mod gateway;
pub mod inference;
mod opaque;
pub mod refs;

pub use ai_gateway::{AIGatewayRoute, AIServiceBackend, BackendSecurityPolicy, GatewayConfig};
pub use envoy_gateway::{Backend, BackendTrafficPolicy};
pub use gateway::{BackendTlsPolicy, Gateway, GatewayClass, HttpRoute, ReferenceGrant};
pub use inference::{InferenceObjective, InferencePool};

mod error;
mod manifests;

pub use error::{Error, Result};
pub use manifests::{all_crds, file_name, render_all_yaml, to_yaml};
