//! End-to-end harness: a real Envoy, fake upstreams, an HTTP client and a bounded load generator.
//!
//! Tests wait on conditions (Envoy's admin `/ready`, stats, listeners; request counts), never on
//! sleeps. Every process and server is bound to an ephemeral loopback port and stops on `Drop`;
//! Envoy's log is printed only when the test that owns it panics.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use infergate_e2e::{Envoy, FakeUpstream, http};
//! let upstream = FakeUpstream::start("alpha").await?;
//! let envoy = Envoy::start("static_resources: {}\n").await?;
//! envoy.wait_ready().await?;
//! let response = http::get(&format!("http://{}/", upstream.addr()), &[]).await?;
//! assert_eq!(response.header("x-upstream"), Some("alpha"));
//! # Ok(()) }
//! ```

pub mod envoy;
pub mod fake_anthropic;
pub mod fake_openai;
pub mod gateway;
pub mod http;
pub mod load;
pub mod manifests;
pub mod ports;
pub mod ratelimit_stack;
pub mod redis;
pub mod replay_provider;
pub mod sdk;
pub mod upstream;
pub mod wait;
pub mod workspace;
pub mod xds;

pub use envoy::{Envoy, envoy_bin};
pub use upstream::FakeUpstream;

/// How long the harness waits for a condition unless told otherwise.
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
