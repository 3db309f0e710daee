//! The saturation detector and shedding of sheddable requests (director, no I/O).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use epp::Error;
use epp::datastore::{Candidate, Datastore, EndpointMetrics, Pod, PoolInfo};
use epp::director::{Director, Objective};
use epp::metrics::Metrics;
use epp::scheduling::config::EndpointPickerConfig;
use epp::scheduling::saturation::{DetectorParameters, UtilizationDetector};
use epp::scheduling::{InferenceRequest, Scheduler};
use epp::scrape::ScrapedMetrics;

fn candidate(waiting: u64, kv: f64) -> Candidate {
    Candidate::with_metrics(
        SocketAddr::from(([10, 0, 0, 1], 8000)),
        EndpointMetrics {
            waiting,
            kv_cache_usage: kv,
            ..EndpointMetrics::default()
        },
    )
}

#[test]
fn endpoint_load_is_the_larger_of_queue_and_kv_ratios() {
    let d = UtilizationDetector::default();
    assert_eq!(d.queue_depth_threshold, 5);
    assert!((d.kv_cache_util_threshold - 0.8).abs() < 1e-12);
    assert!((d.endpoint_load(&candidate(5, 0.2)) - 1.0).abs() < 1e-9);
    assert!((d.endpoint_load(&candidate(1, 0.4)) - 0.5).abs() < 1e-9);
    let mut stale = candidate(0, 0.0);
    stale.fresh = false;
    assert_eq!(d.endpoint_load(&stale), 1.0, "unknown load counts as full");
}

#[test]
fn pool_saturation_is_the_mean_load_and_saturated_from_one() {
    let d = UtilizationDetector::default();
    let a = candidate(10, 0.0); // 2.0
    let b = candidate(0, 0.0); // 0.0
    assert!((d.saturation([&a, &b]) - 1.0).abs() < 1e-9);
    assert!(d.is_saturated([&a, &b]));
    let c = candidate(2, 0.0); // 0.4
    assert!(!d.is_saturated([&b, &c]));
    assert_eq!(
        d.saturation(std::iter::empty()),
        1.0,
        "no candidates: saturated"
    );
}

#[test]
fn detector_parameters_are_validated() {
    let params: DetectorParameters = serde_yaml::from_str(
        "{queueDepthThreshold: 3, kvCacheUtilThreshold: 0.5, metricsStalenessThreshold: 150ms, headroom: 0.2}",
    )
    .expect("parameters");
    let d = UtilizationDetector::from_parameters(&params).expect("valid");
    assert_eq!(d.queue_depth_threshold, 3);
    assert_eq!(d.staleness, Some(Duration::from_millis(150)));
    let mut young = candidate(0, 0.0);
    young.age = Some(Duration::from_millis(100));
    let mut old = candidate(0, 0.0);
    old.age = Some(Duration::from_millis(200));
    assert_eq!(d.endpoint_load(&young), 0.0);
    assert_eq!(
        d.endpoint_load(&old),
        1.0,
        "its own staleness threshold applies"
    );
    for bad in [
        "{queueDepthThreshold: 0}",
        "{kvCacheUtilThreshold: 1.5}",
        "{headroom: -1}",
        "{metricsStalenessThreshold: 0s}",
    ] {
        let params: DetectorParameters = serde_yaml::from_str(bad).expect("parses");
        assert!(
            UtilizationDetector::from_parameters(&params).is_err(),
            "{bad}"
        );
    }
}

struct Pool {
    director: Director,
    datastore: Arc<Datastore>,
}

/// A pool of pods at 10.0.0.1.. with these (waiting, kv) loads, scraped now.
fn pool(loads: &[(u64, f64)], config: &EndpointPickerConfig) -> Pool {
    let datastore = Arc::new(Datastore::new(
        PoolInfo {
            target_ports: vec![8000],
            ..PoolInfo::default()
        },
        Duration::from_secs(2),
    ));
    datastore.set_pods(
        (0..loads.len())
            .map(|i| Pod::new(format!("p{i}"), IpAddr::from([10, 0, 0, i as u8 + 1])))
            .collect(),
    );
    for (i, (waiting, kv)) in loads.iter().enumerate() {
        let scraped = ScrapedMetrics {
            waiting: Some(*waiting),
            running: Some(0),
            kv_cache_usage: Some(*kv),
            ..ScrapedMetrics::default()
        };
        let addr = SocketAddr::from(([10, 0, 0, i as u8 + 1], 8000));
        assert!(datastore.record_scrape(addr, Ok(&scraped), Instant::now()));
    }
    let scheduler = Arc::new(Scheduler::from_config(config, 1).expect("scheduler"));
    let objectives = [
        Objective {
            name: "batch".to_owned(),
            priority: -1,
        },
        Objective {
            name: "interactive".to_owned(),
            priority: 5,
        },
    ];
    Pool {
        director: Director::new(
            datastore.clone(),
            scheduler,
            &objectives,
            Metrics::unregistered(),
        ),
        datastore,
    }
}

