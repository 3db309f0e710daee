//! The `infergate` command as a user runs it: `validate` exit codes and messages, `run` on the
//! quickstart folder printing a URL that answers.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use infergate_e2e::upstream::UPSTREAM_HEADER;
use infergate_e2e::{FakeUpstream, envoy_bin, http, ports, wait};
use tokio::io::AsyncBufReadExt;

fn repo() -> PathBuf {
    infergate_e2e::workspace::root()
}

fn infergate_bin() -> Result<PathBuf> {
    infergate_e2e::workspace::bin("infergate")
}

#[test]
fn validate_accepts_the_quickstart() -> Result<()> {
    let out = Command::new(infergate_bin()?)
        .arg("validate")
        .arg(repo().join("examples/quickstart"))
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("ok: AIGatewayRoute default/quickstart"),
        "{stdout}"
    );
    assert!(!stdout.contains("error:"), "{stdout}");
    Ok(())
}

#[test]
fn validate_fails_naming_the_file_and_object_of_each_problem() -> Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("bad.yaml"), "kind: [\n")?;
    std::fs::write(
        dir.path().join("route.yaml"),
        "apiVersion: aigateway.envoyproxy.io/v1beta1\nkind: AIGatewayRoute\nmetadata: {name: r}\n\
         spec: {parentRefs: [{name: gw}], rules: [{backendRefs: [{name: missing}]}]}\n",
    )?;
    let out = Command::new(infergate_bin()?)
        .arg("validate")
        .arg(dir.path())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("bad.yaml (document 1): invalid YAML"),
        "{stdout}"
    );
    assert!(
        stdout.contains("AIGatewayRoute default/r [route.yaml (document 1)]"),
        "{stdout}"
    );
    assert!(
        stdout.contains("AIServiceBackend default/missing not found"),
        "{stdout}"
    );
    assert!(stdout.contains("Gateway default/gw not found"), "{stdout}");
    Ok(())
}

#[test]
fn crds_prints_every_manifest() -> Result<()> {
    let out = Command::new(infergate_bin()?).arg("crds").output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for plural in [
        "aigatewayroutes",
        "aiservicebackends",
        "backendsecuritypolicies",
        "inferencepools",
        "backends",
    ] {
        assert!(
            stdout.contains(&format!("name: {plural}.")),
            "{plural} missing"
        );
    }
    Ok(())
}

