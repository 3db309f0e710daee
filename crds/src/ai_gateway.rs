//! Envoy AI Gateway kinds, group `aigateway.envoyproxy.io`.
//!
//! Types follow the upstream `v1beta1` API (the storage version). The CRD manifests also
//! serve `v1alpha1` with the same schema, so manifests written for either version load.

mod gateway_config;
mod oidc;
mod route;
mod security_policy;
mod service_backend;
mod shared;

pub use gateway_config::*;
pub use oidc::*;
pub use route::*;
pub use security_policy::*;
pub use service_backend::*;
pub use shared::*;

/// API group of the AI Gateway kinds.
pub const GROUP: &str = "aigateway.envoyproxy.io";
/// The version our types are generated for (storage version).
pub const VERSION: &str = "v1beta1";
/// The older version, served with the same schema.
pub const ALPHA_VERSION: &str = "v1alpha1";
