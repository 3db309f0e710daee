//! Make-before-break and coalescing, observed by a proxy that ACKs when the test says so.

use std::time::{Duration, Instant};

use infergate_ads::{Snapshot, type_url};

use crate::harness::*;

fn before() -> Snapshot {
    Snapshot::new([
        cluster("old", "1"),
        endpoints("old", "1"),
        listener("http", "1"),
        route("r", "1"),
    ])
}

/// The route now points at a new cluster; the old one is no longer used.
fn after() -> Snapshot {
    Snapshot::new([
        cluster("new", "1"),
        endpoints("new", "1"),
        listener("http", "1"),
        route("r", "2"),
    ])
}

/// Subscribes to everything as Envoy does on start-up and ACKs each response.
async fn converge(envoy: &mut SotwEnvoy) {
    for (type_url, names) in [
        (type_url::CLUSTER, &[][..]),
        (type_url::ENDPOINT, &["old"][..]),
        (type_url::LISTENER, &[][..]),
        (type_url::ROUTE, &["r"][..]),
    ] {
        envoy.request(type_url, names, "", "").await;
        let response = envoy.recv().await;
        assert_eq!(response.type_url, type_url);
        envoy.ack(&response, names).await;
    }
    envoy.expect_silence().await;
}

#[tokio::test]
async fn first_connection_answers_each_type_as_envoy_asks_for_it() {
    let harness = Harness::start(set(before())).await;
    let mut envoy = harness.sotw().await;
    converge(&mut envoy).await;
    let status = harness.registry.snapshot()[0].types.clone();
    for type_url in [
        type_url::CLUSTER,
        type_url::ENDPOINT,
        type_url::LISTENER,
        type_url::ROUTE,
    ] {
        assert_eq!(
            status[type_url].acked_version.as_deref(),
            Some(before().version(type_url))
        );
    }
}

#[tokio::test]
async fn new_clusters_are_acked_before_routes_move_and_old_clusters_go_last() {
    let harness = Harness::start(set(before())).await;
    let mut envoy = harness.sotw().await;
    converge(&mut envoy).await;

    harness.publish(after());

    // 1. Clusters: old and new together, then endpoints (at the union's version).
    let cds = envoy.recv().await;
    assert_eq!(cds.type_url, type_url::CLUSTER);
    assert_eq!(names(&cds), ["new", "old"]);
    let eds = envoy.recv().await;
    assert_eq!(eds.type_url, type_url::ENDPOINT);
    // Routes wait for the ACKs.
    envoy.expect_silence().await;

    // Envoy ACKs the clusters and, having learnt of `new`, asks for its endpoints.
    envoy.ack(&cds, &[]).await;
    envoy.ack(&eds, &["new", "old"]).await;
    let eds_new = envoy.recv().await;
    assert_eq!(eds_new.type_url, type_url::ENDPOINT);
    assert_eq!(names(&eds_new), ["new", "old"]);
    envoy.expect_silence().await;
    envoy.ack(&eds_new, &["new", "old"]).await;

    // 2. Routes move to the new cluster (the listener did not change).
    let rds = envoy.recv().await;
    assert_eq!(rds.type_url, type_url::ROUTE);
    assert_eq!(rds.version_info, after().version(type_url::ROUTE));
    envoy.expect_silence().await;
    envoy.ack(&rds, &["r"]).await;

    // 3. Only then does the old cluster go.
    let cds_final = envoy.recv().await;
    assert_eq!(cds_final.type_url, type_url::CLUSTER);
    assert_eq!(names(&cds_final), ["new"]);
    assert_eq!(cds_final.version_info, after().version(type_url::CLUSTER));
    envoy.ack(&cds_final, &[]).await;
    let eds_final = envoy.recv().await;
    assert_eq!(eds_final.type_url, type_url::ENDPOINT);
    assert_eq!(names(&eds_final), ["new"]);
    envoy.ack(&eds_final, &["new"]).await;

    tokio::time::timeout(
        PATIENCE,
        harness
            .registry
            .wait_acked(type_url::CLUSTER, after().version(type_url::CLUSTER)),
    )
    .await
    .expect("final clusters ACKed");
    envoy.expect_silence().await;
}

