//! The Helm charts (charts/) and the Dockerfiles (docker/) as a user meets them: rendered and linted
//! by Helm 4's engine, every object validated against the Kubernetes schemas, the chart's copies of
//! the CRDs and of the Envoy bootstrap checked for drift, the rendered bootstrap passed through
//! `envoy --mode validate`, and flags checked against the binaries' `cli.rs`.
//!
//! The work is done by `tests/py/charts_check.py` with the `.venv` that `make test` fills
//! (helm-python-sdk, kubernetes-validate); this test runs it and fails with its report.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use infergate_e2e::workspace;

const TIMEOUT: Duration = Duration::from_secs(300);

#[test]
fn charts_render_lint_and_validate_and_match_their_sources() -> Result<()> {
    let root = workspace::root();
    let python = root.join(".venv/bin/python");
    if !python.is_file() {
        bail!(
            "{} not found: run `make deps` (installs helm-python-sdk and kubernetes-validate)",
            python.display()
        );
    }
    let envoy = infergate_e2e::envoy_bin()?;
    let report = run_check(&python, &root, &envoy)?;
    println!("{report}");
    Ok(())
}

/// Runs charts_check.py; its output on success, an error holding it on failure or timeout.
fn run_check(python: &Path, root: &Path, envoy: &Path) -> Result<String> {
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("charts_check.log");
    let file = std::fs::File::create(&log)?;
    let mut child = Command::new(python)
        .arg(root.join("tests/py/charts_check.py"))
        .arg("--root")
        .arg(root)
        .arg("--envoy")
        .arg(envoy)
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .spawn()
        .context("starting tests/py/charts_check.py")?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if started.elapsed() > TIMEOUT {
            child.kill().ok();
            child.wait().ok();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    match status {
        Some(status) if status.success() => Ok(output),
        Some(status) => bail!("charts_check.py failed ({status}):\n{output}"),
        None => bail!("charts_check.py did not finish in {TIMEOUT:?}:\n{output}"),
    }
}
