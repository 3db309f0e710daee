//! What `/status` and `/metrics` see.

use infergate_ads::{Snapshot, StreamKind, type_url};
use prometheus_client::encoding::text::encode;

use crate::harness::*;

#[tokio::test]
async fn registry_lists_connected_proxies_and_forgets_them_on_disconnect() {
    let harness = Harness::start(set(Snapshot::new([cluster("a", "1")]))).await;
    let mut sotw = harness.sotw().await;
    sotw.request(type_url::CLUSTER, &[], "", "").await;
    let _ = sotw.recv().await;
    let mut delta = harness.delta().await;
    delta.subscribe(type_url::CLUSTER, &[], &[]).await;
    let _ = delta.recv().await;

    let mut kinds: Vec<StreamKind> = harness
        .registry
        .snapshot()
        .iter()
        .map(|p| p.stream)
        .collect();
    kinds.sort_by_key(|k| format!("{k:?}"));
    assert_eq!(kinds, [StreamKind::Delta, StreamKind::Sotw]);
    let json = serde_json::to_value(harness.registry.snapshot()).expect("status serializes");
    assert_eq!(json[0]["node_id"], "envoy-1");
    assert!(json[0]["connected_at"].is_string());

    drop(sotw);
    drop(delta);
    let registry = harness.registry.clone();
    tokio::time::timeout(PATIENCE, registry.wait_for(|proxies| proxies.is_empty()))
        .await
        .expect("disconnected proxies are forgotten");
}

#[tokio::test]
async fn metrics_count_pushes_nacks_acks_and_connected_proxies() {
    let harness = Harness::start(set(Snapshot::new([cluster("a", "1")]))).await;
    let mut prometheus = prometheus_client::registry::Registry::default();
    harness.registry.register_metrics(&mut prometheus);

    let mut envoy = harness.sotw().await;
    envoy.request(type_url::CLUSTER, &[], "", "").await;
    let first = envoy.recv().await;
    envoy.ack(&first, &[]).await;
    tokio::time::timeout(
        PATIENCE,
        harness
            .registry
            .wait_acked(type_url::CLUSTER, &first.version_info),
    )
    .await
    .expect("ACK recorded");
    let second = Snapshot::new([cluster("a", "2")]);
    harness.publish(second);
    let rejected = envoy.recv().await;
    envoy.nack(&rejected, &[], &first.version_info, "no").await;
    let registry = harness.registry.clone();
    tokio::time::timeout(
        PATIENCE,
        registry.wait_for(|p| p[0].types[type_url::CLUSTER].last_nack.is_some()),
    )
    .await
    .expect("NACK recorded");

    let mut text = String::new();
    encode(&mut text, &prometheus).expect("metrics encode");
    assert!(text.contains(r#"xds_pushes_total{type="cds"} 2"#), "{text}");
    assert!(text.contains(r#"xds_nacks_total{type="cds"} 1"#), "{text}");
    assert!(text.contains("xds_connected_proxies 1"), "{text}");
    assert!(
        text.contains(r#"xds_push_ack_seconds_count{type="cds"} 1"#),
        "{text}"
    );
}
