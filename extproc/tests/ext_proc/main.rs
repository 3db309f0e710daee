//! The ext_proc stream driven in-process exactly as Envoy would drive it.

mod bad_input;
mod exchange;
mod golden;
mod harness;
mod legs;
mod provider_fake;
