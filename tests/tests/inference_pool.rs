//! InferencePools end to end (DESIGN.md §5): a real Envoy fed by the in-process xds-server, each
//! pool's endpoint picker (`epp`) in process with `inference-sim` pods on 127.0.0.x loopback
//! addresses sharing one port, and `Options::epp_endpoints` pointing Envoy at the pickers.
//!
//! Every check compares what the picker decided (its `epp_picks_total` per endpoint) with what
//! each simulated pod served, or what the client got; the tests wait on conditions (Envoy's ACKs,
//! the picker's readiness, the sims' state), never on sleeps.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use infergate_e2e::xds::{start_envoy, wait_synced};
use infergate_e2e::{Envoy, FakeUpstream, http, ports, wait};
use xds_server::pipeline::Debounce;
use xds_server::server::{self, Config, Running};
use xds_server::translate::Options;
use xds_server::translate::pool::DESTINATION_ENDPOINT_HEADER;

const TIMEOUT: Duration = Duration::from_secs(30);

/// The simulated vLLM pods of one pool: one per loopback address, all on one port (a pool's
/// `targetPorts` are shared by its pods).
struct Pods {
    sims: Vec<inference_sim::Running>,
    port: u16,
}

impl Pods {
    /// `count` sims serving `model` on 127.0.0.`base`…
    async fn start(model: &str, base: u8, count: usize) -> Result<Pods> {
        let config = |host: IpAddr, port: u16| inference_sim::SimConfig {
            host: host.to_string(),
            port,
            model: model.to_string(),
            ..inference_sim::SimConfig::for_tests(0.01)
        };
        'attempt: for _ in 0..20 {
            let first = inference_sim::start(config(loopback(base, 0), 0)).await?;
            let port = first.addr.port();
            let mut sims = vec![first];
            for i in 1..count {
                match inference_sim::start(config(loopback(base, i), port)).await {
                    Ok(sim) => sims.push(sim),
                    // Someone else has this port on that address: try another port.
                    Err(_) => continue 'attempt,
                }
            }
            return Ok(Pods { sims, port });
        }
        bail!("no port free on every loopback address from 127.0.0.{base}")
    }

    fn addrs(&self) -> Vec<SocketAddr> {
        self.sims.iter().map(|s| s.addr).collect()
    }

    /// Requests each pod has finished, by address.
    fn served(&self) -> BTreeMap<SocketAddr, u64> {
        self.sims
            .iter()
            .map(|s| (s.addr, s.handle().state().finished))
            .collect()
    }

    fn total(&self) -> u64 {
        self.served().values().sum()
    }

    /// `Pod` objects for the folder, with their IPs, so the translator knows the pool's Pods.
    fn pod_yaml(&self, pool: &str) -> String {
        self.sims
            .iter()
            .enumerate()
            .map(|(i, s)| {
                format!(
                    "apiVersion: v1\nkind: Pod\nmetadata: {{name: {pool}-{i}, namespace: default, labels: {{app: {pool}}}}}\n\
                     spec: {{containers: [{{name: vllm, image: vllm/vllm-openai}}]}}\n\
                     status: {{podIP: '{}', conditions: [{{type: Ready, status: 'True'}}]}}\n",
                    s.addr.ip()
                )
            })
            .collect::<Vec<_>>()
            .join("---\n")
    }
}

fn loopback(base: u8, i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, base + i as u8))
}

/// An endpoint picker on a runtime of its own, so stopping it closes every connection Envoy
/// holds to it (dropping `epp::Running` alone stops accepting, not the connections' tasks).
struct Picker {
    runtime: Option<tokio::runtime::Runtime>,
    running: Option<epp::Running>,
    grpc: SocketAddr,
    metrics: SocketAddr,
}

