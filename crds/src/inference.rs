//! Gateway API Inference Extension kinds: `InferencePool` (`inference.networking.k8s.io/v1`) and
//! `InferenceObjective` (`inference.networking.x-k8s.io/v1alpha2`).

mod objective;
mod pool;

pub use objective::*;
pub use pool::*;

/// API group of `InferencePool`.
pub const GROUP: &str = "inference.networking.k8s.io";
/// Version of `InferencePool`.
pub const VERSION: &str = "v1";
/// API group of the experimental kinds (`InferenceObjective`).
pub const X_GROUP: &str = "inference.networking.x-k8s.io";
/// Version of `InferenceObjective`.
pub const X_VERSION: &str = "v1alpha2";
