//! What the InferencePool end-to-end tests share: simulated pods, in-process pickers, the
//! folder's manifests, and the stack of xds-server and Envoy on it.

// Each test file uses its own part of this module.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use infergate_e2e::xds::{start_envoy, wait_synced};
use infergate_e2e::{Envoy, http, ports, wait};
use xds_server::pipeline::Debounce;
use xds_server::server::{self, Config, Running};
use xds_server::translate::Options;

pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The simulated vLLM pods of one pool: one address per pod on 127.0.0.x, every pod serving on
/// each of the pool's `targetPorts` (one sim per pod and port).
pub struct Pods {
    pub sims: Vec<inference_sim::Running>,
    pub ports: Vec<u16>,
}

impl Pods {
    /// `count` sims serving `model` on 127.0.0.`base`…, one port each.
    pub async fn start(model: &str, base: u8, count: usize) -> Result<Pods> {
        Self::start_with(model, base, count, 1, |_, _| {}).await
    }

    /// `count` pods serving `model` on 127.0.0.`base`…, each on `ports` ports; `tweak(pod, config)`
    /// adjusts a pod's simulator.
    pub async fn start_with(
        model: &str,
        base: u8,
        count: usize,
        ports: usize,
        tweak: impl Fn(usize, &mut inference_sim::SimConfig),
    ) -> Result<Pods> {
        let config = |pod: usize, port: u16| {
            let mut config = inference_sim::SimConfig {
                host: loopback(base, pod).to_string(),
                port,
                model: model.to_string(),
                ..inference_sim::SimConfig::for_tests(0.01)
            };
            tweak(pod, &mut config);
            config
        };
        'attempt: for _ in 0..20 {
            // The first pod picks free ports; the others must get the same ones.
            let mut sims = Vec::new();
            for _ in 0..ports {
                sims.push(inference_sim::start(config(0, 0)).await?);
            }
            let ports: Vec<u16> = sims.iter().map(|s| s.addr.port()).collect();
            for pod in 1..count {
                for port in &ports {
                    match inference_sim::start(config(pod, *port)).await {
                        Ok(sim) => sims.push(sim),
                        // Someone else has this port on that address: try other ports.
                        Err(_) => continue 'attempt,
                    }
                }
            }
            return Ok(Pods { sims, ports });
        }
        bail!("no ports free on every loopback address from 127.0.0.{base}")
    }

    /// The pool's single target port (pools started with one port per pod).
    pub fn port(&self) -> u16 {
        self.ports[0]
    }

    /// The pods' addresses, in pod order.
    pub fn ips(&self) -> Vec<IpAddr> {
        let mut ips: Vec<IpAddr> = Vec::new();
        for sim in &self.sims {
            if !ips.contains(&sim.addr.ip()) {
                ips.push(sim.addr.ip());
            }
        }
        ips
    }

    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.sims.iter().map(|s| s.addr).collect()
    }

    /// Requests each pod has finished, by address.
    pub fn served(&self) -> BTreeMap<SocketAddr, u64> {
        self.sims
            .iter()
            .map(|s| (s.addr, s.handle().state().finished))
            .collect()
    }

    pub fn total(&self) -> u64 {
        self.served().values().sum()
    }

    /// `Pod` objects for the folder, with their IPs, so the translator knows the pool's Pods.
    pub fn pod_yaml(&self, pool: &str) -> String {
        self.ips()
            .iter()
            .enumerate()
            .map(|(i, ip)| {
                format!(
                    "apiVersion: v1\nkind: Pod\nmetadata: {{name: {pool}-{i}, namespace: default, labels: {{app: {pool}}}}}\n\
                     spec: {{containers: [{{name: vllm, image: vllm/vllm-openai}}]}}\n\
                     status: {{podIP: '{ip}', conditions: [{{type: Ready, status: 'True'}}]}}\n"
                )
            })
            .collect::<Vec<_>>()
            .join("---\n")
    }
}

pub fn loopback(base: u8, i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, base + i as u8))
}

/// An endpoint picker on a runtime of its own, so stopping it closes every connection Envoy
/// holds to it (dropping `epp::Running` alone stops accepting, not the connections' tasks).
pub struct Picker {
    runtime: Option<tokio::runtime::Runtime>,
    running: Option<epp::Running>,
    pub grpc: SocketAddr,
    pub metrics: SocketAddr,
}

