//! Command line, with the Inference Extension's flag names so its Deployment args work:
//! `--pool-name mistral --pool-namespace default --v 4 --zap-encoder json --grpc-port 9002
//! --grpc-health-port 9003 --config-file /config/default-plugins.yaml`.
//!
//! Without `--pod`, the picker watches its InferencePool and the Pods it selects in Kubernetes
//! (kubeconfig or the in-cluster service account; [`crate::kube`]), as the Inference
//! Extension's does. Pods can instead be given statically (`--pod name=ip`, repeated, with
//! `--target-ports`); `infergate run` starts the picker in-process instead.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Parser;

use crate::datastore::{Pod, PodSource, PoolInfo};
use crate::director::Objective;
use crate::handlers::{BodyMode, HandlerConfig};
use crate::scheduling::config::{EndpointPickerConfig, parse_go_duration};
use crate::scrape::ScrapeConfig;
use crate::server::Config;

#[derive(Debug, Parser)]
#[command(
    name = "epp",
    about = "infergate endpoint picker (Endpoint Picker Protocol over ext_proc)"
)]
pub struct Args {
    #[arg(long, default_value = "default")]
    pub pool_name: String,
    #[arg(long, default_value = "default")]
    pub pool_namespace: String,
    /// The pool's targetPorts, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "8000")]
    pub target_ports: Vec<u16>,
    /// A ready pod of the pool: `name=ip` or just `ip`; repeat for each. Without any, the pool
    /// and its Pods are watched in Kubernetes.
    #[arg(long = "pod")]
    pub pods: Vec<String>,
    /// An InferenceObjective bound to the pool: `name=priority`; repeat for each.
    #[arg(long = "objective")]
    pub objectives: Vec<String>,
    /// Address every listener binds.
    #[arg(long, default_value = "0.0.0.0")]
    pub host: IpAddr,
    #[arg(long, default_value_t = 9002)]
    pub grpc_port: u16,
    #[arg(long, default_value_t = 9003)]
    pub grpc_health_port: u16,
    #[arg(long, default_value_t = 9090)]
    pub metrics_port: u16,
    /// EndpointPickerConfig YAML file (the built-in config when neither this nor
    /// `--config-text` is given).
    #[arg(long)]
    pub config_file: Option<PathBuf>,
    /// EndpointPickerConfig YAML text.
    #[arg(long, conflicts_with = "config_file")]
    pub config_text: Option<String>,
    /// Scrape interval per endpoint (Go duration).
    #[arg(long, default_value = "50ms")]
    pub refresh_metrics_interval: String,
    /// Age after which an endpoint's metrics are stale (Go duration).
    #[arg(long, default_value = "2s")]
    pub metrics_staleness_threshold: String,
    /// Body mode assumed when Envoy sends no protocol_config: `full-duplex-streamed` or
    /// `buffered`.
    #[arg(long, default_value = "full-duplex-streamed")]
    pub fallback_body_mode: String,
    /// Seed of the pickers' tie-breaking (from the clock when absent).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Log verbosity of the Inference Extension's picker; accepted, use RUST_LOG instead.
    #[arg(long = "v", default_value_t = 0)]
    pub verbosity: u8,
    /// Accepted for compatibility; logs are text.
    #[arg(long, hide = true)]
    pub zap_encoder: Option<String>,
    /// Accepted for compatibility; the picker serves plaintext gRPC (h2c).
    #[arg(long, hide = true)]
    pub secure_serving: Option<bool>,
}

impl Args {
    pub async fn parse_and_run() -> anyhow::Result<()> {
        Args::parse().run().await
    }

    /// The picker's [`Config`] from the flags.
    pub fn config(&self) -> anyhow::Result<Config> {
        let picker = match (&self.config_file, &self.config_text) {
            (Some(path), _) => EndpointPickerConfig::from_file(path)
                .with_context(|| format!("loading {}", path.display()))?,
            (None, Some(text)) => {
                EndpointPickerConfig::from_yaml(text).context("loading --config-text")?
            }
            (None, None) => EndpointPickerConfig::default(),
        };
        let interval = parse_go_duration(&self.refresh_metrics_interval)
            .filter(|d| !d.is_zero())
            .context("--refresh-metrics-interval must be a positive duration")?;
        let staleness = parse_go_duration(&self.metrics_staleness_threshold)
            .filter(|d| !d.is_zero())
            .context("--metrics-staleness-threshold must be a positive duration")?;
        let fallback_body_mode = match self.fallback_body_mode.as_str() {
            "full-duplex-streamed" | "FULL_DUPLEX_STREAMED" => BodyMode::FullDuplexStreamed,
            "buffered" | "BUFFERED" => BodyMode::Buffered,
            other => bail!("--fallback-body-mode {other:?}: use full-duplex-streamed or buffered"),
        };
        let mut pods = Vec::new();
        for (i, spec) in self.pods.iter().enumerate() {
            let (name, ip) = spec
                .split_once('=')
                .map_or((format!("pod-{i}"), spec.as_str()), |(n, ip)| {
                    (n.to_owned(), ip)
                });
            let ip: IpAddr = ip
                .parse()
                .with_context(|| format!("--pod {spec:?}: not an IP address"))?;
            pods.push(Pod::new(name, ip));
        }
        let mut objectives = Vec::new();
        for spec in &self.objectives {
            let (name, priority) = spec
                .split_once('=')
                .with_context(|| format!("--objective {spec:?}: use name=priority"))?;
            objectives.push(Objective {
                name: name.to_owned(),
                priority: priority
                    .trim()
                    .parse()
                    .with_context(|| format!("--objective {spec:?}: priority is not an integer"))?,
            });
        }
        if self.secure_serving == Some(true) {
            tracing::warn!("--secure-serving is not supported; serving plaintext gRPC");
        }
        Ok(Config {
            grpc_addr: SocketAddr::new(self.host, self.grpc_port),
            health_addr: SocketAddr::new(self.host, self.grpc_health_port),
            metrics_addr: SocketAddr::new(self.host, self.metrics_port),
            pool: PoolInfo {
                name: self.pool_name.clone(),
                namespace: self.pool_namespace.clone(),
                target_ports: self.target_ports.clone(),
            },
            pods: PodSource::Static(pods),
            picker,
            scrape: ScrapeConfig {
                interval,
                ..ScrapeConfig::default()
            },
            staleness,
            objectives,
            handler: HandlerConfig {
                fallback_body_mode,
                ..HandlerConfig::default()
            },
            seed: self.seed,
        })
    }

    /// True when the pool comes from Kubernetes (no `--pod`).
    pub fn watches_kubernetes(&self) -> bool {
        self.pods.is_empty()
    }

    pub async fn run(self) -> anyhow::Result<()> {
        let mut config = self.config()?;
        let _watch = if self.watches_kubernetes() {
            crate::kube::install_crypto_provider();
            let client = kube::Client::try_default()
                .await
                .context("connecting to the Kubernetes API (kubeconfig or in-cluster account)")?;
            let (task, pool) = crate::kube::spawn(client, &self.pool_name, &self.pool_namespace);
            config.pods = PodSource::Pool(pool);
            Some(AbortOnDrop(task))
        } else {
            None
        };
        let running = crate::server::start(config)
            .await
            .context("starting the endpoint picker")?;
        let bound = running.bound();
        tracing::info!(
            grpc = %bound.grpc,
            health = %bound.health,
            metrics = %bound.metrics,
            "serving; Ctrl-C to stop"
        );
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
        drop(running);
        Ok(())
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
