//! Picker latency per request with 100 endpoints and synthetic metrics.
//!
//! `cargo run --release -p epp --example pick_bench [endpoints] [requests]`
//!
//! Measures the whole pick as the ext_proc handler runs it — datastore snapshot, subset,
//! objective and saturation, the built-in profile (queue 2, KV cache 2, prefix 3) and the
//! max-score picker — on chat prompts of ~2,000 characters sharing one of 8 system prompts,
//! so the prefix index fills and is walked on every pick. Prints p50/p90/p99/max.

#[path = "shared/pick.rs"]
mod pick;

fn main() {
    let mut args = std::env::args().skip(1);
    let endpoints: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let requests: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let f = pick::measure(endpoints, requests);
    println!(
        "pick_bench: {} endpoints, {} picks, prompt ~{} chars",
        f.endpoints, f.picks, f.prompt_chars
    );
    println!(
        "  p50 {:?}  p90 {:?}  p99 {:?}  max {:?}  ({:.0} picks/s on one thread)",
        f.p50, f.p90, f.p99, f.max, f.per_second
    );
}