impl Picker {
    pub async fn start(pool: &str, pods: &Pods) -> Result<Picker> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let config = epp::Config {
            pool: epp::datastore::PoolInfo {
                name: pool.to_string(),
                namespace: "default".into(),
                target_ports: pods.ports.clone(),
            },
            pods: epp::datastore::PodSource::Static(
                pods.ips()
                    .into_iter()
                    .enumerate()
                    .map(|(i, ip)| epp::datastore::Pod::new(format!("{pool}-{i}"), ip))
                    .collect(),
            ),
            ..epp::Config::for_tests()
        };
        let running = runtime.spawn(epp::start(config)).await??;
        tokio::time::timeout(TIMEOUT, running.wait_ready())
            .await
            .context("the picker never had its pods' metrics")?;
        let bound = running.bound();
        Ok(Picker {
            runtime: Some(runtime),
            running: Some(running),
            grpc: bound.grpc,
            metrics: bound.metrics,
        })
    }

    /// The picker's datastore (pods, endpoints, scraped metrics).
    pub fn datastore(&self) -> &std::sync::Arc<epp::datastore::Datastore> {
        // Only `stop` empties it, and tests do not look at a stopped picker.
        self.running
            .as_ref()
            .expect("the picker is running")
            .datastore()
    }

    /// The picker's primary picks so far, by endpoint (`epp_picks_total`).
    pub async fn picks(&self) -> Result<BTreeMap<SocketAddr, u64>> {
        self.per_endpoint("epp_picks_total").await
    }

    /// The endpoints Envoy reported as having served requests (`epp_served_total`).
    pub async fn served(&self) -> Result<BTreeMap<SocketAddr, u64>> {
        self.per_endpoint("epp_served_total").await
    }

    pub async fn per_endpoint(&self, counter: &str) -> Result<BTreeMap<SocketAddr, u64>> {
        let response = http::get(&format!("http://{}/metrics", self.metrics), &[]).await?;
        let prefix = format!("{counter}{{endpoint=\"");
        let mut picks = BTreeMap::new();
        for line in response.text().lines() {
            let Some(rest) = line.strip_prefix(&prefix) else {
                continue;
            };
            let Some((endpoint, value)) = rest.split_once("\"}") else {
                continue;
            };
            let value: f64 = value.trim().parse()?;
            picks.insert(endpoint.parse()?, value as u64);
        }
        Ok(picks)
    }

    /// Stops the picker and closes every connection to it.
    pub fn stop(&mut self) {
        drop(self.running.take());
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for Picker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How a pool in the folder is set up.
pub struct PoolSpec<'a> {
    pub name: &'a str,
    pub pods: &'a Pods,
    /// `FailOpen` or `FailClose`.
    pub failure_mode: &'a str,
    /// `buffered` or `duplex`.
    pub body_mode: &'a str,
    /// Write the pool's Pods into the folder (the translator then knows its endpoints).
    pub pods_in_folder: bool,
}

pub fn pool_yaml(spec: &PoolSpec<'_>) -> String {
    let mut out = format!(
        "apiVersion: inference.networking.k8s.io/v1\nkind: InferencePool\n\
         metadata:\n  name: {name}\n  namespace: default\n  annotations: {{aigateway.envoyproxy.io/processing-body-mode: {mode}}}\n\
         spec:\n  targetPorts: [{ports}]\n  selector: {{matchLabels: {{app: {name}}}}}\n\
         \x20 endpointPickerRef: {{name: {name}-epp, port: {{number: 9002}}, failureMode: {failure}}}\n",
        name = spec.name,
        mode = spec.body_mode,
        ports = spec
            .pods
            .ports
            .iter()
            .map(|p| format!("{{number: {p}}}"))
            .collect::<Vec<_>>()
            .join(", "),
        failure = spec.failure_mode,
    );
    if spec.pods_in_folder {
        out.push_str("---\n");
        out.push_str(&spec.pods.pod_yaml(spec.name));
    }
    out
}

/// An AIGatewayRoute: each `(model, pool)` is a rule matching `x-ai-eg-model`.
pub fn ai_route_yaml(rules: &[(&str, &str)]) -> String {
    let mut out = String::from(
        "apiVersion: aigateway.envoyproxy.io/v1beta1\nkind: AIGatewayRoute\nmetadata: {name: models, namespace: default}\n\
         spec:\n  parentRefs: [{name: ai}]\n  rules:\n",
    );
    for (model, pool) in rules {
        out.push_str(&format!(
            "    - matches: [{{headers: [{{type: Exact, name: x-ai-eg-model, value: {model}}}]}}]\n\
             \x20     backendRefs: [{{group: inference.networking.k8s.io, kind: InferencePool, name: {pool}}}]\n"
        ));
    }
    out
}