fn request(model: &str) -> InferenceRequest {
    InferenceRequest {
        model: model.to_owned(),
        prompt: Some("hi".to_owned()),
        cache_salt: None,
    }
}

#[test]
fn sheddable_requests_are_dropped_only_when_the_pool_is_saturated() {
    let default = EndpointPickerConfig::default();
    let busy = pool(&[(6, 0.5), (7, 0.9)], &default);
    let shed = busy.director.pick(&request("m"), Some("batch"), None);
    assert!(
        matches!(&shed, Err(Error::Shed { priority: -1, objective: Some(o), .. }) if o == "batch"),
        "{shed:?}"
    );
    assert_eq!(shed.as_ref().err().and_then(Error::http_status), Some(429));
    assert!(
        busy.director.pick(&request("batch"), None, None).is_err(),
        "by model name"
    );
    assert!(
        busy.director
            .pick(&request("m"), Some("interactive"), None)
            .is_ok()
    );
    assert!(
        busy.director.pick(&request("m"), None, None).is_ok(),
        "default priority 0"
    );
    assert!(
        busy.director
            .pick(&request("m"), Some("unknown"), None)
            .is_ok(),
        "an unknown objective has the default priority"
    );

    let calm = pool(&[(1, 0.1), (7, 0.9)], &default);
    assert!(
        calm.director
            .pick(&request("m"), Some("batch"), None)
            .is_ok()
    );
}

#[test]
fn stale_metrics_make_the_pool_saturated_for_sheddable_requests() {
    let p = pool(&[(0, 0.0)], &EndpointPickerConfig::default());
    assert!(p.director.pick(&request("batch"), None, None).is_ok());
    // The same metrics, seen after the staleness threshold: unknown load.
    let later = Instant::now() + Duration::from_secs(3);
    let candidates = p.datastore.candidates(later);
    assert!(!candidates[0].fresh);
    assert!(p.director.scheduler().detector().is_saturated(&candidates));
}

#[test]
fn configured_saturation_detector_thresholds_apply_to_shedding() {
    let yaml = r#"
plugins:
- type: queue-scorer
- type: utilization-detector
  name: strict
  parameters: {queueDepthThreshold: 1}
saturationDetector: {pluginRef: strict}
schedulingProfiles:
- name: default
  plugins: [{pluginRef: queue-scorer}]
"#;
    let config = EndpointPickerConfig::from_yaml(yaml).expect("config");
    let p = pool(&[(1, 0.0), (2, 0.0)], &config);
    assert!(matches!(
        p.director.pick(&request("m"), Some("batch"), None),
        Err(Error::Shed { .. })
    ));
    let lenient = pool(&[(1, 0.0), (2, 0.0)], &EndpointPickerConfig::default());
    assert!(
        lenient
            .director
            .pick(&request("m"), Some("batch"), None)
            .is_ok()
    );
}

#[test]
fn subset_hint_narrows_candidates_and_an_empty_one_is_unavailable() {
    let p = pool(
        &[(0, 0.0), (9, 0.9), (9, 0.9)],
        &EndpointPickerConfig::default(),
    );
    let subset = vec!["10.0.0.3:8000".to_owned()];
    let d = p
        .director
        .pick(&request("m"), None, Some(&subset))
        .expect("pick");
    assert_eq!(d.header_value(), "10.0.0.3:8000");
    let bare_ip = vec!["10.0.0.2".to_owned()];
    let d = p
        .director
        .pick(&request("m"), None, Some(&bare_ip))
        .expect("pick");
    assert_eq!(
        d.header_value(),
        "10.0.0.2:8000",
        "a bare IP names the pod's ports"
    );
    for subset in [vec![], vec!["10.0.0.9:8000".to_owned(), "junk".to_owned()]] {
        let e = p.director.pick(&request("m"), None, Some(&subset));
        assert!(
            matches!(e, Err(Error::EmptySubset { .. })),
            "{subset:?}: {e:?}"
        );
        assert_eq!(e.err().and_then(|e| e.http_status()), Some(503));
    }
}

#[test]
fn a_pool_without_endpoints_is_unavailable() {
    let p = pool(&[], &EndpointPickerConfig::default());
    let e = p.director.pick(&request("m"), None, None);
    assert!(matches!(e, Err(Error::NoReadyEndpoint { .. })), "{e:?}");
}
