//! Command-line arguments of the `extproc` binary.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{ArgGroup, Parser};

use crate::config::{Config, ConfigStore};
use crate::otlp::OtlpConfig;
use crate::server::{Options, Server};
use crate::xds_client::XdsClient;

#[derive(Debug, Parser)]
#[command(
    name = "extproc",
    about = "infergate ext_proc: OpenAI/Anthropic routing header, credentials, token usage and costs",
    group(ArgGroup::new("config_source").required(true).args(["config", "xds_addr"]))
)]
pub struct Args {
    /// ext_proc gRPC address.
    #[arg(long, default_value = "127.0.0.1:1063")]
    pub grpc_addr: SocketAddr,
    /// Admin HTTP address (/healthz, /readyz, /metrics).
    #[arg(long, default_value = "127.0.0.1:1064")]
    pub admin_addr: SocketAddr,
    /// Also serve ext_proc on this Unix socket (for an Envoy on the same machine, which then
    /// reaches it with the xds-server's `--extproc unix:PATH`).
    #[arg(long, value_name = "PATH")]
    pub grpc_unix: Option<PathBuf>,
    /// Config file (JSON, the model the control plane delivers); loaded once at start.
    /// Exclusive with --xds-addr; one of them is required.
    #[arg(long, value_name = "FILE", env = "INFERGATE_EXTPROC_CONFIG")]
    pub config: Option<PathBuf>,
    /// The xds-server's ADS address: the config is pushed over xDS and applied as it changes.
    /// Exclusive with --config; one of them is required.
    #[arg(long, value_name = "HOST:PORT", env = "INFERGATE_EXTPROC_XDS_ADDR")]
    pub xds_addr: Option<String>,
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
        let xds = match (&self.config, &self.xds_addr) {
            (Some(path), None) => {
                let bytes = std::fs::read(path)
                    .with_context(|| format!("reading config {}", path.display()))?;
                let config = Config::from_json(&bytes)
                    .with_context(|| format!("parsing config {}", path.display()))?;
                store.update(&config);
                None
            }
            (None, Some(addr)) => {
                Some(XdsClient::new(addr.as_str(), store.clone()).context("--xds-addr")?)
            }
            // clap enforces this already; kept for callers building `Args` by hand.
            _ => anyhow::bail!("exactly one of --config FILE and --xds-addr HOST:PORT is required"),
        };
        let options = Options {
            grpc_addr: self.grpc_addr,
            admin_addr: self.admin_addr,
            grpc_unix: self.grpc_unix,
            trust_backend_header: self.trust_backend_header,
        };
        // OTLP export is on when OTEL_EXPORTER_OTLP_ENDPOINT is set; read once, here.
        let otlp = OtlpConfig::from_env();
        let _running = Server::start_with_otlp(options, store, otlp)
            .await
            .context("starting extproc")?;
        // Readiness (/readyz) follows the first config; until then requests see no routes.
        let _xds = xds.map(XdsClient::spawn);
        tokio::signal::ctrl_c()
            .await
            .context("waiting for ctrl-c")?;
        Ok(())
    }
}
