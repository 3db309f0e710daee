//! Gateway API kinds (`gateway.networking.k8s.io`), re-exported from the `gateway-api` crate.
//!
//! Their CRDs come from the Gateway API release; we generate no manifests for them.

pub use gateway_api::backendtlspolicies::{BackendTlsPolicy, BackendTlsPolicySpec};
pub use gateway_api::gatewayclasses::{GatewayClass, GatewayClassSpec};
pub use gateway_api::gateways::{Gateway, GatewaySpec};
pub use gateway_api::httproutes::{HttpRoute, HttpRouteSpec};
pub use gateway_api::referencegrants::{ReferenceGrant, ReferenceGrantSpec};

/// The full generated modules, for the nested spec and status types.
pub use gateway_api::{backendtlspolicies, gatewayclasses, gateways, httproutes, referencegrants};