#[tokio::test]
async fn changed_clusters_get_their_endpoints_resent() {
    let harness = Harness::start(set(before())).await;
    let mut envoy = harness.sotw().await;
    converge(&mut envoy).await;
    let endpoints_version = before().version(type_url::ENDPOINT).to_owned();

    harness.publish(Snapshot::new([
        cluster("old", "2"),
        endpoints("old", "1"),
        listener("http", "1"),
        route("r", "1"),
    ]));
    let cds = envoy.recv().await;
    assert_eq!(cds.type_url, type_url::CLUSTER);
    let eds = envoy.recv().await;
    assert_eq!(eds.type_url, type_url::ENDPOINT);
    assert_eq!(eds.version_info, endpoints_version);
    assert_eq!(names(&eds), ["old"]);
}

#[tokio::test]
async fn a_proxy_that_never_acks_does_not_stall_updates() {
    let timeout = Duration::from_millis(400);
    let harness = Harness::start_with_ack_timeout(set(before()), timeout).await;
    let mut envoy = harness.sotw().await;
    converge(&mut envoy).await;

    let published = Instant::now();
    harness.publish(after());
    let cds = envoy.recv().await;
    assert_eq!(cds.type_url, type_url::CLUSTER);
    let eds = envoy.recv().await;
    assert_eq!(eds.type_url, type_url::ENDPOINT);
    // No ACK ever comes; the routes follow after the timeout.
    let rds = envoy.recv().await;
    assert_eq!(rds.type_url, type_url::ROUTE);
    assert!(published.elapsed() >= timeout, "{:?}", published.elapsed());
    let cds_final = envoy.recv().await;
    assert_eq!(names(&cds_final), ["new"]);
}

#[tokio::test]
async fn snapshots_arriving_during_a_wait_are_coalesced_into_the_newest() {
    let snapshot = |n: usize| {
        let mut resources: Vec<_> = (1..=n).map(|i| cluster(&format!("c{i}"), "1")).collect();
        resources.push(route("r", &format!("{n}")));
        Snapshot::new(resources)
    };
    let harness = Harness::start(set(snapshot(1))).await;
    let mut envoy = harness.sotw().await;
    envoy.request(type_url::CLUSTER, &[], "", "").await;
    let cds = envoy.recv().await;
    envoy.ack(&cds, &[]).await;
    envoy.request(type_url::ROUTE, &["r"], "", "").await;
    let rds = envoy.recv().await;
    envoy.ack(&rds, &["r"]).await;
    envoy.expect_silence().await;

    harness.publish(snapshot(2));
    let cds2 = envoy.recv().await;
    assert_eq!(names(&cds2), ["c1", "c2"]);
    // While the proxy takes its time, two more snapshots arrive.
    harness.publish(snapshot(3));
    harness.publish(snapshot(4));
    envoy.expect_silence().await;
    envoy.ack(&cds2, &[]).await;

    // Only the newest is applied: its clusters, then its routes; snapshots 2 and 3's routes never go out.
    let cds4 = envoy.recv().await;
    assert_eq!(names(&cds4), ["c1", "c2", "c3", "c4"]);
    envoy.ack(&cds4, &[]).await;
    let rds4 = envoy.recv().await;
    assert_eq!(rds4.type_url, type_url::ROUTE);
    assert_eq!(rds4.version_info, snapshot(4).version(type_url::ROUTE));
    envoy.ack(&rds4, &["r"]).await;
    envoy.expect_silence().await;
}

#[tokio::test]
async fn delta_streams_follow_the_same_order() {
    let harness = Harness::start(set(before())).await;
    let mut envoy = harness.delta().await;
    envoy.subscribe(type_url::CLUSTER, &[], &[]).await;
    let cds = envoy.recv().await;
    envoy.ack(&cds).await;
    envoy.subscribe(type_url::ROUTE, &["r"], &[]).await;
    let rds = envoy.recv().await;
    envoy.ack(&rds).await;
    envoy.expect_silence().await;

    harness.publish(after());
    let added = envoy.recv().await;
    assert_eq!(added.type_url, type_url::CLUSTER);
    assert_eq!(versions(&added), [("new".to_owned(), "1".to_owned())]);
    assert!(added.removed_resources.is_empty());
    envoy.expect_silence().await;
    envoy.ack(&added).await;

    let routes = envoy.recv().await;
    assert_eq!(routes.type_url, type_url::ROUTE);
    assert_eq!(versions(&routes), [("r".to_owned(), "2".to_owned())]);
    envoy.expect_silence().await;
    envoy.ack(&routes).await;

    let removal = envoy.recv().await;
    assert_eq!(removal.type_url, type_url::CLUSTER);
    assert!(removal.resources.is_empty());
    assert_eq!(removed(&removal), ["old"]);
}
