//! The ADS bootstrap passes Envoy's own validation, in both xDS flavours.

use anyhow::Result;
use envoy_yaml::bootstrap::{BootstrapOptions, bootstrap};

#[test]
fn sotw_and_delta_bootstraps_pass_envoy_validate() -> Result<()> {
    for delta in [false, true] {
        let opts = BootstrapOptions {
            node_id: "pod-0".into(),
            node_cluster: "default/ai-gateway".into(),
            delta,
            ..Default::default()
        };
        infergate_e2e::envoy::validate(&bootstrap(&opts))?;
    }
    Ok(())
}

#[test]
fn committed_bootstrap_passes_envoy_validate() -> Result<()> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../envoy-bootstrap/bootstrap.yaml"
    );
    infergate_e2e::envoy::validate(&std::fs::read_to_string(path)?)
}

#[test]
fn an_invalid_bootstrap_fails_validation_with_envoys_reason() {
    let broken =
        bootstrap(&BootstrapOptions::default()).replace("api_type: GRPC", "api_type: NOPE");
    let err = infergate_e2e::envoy::validate(&broken).expect_err("NOPE is no api_type");
    assert!(err.to_string().contains("NOPE"), "{err:#}");
}
