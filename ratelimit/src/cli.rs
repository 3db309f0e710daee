//! Command-line arguments of the `ratelimit` binary.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

use crate::server::{Options, Server};
use crate::storage::StorageOptions;

#[derive(Debug, Parser)]
#[command(
    name = "ratelimit",
    about = "infergate rate-limit service (envoy.service.ratelimit.v3): token budgets in memory or Redis"
)]
pub struct Args {
    /// gRPC address of `envoy.service.ratelimit.v3.RateLimitService`.
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub grpc_addr: SocketAddr,
    /// Admin HTTP address (/healthz, /readyz, /metrics).
    #[arg(long, default_value = "127.0.0.1:8082")]
    pub admin_addr: SocketAddr,
    /// Keep counters in Redis (`redis://host:port/db`), shared by every replica; in memory
    /// when unset.
    #[arg(long, env = "REDIS_URL", value_name = "URL")]
    pub redis_url: Option<String>,
    /// Bound on one Redis call, connecting included (`100ms`, `1s`, or milliseconds).
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub redis_timeout: Duration,
    /// Log filter (`info`, `debug`, `ratelimit=debug`); `RUST_LOG` wins when set.
    #[arg(long, default_value = "info")]
    pub log_level: String,
}

impl Args {
    /// Parses the command line, sets up logging, starts the server and runs until ctrl-c.
    pub async fn parse_and_run() -> anyhow::Result<()> {
        let args = Args::parse();
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .or_else(|_| tracing_subscriber::EnvFilter::try_new(&args.log_level))
                    .context("--log-level")?,
            )
            .init();
        args.run().await
    }

    pub fn options(&self) -> Options {
        Options {
            grpc_addr: self.grpc_addr,
            admin_addr: self.admin_addr,
            storage: match &self.redis_url {
                Some(url) => StorageOptions::Redis {
                    url: url.clone(),
                    timeout: self.redis_timeout,
                },
                None => StorageOptions::Memory,
            },
        }
    }

    pub async fn run(self) -> anyhow::Result<()> {
        let _running = Server::start(self.options())
            .await
            .context("starting ratelimit")?;
        tokio::signal::ctrl_c()
            .await
            .context("waiting for ctrl-c")?;
        Ok(())
    }
}

/// `250ms`, `2s`, or a bare number of milliseconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let (digits, per) = if let Some(ms) = s.strip_suffix("ms") {
        (ms, Duration::from_millis(1))
    } else if let Some(secs) = s.strip_suffix('s') {
        (secs, Duration::from_secs(1))
    } else {
        (s, Duration::from_millis(1))
    };
    let n: u32 = digits
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 100ms or 1s"))?;
    if n == 0 {
        return Err("the timeout must be positive".to_owned());
    }
    Ok(per * n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_ms_or_s() {
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("250"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("0ms").is_err());
    }

    #[test]
    fn a_redis_url_selects_redis_storage() {
        let args = Args::parse_from([
            "ratelimit",
            "--redis-url",
            "redis://127.0.0.1:6379/0",
            "--redis-timeout",
            "50ms",
        ]);
        assert_eq!(
            args.options().storage,
            StorageOptions::Redis {
                url: "redis://127.0.0.1:6379/0".into(),
                timeout: Duration::from_millis(50)
            }
        );
        let memory = Args::parse_from(["ratelimit"]);
        assert_eq!(memory.grpc_addr.port(), 8081);
        assert_eq!(memory.admin_addr.port(), 8082);
    }
}
