//! The extproc's ADS client against the real `infergate-ads` server in process.
//!
//! The server runs on a runtime of its own, so that stopping it closes every connection at
//! once, as a restarting xds-server would.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use envoy_types::pb::google::protobuf::Any;
use extproc::cli::Args;
use extproc::config::{Config, ConfigStore};
use extproc::keys::{CONFIG_RESOURCE_NAME, CONFIG_TYPE_URL, XDS_NODE_CLUSTER};
use extproc::{Options, Server, XdsClient, XdsClientHandle};
use infergate_ads::XdsResource;
use infergate_ads::{AdsServer, ProxyRegistry, ProxyStatus, Snapshot, SnapshotSet, TypeStatus};
use tokio::runtime::Runtime;
use tokio::sync::watch;

const STEP: Duration = Duration::from_secs(10);

/// An ADS server on 127.0.0.1 that can be stopped and started again on the same port.
struct Ads {
    addr: SocketAddr,
    registry: ProxyRegistry,
    snapshots: watch::Sender<Arc<SnapshotSet>>,
    runtime: Option<Runtime>,
}

impl Ads {
    fn start() -> Ads {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind ADS");
        let addr = listener.local_addr().expect("ADS address");
        let mut ads = Ads {
            addr,
            registry: ProxyRegistry::new(),
            snapshots: watch::channel(Arc::new(SnapshotSet::default())).0,
            runtime: None,
        };
        ads.serve(listener);
        ads
    }

    fn serve(&mut self, listener: std::net::TcpListener) {
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("ADS runtime");
        let service = AdsServer::new(self.snapshots.subscribe(), self.registry.clone())
            .with_ack_timeout(Duration::from_millis(500))
            .into_service();
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await
                .expect("serve ADS");
        });
        self.runtime = Some(runtime);
    }

    /// Stops the server and closes every connection.
    async fn stop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            tokio::task::spawn_blocking(move || drop(runtime))
                .await
                .expect("stop the ADS runtime");
        }
    }

    /// Serves again on the same port.
    fn restart(&mut self) {
        let listener = std::net::TcpListener::bind(self.addr).expect("rebind ADS");
        self.serve(listener);
    }

    /// Publishes `value` as the extproc config resource; returns the type's version.
    fn publish(&self, resource_version: &str, value: Vec<u8>) -> String {
        let snapshot = Snapshot::new([(
            CONFIG_TYPE_URL,
            XdsResource {
                name: CONFIG_RESOURCE_NAME.to_owned(),
                version: resource_version.to_owned(),
                body: Any {
                    type_url: CONFIG_TYPE_URL.to_owned(),
                    value,
                },
            },
        )]);
        let version = snapshot.version(CONFIG_TYPE_URL).to_owned();
        self.snapshots.send_replace(Arc::new(SnapshotSet {
            all: Arc::new(snapshot),
            ..SnapshotSet::default()
        }));
        version
    }

    fn client(&self, node_id: &str, store: &Arc<ConfigStore>) -> XdsClientHandle {
        XdsClient::new(self.addr.to_string(), store.clone())
            .expect("xDS client")
            .node_id(node_id)
            .spawn()
    }

    async fn wait(&self, what: &str, done: impl FnMut(&[ProxyStatus]) -> bool) {
        if tokio::time::timeout(STEP, self.registry.wait_for(done))
            .await
            .is_err()
        {
            panic!(
                "timed out waiting for {what}: {:#?}",
                self.registry.snapshot()
            );
        }
    }

    /// Waits until the proxy `node_id` is connected and has ACKed `version` of the config.
    async fn wait_acked(&self, node_id: &str, version: &str) {
        self.wait(&format!("{node_id} to ACK {version}"), |proxies| {
            config_status(proxies, node_id)
                .is_some_and(|t| t.acked_version.as_deref() == Some(version))
        })
        .await;
    }
}

impl Drop for Ads {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which an async test must not do.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn config_status<'a>(proxies: &'a [ProxyStatus], node_id: &str) -> Option<&'a TypeStatus> {
    proxies
        .iter()
        .find(|p| p.node_id == node_id)
        .and_then(|p| p.types.get(CONFIG_TYPE_URL))
}

fn config_json(version: &str) -> Vec<u8> {
    let config = Config {
        version: version.to_owned(),
        ..Config::default()
    };
    serde_json::to_vec(&config).expect("config JSON")
}

async fn first_config(client: &XdsClientHandle) {
    let applied = tokio::time::timeout(STEP, client.first_config())
        .await
        .expect("first config in time");
    assert!(applied, "the client stopped: {:?}", client.status());
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .try_init();
}

#[tokio::test]
async fn the_first_config_is_applied_and_acked() {
    init_tracing();
    let ads = Ads::start();
    let version = ads.publish("1", config_json("one"));
    let store = ConfigStore::new();
    let client = ads.client("extproc-first", &store);

    first_config(&client).await;
    ads.wait_acked("extproc-first", &version).await;

    assert_eq!(store.load().version, "one");
    assert_eq!(store.generation(), 1);
    let proxies = ads.registry.snapshot();
    let proxy = proxies.iter().find(|p| p.node_id == "extproc-first");
    assert_eq!(
        proxy.map(|p| p.node_cluster.as_str()),
        Some(XDS_NODE_CLUSTER)
    );
    let status = client.status();
    assert!(status.connected);
    assert_eq!(status.applied, 1);
    assert_eq!(status.applied_version.as_deref(), Some(version.as_str()));
}

