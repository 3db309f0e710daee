//! A generic Aggregated Discovery Service for Envoy (DESIGN.md §3).
//!
//! The control plane publishes [`SnapshotSet`]s of already-encoded resources on a
//! `tokio::sync::watch` channel; [`AdsServer`] serves them over ADS in both the state-of-the-world
//! and the incremental (Delta) variants, and [`ProxyRegistry`] tells `/status`, `/metrics` and
//! tests what every proxy has been sent, has accepted and has rejected. Nothing here knows about
//! Gateways or routes beyond type URLs and resource names.
//!
//! Behaviour common to both variants:
//! - ACK/NACK by nonce per type; a NACK is logged at warn with Envoy's `error_detail`, counted in
//!   `xds_nacks_total{type}` and kept in the registry, and the rejected version is not sent again
//!   until the type changes.
//! - Snapshot changes are applied per stream in make-before-break order (`order.rs`), waiting for
//!   ACKs between steps for at most [`DEFAULT_ACK_TIMEOUT`]; snapshots that arrive during a wait are
//!   coalesced into the newest.
//! - The first request of a type on a stream is always answered, even when it names the current
//!   version (see `sotw.rs` for why).
//! - A type URL we have no resources of is answered with no resources (and logged once per
//!   process if it is not one of [`type_url::KNOWN`]); a request without a type URL is logged and
//!   ignored. Nothing a proxy sends can panic the server or end the stream.
//! - Debouncing bursts of model changes is the producer's job; the watch channel keeps only the
//!   newest snapshot anyway.

mod ack;
mod delta;
pub mod error;
mod order;
mod registry;
mod server;
mod snapshot;
mod sotw;
mod stream;
pub mod type_url;

pub use error::{Error, Result};
pub use registry::{Nack, ProxyRegistry, ProxyStatus, StreamKind, TypeStatus, all_acked};
pub use server::{AdsServer, DEFAULT_ACK_TIMEOUT};
pub use snapshot::{Resources, Snapshot, SnapshotSet, XdsResource};
