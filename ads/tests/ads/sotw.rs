//! State-of-the-world ADS, request by request.

use std::collections::BTreeMap;
use std::sync::Arc;

use infergate_ads::{Snapshot, SnapshotSet, type_url};

use crate::harness::*;

fn two_clusters() -> Snapshot {
    Snapshot::new([
        cluster("a", "1"),
        cluster("b", "1"),
        endpoints("a", "1"),
        endpoints("b", "1"),
        listener("http", "1"),
        route("r", "1"),
    ])
}

#[tokio::test]
async fn first_request_gets_every_cluster_at_the_type_version() {
    let snapshot = two_clusters();
    let version = snapshot.version(type_url::CLUSTER).to_owned();
    let harness = Harness::start(set(snapshot)).await;
    let mut envoy = harness.sotw().await;

    envoy.request(type_url::CLUSTER, &[], "", "").await;
    let response = envoy.recv().await;

    assert_eq!(response.type_url, type_url::CLUSTER);
    assert_eq!(response.version_info, version);
    assert!(!response.nonce.is_empty());
    assert_eq!(names(&response), ["a", "b"]);
}

#[tokio::test]
async fn ack_is_recorded_in_the_registry() {
    let snapshot = two_clusters();
    let version = snapshot.version(type_url::CLUSTER).to_owned();
    let harness = Harness::start(set(snapshot)).await;
    let mut envoy = harness.sotw().await;

    envoy.request(type_url::CLUSTER, &[], "", "").await;
    let response = envoy.recv().await;
    envoy.ack(&response, &[]).await;

    tokio::time::timeout(
        PATIENCE,
        harness.registry.wait_acked(type_url::CLUSTER, &version),
    )
    .await
    .expect("ACK recorded");
    let proxies = harness.registry.snapshot();
    let cds = &proxies[0].types[type_url::CLUSTER];
    assert_eq!(cds.sent_version.as_deref(), Some(version.as_str()));
    assert_eq!(cds.acked_version.as_deref(), Some(version.as_str()));
    assert!(cds.last_nack.is_none());
    envoy.expect_silence().await;
}

#[tokio::test]
async fn nacked_version_is_not_resent_until_config_changes() {
    let harness = Harness::start(set(two_clusters())).await;
    let mut envoy = harness.sotw().await;
    envoy.request(type_url::CLUSTER, &[], "", "").await;
    let v1 = envoy.recv().await;
    envoy.ack(&v1, &[]).await;
    envoy.request(type_url::LISTENER, &[], "", "").await;
    let lds = envoy.recv().await;
    envoy.ack(&lds, &[]).await;

    // A new cluster version, which the proxy rejects.
    let bad = Snapshot::new([
        cluster("a", "2-bad"),
        cluster("b", "1"),
        listener("http", "1"),
    ]);
    harness.publish(bad.clone());
    let v2 = envoy.recv().await;
    assert_eq!(v2.version_info, bad.version(type_url::CLUSTER));
    envoy
        .nack(&v2, &[], &v1.version_info, "cluster a: invalid lb_policy")
        .await;

    let registry = harness.registry.clone();
    tokio::time::timeout(
        PATIENCE,
        registry.wait_for(|proxies| {
            proxies
                .first()
                .and_then(|p| p.types[type_url::CLUSTER].last_nack.as_ref())
                .is_some()
        }),
    )
    .await
    .expect("NACK recorded");
    let status = harness.registry.snapshot()[0].types[type_url::CLUSTER].clone();
    let nack = status.last_nack.expect("last NACK");
    assert_eq!(nack.version, v2.version_info);
    assert_eq!(nack.error_detail, "cluster a: invalid lb_policy");
    assert_eq!(
        status.acked_version.as_deref(),
        Some(v1.version_info.as_str())
    );

    // Another type changes: the rejected clusters are not sent again.
    let listener_change = Snapshot::new([
        cluster("a", "2-bad"),
        cluster("b", "1"),
        listener("http", "2"),
    ]);
    harness.publish(listener_change.clone());
    let lds2 = envoy.recv().await;
    assert_eq!(lds2.type_url, type_url::LISTENER);
    envoy.ack(&lds2, &[]).await;
    // Nor when the proxy repeats its last request.
    envoy
        .request(type_url::CLUSTER, &[], &v1.version_info, &v2.nonce)
        .await;
    envoy.expect_silence().await;

    // The clusters change: the new version goes out.
    let fixed = Snapshot::new([cluster("a", "3"), cluster("b", "1"), listener("http", "2")]);
    harness.publish(fixed.clone());
    let v3 = envoy.recv().await;
    assert_eq!(v3.type_url, type_url::CLUSTER);
    assert_eq!(v3.version_info, fixed.version(type_url::CLUSTER));
    envoy.ack(&v3, &[]).await;
    envoy.expect_silence().await;
}