/// An HTTPRoute sending everything to `pool` (the seed's shape).
pub fn http_route_yaml(pool: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {pool}, namespace: default}}\n\
         spec:\n  parentRefs: [{{name: ai}}]\n  rules:\n\
         \x20   - matches: [{{path: {{type: PathPrefix, value: /}}}}]\n\
         \x20     backendRefs: [{{group: inference.networking.k8s.io, kind: InferencePool, name: {pool}, port: 8000}}]\n"
    )
}

pub fn gateway_yaml(port: u16) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {{name: infergate}}\n\
         spec: {{controllerName: infergate.io/gateway-controller}}\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: ai, namespace: default}}\n\
         spec:\n  gatewayClassName: infergate\n  listeners: [{{name: http, protocol: HTTP, port: {port}}}]\n"
    )
}

/// The extproc in process, fed by the xds-server (its router leg sets `x-ai-eg-model` from the
/// body).
pub struct Extproc {
    _running: extproc::Running,
    _xds: extproc::XdsClientHandle,
}

/// The folder, the xds-server on it and an Envoy fed by it.
pub struct Stack {
    _dir: tempfile::TempDir,
    pub server: Running,
    pub envoy: Envoy,
    pub port: u16,
    _extproc: Option<Extproc>,
}

impl Stack {
    /// `pickers` maps pool names to their picker's gRPC address.
    pub async fn start(manifests: &[String], pickers: &[(&str, SocketAddr)]) -> Result<Stack> {
        Self::start_checked(manifests, pickers, false, true).await
    }

    /// With `with_extproc`, the extproc's two legs run as `infergate run` configures them.
    pub async fn start_with(
        manifests: &[String],
        pickers: &[(&str, SocketAddr)],
        with_extproc: bool,
    ) -> Result<Stack> {
        Self::start_checked(manifests, pickers, with_extproc, true).await
    }

    /// A folder with objects in error (conditions to check): served all the same.
    pub async fn start_with_errors(
        manifests: &[String],
        pickers: &[(&str, SocketAddr)],
    ) -> Result<Stack> {
        Self::start_checked(manifests, pickers, false, false).await
    }

