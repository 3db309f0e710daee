//! The official OpenAI Python SDK as a gateway client (`tests/py/client.py`, run with the
//! `.venv` that `make test` sets up).

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::workspace;

/// `client.py --base-url <base> --model <model> [--header K:V…] <scenarios…>`: one JSON result
/// per scenario. Fails only when the client itself could not run (a failed scenario is a result
/// with `"ok": false` and the SDK's error).
pub async fn openai(
    base_url: &str,
    model: &str,
    headers: &[(&str, &str)],
    scenarios: &[&str],
) -> Result<Vec<Value>> {
    let root = workspace::root();
    let python = root.join(".venv/bin/python");
    if !python.is_file() {
        bail!("{} not found: run `make deps`", python.display());
    }
    let mut command = tokio::process::Command::new(&python);
    command
        .arg(root.join("tests/py/client.py"))
        .args(["--base-url", base_url, "--model", model]);
    for (name, value) in headers {
        command.arg("--header").arg(format!("{name}:{value}"));
    }
    command
        .args(scenarios)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .context("client.py did not finish in 60 s")??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let results: Vec<Value> = stdout
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .with_context(|| format!("client.py printed non-JSON:\n{stdout}\n{stderr}"))?;
    if results.len() != scenarios.len() {
        bail!(
            "client.py ran {} of {} scenarios ({}):\n{stdout}\n{stderr}",
            results.len(),
            scenarios.len(),
            output.status
        );
    }
    Ok(results)
}
