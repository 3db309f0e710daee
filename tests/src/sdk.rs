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
    let mut args = Vec::new();
    for (name, value) in headers {
        args.push("--header".to_string());
        args.push(format!("{name}:{value}"));
    }
    run("client.py", base_url, model, &args, scenarios).await
}

/// The official Anthropic SDK (`tests/py/anthropic_client.py`, scenarios `messages`,
/// `messages-stream`) against `base_url` (the gateway's `/anthropic`).
pub async fn anthropic(base_url: &str, model: &str, scenarios: &[&str]) -> Result<Vec<Value>> {
    run("anthropic_client.py", base_url, model, &[], scenarios).await
}

async fn run(
    script: &str,
    base_url: &str,
    model: &str,
    args: &[String],
    scenarios: &[&str],
) -> Result<Vec<Value>> {
    let root = workspace::root();
    let python = root.join(".venv/bin/python");
    if !python.is_file() {
        bail!("{} not found: run `make deps`", python.display());
    }
    let mut command = tokio::process::Command::new(&python);
    command
        .arg(root.join("tests/py").join(script))
        .args(["--base-url", base_url, "--model", model])
        .args(args);
    command
        .args(scenarios)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .with_context(|| format!("{script} did not finish in 60 s"))??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let results: Vec<Value> = stdout
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .with_context(|| format!("{script} printed non-JSON:\n{stdout}\n{stderr}"))?;
    if results.len() != scenarios.len() {
        bail!(
            "{script} ran {} of {} scenarios ({}):\n{stdout}\n{stderr}",
            results.len(),
            scenarios.len(),
            output.status
        );
    }
    Ok(results)
}
