//! Every example folder loads with no error, and every seed manifest (shared/seeds, rebuilt as
//! YAML in crds/testdata/seeds) loads through the directory source with every field understood.

use std::path::{Path, PathBuf};

use xds_server::status::reason;
use xds_server::translate::Options;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// What `infergate run` translates with: the extproc and the rate limit service configured.
fn run_options() -> Options {
    Options {
        extproc: Some(
            xds_server::cli::extproc_options("127.0.0.1:1063", 32 << 20).expect("extproc"),
        ),
        ratelimit: Some(xds_server::translate::RateLimitOptions {
            endpoints: vec![("127.0.0.1".into(), 8081)],
            timeout: std::time::Duration::from_millis(200),
            failure_mode_deny: false,
        }),
        ..Options::default()
    }
}

#[test]
fn every_example_folder_loads_without_errors() {
    let mut folders: Vec<PathBuf> = std::fs::read_dir(repo().join("examples"))
        .expect("examples/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    folders.sort();
    assert!(!folders.is_empty(), "no examples found");
    for folder in folders {
        let report = xds_server::server::validate(&folder, &run_options()).expect("load");
        assert!(
            !report.objects.is_empty(),
            "{} has no objects",
            folder.display()
        );
        assert!(
            !report.has_errors(),
            "{}:\n{}",
            folder.display(),
            report.lines().join("\n")
        );
    }
}

#[test]
fn every_seed_manifest_loads_with_every_field_understood() {
    let seeds = repo().join("crds/testdata/seeds");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&seeds)
        .expect("seeds")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for file in files {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::copy(&file, dir.path().join(file.file_name().expect("name"))).expect("copy");
        let report = xds_server::server::validate(dir.path(), &Options::default()).expect("load");
        assert!(
            report.source_errors.is_empty(),
            "{}: {:?}",
            file.display(),
            report.source_errors
        );
        for (key, status) in &report.objects {
            for condition in &status.conditions {
                assert_ne!(
                    condition.reason,
                    reason::INVALID,
                    "{}: {key}: {}",
                    file.display(),
                    condition.message
                );
            }
        }
    }
}
