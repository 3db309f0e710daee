//! Incremental ADS, request by request.

use infergate_ads::{Snapshot, type_url};

use crate::harness::*;

fn snapshot() -> Snapshot {
    Snapshot::new([
        cluster("a", "1"),
        cluster("b", "1"),
        endpoints("a", "1"),
        endpoints("b", "1"),
    ])
}

fn pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test]
async fn first_wildcard_request_gets_every_cluster_with_its_version() {
    let snapshot = snapshot();
    let harness = Harness::start(set(snapshot.clone())).await;
    let mut envoy = harness.delta().await;

    envoy.subscribe(type_url::CLUSTER, &[], &[]).await;
    let response = envoy.recv().await;
    assert_eq!(versions(&response), pairs(&[("a", "1"), ("b", "1")]));
    assert!(response.removed_resources.is_empty());
    assert_eq!(
        response.system_version_info,
        snapshot.version(type_url::CLUSTER)
    );
    assert!(!response.nonce.is_empty());

    envoy.ack(&response).await;
    tokio::time::timeout(
        PATIENCE,
        harness
            .registry
            .wait_acked(type_url::CLUSTER, snapshot.version(type_url::CLUSTER)),
    )
    .await
    .expect("ACK recorded");
    envoy.expect_silence().await;
}

#[tokio::test]
async fn explicit_wildcard_subscription_gets_every_resource() {
    let harness = Harness::start(set(snapshot())).await;
    let mut envoy = harness.delta().await;
    envoy.subscribe(type_url::ENDPOINT, &["*"], &[]).await;
    let response = envoy.recv().await;
    assert_eq!(versions(&response), pairs(&[("a", "1"), ("b", "1")]));
}

#[tokio::test]
async fn initial_resource_versions_avoid_resending_unchanged_resources() {
    let harness = Harness::start(set(snapshot())).await;
    let mut envoy = harness.delta().await;

    // Reconnecting: `a` is current, `b` is old, `gone` no longer exists.
    envoy
        .reconnect(
            type_url::CLUSTER,
            &[],
            &[("a", "1"), ("b", "0"), ("gone", "1")],
        )
        .await;
    let response = envoy.recv().await;
    assert_eq!(versions(&response), pairs(&[("b", "1")]));
    assert_eq!(removed(&response), ["gone"]);
}

#[tokio::test]
async fn a_first_request_is_answered_even_when_nothing_changed() {
    let harness = Harness::start(set(snapshot())).await;
    let mut envoy = harness.delta().await;
    envoy
        .reconnect(type_url::CLUSTER, &[], &[("a", "1"), ("b", "1")])
        .await;
    let response = envoy.recv().await;
    assert!(response.resources.is_empty() && response.removed_resources.is_empty());
    envoy.ack(&response).await;
    envoy.expect_silence().await;
}

#[tokio::test]
async fn subscribe_and_unsubscribe_change_what_is_sent() {
    let harness = Harness::start(set(snapshot())).await;
    let mut envoy = harness.delta().await;

    envoy.subscribe(type_url::ENDPOINT, &["a"], &[]).await;
    let first = envoy.recv().await;
    assert_eq!(versions(&first), pairs(&[("a", "1")]));
    envoy.ack(&first).await;

    envoy.subscribe(type_url::ENDPOINT, &["b"], &[]).await;
    let second = envoy.recv().await;
    assert_eq!(versions(&second), pairs(&[("b", "1")]));
    envoy.ack(&second).await;

    // Unsubscribing needs no response, and `a` is no longer followed.
    envoy.subscribe(type_url::ENDPOINT, &[], &["a"]).await;
    envoy.expect_silence().await;
    harness.publish(Snapshot::new([
        cluster("a", "1"),
        cluster("b", "1"),
        endpoints("a", "2"),
        endpoints("b", "1"),
    ]));
    envoy.expect_silence().await;

    harness.publish(Snapshot::new([
        cluster("a", "1"),
        cluster("b", "1"),
        endpoints("a", "2"),
        endpoints("b", "2"),
    ]));
    let third = envoy.recv().await;
    assert_eq!(versions(&third), pairs(&[("b", "2")]));
}

#[tokio::test]
async fn subscribing_to_a_missing_resource_reports_it_removed_and_sends_it_when_it_appears() {
    let harness = Harness::start(set(snapshot())).await;
    let mut envoy = harness.delta().await;

    envoy.subscribe(type_url::ENDPOINT, &["later"], &[]).await;
    let absent = envoy.recv().await;
    assert!(absent.resources.is_empty());
    assert_eq!(removed(&absent), ["later"]);
    envoy.ack(&absent).await;

    harness.publish(Snapshot::new([
        cluster("a", "1"),
        endpoints("a", "1"),
        endpoints("later", "1"),
    ]));
    let appeared = envoy.recv().await;
    assert_eq!(versions(&appeared), pairs(&[("later", "1")]));
}

