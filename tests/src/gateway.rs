//! A whole gateway in one test process for a folder of manifests: one extproc (fed over ADS
//! like in a cluster), the xds-server, and a real Envoy. Tests add their own upstreams and
//! services (rate limit, pickers) around it.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use xds_server::pipeline::Debounce;
use xds_server::server::{self, Config};
use xds_server::translate::{ExtprocOptions, Options, RateLimitOptions};

use crate::Envoy;

const TIMEOUT: Duration = Duration::from_secs(20);

pub struct Gateway {
    pub envoy: Envoy,
    pub server: server::Running,
    pub extproc: extproc::Running,
    _xds: extproc::XdsClientHandle,
    _dir: tempfile::TempDir,
}

impl Gateway {
    /// Serves `manifests` (one YAML file), with Envoy's listeners on 127.0.0.1 and, when
    /// given, the rate limit service wired in. Returns once Envoy has acknowledged the config.
    pub async fn start(manifests: &str, ratelimit: Option<RateLimitOptions>) -> Result<Gateway> {
        let store = extproc::config::ConfigStore::new();
        let dir = tempfile::tempdir()?;
        // Envoy reaches the extproc on a Unix socket, as under `infergate run`.
        let socket = dir.path().join("extproc.sock");
        let extproc = extproc::Server::start(
            extproc::Options {
                grpc_addr: "127.0.0.1:0".parse()?,
                admin_addr: "127.0.0.1:0".parse()?,
                grpc_unix: Some(socket.clone()),
                ..Default::default()
            },
            store.clone(),
        )
        .await?;
        let manifests_dir = dir.path().join("manifests");
        std::fs::create_dir(&manifests_dir)?;
        std::fs::write(manifests_dir.join("gateway.yaml"), manifests)?;
        let extproc_options = xds_server::cli::extproc_options(
            &format!("{}{}", xds_server::cli::UNIX_PREFIX, socket.display()),
            ExtprocOptions::DEFAULT_BODY_LIMIT,
        )
        .map_err(anyhow::Error::msg)?;
        let server = server::start(Config {
            dir: manifests_dir,
            ads_addr: "127.0.0.1:0".parse()?,
            admin_addr: "127.0.0.1:0".parse()?,
            translate: Options {
                listener_address: "127.0.0.1".into(),
                extproc: Some(extproc_options),
                ratelimit,
                ..Options::default()
            },
            debounce: Debounce::default(),
        })
        .await?;
        server.ready().await;
        let xds = extproc::xds_client::spawn(server.ads_addr, store);
        if !tokio::time::timeout(TIMEOUT, xds.first_config())
            .await
            .context("extproc got no config")?
        {
            bail!("the extproc's xDS client stopped");
        }
        let envoy = crate::xds::start_envoy(server.ads_addr, false).await?;
        crate::xds::wait_synced(&server)
            .await
            .with_context(|| format!("envoy log:\n{}", envoy.log()))?;
        Ok(Gateway {
            envoy,
            server,
            extproc,
            _xds: xds,
            _dir: dir,
        })
    }
}
