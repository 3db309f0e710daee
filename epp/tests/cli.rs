//! The command line takes the Inference Extension's Deployment args from the seed unchanged.

use std::path::Path;

use clap::Parser;
use epp::cli::Args;
use epp::datastore::PodSource;

fn seed_docs() -> Vec<serde_yaml::Value> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds/testdata/seeds/001-mistral-pool.yaml");
    let text = std::fs::read_to_string(path).expect("seed");
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| <serde_yaml::Value as serde::Deserialize>::deserialize(d).expect("YAML"))
        .collect()
}

#[test]
fn the_seed_deployment_args_start_the_picker_with_the_seed_config() {
    let docs = seed_docs();
    let deployment = docs
        .iter()
        .find(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == "mistral-epp")
        .expect("epp deployment");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let config_map = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == "plugins-config")
        .expect("plugins-config");
    // The ConfigMap mounted at /config, as the kubelet would.
    let dir = std::env::temp_dir().join(format!("epp-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("default-plugins.yaml");
    std::fs::write(
        &file,
        config_map["data"]["default-plugins.yaml"]
            .as_str()
            .expect("text"),
    )
    .expect("write");
    let mut argv = vec!["epp".to_owned()];
    for arg in container["args"].as_sequence().expect("args") {
        let arg = arg.as_str().expect("string arg");
        argv.push(arg.replace("/config/default-plugins.yaml", &file.to_string_lossy()));
    }
    let args = Args::try_parse_from(&argv).expect("the seed's args parse");
    let config = args.config().expect("config");
    assert_eq!(config.pool.name, "mistral");
    assert_eq!(config.pool.namespace, "default");
    assert_eq!(config.grpc_addr.port(), 9002);
    assert_eq!(config.health_addr.port(), 9003);
    assert_eq!(config.metrics_addr.port(), 9090);
    assert_eq!(config.picker.plugins.len(), 3);
    assert!(matches!(config.pods, PodSource::Static(ref p) if p.is_empty()));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn static_pods_objectives_and_durations_come_from_flags() {
    let args = Args::try_parse_from([
        "epp",
        "--pod",
        "a=127.0.0.11",
        "--pod",
        "127.0.0.12",
        "--target-ports",
        "8000,8001",
        "--objective",
        "batch=-1",
        "--refresh-metrics-interval",
        "100ms",
        "--metrics-staleness-threshold",
        "1s",
        "--fallback-body-mode",
        "buffered",
    ])
    .expect("parse");
    let config = args.config().expect("config");
    let PodSource::Static(pods) = &config.pods else {
        panic!("static pods");
    };
    assert_eq!(pods.len(), 2);
    assert_eq!(pods[0].name, "a");
    assert_eq!(config.pool.target_ports, vec![8000, 8001]);
    assert_eq!(config.objectives[0].priority, -1);
    assert_eq!(config.scrape.interval.as_millis(), 100);
    assert_eq!(config.staleness.as_secs(), 1);
    for bad in [
        vec!["epp", "--pod", "a=not-an-ip"],
        vec!["epp", "--objective", "batch"],
        vec!["epp", "--refresh-metrics-interval", "soon"],
        vec!["epp", "--fallback-body-mode", "weird"],
    ] {
        let parsed = Args::try_parse_from(&bad).expect("parses");
        assert!(parsed.config().is_err(), "{bad:?}");
    }
}
