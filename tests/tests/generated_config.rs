//! Envoy 1.40 accepts every resource the translator generates: each golden input's listeners
//! (routes inlined) and clusters go into a static bootstrap checked with `envoy --mode validate`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use xds_server::index::Index;
use xds_server::source::dir::DirSource;
use xds_server::translate::build::{cluster, listener, route};
use xds_server::translate::{ExtprocOptions, Options, translate};

fn golden_inputs() -> Result<Vec<PathBuf>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../xds-server/testdata/in");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.sort();
    Ok(files)
}

fn options(case: &Path) -> Options {
    let extproc = case
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("extproc-") || n.starts_with("pool-"))
        .then(|| ExtprocOptions {
            endpoints: vec![("127.0.0.1".into(), 1063)],
            unix_socket: None,
            message_timeout: Duration::from_secs(10),
            body_limit: ExtprocOptions::DEFAULT_BODY_LIMIT,
        });
    let access_log = extproc.as_ref().map(|_| "/dev/stdout".into());
    Options {
        extproc,
        access_log,
        epp_endpoints: [("default/mistral".into(), ("127.0.0.1".into(), 9102))].into(),
        ..Options::default()
    }
}

fn value<M: prost::Message + prost::Name>(message: &M) -> Result<Value> {
    Ok(envoy_yaml::to_value(
        &M::type_url(),
        &message.encode_to_vec(),
    )?)
}

/// A bootstrap holding the case's listeners (RDS swapped for the inline route configuration)
/// and clusters, plus the ADS cluster their `ads: {}` sources need.
fn bootstrap(case: &Path) -> Result<Value> {
    let dir = tempfile::tempdir()?;
    std::fs::copy(case, dir.path().join(case.file_name().context("name")?))?;
    let view = DirSource::with_lookup(dir.path(), Box::new(|_| None)).load()?;
    let mut index = Index::new();
    index.sync(view.objects);
    let ir = translate(&index.snapshot(), &options(case)).all;
    let mut listeners = Vec::new();
    for l in &ir.listeners {
        let mut value = value(&listener::listener(l))?;
        let routes = ir
            .route_configs
            .iter()
            .find(|r| r.name == l.route_config)
            .context("route config")?;
        let hcm = &mut value["filter_chains"][0]["filters"][0]["typed_config"];
        hcm.as_object_mut().context("hcm")?.remove("rds");
        hcm["route_config"] = self::value(&route::route_configuration(routes))?;
        listeners.push(value);
    }
    let mut clusters: Vec<Value> = ir
        .clusters
        .iter()
        .map(|c| value(&cluster::cluster(c)))
        .collect::<Result<_>>()?;
    clusters.push(json!({
        "name": "xds_cluster",
        "type": "STATIC",
        "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {}}}},
        "load_assignment": {"cluster_name": "xds_cluster", "endpoints": [{"lb_endpoints": [{"endpoint": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": 18000}}}}]}]}
    }));
    Ok(json!({
        "node": {"id": "validate", "cluster": "infergate"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "dynamic_resources": {"ads_config": {"api_type": "GRPC", "transport_api_version": "V3",
            "grpc_services": [{"envoy_grpc": {"cluster_name": "xds_cluster"}}]}},
        "static_resources": {"listeners": listeners, "clusters": clusters},
    }))
}

#[test]
fn envoy_accepts_every_generated_listener_route_and_cluster() -> Result<()> {
    let cases = golden_inputs()?;
    assert!(!cases.is_empty());
    for case in cases {
        let config = bootstrap(&case)?;
        let yaml = serde_yaml::to_string(&config)?;
        infergate_e2e::envoy::validate(&yaml).with_context(|| format!("{}", case.display()))?;
    }
    Ok(())
}
