//! The Kubernetes source against a scripted API server (tests/kube/fake_api.rs): objects
//! arriving, changing and disappearing change the translation; a Secret rotation changes the
//! extproc's credential; expired or failed watches relist or retry without losing config; and
//! the seed documents translate exactly as through the directory source.

#[path = "kube/fake_api.rs"]
mod fake_api;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fake_api::FakeApi;
use serde_json::json;
use xds_server::pipeline::Debounce;
use xds_server::server::{self, Config, Running, Source};
use xds_server::source::kube::KubeConfig;
use xds_server::translate::{Options, Translation};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// What `infergate run` translates with: the extproc and the rate limit service configured.
fn run_options() -> Options {
    Options {
        extproc: Some(
            xds_server::cli::extproc_options("127.0.0.1:1063", 32 << 20).expect("extproc"),
        ),
        ratelimit: Some(xds_server::translate::RateLimitOptions {
            endpoints: vec![("127.0.0.1".into(), 8081)],
            timeout: Duration::from_millis(200),
            failure_mode_deny: false,
        }),
        ..Options::default()
    }
}

async fn start(fake: &FakeApi, namespace: Option<&str>, options: Options) -> Running {
    start_with(fake.client(), namespace, options).await
}

async fn start_with(client: kube::Client, namespace: Option<&str>, options: Options) -> Running {
    let source = KubeConfig {
        client: Some(client),
        namespace: namespace.map(str::to_string),
        leader_election: None,
    };
    start_source(source, options).await
}

async fn start_source(source: KubeConfig, options: Options) -> Running {
    let source = Source::Kube(source);
    let config = Config {
        dir: PathBuf::new(),
        ads_addr: "127.0.0.1:0".parse().expect("addr"),
        admin_addr: "127.0.0.1:0".parse().expect("addr"),
        translate: options,
        debounce: Debounce {
            quiet: Duration::from_millis(10),
            max: Duration::from_millis(50),
        },
    };
    let running = server::start_from(source, config).await.expect("start");
    tokio::time::timeout(Duration::from_secs(10), running.ready())
        .await
        .expect("initial sync within 10s");
    running
}

/// Waits until the published translation satisfies `check`.
async fn wait_for(
    running: &Running,
    what: &str,
    check: impl Fn(&Translation) -> bool,
) -> Arc<Translation> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let translation = running.published.translation.load_full();
        if check(&translation) {
            return translation;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn cluster_names(t: &Translation) -> Vec<String> {
    t.all.clusters.iter().map(|c| c.name.clone()).collect()
}

fn endpoints(t: &Translation) -> String {
    format!("{:?}", t.all.endpoints)
}

const GATEWAY: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: infergate}
spec: {controllerName: infergate.io/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: infergate
  listeners: [{name: http, protocol: HTTP, port: 8080}]
"#;

fn route(name: &str, backend: &str) -> serde_json::Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"parentRefs": [{"name": "gw"}],
                 "rules": [{"backendRefs": [{"group": "gateway.envoyproxy.io", "kind": "Backend", "name": backend}]}]},
    })
}

fn backend(name: &str, namespace: &str, port: u16) -> serde_json::Value {
    json!({
        "apiVersion": "gateway.envoyproxy.io/v1alpha1", "kind": "Backend",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"endpoints": [{"ip": {"address": "127.0.0.7", "port": port}}]},
    })
}

