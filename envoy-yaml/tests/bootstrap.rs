use std::path::PathBuf;

use envoy_yaml::bootstrap::{BootstrapOptions, bootstrap};
use prost_reflect::DynamicMessage;

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../envoy-bootstrap/bootstrap.yaml")
}

#[test]
fn committed_bootstrap_matches_the_rendered_default() {
    let rendered = bootstrap(&BootstrapOptions::default());
    let path = committed_path();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &rendered).expect("write envoy-bootstrap/bootstrap.yaml");
    }
    let committed = std::fs::read_to_string(&path).expect("read envoy-bootstrap/bootstrap.yaml");
    assert!(
        committed == rendered,
        "envoy-bootstrap/bootstrap.yaml drifted from envoy_yaml::bootstrap; run `make gen`\n\
         --- committed\n{committed}\n--- rendered\n{rendered}"
    );
}

#[test]
fn rendered_bootstraps_parse_as_envoy_bootstrap_messages() {
    let descriptor = envoy_yaml::descriptor_pool()
        .get_message_by_name("envoy.config.bootstrap.v3.Bootstrap")
        .expect("bootstrap descriptor");
    for delta in [false, true] {
        let opts = BootstrapOptions {
            node_id: "pod-0".into(),
            node_cluster: "default/ai-gateway".into(),
            xds_addr: "127.0.0.1:28000".parse().expect("literal"),
            admin_addr: "[::1]:29000".parse().expect("literal"),
            delta,
        };
        let yaml = bootstrap(&opts);
        let deserializer = serde_yaml::Deserializer::from_str(&yaml);
        let message = DynamicMessage::deserialize(descriptor.clone(), deserializer)
            .unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        let node = message.get_field_by_name("node").expect("node");
        let node = node.as_message().expect("node message");
        assert_eq!(
            node.get_field_by_name("cluster").expect("cluster").as_str(),
            Some("default/ai-gateway")
        );
    }
}