#[tokio::test]
async fn clusters_that_disappear_are_listed_in_removed_resources() {
    let harness = Harness::start(set(snapshot())).await;
    let mut envoy = harness.delta().await;
    envoy.subscribe(type_url::CLUSTER, &[], &[]).await;
    let first = envoy.recv().await;
    envoy.ack(&first).await;

    harness.publish(Snapshot::new([cluster("a", "1"), endpoints("a", "1")]));
    let removal = envoy.recv().await;
    assert!(removal.resources.is_empty());
    assert_eq!(removed(&removal), ["b"]);
    envoy.ack(&removal).await;
    envoy.expect_silence().await;
}

#[tokio::test]
async fn nacked_resources_are_not_resent_until_they_change() {
    let harness = Harness::start(set(snapshot())).await;
    let mut envoy = harness.delta().await;
    envoy.subscribe(type_url::CLUSTER, &[], &[]).await;
    let first = envoy.recv().await;
    envoy.ack(&first).await;
    envoy.subscribe(type_url::ENDPOINT, &["a"], &[]).await;
    let eds = envoy.recv().await;
    envoy.ack(&eds).await;

    harness.publish(Snapshot::new([
        cluster("a", "2-bad"),
        cluster("b", "1"),
        endpoints("a", "1"),
        endpoints("b", "1"),
    ]));
    let bad = envoy.recv().await;
    assert_eq!(versions(&bad), pairs(&[("a", "2-bad")]));
    envoy.nack(&bad, "cluster a: bad").await;
    // The changed cluster's endpoints follow (make-before-break), and are ACKed.
    let eds_again = envoy.recv().await;
    assert_eq!(eds_again.type_url, type_url::ENDPOINT);
    envoy.ack(&eds_again).await;

    let registry = harness.registry.clone();
    tokio::time::timeout(
        PATIENCE,
        registry.wait_for(|p| {
            p.first()
                .and_then(|p| p.types[type_url::CLUSTER].last_nack.as_ref())
                .is_some_and(|n| n.error_detail == "cluster a: bad")
        }),
    )
    .await
    .expect("NACK recorded");

    // Something else changes: cluster a is not sent again.
    harness.publish(Snapshot::new([
        cluster("a", "2-bad"),
        cluster("b", "2"),
        endpoints("a", "1"),
        endpoints("b", "1"),
    ]));
    let other = envoy.recv().await;
    assert_eq!(versions(&other), pairs(&[("b", "2")]));
    envoy.ack(&other).await;
    envoy.expect_silence().await;

    harness.publish(Snapshot::new([
        cluster("a", "3"),
        cluster("b", "2"),
        endpoints("a", "1"),
        endpoints("b", "1"),
    ]));
    let fixed = envoy.recv().await;
    assert_eq!(versions(&fixed), pairs(&[("a", "3")]));
}

#[tokio::test]
async fn subscribing_again_resends_a_resource_the_proxy_may_have_forgotten() {
    let harness = Harness::start(set(snapshot())).await;
    let mut envoy = harness.delta().await;
    envoy.subscribe(type_url::ENDPOINT, &["a"], &[]).await;
    let first = envoy.recv().await;
    envoy.ack(&first).await;

    envoy.subscribe(type_url::ENDPOINT, &["a"], &[]).await;
    let again = envoy.recv().await;
    assert_eq!(versions(&again), pairs(&[("a", "1")]));
}

#[tokio::test]
async fn unsubscribing_a_name_the_wildcard_also_covers_tells_the_proxy_what_to_keep() {
    let harness = Harness::start(set(snapshot())).await;
    let mut envoy = harness.delta().await;
    envoy.subscribe(type_url::CLUSTER, &[], &[]).await;
    let first = envoy.recv().await;
    envoy.ack(&first).await;
    envoy
        .subscribe(type_url::CLUSTER, &["a", "ghost"], &[])
        .await;
    let named = envoy.recv().await;
    assert_eq!(versions(&named), pairs(&[("a", "1")]));
    assert_eq!(removed(&named), ["ghost"]);
    envoy.ack(&named).await;

    // `a` is still covered by the wildcard: resent. `ghost` is not: removed.
    envoy
        .subscribe(type_url::CLUSTER, &[], &["a", "ghost"])
        .await;
    let unsubscribed = envoy.recv().await;
    assert_eq!(versions(&unsubscribed), pairs(&[("a", "1")]));
    assert_eq!(removed(&unsubscribed), ["ghost"]);
}
