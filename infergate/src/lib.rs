//! The `infergate` command: `run DIR` (xds-server + Envoy for a folder), `validate DIR`, `crds`.

pub mod cli;
pub mod envoy;
pub mod http;
