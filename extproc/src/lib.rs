//! infergate extproc: the ext_proc service behind Envoy's two AI filters.
//!
//! - [`router`]: the listener-level leg (request validation, `x-ai-eg-model`, `/v1/models`,
//!   usage, metrics and costs on the response).
//! - [`upstream`]: the cluster-level leg, once per attempt (path prefix, model override,
//!   mutations, credentials, provider translation in [`translate`]).
//!
//! The legs share no memory, so any replica can serve any leg of any request (see
//! `shared/DESIGN.md` §4). Start it in-process with [`server::Server::start`]; feed it its
//! config from a file or from the xds-server over ADS ([`xds_client`]).

pub mod admin;
pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod costs;
pub mod envoy;
mod error;
pub mod keys;
pub mod metrics;
pub mod mutation;
pub mod otlp;
pub mod reserve;
pub mod router;
pub mod server;
pub mod sse;
pub mod target;
pub mod translate;
pub mod upstream;
pub mod usage;
pub mod xds_client;

pub use error::{Error, Result};
pub use otlp::OtlpConfig;
pub use server::{Bound, Options, Running, Server};
pub use xds_client::{XdsClient, XdsClientHandle};
