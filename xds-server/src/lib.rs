//! infergate's control plane: configuration sources → index → translator → ADS.
//!
//! `source` reads manifests, `index` holds typed objects, `translate` turns a snapshot of the
//! index into Envoy resources and per-object conditions, `publish` encodes them for the ADS
//! server (crate `infergate-ads`), and `server` wires it all with the admin endpoints.

pub mod admin;
pub mod cli;
pub mod index;
pub mod keys;
pub mod metrics;
pub mod object;
pub mod pipeline;
pub mod publish;
pub mod server;
pub mod source;
pub mod status;
pub mod translate;
