//! An Envoy fed by an in-process xds-server, and waiting until it has taken the config.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use infergate_ads::type_url;
use xds_server::server::Running;

use crate::{DEFAULT_TIMEOUT, Envoy};

const TYPES: [&str; 4] = [
    type_url::LISTENER,
    type_url::ROUTE,
    type_url::CLUSTER,
    type_url::ENDPOINT,
];

/// Starts Envoy on the xds-server at `ads` (SotW, or Delta when `delta`) and waits for `/ready`.
pub async fn start_envoy(ads: SocketAddr, delta: bool) -> Result<Envoy> {
    let bootstrap = envoy_yaml::bootstrap::bootstrap(&envoy_yaml::bootstrap::BootstrapOptions {
        node_id: format!("e2e-{}", ads.port()),
        xds_addr: ads,
        delta,
        ..Default::default()
    });
    let envoy = Envoy::start(&bootstrap).await?;
    envoy
        .wait_ready()
        .await
        .with_context(|| format!("envoy log:\n{}", envoy.log()))?;
    Ok(envoy)
}

/// The published per-type versions (listeners, routes, clusters, endpoints).
pub fn versions(server: &Running) -> [String; 4] {
    let set = server.published.snapshots.borrow().clone();
    TYPES.map(|t| set.all.version(t).to_string())
}

/// Waits until every Envoy (a proxy subscribed to listeners; extproc replicas are not) has ACKed
/// every type of the current snapshot. Types a proxy has not subscribed to don't count.
pub async fn wait_synced(server: &Running) -> Result<()> {
    let wanted = TYPES
        .map(|t| t.to_string())
        .into_iter()
        .zip(versions(server))
        .collect::<Vec<_>>();
    let acked = server.proxies.wait_for(|proxies| {
        let envoys: Vec<_> = proxies
            .iter()
            .filter(|p| p.types.contains_key(type_url::LISTENER))
            .collect();
        !envoys.is_empty()
            && envoys.iter().all(|p| {
                wanted.iter().all(|(t, v)| {
                    p.types
                        .get(t.as_str())
                        .is_none_or(|s| s.acked_version.as_deref() == Some(v.as_str()))
                })
            })
    });
    tokio::time::timeout(DEFAULT_TIMEOUT, acked)
        .await
        .with_context(|| {
            // What each proxy has of each type (a NACK says why), for the failure message.
            let proxies: Vec<String> = server
                .proxies
                .snapshot()
                .iter()
                .map(|p| format!("{} {:?}", p.node_id, p.types))
                .collect();
            format!(
                "envoy did not ACK the snapshot {wanted:?}; proxies: {}",
                proxies.join("; ")
            )
        })
}
