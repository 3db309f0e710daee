//! `infergate run examples/quickstart` as a user runs it, with nothing else started: the folder's
//! loopback Pods and Backend are served by the inference-sims `run` starts, each InferencePool by
//! the picker `run` starts. The seed's three models answer chat completions through Envoy (plain
//! HTTP, and streamed through the `openai` SDK), each pool's requests are spread over its pods
//! (every sim's `vllm:request_success_total`), and a Pod removed from the folder stops receiving
//! requests.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use infergate_e2e::{envoy_bin, http, ports, wait};
use tokio::io::AsyncBufReadExt;

const LLAMA: &str = "meta-llama/Llama-3.1-8B-Instruct";
const MISTRAL: &str = "mistral:latest";
const SELF_HOSTED: &str = "some-cool-self-hosted-model";

fn repo() -> PathBuf {
    infergate_e2e::workspace::root()
}

fn infergate_bin() -> Result<PathBuf> {
    infergate_e2e::workspace::bin("infergate")
}

/// Requests a sim finished, from its `/metrics`.
async fn served(base: &str) -> Result<u64> {
    let metrics = http::get(&format!("{base}/metrics"), &[]).await?.text();
    Ok(metrics
        .lines()
        .filter(|l| l.starts_with("vllm:request_success_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64)
}

/// The seed's question to each model with the `openai` SDK in `.venv` (streamed, usage in the
/// last chunk): a line `model: answer (N completion tokens)` each.
async fn openai_sdk(base_url: &str, models: &[&str]) -> Result<String> {
    let python = repo().join(".venv/bin/python");
    if !python.is_file() {
        bail!("{} not found: run `make deps`", python.display());
    }
    let script = r#"
import sys
from openai import OpenAI
client = OpenAI(base_url=sys.argv[1], api_key="unused", max_retries=0, timeout=30)
for model in sys.argv[2:]:
    text, usage = "", None
    for chunk in client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Hi. Say this is a test"}],
        max_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        if chunk.usage:
            usage = chunk.usage
    assert usage is not None and usage.completion_tokens == 8, usage
    print(f"{model}: {text} ({usage.completion_tokens} completion tokens)")
"#;
    let output = tokio::process::Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(base_url)
        .args(models)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), output)
        .await
        .context("the openai SDK did not finish in 60 s")??;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "openai SDK: {}\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(stdout)
}

#[tokio::test]
async fn the_quickstart_models_answer_and_pool_requests_spread_over_the_pods() -> Result<()> {
    // The folder as is, on free ports: the Backend's and the pools' target ports. The pods keep
    // their loopback addresses (127.0.0.11-15).
    let backend_port = ports::free_port()?;
    let llama_port = ports::free_port()?;
    let mistral_port = ports::free_port()?;
    let folder = tempfile::tempdir()?;
    for entry in std::fs::read_dir(repo().join("examples/quickstart"))? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path)?
            .replace("port: 8000", &format!("port: {backend_port}"))
            .replace("number: 8000", &format!("number: {llama_port}"))
            .replace("number: 8080", &format!("number: {mistral_port}"));
        std::fs::write(folder.path().join(path.file_name().context("name")?), text)?;
    }
    let listen = ports::free_port()?;
    let envoy_admin = format!("127.0.0.1:{}", ports::free_port()?);
    // The test ends with SIGKILL: keep the extproc's socket where the test cleans up.
    let sockets = tempfile::tempdir()?;
    let socket = sockets.path().join("extproc.sock");
    let mut child = tokio::process::Command::new(infergate_bin()?)
        .arg("run")
        .arg(folder.path())
        .args(["--ads-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"])
        .args(["--envoy-admin-addr", &envoy_admin])
        .args(["--extproc-addr", "127.0.0.1:0"])
        .args(["--extproc-admin-addr", "127.0.0.1:0"])
        .arg("--extproc-socket")
        .arg(&socket)
        .args(["--ratelimit-addr", "127.0.0.1:0"])
        .args(["--ratelimit-admin-addr", "127.0.0.1:0"])
        .args(["--privileged-port-offset", &(listen - 80).to_string()])
        .args(["--listener-address", "127.0.0.1"])
        // Requests last tens of ms: concurrent ones overlap, so the pickers see queues.
        .args(["--sim-time-scale", "0.5"])
        .env("ENVOY_BIN", envoy_bin()?)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    let (url_tx, url_rx) = tokio::sync::oneshot::channel::<String>();
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let mut url_tx = Some(url_tx);
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("listener http")
                && let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://"))
                && let Some(tx) = url_tx.take()
            {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    let url = tokio::time::timeout(Duration::from_secs(60), url_rx)
        .await?
        .context("infergate run printed no listener URL")?;
    let chat = format!("{url}/v1/chat/completions");
    let json = [("content-type", "application/json")];
    let ask = |model: &'static str, prompt: String| {
        let chat = chat.clone();
        async move {
            let body = serde_json::json!({
                "model": model,
                "messages": [{"role": "user", "content": prompt}],
                "max_tokens": 20,
            });
            let r = http::post(&chat, &json, body.to_string()).await?;
            if r.status != 200 {
                bail!("{model}: status {}: {}", r.status, r.text());
            }
            let answer = r.json()?;
            anyhow::ensure!(answer["model"] == model, "{model}: {answer}");
            anyhow::ensure!(
                answer["choices"][0]["message"]["content"]
                    .as_str()
                    .is_some_and(|c| !c.is_empty()),
                "{model}: {answer}"
            );
            Ok(answer)
        }
    };

    // The seed's three requests.
    for model in [LLAMA, MISTRAL, SELF_HOSTED] {
        wait::until(
            &format!("{model} to answer"),
            Duration::from_secs(30),
            || async {
                ask(model, "Hi. Say this is a test".to_owned())
                    .await
                    .map(Some)
            },
        )
        .await?;
    }
    assert_eq!(
        served(&format!("http://127.0.0.1:{backend_port}")).await?,
        1
    );
    // And through the official `openai` SDK, streaming with usage.
    let answers = openai_sdk(&format!("{url}/v1"), &[LLAMA, MISTRAL, SELF_HOSTED]).await?;
    for model in [LLAMA, MISTRAL, SELF_HOSTED] {
        assert!(
            answers.contains(&format!("{model}: ")) && !answers.contains(&format!("{model}:  (")),
            "{model} missing in\n{answers}"
        );
    }

    // Each pool: concurrent requests with distinct prompts until every pod has served some.
    let pools = [
        (LLAMA, llama_port, vec![11u8, 12]),
        (MISTRAL, mistral_port, vec![13, 14, 15]),
    ];
    for (model, port, pods) in pools {
        let bases: Vec<String> = pods
            .iter()
            .map(|i| format!("http://127.0.0.{i}:{port}"))
            .collect();
        let mut round = 0;
        let counts = wait::until(
            &format!("{model}'s requests to reach every pod"),
            Duration::from_secs(60),
            || {
                round += 1;
                let batch: Vec<_> = (0..12)
                    .map(|i| {
                        ask(
                            model,
                            format!("Round {round} question {i}: what is {i} times {round}?"),
                        )
                    })
                    .collect();
                let bases = bases.clone();
                async move {
                    for answer in futures::future::join_all(batch).await {
                        answer?;
                    }
                    let mut counts = Vec::new();
                    for base in &bases {
                        counts.push(served(base).await?);
                    }
                    Ok(counts.iter().all(|c| *c > 0).then_some(counts))
                }
            },
        )
        .await?;
        eprintln!("{model}: requests per pod {counts:?}");
    }

    // A Pod removed from the folder stops being picked: once a whole batch misses it, two more
    // batches do too.
    let pool_file = folder.path().join("mistral-pool.yaml");
    let text = std::fs::read_to_string(&pool_file)?;
    let kept: Vec<&str> = text
        .split("\n---\n")
        .filter(|doc| !doc.contains("name: mistral-upstream-2\n"))
        .collect();
    std::fs::write(&pool_file, kept.join("\n---\n"))?;
    let removed = format!("http://127.0.0.15:{mistral_port}");
    let batch = |tag: String| {
        let requests: Vec<_> = (0..12)
            .map(|i| {
                ask(
                    MISTRAL,
                    format!("{tag} question {i}: what is {i} plus {i}?"),
                )
            })
            .collect();
        async move {
            for answer in futures::future::join_all(requests).await {
                answer?;
            }
            anyhow::Ok(())
        }
    };
    let mut round = 0;
    wait::until(
        "the removed pod to get no request of a batch",
        Duration::from_secs(30),
        || {
            round += 1;
            let batch = batch(format!("Removal round {round}"));
            let removed = removed.clone();
            async move {
                let before = served(&removed).await?;
                batch.await?;
                Ok((served(&removed).await? == before).then_some(()))
            }
        },
    )
    .await?;
    let before = served(&removed).await?;
    for i in 0..2 {
        batch(format!("After removal {i}")).await?;
    }
    assert_eq!(served(&removed).await?, before, "a removed pod was picked");
    child.kill().await?;
    Ok(())
}
