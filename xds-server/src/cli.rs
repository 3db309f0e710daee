//! Command-line arguments of the `xds-server` binary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::pipeline::Debounce;
use crate::server::{Config, Source};
use crate::source::kube::{KubeConfig, LeaseConfig, lease};
use crate::translate::{ExtprocOptions, Options, RateLimitOptions};

#[derive(Debug, Parser)]
#[command(
    name = "xds-server",
    about = "infergate control plane: a folder of YAML or a Kubernetes cluster → Envoy over ADS"
)]
pub struct Args {
    /// Folder of manifests (every *.yaml / *.yml, multi-document, hot-reloaded). Exactly one of
    /// --config-dir and --kube.
    #[arg(
        long,
        env = "INFERGATE_CONFIG_DIR",
        required_unless_present = "kube",
        conflicts_with = "kube"
    )]
    pub config_dir: Option<PathBuf>,
    /// Watch the Kubernetes API (kubeconfig, or the in-cluster service account) instead of a
    /// folder.
    #[arg(long)]
    pub kube: bool,
    /// With --kube: watch this namespace only (GatewayClasses are cluster-scoped and always
    /// watched); every namespace by default.
    #[arg(long, conflicts_with = "config_dir")]
    pub namespace: Option<String>,
    /// With --kube: elect a leader on a coordination.k8s.io Lease; only the leader writes
    /// status (run this with more than one replica).
    #[arg(long, conflicts_with = "config_dir")]
    pub leader_elect: bool,
    /// The Lease's namespace (default: --namespace, else `default`).
    #[arg(long, env = "POD_NAMESPACE")]
    pub leader_elect_namespace: Option<String>,
    /// The Lease's name.
    #[arg(long, default_value = LeaseConfig::DEFAULT_NAME)]
    pub leader_elect_lease_name: String,
    /// This replica's identity in the Lease (default: POD_NAME, else the hostname).
    #[arg(long)]
    pub leader_elect_identity: Option<String>,
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
    /// The extproc's gRPC address(es) as Envoy reaches them (HOST:PORT[,HOST:PORT…], or
    /// `unix:/PATH` for an extproc on the same machine as Envoy). Without
    /// it AIGatewayRoutes route on the `x-ai-eg-model` header alone.
    #[arg(long)]
    pub extproc: Option<String>,
    /// Largest request body the gateway accepts for AI routes (bytes).
    #[arg(long, default_value_t = ExtprocOptions::DEFAULT_BODY_LIMIT)]
    pub request_body_limit: u64,
    /// File Envoy appends one JSON line per request to (model, backend, costs), e.g. /dev/stdout.
    #[arg(long)]
    pub access_log: Option<std::path::PathBuf>,
    /// The rate limit service's gRPC address(es) as Envoy reaches them (HOST:PORT[,HOST:PORT…]).
    /// Without it BackendTrafficPolicy rate limits are reported as not enforced.
    #[arg(long)]
    pub ratelimit: Option<String>,
    /// How long Envoy waits for a rate limit decision (ms) before applying the failure mode.
    #[arg(long, default_value_t = 200)]
    pub ratelimit_timeout_ms: u64,
    /// Refuse requests (503) when the rate limit service cannot decide; by default they pass
    /// (fail open, counted in Envoy's `ratelimit.failure_mode_allowed`).
    #[arg(long)]
    pub ratelimit_fail_closed: bool,
}

impl TranslateArgs {
    /// Translation options; an `--extproc` that is not `HOST:PORT` is an error.
    pub fn options(&self) -> Result<Options, String> {
        let extproc = match &self.extproc {
            None => None,
            Some(target) => Some(extproc_options(target, self.request_body_limit)?),
        };
        let ratelimit = match &self.ratelimit {
            None => None,
            Some(targets) => Some(RateLimitOptions {
                endpoints: host_ports("--ratelimit", targets)?,
                timeout: Duration::from_millis(self.ratelimit_timeout_ms),
                failure_mode_deny: self.ratelimit_fail_closed,
            }),
        };
        Ok(Options {
            listener_address: self.listener_address.clone(),
            privileged_port_offset: self.privileged_port_offset,
            extproc,
            access_log: self.access_log.clone(),
            ratelimit,
            ..Options::default()
        })
    }

    pub fn debounce(&self) -> Debounce {
        Debounce {
            quiet: Duration::from_millis(self.debounce_quiet_ms),
            max: Duration::from_millis(self.debounce_max_ms),
        }
    }
}

/// How `--extproc` names a Unix socket: `unix:/run/infergate/extproc.sock`.
pub const UNIX_PREFIX: &str = "unix:";