#[tokio::test]
async fn objects_arriving_changing_and_disappearing_change_the_translation() {
    let fake = FakeApi::start().await;
    fake.apply_yaml(GATEWAY);
    fake.apply(route("r", "b"));
    fake.apply(backend("b", "default", 9001));
    // Outside the watched namespace: never seen.
    fake.apply(backend("elsewhere", "other", 9009));
    let running = start(&fake, Some("default"), Options::default()).await;
    let first = running.published.translation.load_full();
    assert!(
        endpoints(&first).contains("9001"),
        "{}\n{:#?}",
        endpoints(&first),
        first.status.lines()
    );
    assert!(
        !endpoints(&first).contains("9009"),
        "other namespace ignored"
    );
    assert!(!first.status.objects.keys().any(|k| k.namespace == "other"));

    fake.apply(backend("b", "default", 9002));
    wait_for(&running, "the changed port", |t| {
        endpoints(t).contains("9002")
    })
    .await;

    fake.apply(route("r2", "b2"));
    fake.apply(backend("b2", "default", 9003));
    let both = wait_for(&running, "the second route's backend", |t| {
        endpoints(t).contains("9003")
    })
    .await;
    let clusters = cluster_names(&both);

    fake.delete("gateway.networking.k8s.io/v1", "HTTPRoute", "default", "r2");
    fake.delete("gateway.envoyproxy.io/v1alpha1", "Backend", "default", "b2");
    let after = wait_for(&running, "the deleted route's cluster to go", |t| {
        cluster_names(t).len() < clusters.len()
    })
    .await;
    assert!(!endpoints(&after).contains("9003"));
    assert!(endpoints(&after).contains("9002"), "the other route stays");
}

/// What `--kube` does out of a cluster (a kubeconfig with a CA and a token; in a cluster the
/// same from the service account's `ca.crt` and `token`): HTTPS verified against the CA, the
/// token as a bearer header.
#[tokio::test]
async fn an_https_api_server_is_reached_with_its_ca_and_a_bearer_token() {
    let fake = FakeApi::start_tls().await;
    fake.apply_yaml(GATEWAY);
    fake.apply(route("r", "b"));
    fake.apply(backend("b", "default", 9001));
    let kubeconfig = format!(
        r#"
apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {{server: "https://127.0.0.1:{port}", certificate-authority: "{ca}"}}
users:
- name: infergate
  user: {{token: sa-token}}
contexts:
- name: test
  context: {{cluster: test, user: infergate}}
current-context: test
"#,
        port = fake.addr.port(),
        ca = fake_api::tls_dir().join("ca.pem").display(),
    );
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&kubeconfig).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("config");
    xds_server::source::kube::install_crypto_provider();
    let client = kube::Client::try_from(config).expect("TLS client");
    let running = start_with(client, Some("default"), Options::default()).await;
    let first = running.published.translation.load_full();
    assert!(endpoints(&first).contains("9001"), "{}", endpoints(&first));
    assert_eq!(fake.authorization().as_deref(), Some("Bearer sa-token"));

    // A client that does not trust the CA is refused.
    let url = format!("https://127.0.0.1:{}", fake.addr.port());
    let untrusted =
        kube::Client::try_from(kube::Config::new(url.parse().expect("url"))).expect("client");
    let api: kube::Api<k8s_openapi::api::core::v1::Service> =
        kube::Api::namespaced(untrusted, "default");
    assert!(api.list(&Default::default()).await.is_err());
}

#[tokio::test]
async fn an_invalid_update_keeps_serving_the_last_good_version_like_a_folder() {
    let fake = FakeApi::start().await;
    fake.apply_yaml(GATEWAY);
    fake.apply(route("r", "b"));
    fake.apply(backend("b", "default", 9001));
    let running = start(&fake, None, Options::default()).await;
    let mut typo = backend("b", "default", 9005);
    typo["spec"]["endpoints"][0]["ip"]["prot"] = json!(1);
    fake.apply(typo);
    let t = wait_for(&running, "the rejected update's condition", |t| {
        t.status.lines().iter().any(|l| l.contains("unknown field"))
    })
    .await;
    assert!(endpoints(&t).contains("9001"), "last good version serves");
    assert!(!endpoints(&t).contains("9005"));
}

fn credential(t: &Translation) -> Option<String> {
    let config = t.extproc.as_ref()?;
    config.backends.iter().find_map(|b| {
        let extproc::config::CredentialConfig::ApiKey { key } = b.credential.as_ref()? else {
            return None;
        };
        Some(key.clone())
    })
}

