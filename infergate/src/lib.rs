//! The `infergate` command: `run DIR` (xds-server + Envoy for a folder), `validate DIR`, `crds`.

/// Prints a line to stdout; a closed stdout (`infergate run | head -1`) must not stop the
/// gateway, so write errors are ignored.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

pub mod cli;
pub mod envoy;
pub mod http;
pub mod pools;
pub mod sims;
