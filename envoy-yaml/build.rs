//! Compiles the Envoy `.proto` files that `envoy-types` ships in its crate directory into one
//! `FileDescriptorSet` (with imports, without source info) at `$OUT_DIR/envoy.fds`.
//!
//! Only the messages that infergate sends to Envoy are compiled (and what they import): every extra
//! file costs build time on small machines. A `typed_config` whose type is not here fails to render
//! with an error naming the type; add its file to `FILES`.

use std::env;
use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

type BoxError = Box<dyn Error>;

/// Include roots inside `envoy-types/proto`, as envoy-types' own build uses them.
const INCLUDES: &[&str] = &[
    "data-plane-api",
    "xds",
    "protoc-gen-validate",
    "googleapis",
    "cel-spec",
    "opentelemetry-proto",
    "client_model",
];

/// Directories (all their `*.proto`) or single files under `data-plane-api`; a `*` segment matches
/// every subdirectory.
const FILES: &[&str] = &[
    "envoy/config/listener/v3",
    "envoy/config/route/v3",
    "envoy/config/cluster/v3",
    "envoy/config/endpoint/v3",
    "envoy/config/bootstrap/v3/bootstrap.proto",
    "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto",
    "envoy/extensions/filters/http/router/v3",
    "envoy/extensions/filters/http/ext_proc/v3",
    "envoy/extensions/filters/http/ratelimit/v3",
    "envoy/extensions/filters/http/header_mutation/v3",
    "envoy/extensions/filters/http/upstream_codec/v3",
    "envoy/extensions/filters/http/credential_injector/v3",
    "envoy/extensions/http/injected_credentials/generic/v3",
    "envoy/extensions/common/matching/v3",
    "envoy/extensions/filters/common/matcher/action/v3",
    "envoy/type/matcher/v3/http_inputs.proto",
    "envoy/extensions/http/early_header_mutation/header_mutation/v3",
    "envoy/extensions/upstreams/http/v3/http_protocol_options.proto",
    "envoy/extensions/transport_sockets/tls/v3",
    "envoy/extensions/access_loggers/file/v3",
    "envoy/extensions/access_loggers/stream/v3",
    "envoy/extensions/clusters/aggregate/v3/cluster.proto",
    "envoy/extensions/load_balancing_policies/*/v3",
    "envoy/extensions/retry/priority/previous_priorities/v3",
    "envoy/extensions/retry/host/previous_hosts/v3",
];

fn main() -> Result<(), BoxError> {
    println!("cargo:rerun-if-changed=build.rs");
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    // A new envoy-types version changes the lock file (and the crate directory we read).
    println!(
        "cargo:rerun-if-changed={}",
        manifest_dir.join("../Cargo.lock").display()
    );

    let proto = envoy_types_dir(&manifest_dir)?.join("proto");
    let api = proto.join("data-plane-api");
    let files = FILES
        .iter()
        .map(|f| expand(&api, f))
        .collect::<Result<Vec<_>, _>>()?
        .concat();

    let mut compiler = protox::Compiler::new(INCLUDES.iter().map(|i| proto.join(i)))?;
    compiler.include_imports(true).include_source_info(false);
    for file in &files {
        let name = file.strip_prefix(&api)?;
        compiler.open_file(name)?;
    }
    let out = PathBuf::from(env::var("OUT_DIR")?).join("envoy.fds");
    fs::write(&out, compiler.encode_file_descriptor_set())?;
    Ok(())
}

/// The `envoy-types` crate directory: from `cargo metadata` (the version this workspace resolved),
/// else the newest `envoy-types-*` in Cargo's registry sources.
fn envoy_types_dir(manifest_dir: &Path) -> Result<PathBuf, BoxError> {
    match from_cargo_metadata(manifest_dir) {
        Ok(dir) => Ok(dir),
        Err(metadata_err) => from_registry().ok_or_else(|| {
            format!("envoy-types crate directory not found: cargo metadata: {metadata_err}").into()
        }),
    }
}

fn from_cargo_metadata(manifest_dir: &Path) -> Result<PathBuf, BoxError> {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--manifest-path",
        ])
        .arg(manifest_dir.join("Cargo.toml"))
        .output()?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned().into());
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let packages = metadata["packages"]
        .as_array()
        .ok_or("no packages in cargo metadata")?;
    // The envoy-types that this package depends on (the workspace may hold several versions).
    let this = env::var("CARGO_PKG_NAME")?;
    let dep_id = metadata["resolve"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|node| {
            packages
                .iter()
                .any(|p| p["id"] == node["id"] && p["name"] == this.as_str())
        })
        .flat_map(|node| node["deps"].as_array().into_iter().flatten())
        .find(|dep| dep["name"] == "envoy_types")
        .and_then(|dep| dep["pkg"].as_str())
        .ok_or("envoy-types is not a dependency in cargo metadata")?;
    let manifest = packages
        .iter()
        .find(|p| p["id"] == dep_id)
        .and_then(|p| p["manifest_path"].as_str())
        .ok_or("envoy-types package not found in cargo metadata")?;
    let dir = Path::new(manifest)
        .parent()
        .ok_or("envoy-types manifest has no parent")?;
    Ok(dir.to_path_buf())
}

fn from_registry() -> Option<PathBuf> {
    let home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    let mut found: Vec<PathBuf> = fs::read_dir(home.join("registry/src"))
        .ok()?
        .flatten()
        .flat_map(|index| fs::read_dir(index.path()).into_iter().flatten().flatten())
        .map(|entry| entry.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("envoy-types-"))
        })
        .filter(|p| p.join("proto/data-plane-api").is_dir())
        .collect();
    found.sort();
    found.pop()
}

/// `dir/a/*/v3` → every `*.proto` in each matching directory; a `.proto` path → itself.
fn expand(root: &Path, pattern: &str) -> Result<Vec<PathBuf>, BoxError> {
    let mut dirs = vec![root.to_path_buf()];
    for segment in pattern.split('/') {
        let mut next = Vec::new();
        for dir in dirs {
            if segment == "*" {
                let mut subdirs: Vec<_> = fs::read_dir(&dir)?
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_dir())
                    .collect();
                subdirs.sort();
                next.extend(subdirs);
            } else if dir.join(segment).exists() {
                next.push(dir.join(segment));
            }
        }
        dirs = next;
    }
    let mut files = Vec::new();
    for path in dirs {
        if path.is_file() {
            files.push(path);
        } else {
            let mut protos: Vec<_> = fs::read_dir(&path)?
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "proto"))
                .collect();
            protos.sort();
            files.extend(protos);
        }
    }
    if files.is_empty() {
        return Err(format!("no .proto files for {pattern} under {}", root.display()).into());
    }
    Ok(files)
}