#[tokio::test]
async fn an_update_is_applied_and_acked() {
    init_tracing();
    let ads = Ads::start();
    let first = ads.publish("1", config_json("one"));
    let store = ConfigStore::new();
    let client = ads.client("extproc-update", &store);
    first_config(&client).await;
    ads.wait_acked("extproc-update", &first).await;
    let mut generations = store.subscribe();
    let before = *generations.borrow_and_update();

    let second = ads.publish("2", config_json("two"));
    tokio::time::timeout(STEP, generations.wait_for(|g| *g > before))
        .await
        .expect("update in time")
        .expect("store alive");
    ads.wait_acked("extproc-update", &second).await;

    assert_eq!(store.load().version, "two");
    assert_eq!(client.status().applied, 2);
}

#[tokio::test]
async fn invalid_json_is_nacked_and_the_previous_config_stays() {
    init_tracing();
    let ads = Ads::start();
    let good = ads.publish("1", config_json("one"));
    let store = ConfigStore::new();
    let client = ads.client("extproc-nack", &store);
    first_config(&client).await;
    ads.wait_acked("extproc-nack", &good).await;

    let bad = ads.publish("2", b"{\"version\": ".to_vec());
    ads.wait("the NACK", |proxies| {
        config_status(proxies, "extproc-nack")
            .and_then(|t| t.last_nack.as_ref())
            .is_some_and(|n| n.version == bad)
    })
    .await;

    let proxies = ads.registry.snapshot();
    let status = config_status(&proxies, "extproc-nack")
        .cloned()
        .unwrap_or_default();
    let nack = status
        .last_nack
        .unwrap_or_else(|| panic!("no NACK: {proxies:#?}"));
    assert!(
        nack.error_detail.starts_with("parsing extproc config: "),
        "{}",
        nack.error_detail
    );
    assert_eq!(status.acked_version.as_deref(), Some(good.as_str()));
    assert_eq!(store.load().version, "one");
    assert_eq!(store.generation(), 1);
    assert!(client.status().last_error.is_some());

    // A good config after the rejected one applies as usual.
    let fixed = ads.publish("3", config_json("three"));
    ads.wait_acked("extproc-nack", &fixed).await;
    assert_eq!(store.load().version, "three");
}

#[tokio::test]
async fn the_client_reconnects_when_the_server_comes_back_and_applies_its_config() {
    init_tracing();
    let mut ads = Ads::start();
    let first = ads.publish("1", config_json("one"));
    let store = ConfigStore::new();
    let client = ads.client("extproc-reconnect", &store);
    first_config(&client).await;
    ads.wait_acked("extproc-reconnect", &first).await;

    ads.stop().await;
    let mut status = client.subscribe();
    tokio::time::timeout(STEP, status.wait_for(|s| !s.connected))
        .await
        .expect("the client notices the outage")
        .expect("client alive");
    // Let it fail to connect at least once, so the backoff path runs.
    tokio::time::timeout(
        STEP,
        status.wait_for(|s| {
            s.last_error
                .as_deref()
                .is_some_and(|e| e.starts_with("connecting to the xDS server"))
        }),
    )
    .await
    .expect("a failed reconnect")
    .expect("client alive");
    assert_eq!(
        store.load().version,
        "one",
        "the config stays during the outage"
    );

    let second = ads.publish("2", config_json("two"));
    ads.restart();
    ads.wait_acked("extproc-reconnect", &second).await;

    assert_eq!(store.load().version, "two");
    let status = client.status();
    assert!(status.connected);
    assert_eq!(status.applied, 2);
}

#[tokio::test]
async fn readyz_turns_200_after_the_first_config() {
    init_tracing();
    let ads = Ads::start();
    let store = ConfigStore::new();
    let options = Options {
        grpc_addr: "127.0.0.1:0".parse().expect("addr"),
        admin_addr: "127.0.0.1:0".parse().expect("addr"),
        trust_backend_header: false,
        ..Default::default()
    };
    let running = Server::start(options, store.clone())
        .await
        .expect("start extproc");
    let admin = running.bound().admin;
    assert_eq!(admin_get(admin, "/readyz").await, 503);
    assert_eq!(admin_get(admin, "/healthz").await, 200);

    // Without a config resource the server answers with nothing: still not ready.
    let client = ads.client("extproc-ready", &store);
    let empty = Snapshot::default().version(CONFIG_TYPE_URL).to_owned();
    ads.wait_acked("extproc-ready", &empty).await;
    assert_eq!(admin_get(admin, "/readyz").await, 503);
    assert_eq!(store.generation(), 0);

    ads.publish("1", config_json("one"));
    first_config(&client).await;
    assert_eq!(admin_get(admin, "/readyz").await, 200);
    assert_eq!(admin_get(admin, "/healthz").await, 200);
}

#[test]
fn the_command_line_takes_exactly_one_of_config_and_xds_addr() {
    let parse = |args: &[&str]| Args::try_parse_from([&["extproc"], args].concat());
    assert!(parse(&["--xds-addr", "xds-server:18000"]).is_ok());
    assert!(parse(&["--config", "config.json"]).is_ok());
    let both = parse(&["--config", "c.json", "--xds-addr", "x:1"]).map(|_| ());
    assert!(both.is_err_and(|e| e.to_string().contains("cannot be used with")));
    let neither = parse(&[]).map(|_| ());
    assert!(neither.is_err_and(|e| e.to_string().contains("--xds-addr")));
}

/// GET on the admin port; returns the status code.
async fn admin_get(admin: SocketAddr, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(admin)
        .await
        .expect("connect admin");
    let request = format!("GET {path} HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}