#[tokio::test]
async fn a_secret_rotation_changes_the_extproc_credential_without_restart() {
    let fake = FakeApi::start().await;
    let text =
        std::fs::read_to_string(repo().join("xds-server/testdata/in/extproc-mixed-listener.yaml"))
            .expect("case");
    fake.apply_yaml(&text);
    // As the API server stores it: base64 `data`, not `stringData`.
    let secret = |key: &str| {
        json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
               "metadata": {"name": "openai-key", "namespace": "default"},
               "data": {"apiKey": base64(key.as_bytes())}})
    };
    fake.apply(secret("sk-first"));
    let running = start(&fake, None, run_options()).await;
    let first = running.published.translation.load_full();
    assert_eq!(credential(&first).as_deref(), Some("sk-first"));

    fake.apply(secret("sk-rotated"));
    wait_for(&running, "the rotated key", |t| {
        credential(t).as_deref() == Some("sk-rotated")
    })
    .await;
}

#[tokio::test]
async fn only_the_secrets_a_policy_references_are_read_and_kept() {
    let fake = FakeApi::start().await;
    let text =
        std::fs::read_to_string(repo().join("xds-server/testdata/in/extproc-mixed-listener.yaml"))
            .expect("case");
    fake.apply_yaml(&text);
    let secret = |name: &str, key: &str| {
        json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
               "metadata": {"name": name, "namespace": "default"},
               "data": {"apiKey": base64(key.as_bytes())}})
    };
    fake.apply(secret("other-key", "sk-other"));
    fake.apply(secret("database", "hunter2"));
    let running = start(&fake, None, run_options()).await;
    // The first push already has the credential: the initial batch waited for it.
    let first = running.published.translation.load_full();
    assert_eq!(credential(&first).as_deref(), Some("sk-golden-test-key"));
    let secret_reads = |fake: &FakeApi| -> Vec<String> {
        fake.reads()
            .into_iter()
            .filter(|(path, _)| path.ends_with("/secrets"))
            .map(|(path, query)| {
                format!(
                    "{path}?{}",
                    query.get("fieldSelector").cloned().unwrap_or_default()
                )
            })
            .collect()
    };
    let reads = secret_reads(&fake);
    assert!(!reads.is_empty(), "the referenced Secret was never read");
    assert!(
        reads
            .iter()
            .all(|r| r == "/api/v1/namespaces/default/secrets?metadata.name=openai-key"),
        "Secrets other than the referenced one were read: {reads:?}"
    );

    // The policy now names another Secret: that one is read, the old one dropped.
    let policy = text
        .split("\n---")
        .find(|doc| doc.contains("kind: BackendSecurityPolicy"))
        .expect("policy")
        .replace(
            "secretRef: {name: openai-key}",
            "secretRef: {name: other-key}",
        );
    fake.apply_yaml(&policy);
    wait_for(&running, "the newly referenced Secret's key", |t| {
        credential(t).as_deref() == Some("sk-other")
    })
    .await;
    let reads = secret_reads(&fake);
    assert!(
        reads
            .iter()
            .all(|r| !r.ends_with("metadata.name=database") && r.contains("?metadata.name=")),
        "an unreferenced Secret was read, or all of them: {reads:?}"
    );
}

fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test]
async fn an_expired_watch_relists_without_losing_config() {
    let fake = FakeApi::start().await;
    fake.apply_yaml(GATEWAY);
    fake.apply(route("r", "b"));
    fake.apply(backend("b", "default", 9001));
    fake.apply(route("r2", "b2"));
    fake.apply(backend("b2", "default", 9002));
    let running = start(&fake, None, Options::default()).await;
    let lists = fake.lists();

    // Every translation published from now on must still serve route r.
    let mut snapshots = running.published.snapshots.subscribe();
    let published = running.published.clone();
    let watcher = tokio::spawn(async move {
        let mut seen = 0;
        while snapshots.changed().await.is_ok() {
            let t = published.translation.load_full();
            assert!(
                endpoints(&t).contains("9001"),
                "config lost during relist: {}",
                endpoints(&t)
            );
            seen += 1;
        }
        seen
    });

    fake.expire();
    // Deleted while nobody watches: only the relist can tell.
    fake.delete("gateway.networking.k8s.io/v1", "HTTPRoute", "default", "r2");
    fake.delete("gateway.envoyproxy.io/v1alpha1", "Backend", "default", "b2");
    wait_for(&running, "the relist to drop b2", |t| {
        !endpoints(t).contains("9002")
    })
    .await;
    assert!(fake.lists() > lists, "relisted");

    // A watch that ends, and watch starts that fail, are retried; changes still arrive.
    fake.fail_watches(2);
    fake.end_watches();
    fake.apply(route("r3", "b3"));
    fake.apply(backend("b3", "default", 9003));
    wait_for(&running, "changes after failed watches", |t| {
        endpoints(t).contains("9003")
    })
    .await;

    drop(running);
    let _ = tokio::time::timeout(Duration::from_secs(1), watcher).await;
}

/// Listeners, routes, clusters, endpoints and the extproc config, without per-object status
/// (whose origins name files in one case and nothing in the other).
fn config_of(t: &Translation) -> String {
    format!(
        "{:#?}\n{:#?}\n{:#?}\n{:#?}",
        t.all, t.by_gateway, t.served_ports, t.extproc
    )
}

fn conditions_of(t: &Translation) -> Vec<String> {
    t.status
        .objects
        .iter()
        .map(|(key, s)| format!("{key}: {:?}", s.conditions))
        .collect()
}

#[tokio::test]
async fn seed_documents_translate_the_same_through_kubernetes_as_through_a_folder() {
    let seeds = repo().join("crds/testdata/seeds");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&seeds)
        .expect("seeds")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for file in files {
        let text = std::fs::read_to_string(&file).expect("seed");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("seed.yaml"), &text).expect("copy");
        let view = xds_server::source::dir::DirSource::new(dir.path())
            .load()
            .expect("load");
        let mut index = xds_server::index::Index::new();
        index.sync(view.objects);
        let from_dir = xds_server::translate::translate(&index.snapshot(), &run_options());

        let fake = FakeApi::start().await;
        fake.apply_yaml(&text);
        let running = start(&fake, None, run_options()).await;
        let from_kube = running.published.translation.load_full();
        assert!(
            !from_dir.status.objects.is_empty(),
            "{} has objects",
            file.display()
        );
        assert_eq!(
            config_of(&from_kube),
            config_of(&from_dir),
            "{}",
            file.display()
        );
        assert_eq!(
            conditions_of(&from_kube),
            conditions_of(&from_dir),
            "{}",
            file.display()
        );
    }
}

fn status_patches(fake: &FakeApi, suffix: &str) -> Vec<fake_api::Recorded> {
    fake.recorded()
        .into_iter()
        .filter(|r| r.method == "PATCH" && r.path.ends_with(suffix))
        .collect()
}

