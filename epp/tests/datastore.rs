//! The datastore as a state machine: pods × target ports, metrics kept across pod updates,
//! readiness.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use epp::datastore::{Datastore, Pod, PoolInfo};
use epp::scrape::ScrapedMetrics;

fn ip(last: u8) -> IpAddr {
    IpAddr::from([10, 0, 0, last])
}

fn store(ports: &[u16]) -> Datastore {
    Datastore::new(
        PoolInfo {
            name: "mistral".to_owned(),
            namespace: "default".to_owned(),
            target_ports: ports.to_vec(),
        },
        Duration::from_secs(2),
    )
}

fn load(waiting: u64) -> ScrapedMetrics {
    ScrapedMetrics {
        waiting: Some(waiting),
        ..ScrapedMetrics::default()
    }
}

#[test]
fn every_pod_serves_on_every_target_port() {
    let ds = store(&[8000, 8001]);
    ds.set_pods(vec![Pod::new("a", ip(1)), Pod::new("b", ip(2))]);
    let endpoints: Vec<String> = ds.endpoints().iter().map(SocketAddr::to_string).collect();
    assert_eq!(
        endpoints,
        [
            "10.0.0.1:8000",
            "10.0.0.1:8001",
            "10.0.0.2:8000",
            "10.0.0.2:8001"
        ]
    );
    let pods: Vec<String> = ds
        .candidates(Instant::now())
        .iter()
        .map(|c| c.pod.to_string())
        .collect();
    assert_eq!(pods, ["a", "a", "b", "b"]);
}

#[test]
fn pods_that_stay_keep_their_metrics_and_new_or_moved_pods_start_afresh() {
    let ds = store(&[8000]);
    ds.set_pods(vec![Pod::new("a", ip(1)), Pod::new("b", ip(2))]);
    let now = Instant::now();
    for (i, last) in [1u8, 2].into_iter().enumerate() {
        assert!(ds.record_scrape(
            SocketAddr::new(ip(last), 8000),
            Ok(&load(i as u64 + 3)),
            now
        ));
    }
    // b moves to another IP, c arrives, a stays.
    let mut labelled = Pod::new("a", ip(1));
    labelled.labels = BTreeMap::from([("app".to_owned(), "vllm".to_owned())]);
    ds.set_pods(vec![
        labelled.clone(),
        Pod::new("b", ip(9)),
        Pod::new("c", ip(3)),
    ]);
    let status = ds.status();
    let by_addr = |a: &str| {
        status
            .iter()
            .find(|s| s.addr.to_string() == a)
            .expect(a)
            .clone()
    };
    assert_eq!(by_addr("10.0.0.1:8000").metrics.waiting, 3);
    assert_eq!(by_addr("10.0.0.9:8000").good_scrapes, 0);
    assert_eq!(by_addr("10.0.0.3:8000").good_scrapes, 0);
    assert!(!status.iter().any(|s| s.addr.ip() == ip(2)));
    assert_eq!(ds.pods()[0], labelled);
    assert!(
        !ds.record_scrape(SocketAddr::new(ip(2), 8000), Ok(&load(1)), now),
        "a scrape of a gone endpoint is dropped"
    );
}

#[test]
fn readiness_needs_endpoints_and_one_good_scrape() {
    let ds = store(&[8000]);
    assert!(!ds.is_ready());
    ds.set_pods(vec![Pod::new("a", ip(1)), Pod::new("b", ip(2))]);
    assert!(!ds.is_ready());
    ds.record_scrape(
        SocketAddr::new(ip(1), 8000),
        Err("refused".to_owned()),
        Instant::now(),
    );
    assert!(!ds.is_ready(), "a failed scrape is not enough");
    ds.record_scrape(SocketAddr::new(ip(2), 8000), Ok(&load(0)), Instant::now());
    assert!(ds.is_ready());
    ds.set_pods(Vec::new());
    assert!(!ds.is_ready());
}

#[tokio::test]
async fn waiters_wake_on_changes() {
    let ds = std::sync::Arc::new(store(&[8000]));
    let waiter = {
        let ds = ds.clone();
        tokio::spawn(async move { ds.wait_for(|d| d.endpoints().len() == 2).await })
    };
    let pods_changed = ds.subscribe_pods();
    ds.set_pods(vec![Pod::new("a", ip(1))]);
    ds.set_pods(vec![Pod::new("a", ip(1)), Pod::new("b", ip(2))]);
    tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("woken")
        .expect("joined");
    assert!(pods_changed.has_changed().expect("open"));
}