impl Picker {
    async fn start(pool: &str, pods: &Pods) -> Result<Picker> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let config = epp::Config {
            pool: epp::datastore::PoolInfo {
                name: pool.to_string(),
                namespace: "default".into(),
                target_ports: vec![pods.port],
            },
            pods: epp::datastore::PodSource::Static(
                pods.sims
                    .iter()
                    .enumerate()
                    .map(|(i, s)| epp::datastore::Pod::new(format!("{pool}-{i}"), s.addr.ip()))
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

    /// The picker's primary picks so far, by endpoint (`epp_picks_total`).
    async fn picks(&self) -> Result<BTreeMap<SocketAddr, u64>> {
        self.per_endpoint("epp_picks_total").await
    }

    /// The endpoints Envoy reported as having served requests (`epp_served_total`).
    async fn served(&self) -> Result<BTreeMap<SocketAddr, u64>> {
        self.per_endpoint("epp_served_total").await
    }

    async fn per_endpoint(&self, counter: &str) -> Result<BTreeMap<SocketAddr, u64>> {
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
    fn stop(&mut self) {
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
struct PoolSpec<'a> {
    name: &'a str,
    pods: &'a Pods,
    /// `FailOpen` or `FailClose`.
    failure_mode: &'a str,
    /// `buffered` or `duplex`.
    body_mode: &'a str,
    /// Write the pool's Pods into the folder (the translator then knows its endpoints).
    pods_in_folder: bool,
}

fn pool_yaml(spec: &PoolSpec<'_>) -> String {
    let mut out = format!(
        "apiVersion: inference.networking.k8s.io/v1\nkind: InferencePool\n\
         metadata:\n  name: {name}\n  namespace: default\n  annotations: {{aigateway.envoyproxy.io/processing-body-mode: {mode}}}\n\
         spec:\n  targetPorts: [{{number: {port}}}]\n  selector: {{matchLabels: {{app: {name}}}}}\n\
         \x20 endpointPickerRef: {{name: {name}-epp, port: {{number: 9002}}, failureMode: {failure}}}\n",
        name = spec.name,
        mode = spec.body_mode,
        port = spec.pods.port,
        failure = spec.failure_mode,
    );
    if spec.pods_in_folder {
        out.push_str("---\n");
        out.push_str(&spec.pods.pod_yaml(spec.name));
    }
    out
}

/// An AIGatewayRoute: each `(model, pool)` is a rule matching `x-ai-eg-model`.
fn ai_route_yaml(rules: &[(&str, &str)]) -> String {
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
fn http_route_yaml(pool: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {pool}, namespace: default}}\n\
         spec:\n  parentRefs: [{{name: ai}}]\n  rules:\n\
         \x20   - matches: [{{path: {{type: PathPrefix, value: /}}}}]\n\
         \x20     backendRefs: [{{group: inference.networking.k8s.io, kind: InferencePool, name: {pool}, port: 8000}}]\n"
    )
}

fn gateway_yaml(port: u16) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {{name: infergate}}\n\
         spec: {{controllerName: infergate.io/gateway-controller}}\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: ai, namespace: default}}\n\
         spec:\n  gatewayClassName: infergate\n  listeners: [{{name: http, protocol: HTTP, port: {port}}}]\n"
    )
}

/// The extproc in process, fed by the xds-server (its router leg sets `x-ai-eg-model` from the
/// body).
struct Extproc {
    _running: extproc::Running,
    _xds: extproc::XdsClientHandle,
}

/// The folder, the xds-server on it and an Envoy fed by it.
struct Stack {
    _dir: tempfile::TempDir,
    server: Running,
    envoy: Envoy,
    port: u16,
    _extproc: Option<Extproc>,
}

impl Stack {
    /// `pickers` maps pool names to their picker's gRPC address.
    async fn start(manifests: &[String], pickers: &[(&str, SocketAddr)]) -> Result<Stack> {
        Self::start_with(manifests, pickers, false).await
    }