#[tokio::test]
async fn stale_nonces_are_ignored() {
    let harness = Harness::start(set(two_clusters())).await;
    let mut envoy = harness.sotw().await;
    envoy.request(type_url::CLUSTER, &[], "", "").await;
    let first = envoy.recv().await;
    envoy.ack(&first, &[]).await;
    // Let the ACK land first, or it would itself be stale once the next response is out.
    tokio::time::timeout(
        PATIENCE,
        harness
            .registry
            .wait_acked(type_url::CLUSTER, &first.version_info),
    )
    .await
    .expect("ACK recorded");

    let next = Snapshot::new([cluster("a", "2")]);
    harness.publish(next.clone());
    let second = envoy.recv().await;

    // A late request that still carries the first nonce is neither an ACK nor answered.
    envoy
        .request(type_url::CLUSTER, &[], &first.version_info, &first.nonce)
        .await;
    envoy.expect_silence().await;
    let cds = harness.registry.snapshot()[0].types[type_url::CLUSTER].clone();
    assert_eq!(
        cds.acked_version.as_deref(),
        Some(first.version_info.as_str())
    );

    envoy.ack(&second, &[]).await;
    tokio::time::timeout(
        PATIENCE,
        harness
            .registry
            .wait_acked(type_url::CLUSTER, &second.version_info),
    )
    .await
    .expect("ACK of the current nonce");
}

#[tokio::test]
async fn named_resources_are_sent_only_when_requested_and_when_they_appear() {
    let harness = Harness::start(set(two_clusters())).await;
    let mut envoy = harness.sotw().await;

    envoy
        .request(type_url::ENDPOINT, &["a", "later"], "", "")
        .await;
    let first = envoy.recv().await;
    assert_eq!(names(&first), ["a"]);
    envoy.ack(&first, &["a", "later"]).await;
    envoy.expect_silence().await;

    let with_later = Snapshot::new([
        cluster("a", "1"),
        endpoints("a", "1"),
        endpoints("b", "1"),
        endpoints("later", "1"),
    ]);
    harness.publish(with_later);
    let second = envoy.recv().await;
    assert_eq!(names(&second), ["a", "later"]);
}

#[tokio::test]
async fn a_request_adding_names_is_answered_at_the_same_version() {
    let harness = Harness::start(set(two_clusters())).await;
    let mut envoy = harness.sotw().await;
    envoy.request(type_url::ENDPOINT, &["a"], "", "").await;
    let first = envoy.recv().await;
    envoy.ack(&first, &["a"]).await;
    envoy.expect_silence().await;

    // Envoy learnt about cluster b and asks for its endpoints, echoing the last nonce.
    envoy.ack(&first, &["a", "b"]).await;
    let second = envoy.recv().await;
    assert_eq!(second.version_info, first.version_info);
    assert_ne!(second.nonce, first.nonce);
    assert_eq!(names(&second), ["a", "b"]);

    // Dropping a name needs no response.
    envoy.ack(&second, &["b"]).await;
    envoy.expect_silence().await;
}

#[tokio::test]
async fn a_reconnecting_proxy_with_the_current_version_still_gets_its_resources() {
    let snapshot = two_clusters();
    let version = snapshot.version(type_url::CLUSTER).to_owned();
    let harness = Harness::start(set(snapshot)).await;

    // The first stream; then the proxy reconnects (say, after our restart).
    let mut envoy = harness.sotw().await;
    envoy.request(type_url::CLUSTER, &[], "", "").await;
    let first = envoy.recv().await;
    envoy.ack(&first, &[]).await;
    drop(envoy);

    let mut envoy = harness.sotw().await;
    envoy.request(type_url::CLUSTER, &[], &version, "").await;
    let again = envoy.recv().await;
    assert_eq!(again.version_info, version);
    assert_eq!(names(&again), ["a", "b"]);
    envoy.ack(&again, &[]).await;
    envoy.expect_silence().await;
}

#[tokio::test]
async fn malformed_requests_and_unknown_types_do_not_break_the_stream() {
    let harness = Harness::start(set(two_clusters())).await;
    let mut envoy = harness.sotw().await;

    // No type URL at all: ignored.
    envoy.request("", &[], "", "").await;
    // A nonce we never sent, for a type we never answered: stale, ignored.
    envoy
        .request(type_url::ROUTE, &["r"], "", "no-such-nonce")
        .await;
    envoy.expect_silence().await;

    // A type we have nothing of gets an empty response.
    let vhds = "type.googleapis.com/envoy.config.route.v3.VirtualHost";
    envoy.request(vhds, &["x"], "", "").await;
    let empty = envoy.recv().await;
    assert_eq!(empty.type_url, vhds);
    assert!(empty.resources.is_empty());

    // And the stream still works.
    envoy.request(type_url::CLUSTER, &[], "", "").await;
    assert_eq!(names(&envoy.recv().await), ["a", "b"]);
}

#[tokio::test]
async fn node_cluster_selects_the_gateway_snapshot() {
    let gateway = Snapshot::new([cluster("gw-only", "1")]);
    let snapshots = SnapshotSet {
        all: Arc::new(two_clusters()),
        by_gateway: BTreeMap::from([("default/gw".to_owned(), Arc::new(gateway))]),
    };
    let harness = Harness::start(snapshots).await;

    let mut one = harness
        .sotw()
        .await
        .with_node(node("envoy-gw", "default/gw"));
    one.request(type_url::CLUSTER, &[], "", "").await;
    assert_eq!(names(&one.recv().await), ["gw-only"]);

    let mut all = harness
        .sotw()
        .await
        .with_node(node("envoy-all", "infergate"));
    all.request(type_url::CLUSTER, &[], "", "").await;
    assert_eq!(names(&all.recv().await), ["a", "b"]);

    let mut proxies = harness.registry.snapshot();
    proxies.sort_by(|a, b| a.node_id.cmp(&b.node_id));
    assert_eq!(proxies[0].node_id, "envoy-all");
    assert_eq!(proxies[1].node_cluster, "default/gw");
}
