//! In-process gRPC tests: the ADS server on 127.0.0.1:0, driven by the generated tonic client
//! exactly as Envoy drives it (first request, ACK with the nonce, NACK with `error_detail`).

#[path = "ads/harness.rs"]
mod harness;

#[path = "ads/delta.rs"]
mod delta;
#[path = "ads/ordering.rs"]
mod ordering;
#[path = "ads/registry.rs"]
mod registry;
#[path = "ads/sotw.rs"]
mod sotw;
