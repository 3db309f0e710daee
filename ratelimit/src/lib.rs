//! infergate ratelimit: Envoy's `envoy.service.ratelimit.v3.RateLimitService` for token
//! budgets (see `shared/DESIGN.md` §6 and this crate's README for the wire contract).
//!
//! The service holds no limit configuration: every descriptor carries its rule id and limit
//! ([`keys`]), so route changes apply at once and replicas are stateless apart from the
//! [`storage`] they share.
//!
//! - [`descriptor`]: entries → a typed [`descriptor::Descriptor`] (bad ones answered OK).
//! - [`window`]: fixed windows in Unix time.
//! - [`decision`]: the pure math (plain / reserve / settle, shadow, all-or-nothing).
//! - [`storage`]: memory or Redis, both atomic per request.
//! - [`service`], [`server`], [`admin`], [`metrics`]: the gRPC and HTTP surfaces.

pub mod admin;
pub mod cli;
pub mod decision;
pub mod descriptor;
mod error;
pub mod keys;
pub mod metrics;
pub mod server;
pub mod service;
pub mod storage;
mod throttle;
pub mod window;

pub use error::{Error, Result};
pub use server::{Bound, Options, Running, Server};
pub use storage::{MemoryStorage, RedisStorage, Storage, StorageOptions};
