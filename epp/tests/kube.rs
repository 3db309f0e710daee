//! The picker's pool from Kubernetes, against the scripted API server the xds-server's tests
//! use: nothing before the first sync, then the InferencePool's target ports × the ready Pods
//! its selector matches, following Pods and the pool as they change.

#[path = "../../xds-server/tests/kube/fake_api.rs"]
mod fake_api;
#[path = "support/pods.rs"]
mod pods;

use std::net::SocketAddr;
use std::time::Duration;

use epp::Config;
use epp::datastore::{Datastore, PodSource};
use epp::scrape::ScrapeConfig;
use fake_api::FakeApi;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

fn pool(app: &str, port: u16) -> serde_json::Value {
    json!({
        "apiVersion": "inference.networking.k8s.io/v1", "kind": "InferencePool",
        "metadata": {"name": "mistral", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": app}},
                 "targetPorts": [{"number": port}],
                 "endpointPickerRef": {"name": "mistral-epp", "port": {"number": 9002}}},
    })
}

fn pod(name: &str, ip: &str, ready: bool) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "mistral"}},
        "spec": {"containers": [{"name": "vllm", "image": "vllm"}]},
        "status": {"podIP": ip, "conditions": [
            {"type": "Ready", "status": if ready { "True" } else { "False" }}]},
    })
}

async fn wait_endpoints(datastore: &Datastore, want: &[SocketAddr]) {
    tokio::time::timeout(WAIT, datastore.wait_for(|d| d.endpoints() == want))
        .await
        .unwrap_or_else(|_| panic!("endpoints {:?}, want {want:?}", datastore.endpoints()));
}

#[tokio::test]
async fn the_pool_and_its_ready_pods_come_from_kubernetes_and_follow_changes() {
    let (sims, port) = pods::fake_pods(31, 2).await;
    let (a, b) = (sims[0].addr, sims[1].addr);
    let fake = FakeApi::start().await;
    fake.apply(pod("a", &a.ip().to_string(), true));
    fake.apply(pod("b", &b.ip().to_string(), false));

    let (_watch, pool_state) = epp::kube::spawn(fake.client(), "mistral", "default");
    let mut synced = pool_state.clone();
    let config = Config {
        pods: PodSource::Pool(pool_state),
        scrape: ScrapeConfig {
            interval: Duration::from_millis(20),
            ..ScrapeConfig::default()
        },
        ..Config::for_tests()
    };
    let running = epp::start(config).await.expect("start");
    // Synced, but the pool does not exist yet: no endpoints, not ready.
    tokio::time::timeout(WAIT, synced.wait_for(Option::is_some))
        .await
        .expect("first sync")
        .expect("watching");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(running.datastore().endpoints().is_empty());
    assert!(!running.datastore().is_ready());

    fake.apply(pool("mistral", port));
    tokio::time::timeout(WAIT, running.wait_ready())
        .await
        .expect("ready once the pool's ready Pod is scraped");
    assert_eq!(running.datastore().endpoints(), vec![a], "b is not ready");

    fake.apply(pod("b", &b.ip().to_string(), true));
    wait_endpoints(running.datastore(), &[a, b]).await;
    fake.delete("v1", "Pod", "default", "a");
    wait_endpoints(running.datastore(), &[b]).await;

    // The selector changes to match nothing, then the pool goes: no endpoints, not ready.
    fake.apply(pool("someone-else", port));
    wait_endpoints(running.datastore(), &[]).await;
    fake.apply(pool("mistral", port));
    wait_endpoints(running.datastore(), &[b]).await;
    fake.delete(
        "inference.networking.k8s.io/v1",
        "InferencePool",
        "default",
        "mistral",
    );
    wait_endpoints(running.datastore(), &[]).await;
    assert!(!running.datastore().is_ready());
}
