//! infergate epp: the endpoint picker of an InferencePool, speaking the Endpoint Picker
//! Protocol of the Gateway API Inference Extension over Envoy's ext_proc.
//!
//! - [`datastore`]: the pool's pods and endpoints, with the last good metrics of each;
//! - [`scrape`]: vLLM Prometheus metrics per endpoint, every 50 ms, staleness tracked;
//! - [`scheduling`]: `EndpointPickerConfig` → filters, weighted scorers, picker, saturation;
//! - [`director`]: candidates, subset hint, objective priority and shedding, then the scheduler;
//! - [`handlers`]: one ext_proc stream in BUFFERED or FULL_DUPLEX_STREAMED body mode;
//! - [`kube`]: the InferencePool and its Pods watched in Kubernetes (without `--pod`);
//! - [`server`]: ext_proc (9002), gRPC health (9003) and metrics (9090) — [`start`] it
//!   in-process and learn what it bound from [`Running::bound`].

pub mod cli;
pub mod datastore;
pub mod director;
pub mod envoy;
mod error;
pub mod handlers;
pub mod health;
pub mod keys;
pub mod kube;
pub mod metrics;
pub mod request;
pub mod scheduling;
pub mod scrape;
pub mod server;

pub use error::{Error, Result};
pub use server::{Bound, Config, Running, start};
