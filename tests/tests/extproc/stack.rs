//! The whole data path in one test process: a fake OpenAI provider, extproc replicas, the
//! xds-server feeding both Envoy and the extprocs over ADS, and a real Envoy.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use infergate_e2e::{Envoy, http, manifests, ports, wait};
use serde_json::Value;
use xds_server::pipeline::Debounce;
use xds_server::server::{self, Config};
use xds_server::translate::Options;

pub const TIMEOUT: Duration = Duration::from_secs(20);
/// The provider key in the Secret: it must reach the provider and nothing else.
pub const UPSTREAM_KEY: &str = "sk-upstream-3f9c2a7e-must-stay-inside";
/// The key the SDK client sends (client.py's default): it must never reach the provider.
pub const CLIENT_KEY: &str = "client-key-must-not-leak";
/// Served by rule 0 of the costed route, sent upstream as [`OVERRIDE`].
pub const ALIAS: &str = "smart";
pub const OVERRIDE: &str = "gpt-4o-mini";
pub const INSTRUCT: &str = "gpt-3.5-turbo-instruct";
pub const EMBED: &str = "text-embedding-3-small";
/// Served by a route without `llmRequestCosts`.
pub const FREE: &str = "free-model";
pub const COSTED_ROUTE: &str = "default/chat";
pub const FREE_ROUTE: &str = "default/free";
pub const BACKEND: &str = "default/openai";

/// Every manifest of the stack: one OpenAI backend with an API key from a Secret, a route with
/// costs (and an aliased model) and one without.
fn manifests(port: u16, upstream: SocketAddr) -> String {
    let routes = format!(
        r#"apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIGatewayRoute
metadata: {{name: chat, namespace: default}}
spec:
  parentRefs: [{{name: ai}}]
  llmRequestCosts:
    - {{metadataKey: llm_input_token, type: InputToken}}
    - {{metadataKey: llm_cached_input_token, type: CachedInputToken}}
    - {{metadataKey: llm_output_token, type: OutputToken}}
    - {{metadataKey: llm_reasoning_token, type: ReasoningToken}}
    - {{metadataKey: llm_total_token, type: TotalToken}}
    - {{metadataKey: weighted, type: CEL, cel: "input_tokens + output_tokens * 3u"}}
  rules:
    - matches: [{{headers: [{{type: Exact, name: x-ai-eg-model, value: {ALIAS}}}]}}]
      modelsOwnedBy: acme
      modelsCreatedAt: "2024-05-13T00:00:00Z"
      backendRefs: [{{name: openai, modelNameOverride: {OVERRIDE}}}]
    - matches: [{{headers: [{{type: Exact, name: x-ai-eg-model, value: {INSTRUCT}}}]}}]
      backendRefs: [{{name: openai}}]
    - matches: [{{headers: [{{type: Exact, name: x-ai-eg-model, value: {EMBED}}}]}}]
      backendRefs: [{{name: openai}}]
---
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIGatewayRoute
metadata: {{name: free, namespace: default}}
spec:
  parentRefs: [{{name: ai}}]
  rules:
    - matches: [{{headers: [{{type: Exact, name: x-ai-eg-model, value: {FREE}}}]}}]
      backendRefs: [{{name: openai}}]
"#
    );
    let backend = manifests::keyed_backend("openai", "OpenAI", upstream, "APIKey", UPSTREAM_KEY);
    [manifests::gateway(port), backend, routes].join("---\n")
}

/// One extproc replica, fed by the xds-server.
pub struct Replica {
    pub running: extproc::Running,
    _xds: extproc::XdsClientHandle,
}

impl Replica {
    pub fn admin(&self) -> SocketAddr {
        self.running.bound().admin
    }

    pub fn grpc(&self) -> SocketAddr {
        self.running.bound().grpc
    }

    pub async fn metrics(&self) -> Result<String> {
        let response = http::get(&format!("http://{}/metrics", self.admin()), &[]).await?;
        if response.status != 200 {
            bail!("extproc /metrics answered {}", response.status);
        }
        Ok(response.text())
    }
}

pub struct Stack {
    pub envoy: Envoy,
    pub replicas: Vec<Replica>,
    server: server::Running,
    pub port: u16,
    pub access_log: PathBuf,
    _dirs: [tempfile::TempDir; 2],
}

impl Stack {
    /// Starts `replicas` extprocs, the xds-server and Envoy, and returns once a models list
    /// comes back through the gateway.
    pub async fn start(upstream: SocketAddr, replicas: usize, body_limit: u64) -> Result<Stack> {
        logs::capture();
        let mut started = Vec::new();
        for _ in 0..replicas {
            let store = extproc::config::ConfigStore::new();
            let options = extproc::Options {
                grpc_addr: "127.0.0.1:0".parse()?,
                admin_addr: "127.0.0.1:0".parse()?,
                ..Default::default()
            };
            started.push((extproc::Server::start(options, store.clone()).await?, store));
        }
        let targets: Vec<String> = started
            .iter()
            .map(|(r, _)| r.bound().grpc.to_string())
            .collect();
        let port = ports::free_port()?;
        let manifests_dir = tempfile::tempdir()?;
        let logs_dir = tempfile::tempdir()?;
        std::fs::write(
            manifests_dir.path().join("stack.yaml"),
            manifests(port, upstream),
        )?;
        let access_log = logs_dir.path().join("access.log");
        let extproc = xds_server::cli::extproc_options(&targets.join(","), body_limit)
            .map_err(anyhow::Error::msg)?;
        let server = server::start(Config {
            dir: manifests_dir.path().to_path_buf(),
            ads_addr: "127.0.0.1:0".parse()?,
            admin_addr: "127.0.0.1:0".parse()?,
            translate: Options {
                listener_address: "127.0.0.1".into(),
                extproc: Some(extproc),
                access_log: Some(access_log.clone()),
                ..Options::default()
            },
            debounce: Debounce::default(),
        })
        .await?;
        server.ready().await;
        let mut replicas_out = Vec::new();
        for (running, store) in started {
            let xds = extproc::xds_client::spawn(server.ads_addr, store);
            let got = tokio::time::timeout(TIMEOUT, xds.first_config())
                .await
                .context("extproc got no config from the xds-server")?;
            if !got {
                bail!("the extproc's xDS client stopped before its first config");
            }
            replicas_out.push(Replica { running, _xds: xds });
        }
        let envoy = infergate_e2e::xds::start_envoy(server.ads_addr, false).await?;
        let stack = Stack {
            envoy,
            replicas: replicas_out,
            server,
            port,
            access_log,
            _dirs: [manifests_dir, logs_dir],
        };
        stack.wait_synced().await?;
        wait::until("the models list through the gateway", TIMEOUT, || async {
            let r = http::get(&format!("{}/models", stack.base_url()), &[]).await?;
            Ok((r.status == 200).then_some(()))
        })
        .await
        .with_context(|| format!("envoy log:\n{}", stack.envoy.log()))?;
        Ok(stack)
    }

