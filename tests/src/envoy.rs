//! A real Envoy process for a test.
//!
//! [`Envoy::start`] runs `envoy -c <bootstrap> --base-id <unique> --log-level info --concurrency 1`
//! with its admin on a free loopback port, its log in a temp file, and kills it on drop, printing
//! the log if the test is panicking. The admin queries live in `envoy/admin.rs`.

mod admin;

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

use crate::DEFAULT_TIMEOUT;

/// The Envoy binary: `$ENVOY_BIN`, else `.venv/bin/envoy` in the workspace, else `envoy` on `PATH`.
pub fn envoy_bin() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("ENVOY_BIN").filter(|b| !b.is_empty()) {
        let bin = PathBuf::from(bin);
        if bin.is_file() {
            return Ok(bin);
        }
        bail!(
            "ENVOY_BIN={} does not exist: run `make envoy`",
            bin.display()
        );
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/envoy");
    if venv.is_file() {
        return Ok(venv);
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("envoy"))
        .find(|candidate| candidate.is_file());
    on_path.context(
        "Envoy not found (ENVOY_BIN unset, no .venv/bin/envoy, no envoy on PATH): run `make envoy`",
    )
}

/// Runs `envoy --mode validate` on `bootstrap_yaml`; the error holds Envoy's output.
pub fn validate(bootstrap_yaml: &str) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("bootstrap.yaml");
    std::fs::write(&config, bootstrap_yaml)?;
    let output = Command::new(envoy_bin()?)
        .args(["--mode", "validate", "--log-level", "warn", "-c"])
        .arg(&config)
        .stdin(Stdio::null())
        .output()
        .context("run envoy --mode validate")?;
    if !output.status.success() {
        bail!(
            "envoy --mode validate failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
    }
    Ok(())
}

/// A running Envoy; killed on drop.
#[derive(Debug)]
pub struct Envoy {
    child: Child,
    admin: SocketAddr,
    dir: TempDir,
}

impl Envoy {
    /// Starts Envoy with `bootstrap_yaml`, whose `admin` is replaced by a free port on 127.0.0.1,
    /// and returns once the admin answers (use [`Envoy::wait_ready`] for the config).
    pub async fn start(bootstrap_yaml: &str) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("infergate-envoy-")
            .tempdir()?;
        let config = dir.path().join("bootstrap.yaml");
        std::fs::write(&config, with_ephemeral_admin(bootstrap_yaml)?)?;
        let admin_path = dir.path().join("admin-address");
        let log = File::create(dir.path().join("envoy.log"))?;
        let child = Command::new(envoy_bin()?)
            .arg("-c")
            .arg(&config)
            .args(["--base-id", &unique_base_id().to_string()])
            .args(["--log-level", "info", "--concurrency", "1"])
            .arg("--admin-address-path")
            .arg(&admin_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawn envoy")?;
        let mut envoy = Self {
            child,
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            dir,
        };
        envoy.admin = envoy.wait_admin_address(&admin_path).await?;
        Ok(envoy)
    }

    /// The admin listener.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// Envoy's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("envoy.log")
    }

    /// Fails if Envoy has exited, with its log.
    pub fn check_running(&mut self) -> Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => bail!("envoy exited ({status}); log:\n{}", self.log()),
        }
    }

    async fn wait_admin_address(&mut self, path: &Path) -> Result<SocketAddr> {
        let deadline = tokio::time::Instant::now() + DEFAULT_TIMEOUT;
        loop {
            self.check_running()?;
            let written = std::fs::read_to_string(path).unwrap_or_default();
            if let Ok(addr) = written.trim().parse() {
                return Ok(addr);
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "envoy wrote no admin address in {DEFAULT_TIMEOUT:?}; log:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "----- envoy log ({}) -----\n{}----- end of envoy log -----",
                self.log_path().display(),
                self.log()
            );
        }
    }
}

/// `bootstrap_yaml` with `admin.address` set to `127.0.0.1:0`.
fn with_ephemeral_admin(bootstrap_yaml: &str) -> Result<String> {
    let mut bootstrap: serde_yaml::Value =
        serde_yaml::from_str(bootstrap_yaml).context("bootstrap is not YAML")?;
    let root = bootstrap
        .as_mapping_mut()
        .context("bootstrap is not a YAML mapping")?;
    let address: serde_yaml::Value =
        serde_yaml::from_str("socket_address: {address: 127.0.0.1, port_value: 0}")?;
    let admin = root
        .entry("admin".into())
        .or_insert_with(|| serde_yaml::Value::Mapping(Default::default()));
    let admin = admin
        .as_mapping_mut()
        .context("bootstrap admin is not a mapping")?;
    admin.insert("address".into(), address);
    Ok(serde_yaml::to_string(&bootstrap)?)
}

/// A hot-restart base id no other Envoy of this machine's tests uses: Envoys of one test process
/// differ by a counter, test processes (nextest runs one per test) by pid.
fn unique_base_id() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed) % 64;
    // Linux pids stay below 2^22, so this stays below 2^28, well inside the u32 Envoy takes.
    (std::process::id() % (1 << 22)) * 64 + n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_is_replaced_by_an_ephemeral_loopback_port() {
        let yaml =
            "admin:\n  address:\n    socket_address: {address: 0.0.0.0, port_value: 19000}\n";
        let rewritten = with_ephemeral_admin(yaml).expect("valid yaml");
        assert!(rewritten.contains("port_value: 0"), "{rewritten}");
        assert!(rewritten.contains("address: 127.0.0.1"), "{rewritten}");
    }

    #[test]
    fn a_bootstrap_without_admin_gets_one() {
        let rewritten = with_ephemeral_admin("node: {id: x}\n").expect("valid yaml");
        assert!(rewritten.contains("port_value: 0"), "{rewritten}");
    }
}
