//! The simulator over HTTP, as the gateway, the endpoint picker and the OpenAI SDK see it.

mod support;

mod determinism;
mod errors;
mod lora;
mod metrics;
mod openai;
mod prefix_cache;
mod scheduling;