/// `HOST:PORT[,HOST:PORT…]` of the extproc replicas, or `unix:/PATH` of a local one, with the
/// default message timeout.
pub fn extproc_options(targets: &str, body_limit: u64) -> Result<ExtprocOptions, String> {
    if let Some(path) = targets.trim().strip_prefix(UNIX_PREFIX) {
        if !path.starts_with('/') {
            return Err(format!(
                "--extproc {targets:?}: a Unix socket path must be absolute"
            ));
        }
        return Ok(ExtprocOptions {
            endpoints: Vec::new(),
            unix_socket: Some(path.to_string()),
            message_timeout: Duration::from_secs(10),
            body_limit,
        });
    }
    Ok(ExtprocOptions {
        endpoints: host_ports("--extproc", targets)?,
        unix_socket: None,
        message_timeout: Duration::from_secs(10),
        body_limit,
    })
}

/// `HOST:PORT[,HOST:PORT…]`; `flag` names the option in the error.
pub fn host_ports(flag: &str, targets: &str) -> Result<Vec<(String, u16)>, String> {
    targets
        .split(',')
        .map(|target| {
            target
                .trim()
                .rsplit_once(':')
                .and_then(|(h, p)| {
                    Some((
                        h.trim_matches(['[', ']']).to_string(),
                        p.parse::<u16>().ok()?,
                    ))
                })
                .filter(|(h, _)| !h.is_empty())
                .ok_or_else(|| format!("{flag} {target:?} is not HOST:PORT"))
        })
        .collect()
}

impl Args {
    /// The one source of config the flags select.
    pub fn source(&self) -> Source {
        match &self.config_dir {
            Some(dir) if !self.kube => Source::Dir(dir.clone()),
            _ => Source::Kube(KubeConfig {
                client: None,
                namespace: self.namespace.clone(),
                leader_election: self.leader_election(),
            }),
        }
    }

    fn leader_election(&self) -> Option<LeaseConfig> {
        if !self.leader_elect {
            return None;
        }
        let namespace = self
            .leader_elect_namespace
            .clone()
            .or_else(|| self.namespace.clone())
            .unwrap_or_else(|| "default".to_string());
        let identity = self
            .leader_elect_identity
            .clone()
            .unwrap_or_else(lease::default_identity);
        Some(LeaseConfig {
            name: self.leader_elect_lease_name.clone(),
            ..LeaseConfig::new(namespace, identity)
        })
    }

    pub fn config(&self) -> Result<Config, String> {
        Ok(Config {
            dir: self.config_dir.clone().unwrap_or_default(),
            ads_addr: self.ads_addr,
            admin_addr: self.admin_addr,
            translate: self.translate.options()?,
            debounce: self.translate.debounce(),
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[test]
    fn the_extproc_is_reached_over_tcp_or_an_absolute_unix_socket() {
        let tcp = extproc_options("10.0.0.1:1063,extproc.infergate:1063", 1).expect("tcp");
        assert_eq!(tcp.unix_socket, None);
        assert_eq!(tcp.endpoints.len(), 2);
        let unix = extproc_options("unix:/run/infergate/extproc.sock", 1).expect("unix");
        assert_eq!(
            unix.unix_socket.as_deref(),
            Some("/run/infergate/extproc.sock")
        );
        assert!(unix.endpoints.is_empty());
        let relative = extproc_options("unix:extproc.sock", 1).expect_err("relative path");
        assert!(relative.contains("absolute"), "{relative}");
    }

    #[test]
    fn exactly_one_source_is_accepted() {
        let dir =
            Args::try_parse_from(["xds-server", "--config-dir", "/etc/infergate"]).expect("dir");
        assert!(matches!(dir.source(), Source::Dir(_)));
        let kube =
            Args::try_parse_from(["xds-server", "--kube", "--namespace", "gw"]).expect("kube");
        assert!(
            matches!(kube.source(), Source::Kube(KubeConfig { namespace: Some(ns), .. }) if ns == "gw")
        );
        assert!(Args::try_parse_from(["xds-server", "--kube", "--config-dir", "x"]).is_err());
        let elect = Args::try_parse_from([
            "xds-server",
            "--kube",
            "--namespace",
            "gw",
            "--leader-elect",
            "--leader-elect-identity",
            "pod-1",
        ])
        .expect("leader election");
        let Source::Kube(KubeConfig {
            leader_election: Some(lease),
            ..
        }) = elect.source()
        else {
            panic!("leader election configured");
        };
        assert_eq!(
            (
                lease.namespace.as_str(),
                lease.name.as_str(),
                lease.identity.as_str()
            ),
            ("gw", "infergate-xds-server", "pod-1")
        );
        assert_eq!(lease.duration, Duration::from_secs(15));
        assert!(
            Args::try_parse_from(["xds-server", "--config-dir", "x", "--leader-elect"]).is_err()
        );
        assert!(
            Args::try_parse_from(["xds-server", "--namespace", "gw", "--config-dir", "x"]).is_err()
        );
    }
}