async fn wait_for_patch(fake: &FakeApi, suffix: &str) -> fake_api::Recorded {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(patch) = status_patches(fake, suffix).pop() {
            return patch;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no status patch for {suffix}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn status_patches_carry_the_conditions_with_server_side_apply_only_when_they_change() {
    let fake = FakeApi::start().await;
    let text =
        std::fs::read_to_string(repo().join("xds-server/testdata/in/extproc-mixed-listener.yaml"))
            .expect("case");
    fake.apply_yaml(&text);
    let _running = start(&fake, None, run_options()).await;

    let bad = wait_for_patch(&fake, "/aigatewayroutes/bad-cel/status").await;
    assert_eq!(
        bad.query.get("fieldManager").map(String::as_str),
        Some("infergate")
    );
    assert_eq!(bad.query.get("force").map(String::as_str), Some("true"));
    assert!(
        bad.content_type.contains("apply-patch"),
        "{}",
        bad.content_type
    );
    assert_eq!(bad.body["kind"], "AIGatewayRoute");
    assert_eq!(
        bad.body["metadata"],
        json!({"name": "bad-cel", "namespace": "default"})
    );
    let parent = &bad.body["status"]["parents"][0];
    assert_eq!(
        parent["parentRef"],
        json!({"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "default", "name": "ai"})
    );
    assert_eq!(parent["controllerName"], "infergate.io/gateway-controller");
    let accepted = &parent["conditions"][0];
    assert_eq!(
        (accepted["type"].as_str(), accepted["status"].as_str()),
        (Some("Accepted"), Some("False"))
    );
    assert_eq!(accepted["reason"], "Invalid");
    assert!(
        accepted["message"]
            .as_str()
            .is_some_and(|m| m.contains("does not parse"))
    );
    assert!(accepted["lastTransitionTime"].is_string());

    let gateway = wait_for_patch(&fake, "/gateways/ai/status").await;
    let conditions = gateway.body["status"]["conditions"]
        .as_array()
        .expect("conditions");
    let types: Vec<_> = conditions
        .iter()
        .map(|c| (c["type"].as_str(), c["status"].as_str()))
        .collect();
    assert_eq!(
        types,
        [
            (Some("Accepted"), Some("True")),
            (Some("Programmed"), Some("True"))
        ]
    );
    let key = wait_for_patch(&fake, "/backendsecuritypolicies/openai-key/status").await;
    assert_eq!(key.body["status"]["conditions"][0]["type"], "ResolvedRefs");
    wait_for_patch(&fake, "/aiservicebackends/openai/status").await;
    wait_for_patch(&fake, "/httproutes/health/status").await;
    // Secrets and Backends have no status of ours.
    assert!(status_patches(&fake, "/secrets/openai-key/status").is_empty());
    assert!(status_patches(&fake, "/backends/local/status").is_empty());

    // A change that leaves every condition as it was writes nothing.
    let before = fake.recorded().len();
    fake.apply(
        json!({"apiVersion": "gateway.envoyproxy.io/v1alpha1", "kind": "Backend",
                      "metadata": {"name": "local", "namespace": "default"},
                      "spec": {"endpoints": [{"ip": {"address": "127.0.0.1", "port": 8001}}]}}),
    );
    wait_for(&_running, "the new port", |t| endpoints(t).contains("8001")).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(fake.recorded().len(), before, "no status rewritten");

    // Fixing the route rewrites its status, keeping the parent, now accepted.
    let fixed = text.replace("input_tokens +* nope", "input_tokens + 1u");
    fake.apply_yaml(&fixed);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let last = status_patches(&fake, "/aigatewayroutes/bad-cel/status")
            .pop()
            .expect("patch");
        if last.body["status"]["parents"][0]["conditions"][0]["status"] == "True" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "fixed route's status not written"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn elected(fake: &FakeApi, identity: &str) -> KubeConfig {
    KubeConfig {
        client: Some(fake.client()),
        namespace: Some("default".into()),
        leader_election: Some(xds_server::source::kube::LeaseConfig {
            duration: Duration::from_millis(1500),
            renew_every: Duration::from_millis(200),
            ..xds_server::source::kube::LeaseConfig::new("default", identity)
        }),
    }
}

#[tokio::test]
async fn a_leader_that_shuts_down_releases_the_lease_and_another_replica_leads_at_once() {
    let fake = FakeApi::start().await;
    fake.apply_yaml(GATEWAY);
    // A Lease far longer than the test: only a release lets b lead in time.
    let long = |identity: &str| {
        let mut config = elected(&fake, identity);
        if let Some(lease) = config.leader_election.as_mut() {
            lease.duration = Duration::from_secs(600);
        }
        config
    };
    let a = start_source(long("replica-a"), Options::default()).await;
    wait_for_holder(&fake, "replica-a").await;
    let b = start_source(long("replica-b"), Options::default()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(lease_holder(&fake).as_deref(), Some("replica-a"));

    a.shutdown().await;
    wait_for_holder(&fake, "replica-b").await;
    // A follower's shutdown leaves the holder alone.
    let c = start_source(long("replica-c"), Options::default()).await;
    c.shutdown().await;
    assert_eq!(lease_holder(&fake).as_deref(), Some("replica-b"));
    drop(b);
}

fn lease_holder(fake: &FakeApi) -> Option<String> {
    let lease = fake.get(
        "coordination.k8s.io/v1",
        "Lease",
        "default",
        "infergate-xds-server",
    )?;
    lease["spec"]["holderIdentity"].as_str().map(str::to_string)
}

async fn wait_for_holder(fake: &FakeApi, identity: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while lease_holder(fake).as_deref() != Some(identity) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {identity} to hold the lease (holder {:?})",
            lease_holder(fake)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn only_the_elected_leader_writes_status_and_another_replica_takes_over_when_it_stops() {
    let fake = FakeApi::start().await;
    fake.apply_yaml(GATEWAY);
    let a = start_source(elected(&fake, "replica-a"), Options::default()).await;
    wait_for_holder(&fake, "replica-a").await;
    wait_for_patch(&fake, "/gateways/gw/status").await;
    let b = start_source(elected(&fake, "replica-b"), Options::default()).await;
    // Several of b's rounds, each seeing a renewed Lease: b follows and writes nothing.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(lease_holder(&fake).as_deref(), Some("replica-a"));
    assert_eq!(
        status_patches(&fake, "/gateways/gw/status").len(),
        1,
        "only the leader wrote"
    );
    let lease = fake
        .get(
            "coordination.k8s.io/v1",
            "Lease",
            "default",
            "infergate-xds-server",
        )
        .expect("lease");
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 1);

    // The leader stops renewing (its process ends): b takes the Lease over and writes.
    drop(a);
    wait_for_holder(&fake, "replica-b").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while status_patches(&fake, "/gateways/gw/status").len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new leader writes status"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let lease = fake
        .get(
            "coordination.k8s.io/v1",
            "Lease",
            "default",
            "infergate-xds-server",
        )
        .expect("lease");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
    drop(b);
}

const POOL: &str = r#"
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: mistral, namespace: default}
spec:
  targetPorts: [{number: 8080}]
  selector: {matchLabels: {app: mistral}}
  endpointPickerRef: {name: mistral-epp, port: {number: 9002}}
---
apiVersion: v1
kind: Service
metadata: {name: mistral-epp, namespace: default}
spec:
  selector: {app: mistral-epp}
  ports: [{name: grpc, port: 9002, targetPort: 9002}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: to-pool, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - backendRefs:
    - {group: inference.networking.k8s.io, kind: InferencePool, name: mistral}
"#;

#[tokio::test]
async fn an_inference_pools_status_lists_the_gateways_whose_routes_send_to_it() {
    let fake = FakeApi::start().await;
    fake.apply_yaml(GATEWAY);
    fake.apply_yaml(POOL);
    let _running = start(&fake, Some("default"), Options::default()).await;
    let patch = wait_for_patch(&fake, "/inferencepools/mistral/status").await;
    assert_eq!(
        patch.path,
        "/apis/inference.networking.k8s.io/v1/namespaces/default/inferencepools/mistral/status"
    );
    assert!(
        patch.content_type.contains("apply-patch"),
        "server-side apply"
    );
    assert_eq!(
        patch.query.get("fieldManager").map(String::as_str),
        Some("infergate")
    );
    assert_eq!(patch.body["kind"], "InferencePool");
    let parents = patch.body["status"]["parents"].as_array().expect("parents");
    assert_eq!(parents.len(), 1, "{parents:?}");
    assert_eq!(
        parents[0]["parentRef"],
        json!({"group": "gateway.networking.k8s.io", "kind": "Gateway",
               "namespace": "default", "name": "gw"})
    );
    assert_eq!(
        parents[0]["controllerName"],
        "infergate.io/gateway-controller"
    );
    let conditions = parents[0]["conditions"].as_array().expect("conditions");
    let of = |type_: &str| {
        conditions
            .iter()
            .find(|c| c["type"] == type_)
            .unwrap_or_else(|| panic!("{type_} in {conditions:?}"))
    };
    assert_eq!(of("Accepted")["status"], "True");
    assert_eq!(of("ResolvedRefs")["status"], "True");
    assert!(
        of("ResolvedRefs")["message"]
            .as_str()
            .is_some_and(|m| m.contains("mistral-epp")),
        "{conditions:?}"
    );
    assert!(of("Accepted")["lastTransitionTime"].is_string());

    // No route sends to the pool any more: no parents.
    fake.delete(
        "gateway.networking.k8s.io/v1",
        "HTTPRoute",
        "default",
        "to-pool",
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let patches = status_patches(&fake, "/inferencepools/mistral/status");
        if patches.len() > 1 {
            let last = &patches[patches.len() - 1];
            assert_eq!(last.body["status"]["parents"], json!([]));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a second pool status patch"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn service_route() -> serde_json::Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "to-service", "namespace": "default"},
        "spec": {"parentRefs": [{"name": "gw"}],
                 "rules": [{"backendRefs": [{"name": "llm", "port": 80}]}]},
    })
}

fn llm_slice(name: &str, endpoints: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "llm"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8000, "protocol": "TCP"}],
        "endpoints": endpoints,
    })
}

fn service_cluster(t: &Translation) -> Option<String> {
    t.all
        .clusters
        .iter()
        .find(|c| c.name == "service/default/llm/80")
        .map(|c| format!("{:?}", c.discovery))
}

#[tokio::test]
async fn a_services_endpoint_slices_become_its_eds_endpoints_and_follow_changes() {
    let fake = FakeApi::start().await;
    fake.apply_yaml(GATEWAY);
    fake.apply(service_route());
    fake.apply(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "llm", "namespace": "default"},
        "spec": {"selector": {"app": "llm"},
                 "ports": [{"name": "http", "port": 80, "targetPort": "web"}]},
    }));
    fake.apply(llm_slice(
        "llm-abc",
        json!([{"addresses": ["10.1.0.1"], "conditions": {"ready": true}},
               {"addresses": ["10.1.0.2"], "conditions": {"ready": false}}]),
    ));
    let running = start(&fake, Some("default"), Options::default()).await;
    let first = running.published.translation.load_full();
    let cluster = service_cluster(&first).expect("the Service's cluster");
    assert!(cluster.starts_with("Eds"), "EDS, not DNS: {cluster}");
    assert!(
        endpoints(&first).contains("10.1.0.1"),
        "{}",
        endpoints(&first)
    );
    assert!(endpoints(&first).contains("8000"), "the named targetPort");
    assert!(!endpoints(&first).contains("10.1.0.2"), "not ready");
    assert!(!endpoints(&first).contains("svc.cluster.local"));

    // A Pod turns ready, and a second slice arrives.
    fake.apply(llm_slice(
        "llm-abc",
        json!([{"addresses": ["10.1.0.1"], "conditions": {"ready": true}},
               {"addresses": ["10.1.0.2"], "conditions": {"ready": true}}]),
    ));
    fake.apply(llm_slice("llm-def", json!([{"addresses": ["10.1.0.3"]}])));
    wait_for(&running, "the new endpoints", |t| {
        ["10.1.0.1", "10.1.0.2", "10.1.0.3"]
            .iter()
            .all(|ip| endpoints(t).contains(ip))
    })
    .await;

    // The first slice goes away: its endpoints go with it; the cluster stays EDS.
    fake.delete("discovery.k8s.io/v1", "EndpointSlice", "default", "llm-abc");
    let last = wait_for(&running, "the deleted slice's endpoints to go", |t| {
        !endpoints(t).contains("10.1.0.1")
    })
    .await;
    assert!(endpoints(&last).contains("10.1.0.3"));
    assert_eq!(service_cluster(&last), Some(cluster));
}