#[tokio::test]
async fn run_serves_the_quickstart_and_prints_its_url() -> Result<()> {
    // The quickstart's third backend is an OpenAI-compatible server on 127.0.0.1:8000; the copy
    // here points at a fake one on an ephemeral port instead (so `run` starts no sim there), and
    // moves the pools' target ports (the sim pods' ports) to free ones.
    let upstream = FakeUpstream::start("quickstart-upstream").await?;
    let llama_port = ports::free_port()?;
    let mistral_port = ports::free_port()?;
    let folder = tempfile::tempdir()?;
    for entry in std::fs::read_dir(repo().join("examples/quickstart"))? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path)?
            .replace("port: 8000", &format!("port: {}", upstream.addr().port()))
            .replace("number: 8000", &format!("number: {llama_port}"))
            .replace("number: 8080", &format!("number: {mistral_port}"));
        std::fs::write(folder.path().join(path.file_name().context("name")?), text)?;
    }
    let listen = ports::free_port()?;
    let offset = listen - 80; // the Gateway listens on port 80 → served on `listen`
    let envoy_admin = format!("127.0.0.1:{}", ports::free_port()?);
    let mut child = tokio::process::Command::new(infergate_bin()?)
        .arg("run")
        .arg(folder.path())
        .args(["--ads-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"])
        .args(["--envoy-admin-addr", &envoy_admin])
        .args([
            "--extproc-addr",
            "127.0.0.1:0",
            "--extproc-admin-addr",
            "127.0.0.1:0",
        ])
        .args(["--ratelimit-addr", "127.0.0.1:0"])
        .args(["--ratelimit-admin-addr", "127.0.0.1:0"])
        .args(["--privileged-port-offset", &offset.to_string()])
        .args(["--listener-address", "127.0.0.1"])
        .args(["--sim-time-scale", "0.01"])
        .env("ENVOY_BIN", envoy_bin()?)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    // Keep reading stdout for the whole test: a reader that stops would close the pipe.
    let printed = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let (url_tx, url_rx) = tokio::sync::oneshot::channel::<String>();
    let lines_seen = printed.clone();
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let mut url_tx = Some(url_tx);
        while let Ok(Some(line)) = lines.next_line().await {
            let url = line
                .split_whitespace()
                .find(|w| w.starts_with("http://127.0.0.1:"));
            lines_seen.lock().expect("lines").push(line.clone());
            if let Some(url) = url.filter(|_| line.contains("listener http"))
                && let Some(tx) = url_tx.take()
            {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    let url = tokio::time::timeout(Duration::from_secs(60), url_rx)
        .await?
        .context("infergate run printed no listener URL")?;
    assert_eq!(url, format!("http://127.0.0.1:{listen}"));
    // Before the URL: a line per sim (the fake upstream's address is left alone) and per picker.
    let printed = printed.lock().expect("lines").join("\n");
    for expected in [
        format!(
            "inference-sim http://127.0.0.11:{llama_port} for Pod default/vllm-llama3-8b-instruct-0: model meta-llama/Llama-3.1-8B-Instruct"
        ),
        format!(
            "inference-sim http://127.0.0.15:{mistral_port} for Pod default/mistral-upstream-2: model mistral:latest"
        ),
        format!(
            "no inference-sim on 127.0.0.1:{} for Backend default/envoy-ai-gateway-basic-testupstream",
            upstream.addr().port()
        ),
        "epp default/vllm-llama3-8b-instruct: grpc 127.0.0.1:".to_owned(),
        "(ConfigMap default/plugins-config default-plugins.yaml)".to_owned(),
    ] {
        assert!(
            printed.contains(&expected),
            "{expected:?} not in\n{printed}"
        );
    }
    let chat = format!("{url}/v1/chat/completions");
    // The extproc takes the model from the body, as an OpenAI client sends it.
    let body = |model: &str| {
        format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}"#)
    };
    let json = [("content-type", "application/json")];
    let answered = wait::until(
        "the quickstart model to answer",
        Duration::from_secs(20),
        || async {
            let r = http::post(&chat, &json, body("some-cool-self-hosted-model")).await?;
            if r.status != 200 {
                bail!("status {}: {}", r.status, r.text());
            }
            Ok(Some(r))
        },
    )
    .await?;
    assert_eq!(
        answered.header(UPSTREAM_HEADER),
        Some("quickstart-upstream")
    );
    let seen = upstream
        .last_request()
        .context("upstream saw the request")?;
    assert_eq!(seen.path, "/v1/chat/completions");
    let unknown = http::post(&chat, &json, body("gpt-nope")).await?;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()?["error"]["code"], "model_not_found");
    let models = http::get(&format!("{url}/v1/models"), &[]).await?.json()?;
    let ids: Vec<&str> = models["data"]
        .as_array()
        .context("data")?
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    for model in [
        "meta-llama/Llama-3.1-8B-Instruct",
        "mistral:latest",
        "some-cool-self-hosted-model",
    ] {
        assert!(ids.contains(&model), "{model} not in {models}");
    }
    // SIGTERM (what `kill` sends) stops it cleanly: a success, and Envoy gone with it.
    let pid = child.id().context("infergate's pid")?;
    let sent = tokio::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await?;
    assert!(sent.success());
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .context("infergate run did not stop on SIGTERM")??;
    assert!(status.success(), "{status}");
    let admin = format!("http://{envoy_admin}/ready");
    wait::until("Envoy to stop with it", Duration::from_secs(10), || async {
        Ok(http::get(&admin, &[]).await.is_err().then_some(()))
    })
    .await?;
    Ok(())
}
