//! Kubernetes resource types for infergate: the AI Gateway, Envoy Gateway and Inference Extension
//! kinds we honour (with generated CRD manifests and schema validation), plus re-exports of the
//! Gateway API kinds.
//!
//! Field names and shapes follow the upstream Go APIs, so manifests written for Envoy AI Gateway,
//! Envoy Gateway and the Gateway API Inference Extension deserialize unchanged.
//!
//! - [`all_crds`] / [`render_all_yaml`]: the CRD manifests (`crds/manifests`, `infergate crds`);
//! - [`validate`]: check an object against its CRD schema, as `kubectl apply --validate=strict` would;
//! - [`from_value_strict`]: deserialize into our types, rejecting fields they do not know.

pub mod ai_gateway;
pub mod envoy_gateway;
mod error;
pub mod gateway;
pub mod inference;
mod manifests;
mod opaque;
pub mod refs;
mod strict;
mod validate;

pub use ai_gateway::{AIGatewayRoute, AIServiceBackend, BackendSecurityPolicy, GatewayConfig};
pub use envoy_gateway::{Backend, BackendTrafficPolicy};
pub use error::{Error, Result};
pub use gateway::{BackendTlsPolicy, Gateway, GatewayClass, HttpRoute, ReferenceGrant};
pub use inference::{InferenceObjective, InferencePool};
pub use manifests::{all_crds, file_name, render_all_yaml, to_yaml};
pub use strict::from_value_strict;
pub use validate::{is_crd_kind, validate};