    async fn start_checked(
        manifests: &[String],
        pickers: &[(&str, SocketAddr)],
        with_extproc: bool,
        check: bool,
    ) -> Result<Stack> {
        let extproc = if with_extproc {
            let store = extproc::config::ConfigStore::new();
            let options = extproc::Options {
                grpc_addr: "127.0.0.1:0".parse()?,
                admin_addr: "127.0.0.1:0".parse()?,
                ..Default::default()
            };
            Some((extproc::Server::start(options, store.clone()).await?, store))
        } else {
            None
        };
        let port = ports::free_port()?;
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("gateway.yaml"), gateway_yaml(port))?;
        std::fs::write(dir.path().join("pools.yaml"), manifests.join("---\n"))?;
        let epp_endpoints = pickers
            .iter()
            .map(|(pool, addr)| {
                (
                    format!("default/{pool}"),
                    (addr.ip().to_string(), addr.port()),
                )
            })
            .collect();
        let extproc_options = match &extproc {
            Some((running, _)) => Some(
                xds_server::cli::extproc_options(
                    &running.bound().grpc.to_string(),
                    xds_server::translate::ExtprocOptions::DEFAULT_BODY_LIMIT,
                )
                .map_err(anyhow::Error::msg)?,
            ),
            None => None,
        };
        let server = start_server(dir.path(), epp_endpoints, extproc_options).await?;
        let extproc = match extproc {
            Some((running, store)) => {
                let xds = extproc::xds_client::spawn(server.ads_addr, store);
                let got = tokio::time::timeout(TIMEOUT, xds.first_config())
                    .await
                    .context("the extproc got no config from the xds-server")?;
                if !got {
                    bail!("the extproc's xDS client stopped before its first config");
                }
                Some(Extproc {
                    _running: running,
                    _xds: xds,
                })
            }
            None => None,
        };
        let envoy = start_envoy(server.ads_addr, false).await?;
        let stack = Stack {
            _dir: dir,
            server,
            envoy,
            port,
            _extproc: extproc,
        };
        if check {
            stack.check_status()?;
        }
        wait_synced(&stack.server).await?;
        wait::until("the gateway listener", TIMEOUT, || async {
            Ok(tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ()))
        })
        .await?;
        Ok(stack)
    }

    /// Waits until Envoy's health check marks the pool's picker down (a FailOpen pool's picker
    /// cluster is health checked; until then a request streaming its body to the picker in
    /// duplex mode cannot fail open).
    pub async fn wait_picker_marked_down(&self, pool: &str) -> Result<()> {
        let prefix = format!("epp/default/{pool}::");
        wait::until("envoy to mark the picker down", TIMEOUT, || async {
            let (status, body) = self.envoy.admin_get("/clusters").await?;
            if status != 200 {
                bail!("/clusters answered {status}");
            }
            Ok(body
                .lines()
                .filter_map(|l| l.strip_prefix(&prefix))
                .any(|l| l.contains("::health_flags::") && l.contains("failed_active_hc"))
                .then_some(()))
        })
        .await
    }

    /// The folder translated without errors (warnings are fine).
    pub fn check_status(&self) -> Result<()> {
        let report = self.server.published.status.load_full();
        if report.has_errors() {
            bail!("the folder has errors:\n{}", report.lines().join("\n"));
        }
        Ok(())
    }

    /// `POST /v1/chat/completions` for `model` (also in `x-ai-eg-model`, as the extproc's router
    /// leg would set it), plus `extra` headers.
    pub async fn chat(
        &self,
        model: &str,
        n: usize,
        extra: &[(&str, &str)],
    ) -> Result<http::HttpResponse> {
        let mut headers = vec![("x-ai-eg-model", model)];
        headers.extend_from_slice(extra);
        self.chat_body_only(model, n, &headers).await
    }

    /// `POST /v1/chat/completions` naming `model` in the body only, plus `extra` headers.
    pub async fn chat_body_only(
        &self,
        model: &str,
        n: usize,
        extra: &[(&str, &str)],
    ) -> Result<http::HttpResponse> {
        let body = serde_json::json!({
            "model": model,
            "messages": [{"role": "user", "content": format!("request {n}: say something")}],
            "max_tokens": 2,
        });
        let mut headers = vec![("content-type", "application/json")];
        headers.extend_from_slice(extra);
        http::post(
            &format!("http://127.0.0.1:{}/v1/chat/completions", self.port),
            &headers,
            body.to_string(),
        )
        .await
    }

    /// Sends `count` requests one after the other and checks every one succeeded.
    pub async fn chat_ok(&self, model: &str, count: usize, extra: &[(&str, &str)]) -> Result<()> {
        for n in 0..count {
            let response = self.chat(model, n, extra).await?;
            if response.status != 200 {
                bail!(
                    "request {n} for {model}: {} {}\nenvoy log:\n{}",
                    response.status,
                    response.text(),
                    self.envoy.log()
                );
            }
        }
        Ok(())
    }
}

pub async fn start_server(
    dir: &Path,
    epp_endpoints: BTreeMap<String, (String, u16)>,
    extproc: Option<xds_server::translate::ExtprocOptions>,
) -> Result<Running> {
    let config = Config {
        dir: dir.to_path_buf(),
        ads_addr: "127.0.0.1:0".parse()?,
        admin_addr: "127.0.0.1:0".parse()?,
        translate: Options {
            listener_address: "127.0.0.1".into(),
            epp_endpoints,
            extproc,
            ..Options::default()
        },
        debounce: Debounce::default(),
    };
    let server = server::start(config).await?;
    server.ready().await;
    Ok(server)
}

/// Every pod served exactly the requests the picker sent it, and `expected` in all.
pub async fn assert_served_as_picked(picker: &Picker, pods: &Pods, expected: u64) -> Result<()> {
    // A sim counts a request finished just after its last byte: wait for the count to settle.
    wait::until_true("the sims to count every request", TIMEOUT, || {
        pods.total() == expected
    })
    .await?;
    let picks = picker.picks().await?;
    let served = pods.served();
    let picked: BTreeMap<SocketAddr, u64> = pods
        .addrs()
        .into_iter()
        .map(|a| (a, picks.get(&a).copied().unwrap_or(0)))
        .collect();
    eprintln!("served per pod: {served:?}");
    assert_eq!(served, picked, "served per pod vs picked per endpoint");
    assert_eq!(
        picks.values().sum::<u64>(),
        expected,
        "the picker saw requests other than its pool's: {picks:?}"
    );
    Ok(())
}