    /// With `with_extproc`, the extproc's two legs run as `infergate run` configures them.
    async fn start_with(
        manifests: &[String],
        pickers: &[(&str, SocketAddr)],
        with_extproc: bool,
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
        stack.check_status()?;
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
    async fn wait_picker_marked_down(&self, pool: &str) -> Result<()> {
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
    fn check_status(&self) -> Result<()> {
        let report = self.server.published.status.load_full();
        if report.has_errors() {
            bail!("the folder has errors:\n{}", report.lines().join("\n"));
        }
        Ok(())
    }

    /// `POST /v1/chat/completions` for `model` (also in `x-ai-eg-model`, as the extproc's router
    /// leg would set it), plus `extra` headers.
    async fn chat(
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
    async fn chat_body_only(
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
    async fn chat_ok(&self, model: &str, count: usize, extra: &[(&str, &str)]) -> Result<()> {
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

async fn start_server(
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
async fn assert_served_as_picked(picker: &Picker, pods: &Pods, expected: u64) -> Result<()> {
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

#[tokio::test]
async fn requests_reach_the_pod_their_pool_s_picker_picked_in_both_body_modes() -> Result<()> {
    // Two pools behind one AIGatewayRoute: `pool-a` buffered and FailClose (an ORIGINAL_DST
    // cluster on the picked endpoint), `pool-b` duplex and FailOpen with its Pods in the folder
    // (an EDS cluster with override-host load balancing).
    let pods_a = Pods::start("model-a", 21, 3).await?;
    let pods_b = Pods::start("model-b", 31, 2).await?;
    let picker_a = Picker::start("pool-a", &pods_a).await?;
    let picker_b = Picker::start("pool-b", &pods_b).await?;
    let manifests = vec![
        pool_yaml(&PoolSpec {
            name: "pool-a",
            pods: &pods_a,
            failure_mode: "FailClose",
            body_mode: "buffered",
            pods_in_folder: false,
        }),
        pool_yaml(&PoolSpec {
            name: "pool-b",
            pods: &pods_b,
            failure_mode: "FailOpen",
            body_mode: "duplex",
            pods_in_folder: true,
        }),
        ai_route_yaml(&[("model-a", "pool-a"), ("model-b", "pool-b")]),
    ];
    let stack = Stack::start(
        &manifests,
        &[("pool-a", picker_a.grpc), ("pool-b", picker_b.grpc)],
    )
    .await?;
    stack.chat_ok("model-a", 24, &[]).await?;
    stack.chat_ok("model-b", 16, &[]).await?;
    assert_served_as_picked(&picker_a, &pods_a, 24).await?;
    assert_served_as_picked(&picker_b, &pods_b, 16).await?;
    // Override-host load balancing reports the endpoint that served each request back to the
    // picker (`envoy.lb` / `x-gateway-destination-endpoint-served`).
    let picked = picker_b.picks().await?;
    wait::until(
        "the picker to learn every served endpoint",
        TIMEOUT,
        || async { Ok((picker_b.served().await? == picked).then_some(())) },
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_client_sent_destination_endpoint_header_is_ignored() -> Result<()> {
    // FailOpen without Pods in the folder: an ORIGINAL_DST cluster, which would connect to
    // whatever the header names if the client's copy survived.
    let pods = Pods::start("model-a", 41, 2).await?;
    let mut picker = Picker::start("pool-a", &pods).await?;
    let elsewhere = FakeUpstream::start("not-in-the-pool").await?;
    let manifests = vec![
        pool_yaml(&PoolSpec {
            name: "pool-a",
            pods: &pods,
            failure_mode: "FailOpen",
            body_mode: "buffered",
            pods_in_folder: false,
        }),
        http_route_yaml("pool-a"),
    ];
    let stack = Stack::start(&manifests, &[("pool-a", picker.grpc)]).await?;
    let target = elsewhere.addr().to_string();
    let forged = [(DESTINATION_ENDPOINT_HEADER, target.as_str())];
    stack.chat_ok("model-a", 12, &forged).await?;
    assert_served_as_picked(&picker, &pods, 12).await?;

    // With the picker down nothing names an endpoint: the forged one must not either.
    picker.stop();
    for n in 0..5 {
        let response = stack.chat("model-a", n, &forged).await?;
        assert_eq!(response.status, 503, "{}", response.text());
    }
    assert_eq!(elsewhere.requests(), 0, "a client chose the endpoint");
    assert_eq!(pods.total(), 12);
    Ok(())
}

#[tokio::test]
async fn fail_open_keeps_serving_from_the_pool_when_the_picker_is_down() -> Result<()> {
    for body_mode in ["buffered", "duplex"] {
        let pods = Pods::start("model-a", 51, 2).await?;
        let mut picker = Picker::start("pool-a", &pods).await?;
        let manifests = vec![
            pool_yaml(&PoolSpec {
                name: "pool-a",
                pods: &pods,
                failure_mode: "FailOpen",
                body_mode,
                pods_in_folder: true,
            }),
            http_route_yaml("pool-a"),
        ];
        let stack = Stack::start(&manifests, &[("pool-a", picker.grpc)]).await?;
        stack.chat_ok("model-a", 6, &[]).await?;
        assert_served_as_picked(&picker, &pods, 6).await?;
        picker.stop();
        stack.wait_picker_marked_down("pool-a").await?;
        stack
            .chat_ok("model-a", 10, &[])
            .await
            .with_context(|| format!("{body_mode} body with the picker down"))?;
        wait::until_true("the sims to count every request", TIMEOUT, || {
            pods.total() == 16
        })
        .await?;
        // Round robin over the pool while the picker is down.
        let served = pods.served();
        assert!(
            served.values().all(|n| *n > 0),
            "{body_mode}: every pod takes a share: {served:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn fail_close_returns_5xx_when_the_picker_is_down() -> Result<()> {
    let pods = Pods::start("model-a", 61, 2).await?;
    let mut picker = Picker::start("pool-a", &pods).await?;
    let manifests = vec![
        pool_yaml(&PoolSpec {
            name: "pool-a",
            pods: &pods,
            failure_mode: "FailClose",
            body_mode: "buffered",
            pods_in_folder: true,
        }),
        http_route_yaml("pool-a"),
    ];
    let stack = Stack::start(&manifests, &[("pool-a", picker.grpc)]).await?;
    stack.chat_ok("model-a", 6, &[]).await?;
    assert_served_as_picked(&picker, &pods, 6).await?;
    picker.stop();
    for n in 0..5 {
        let response = stack.chat("model-a", n, &[]).await?;
        assert!(
            response.status.is_server_error(),
            "request {n} with the picker down: {} {}",
            response.status,
            response.text()
        );
    }
    assert_eq!(pods.total(), 6, "no request reached a pod unpicked");
    Ok(())
}

#[tokio::test]
async fn the_model_in_the_body_picks_the_pool_when_the_extproc_router_leg_runs_first() -> Result<()>
{
    // The client names the model only in the body: the router leg sets `x-ai-eg-model` and
    // clears the route cache, so each pool's picker runs on its own pool's requests only.
    let pods_a = Pods::start("model-a", 71, 2).await?;
    let pods_b = Pods::start("model-b", 81, 2).await?;
    let picker_a = Picker::start("pool-a", &pods_a).await?;
    let picker_b = Picker::start("pool-b", &pods_b).await?;
    let manifests = vec![
        pool_yaml(&PoolSpec {
            name: "pool-a",
            pods: &pods_a,
            failure_mode: "FailClose",
            body_mode: "buffered",
            pods_in_folder: false,
        }),
        pool_yaml(&PoolSpec {
            name: "pool-b",
            pods: &pods_b,
            failure_mode: "FailOpen",
            body_mode: "duplex",
            pods_in_folder: true,
        }),
        ai_route_yaml(&[("model-a", "pool-a"), ("model-b", "pool-b")]),
    ];
    let stack = Stack::start_with(
        &manifests,
        &[("pool-a", picker_a.grpc), ("pool-b", picker_b.grpc)],
        true,
    )
    .await?;
    for n in 0..10 {
        for model in ["model-a", "model-b"] {
            let response = stack.chat_body_only(model, n, &[]).await?;
            assert_eq!(response.status, 200, "{model}: {}", response.text());
            assert_eq!(response.json()?["model"], model);
        }
    }
    assert_served_as_picked(&picker_a, &pods_a, 10).await?;
    assert_served_as_picked(&picker_b, &pods_b, 10).await?;
    Ok(())
}
