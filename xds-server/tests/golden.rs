//! Golden tests: each `testdata/in/<case>.yaml` is translated, and the Envoy resources per xDS
//! type plus every object's conditions are compared with `testdata/out/<case>.*.yaml`.
//! `UPDATE_GOLDEN=1 cargo test -p xds-server --test golden` rewrites them; review the diff.

use std::path::{Path, PathBuf};

use xds_server::index::Index;
use xds_server::source::dir::DirSource;
use xds_server::translate::build::{cluster, endpoint, listener, route};
use xds_server::translate::{ExtprocOptions, Options, RateLimitOptions, Translation, translate};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

/// Cases named `extproc-*`, `pool-*` and `ratelimit-*` run with the extproc configured (the
/// last also with the rate limit service, and with the extproc on a Unix socket); the rest
/// without.
/// Every case points InferencePool `default/mistral`'s endpoint picker at 127.0.0.1:9102.
fn options(case: &Path) -> Options {
    let name = case
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let extproc = (name.starts_with("extproc-")
        || name.starts_with("pool-")
        || name.starts_with("ratelimit-"))
    .then(|| ExtprocOptions {
        endpoints: vec![("127.0.0.1".into(), 1063)],
        unix_socket: name
            .starts_with("ratelimit-")
            .then(|| "/run/infergate/extproc.sock".into()),
        message_timeout: std::time::Duration::from_secs(10),
        body_limit: ExtprocOptions::DEFAULT_BODY_LIMIT,
    });
    let access_log = extproc.as_ref().map(|_| "/dev/stdout".into());
    Options {
        privileged_port_offset: 10000,
        extproc,
        access_log,
        epp_endpoints: [("default/mistral".into(), ("127.0.0.1".into(), 9102))].into(),
        ratelimit: name.starts_with("ratelimit-").then(|| RateLimitOptions {
            endpoints: vec![("127.0.0.1".into(), 8081)],
            timeout: std::time::Duration::from_millis(200),
            failure_mode_deny: false,
        }),
        ..Options::default()
    }
}

/// Loads one input file as a folder of its own and translates it.
fn translate_case(input: &Path) -> Translation {
    let dir = tempfile::tempdir().expect("tempdir");
    let name = input.file_name().expect("file name");
    std::fs::copy(input, dir.path().join(name)).expect("copy input");
    let view = DirSource::with_lookup(dir.path(), Box::new(|_| None))
        .load()
        .expect("load");
    let mut index = Index::new();
    index.set_source_errors(view.errors);
    index.sync(view.objects);
    translate(&index.snapshot(), &options(input))
}

fn render(translation: &Translation) -> Vec<(&'static str, String)> {
    let ir = &translation.all;
    let docs = |items: Vec<String>| items.join("---\n");
    vec![
        (
            "listeners",
            docs(
                ir.listeners
                    .iter()
                    .map(|l| yaml(&listener::listener(l)))
                    .collect(),
            ),
        ),
        (
            "routes",
            docs(
                ir.route_configs
                    .iter()
                    .map(|r| yaml(&route::route_configuration(r)))
                    .collect(),
            ),
        ),
        (
            "clusters",
            docs(
                ir.clusters
                    .iter()
                    .map(|c| yaml(&cluster::cluster(c)))
                    .collect(),
            ),
        ),
        (
            "endpoints",
            docs(
                ir.endpoints
                    .iter()
                    .map(|e| yaml(&endpoint::cluster_load_assignment(e)))
                    .collect(),
            ),
        ),
        ("status", translation.status.lines().join("\n") + "\n"),
    ]
    .into_iter()
    .chain(translation.extproc.as_ref().map(|config| {
        let value = serde_json::to_value(config).expect("extproc config as JSON");
        (
            "extproc",
            serde_yaml::to_string(&value).expect("extproc config as YAML"),
        )
    }))
    .collect()
}

fn yaml<M: prost::Message + prost::Name>(message: &M) -> String {
    envoy_yaml::message_to_yaml(message).expect("render Envoy YAML")
}

#[test]
fn golden_translations_match_the_checked_in_files() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(testdata().join("in"))
        .expect("testdata/in")
        .map(|e| e.expect("entry").path())
        .collect();
    cases.sort();
    assert!(!cases.is_empty());
    let mut mismatches = Vec::new();
    for case in &cases {
        let stem = case
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("utf-8 name");
        for (kind, actual) in render(&translate_case(case)) {
            let expected_path = testdata().join("out").join(format!("{stem}.{kind}.yaml"));
            if update {
                std::fs::write(&expected_path, &actual).expect("write golden");
                continue;
            }
            let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
            if expected != actual {
                mismatches.push(format!(
                    "{} differs:\n{}",
                    expected_path.display(),
                    diff(&expected, &actual)
                ));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{}\n(run UPDATE_GOLDEN=1 cargo test -p xds-server --test golden and review the diff)",
        mismatches.join("\n")
    );
}

fn diff(expected: &str, actual: &str) -> String {
    let e: Vec<&str> = expected.lines().collect();
    let a: Vec<&str> = actual.lines().collect();
    let first = e
        .iter()
        .zip(&a)
        .position(|(x, y)| x != y)
        .unwrap_or(e.len().min(a.len()));
    let show = |lines: &[&str]| {
        lines
            .iter()
            .skip(first)
            .take(5)
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    format!(
        "  first difference at line {}\n  expected:\n{}\n  actual:\n{}",
        first + 1,
        show(&e),
        show(&a)
    )
}

#[test]
fn translation_is_deterministic() {
    for case in std::fs::read_dir(testdata().join("in"))
        .expect("in")
        .map(|e| e.expect("entry").path())
    {
        let first = render(&translate_case(&case));
        for _ in 0..3 {
            assert_eq!(render(&translate_case(&case)), first, "{}", case.display());
        }
    }
}
