//! Command-line arguments of the `extproc` binary.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

use crate::config::{Config, ConfigStore};
use crate::server::{Options, Server};

#[derive(Debug, Parser)]
#[command(
    name = "extproc",
    about = "infergate ext_proc: OpenAI/Anthropic routing header, credentials, token usage and costs"
)]
pub struct Args {
    /// ext_proc gRPC address.
    #[arg(long, default_value = "127.0.0.1:1063")]
    pub grpc_addr: SocketAddr,
    /// Admin HTTP address (/healthz, /metrics).
    #[arg(long, default_value = "127.0.0.1:1064")]
    pub admin_addr: SocketAddr,
    /// Config file (JSON, the model the control plane delivers); loaded once at start.
    #[arg(long, env = "INFERGATE_EXTPROC_CONFIG")]
    pub config: Option<PathBuf>,
    /// Trust `x-infergate-backend` request headers when Envoy sends no attributes (tests only).
    #[arg(long)]
    pub trust_backend_header: bool,
}

impl Args {
    /// Parses the command line, starts the server and runs until ctrl-c.
    pub async fn parse_and_run() -> anyhow::Result<()> {
        Args::parse().run().await
    }

    pub async fn run(self) -> anyhow::Result<()> {
        let store = ConfigStore::new();
        if let Some(path) = &self.config {
            let bytes = std::fs::read(path)
                .with_context(|| format!("reading config {}", path.display()))?;
            let config = Config::from_json(&bytes)
                .with_context(|| format!("parsing config {}", path.display()))?;
            store.update(&config);
        }
        let options = Options {
            grpc_addr: self.grpc_addr,
            admin_addr: self.admin_addr,
            trust_backend_header: self.trust_backend_header,
        };
        let _running = Server::start(options, store)
            .await
            .context("starting extproc")?;
        tokio::signal::ctrl_c()
            .await
            .context("waiting for ctrl-c")?;
        Ok(())
    }
}
