//! Command-line arguments of the `xds-server` binary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::pipeline::Debounce;
use crate::server::Config;
use crate::translate::Options;

#[derive(Debug, Parser)]
#[command(
    name = "xds-server",
    about = "infergate control plane: a folder of YAML → Envoy over ADS"
)]
pub struct Args {
    /// Folder of manifests (every *.yaml / *.yml, multi-document, hot-reloaded).
    #[arg(long, env = "INFERGATE_CONFIG_DIR")]
    pub config_dir: PathBuf,
    /// ADS gRPC address.
    #[arg(long, default_value = "127.0.0.1:18000")]
    pub ads_addr: SocketAddr,
    /// Admin HTTP address (/healthz, /readyz, /metrics, /status).
    #[arg(long, default_value = "127.0.0.1:18001")]
    pub admin_addr: SocketAddr,
    #[command(flatten)]
    pub translate: TranslateArgs,
}

/// Translation knobs shared with `infergate run` / `validate`.
#[derive(Debug, Clone, clap::Args)]
pub struct TranslateArgs {
    /// Address Envoy listeners bind.
    #[arg(long, default_value = "0.0.0.0")]
    pub listener_address: String,
    /// Added to Gateway ports below 1024 (80 → 10080) so an unprivileged Envoy can bind them; 0 to keep.
    #[arg(long, default_value_t = 10000)]
    pub privileged_port_offset: u16,
    /// Debounce: quiet time before a burst of changes is pushed (ms).
    #[arg(long, default_value_t = 100)]
    pub debounce_quiet_ms: u64,
    /// Debounce: longest a burst can delay a push (ms).
    #[arg(long, default_value_t = 1000)]
    pub debounce_max_ms: u64,
}

impl TranslateArgs {
    pub fn options(&self) -> Options {
        Options {
            listener_address: self.listener_address.clone(),
            privileged_port_offset: self.privileged_port_offset,
            ..Options::default()
        }
    }

    pub fn debounce(&self) -> Debounce {
        Debounce {
            quiet: Duration::from_millis(self.debounce_quiet_ms),
            max: Duration::from_millis(self.debounce_max_ms),
        }
    }
}

impl Args {
    pub fn config(&self) -> Config {
        Config {
            dir: self.config_dir.clone(),
            ads_addr: self.ads_addr,
            admin_addr: self.admin_addr,
            translate: self.translate.options(),
            debounce: self.translate.debounce(),
        }
    }
}
