//! A real Envoy for the propagation benchmark. (The `infergate` crate's `envoy` module depends on
//! this crate, so it cannot be used from here.)

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use envoy_yaml::bootstrap::{BootstrapOptions, bootstrap};

/// `ENVOY_BIN`, else `.venv/bin/envoy` in the current folder or a parent (the workspace's, when
/// run with `cargo run` or `make bench`).
pub fn find() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("ENVOY_BIN")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
    {
        return Some(bin);
    }
    let cwd = std::env::current_dir().ok()?;
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    cwd.ancestors()
        .chain(manifest.ancestors())
        .map(|d| d.join(".venv/bin/envoy"))
        .find(|p| p.is_file())
}

/// `envoy --version`'s version string, e.g. `1.40.0/Clean/RELEASE/BoringSSL`.
pub fn version(bin: &Path) -> String {
    Command::new(bin)
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let version = text.split("version:").nth(1)?.trim().to_owned();
            Some(
                version
                    .split('/')
                    .skip(1)
                    .take(4)
                    .collect::<Vec<_>>()
                    .join("/"),
            )
        })
        .unwrap_or_else(|| "unknown".into())
}

/// A running Envoy connected to `xds_addr` over ADS; killed on drop.
pub struct Envoy {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Envoy {
    pub fn start(bin: &Path, xds_addr: SocketAddr, delta: bool) -> std::io::Result<Envoy> {
        let dir = tempfile::Builder::new()
            .prefix("infergate-bench-envoy-")
            .tempdir()?;
        let config = dir.path().join("bootstrap.yaml");
        std::fs::write(
            &config,
            bootstrap(&BootstrapOptions {
                node_id: "bench".into(),
                node_cluster: "infergate".into(),
                xds_addr,
                admin_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                delta,
            }),
        )?;
        let log = dir.path().join("envoy.log");
        let out = std::fs::File::create(&log)?;
        let child = Command::new(bin)
            .arg("-c")
            .arg(&config)
            .args(["--base-id", &unique_base_id().to_string()])
            .args(["--concurrency", "1", "--log-level", "warning"])
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()?;
        Ok(Envoy {
            child,
            log,
            _dir: dir,
        })
    }

    /// Envoy's log so far (printed when something goes wrong).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `Some(status)` once Envoy has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Hot-restart base ids differ per process (pid) and per Envoy of this process (counter), so
/// the bench never collides with a test's Envoy or with itself.
fn unique_base_id() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed) % 64;
    (std::process::id() % (1 << 22)) * 64 + n
}
