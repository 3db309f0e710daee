//! Envoy Gateway kinds we honour, group `gateway.envoyproxy.io`, version `v1alpha1`.

mod backend;
mod rate_limit;
mod retry;
mod traffic_policy;

pub use backend::*;
pub use rate_limit::*;
pub use retry::*;
pub use traffic_policy::*;

/// API group of the Envoy Gateway kinds.
pub const GROUP: &str = "gateway.envoyproxy.io";
/// Version of the Envoy Gateway kinds.
pub const VERSION: &str = "v1alpha1";
