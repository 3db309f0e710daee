//! A vLLM-compatible model server without a GPU, for tests, benchmarks and `infergate run`.
//!
//! It speaks vLLM's OpenAI API (`/v1/chat/completions`, `/v1/completions`, `/v1/models`, SSE
//! streaming with usage), `/health`, and `/metrics` with vLLM's metric names and labels. Behind it
//! a simulated engine schedules requests as vLLM does: a bounded batch with a FIFO queue, a paged
//! KV cache with prefix caching, chunked prefill, preemption, and LoRA adapters in a limited number
//! of GPU slots. Time is simulated and mapped to real time by `time_scale`; output is a
//! deterministic function of `--seed` and the request.
//!
//! ```no_run
//! # async fn demo() -> inference_sim::Result<()> {
//! let sim = inference_sim::start(inference_sim::SimConfig::for_tests(0.1)).await?;
//! println!("chat at {}/v1/chat/completions", sim.url());
//! let state = sim.handle().wait_for(|s| s.running == 0).await?;
//! # let _ = state; Ok(()) }
//! ```

mod api;
mod config;
mod engine;
mod error;
mod generate;
mod handle;
mod kv_cache;
mod lora;
mod metrics;
mod rng;
mod runner;
mod server;
pub mod tokenizer;

pub use config::{LoraModule, SimConfig, defaults};
pub use error::{Error, Result};
pub use handle::{EngineState, SimHandle};
pub use server::{Running, start};