    /// `http://127.0.0.1:<port>/v1`, the SDK's `base_url`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Runs tests/py/client.py with the official SDK; one JSON result per scenario.
    pub async fn sdk(&self, model: &str, scenarios: &[&str]) -> Result<Vec<Value>> {
        sdk(&self.base_url(), model, scenarios).await
    }

    /// The SDK scenario's result, which must have succeeded.
    pub async fn sdk_ok(&self, model: &str, scenario: &str) -> Result<Value> {
        let result = self.sdk(model, &[scenario]).await?.remove(0);
        if result["ok"] != true {
            bail!("{scenario} on {model} failed: {result}");
        }
        Ok(result)
    }

    /// Waits until the access log holds a line matching `pred` and returns the first one.
    pub async fn access_log_line(
        &self,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        Ok(self.access_log_matching(what, pred, 1).await?.remove(0))
    }

    /// Waits until the access log holds at least `n` lines matching `pred` and returns them
    /// all, in the order Envoy wrote them. Envoy flushes access logs every 10 s, or when asked
    /// to reopen them: ask, then read.
    pub async fn access_log_matching(
        &self,
        what: &str,
        pred: impl Fn(&Value) -> bool,
        n: usize,
    ) -> Result<Vec<Value>> {
        let reopen = format!("http://{}/reopen_logs", self.envoy.admin_addr());
        let what = format!("{n} access log line(s) {what}");
        let found = wait::until(&what, TIMEOUT, || async {
            http::post(&reopen, &[], "").await?;
            let lines: Vec<Value> = self
                .access_log_lines()
                .into_iter()
                .filter(|l| pred(l))
                .collect();
            Ok((lines.len() >= n).then_some(lines))
        })
        .await;
        found.with_context(|| {
            format!(
                "access log:\n{}",
                std::fs::read_to_string(&self.access_log).unwrap_or_default()
            )
        })
    }

    pub fn access_log_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.access_log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Envoy's per-host `rq_total` of the extproc cluster, by host address.
    pub async fn extproc_host_requests(&self) -> Result<Vec<(String, u64)>> {
        let (status, body) = self.envoy.admin_get("/clusters").await?;
        if status != 200 {
            bail!("/clusters answered {status}");
        }
        let prefix = "infergate/extproc::";
        Ok(body
            .lines()
            .filter_map(|l| l.strip_prefix(prefix))
            .filter_map(|l| {
                let (host, rest) = l.split_once("::")?;
                let n = rest.strip_prefix("rq_total::")?.trim().parse().ok()?;
                Some((host.to_string(), n))
            })
            .collect())
    }

    /// Everything an operator or a client could read: Envoy's log, the access log, and every
    /// log line of the in-process services.
    pub fn all_logs(&self) -> String {
        format!(
            "{}\n{}\n{}",
            self.envoy.log(),
            std::fs::read_to_string(&self.access_log).unwrap_or_default(),
            logs::text()
        )
    }

    /// Waits until Envoy has ACKed every resource type of the current snapshot.
    async fn wait_synced(&self) -> Result<()> {
        infergate_e2e::xds::wait_synced(&self.server).await
    }
}

/// The OpenAI SDK client against `base_url` (see [`infergate_e2e::sdk::openai`]).
pub async fn sdk(base_url: &str, model: &str, scenarios: &[&str]) -> Result<Vec<Value>> {
    infergate_e2e::sdk::openai(base_url, model, &[], scenarios).await
}

/// Every `tracing` line of this test process (xds-server, extproc, ADS), kept to look for
/// secrets.
pub mod logs {
    use super::*;

    #[derive(Clone)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let mut out = self.0.lock().unwrap_or_else(|p| p.into_inner());
            out.extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    static BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

    /// Installs the capturing subscriber once per process, at debug for our crates.
    pub fn capture() {
        BUFFER.get_or_init(|| {
            let buffer = Arc::new(Mutex::new(Vec::new()));
            let writer = Capture(buffer.clone());
            let filter = tracing_subscriber::EnvFilter::new(
                "info,extproc=trace,xds_server=debug,infergate_ads=debug",
            );
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .try_init();
            buffer
        });
    }

    pub fn text() -> String {
        BUFFER.get().map_or_else(String::new, |b| {
            String::from_utf8_lossy(&b.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
        })
    }
}
