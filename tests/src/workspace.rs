//! Where the workspace and its built binaries are, for tests that run them as a user would.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The workspace root (the folder holding `Cargo.toml`, `examples/`, `.venv/`).
pub fn root() -> PathBuf {
    let tests_crate = Path::new(env!("CARGO_MANIFEST_DIR"));
    tests_crate.parent().unwrap_or(tests_crate).to_path_buf()
}

/// `target/<profile>/<name>`, next to the running test binary's `deps/` folder (`make test`
/// builds every workspace binary first).
pub fn bin(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test binary location")?;
    let bin = dir.join(name);
    if !bin.is_file() {
        bail!(
            "{} not found: build it first (cargo build -p {name})",
            bin.display()
        );
    }
    Ok(bin)
}
