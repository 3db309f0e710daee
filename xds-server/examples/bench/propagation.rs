//! `bench propagation`: the xds-server in-process on a temp folder, one real Envoy on ADS, and
//! timed file edits: write → snapshot published → Envoy ACKed the changed types.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant};

use infergate_ads::{ProxyStatus, Snapshot, all_acked, type_url};
use xds_server::pipeline::Debounce;
use xds_server::server::{self, Config, Running};
use xds_server::translate::Options;

use crate::envoy::Envoy;
use crate::manifests::{self, Layout};

const TYPES: [&str; 4] = [
    type_url::LISTENER,
    type_url::ROUTE,
    type_url::CLUSTER,
    type_url::ENDPOINT,
];
const STEP_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone)]
pub struct Scenario {
    pub rules: usize,
    pub edits: usize,
    /// Wait before each edit (after the previous ACK).
    pub pause: Duration,
    pub debounce: Debounce,
    pub delta: bool,
}

impl Scenario {
    /// E.g. `quiet 100 ms (default), SotW, edits 150 ms apart`.
    pub fn label(&self) -> String {
        let quiet = self.debounce.quiet.as_millis();
        let default = if self.debounce.quiet == Debounce::default().quiet {
            " (default)"
        } else {
            ""
        };
        let xds = if self.delta { "Delta" } else { "SotW" };
        let pace = if self.pause.is_zero() {
            "back-to-back edits".to_owned()
        } else {
            format!("edits {} ms apart", self.pause.as_millis())
        };
        format!("quiet {quiet} ms{default}, {xds}, {pace}")
    }
}

/// One edit's timings.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub published: Duration,
    pub acked: Duration,
}

#[derive(Debug)]
pub struct Report {
    pub scenario: Scenario,
    /// Envoy spawned → every type ACKed at the first snapshot's versions.
    pub first_ack: Duration,
    pub samples: Vec<Sample>,
    /// Types whose version changed, over all edits (expected: routes only).
    pub changed_types: Vec<&'static str>,
    pub nacks: usize,
}

pub fn run(envoy_bin: &Path, scenario: Scenario) -> Result<Report, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("starting tokio: {e}"))?
        .block_on(run_async(envoy_bin, scenario))
}

async fn run_async(envoy_bin: &Path, scenario: Scenario) -> Result<Report, String> {
    let dir = tempfile::Builder::new()
        .prefix("infergate-bench-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?;
    let layout = Layout {
        rules: scenario.rules,
        // As in `bench translate`; every edit rewrites the first route's file.
        rules_per_route: scenario.rules.min(100),
        port: free_port()?,
    };
    manifests::write_all(dir.path(), &layout).map_err(|e| format!("writing manifests: {e}"))?;

    let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let running = server::start(Config {
        dir: dir.path().to_path_buf(),
        ads_addr: loopback,
        admin_addr: loopback,
        translate: Options {
            listener_address: "127.0.0.1".into(),
            ..Options::default()
        },
        debounce: scenario.debounce,
    })
    .await
    .map_err(|e| format!("starting the xds-server: {e}"))?;
    running.ready().await;

    let spawned = Instant::now();
    let mut envoy = Envoy::start(envoy_bin, running.ads_addr, scenario.delta)
        .map_err(|e| format!("starting {}: {e}", envoy_bin.display()))?;
    let first = current(&running);
    wait_acked(&running, &mut envoy, &first, &TYPES, "the first snapshot").await?;
    let first_ack = spawned.elapsed();

    let mut snapshots = running.published.snapshots.subscribe();
    let mut samples = Vec::with_capacity(scenario.edits);
    let mut changed_types: Vec<&'static str> = Vec::new();
    for revision in 0..scenario.edits as u64 {
        // Before every edit, the first included: the server also publishes once more ~quiet after
        // start-up (see BENCH.md), and a paced edit must not land in that debounce window.
        tokio::time::sleep(scenario.pause).await;
        let before = current(&running);
        snapshots.borrow_and_update();
        let written = Instant::now();
        manifests::edit_route(dir.path(), &layout, 0, revision)
            .map_err(|e| format!("editing the route: {e}"))?;
        // The watch keeps only the newest value: wait for one whose routes differ.
        let after = tokio::time::timeout(STEP_TIMEOUT, async {
            loop {
                if snapshots.changed().await.is_err() {
                    return None;
                }
                let set = snapshots.borrow_and_update().all.clone();
                if set.version(type_url::ROUTE) != before.version(type_url::ROUTE) {
                    return Some(set);
                }
            }
        })
        .await
        .ok()
        .flatten()
        .ok_or_else(|| format!("edit {revision}: no new route version published"))?;
        let published = written.elapsed();
        let changed: Vec<&'static str> = TYPES
            .into_iter()
            .filter(|t| after.version(t) != before.version(t))
            .collect();
        for t in &changed {
            if !changed_types.contains(t) {
                changed_types.push(t);
            }
        }
        wait_acked(&running, &mut envoy, &after, &changed, "an edit").await?;
        samples.push(Sample {
            published,
            acked: written.elapsed(),
        });
    }

    let nacks = running
        .proxies
        .snapshot()
        .iter()
        .flat_map(|p| p.types.values())
        .filter(|t| t.last_nack.is_some())
        .count();
    Ok(Report {
        scenario,
        first_ack,
        samples,
        changed_types,
        nacks,
    })
}

fn current(running: &Running) -> std::sync::Arc<Snapshot> {
    running.published.snapshots.borrow().all.clone()
}

/// Waits until the one Envoy has ACKed `snapshot`'s version of each of `types`.
async fn wait_acked(
    running: &Running,
    envoy: &mut Envoy,
    snapshot: &Snapshot,
    types: &[&str],
    what: &str,
) -> Result<(), String> {
    let done = |proxies: &[ProxyStatus]| {
        !proxies.is_empty()
            && types.iter().all(|t| {
                proxies.iter().all(|p| p.types.contains_key(*t))
                    && all_acked(proxies, t, snapshot.version(t))
            })
    };
    if tokio::time::timeout(STEP_TIMEOUT, running.proxies.wait_for(done))
        .await
        .is_ok()
    {
        return Ok(());
    }
    let exited = envoy
        .exited()
        .map(|s| format!(" (envoy exited: {s})"))
        .unwrap_or_default();
    Err(format!(
        "envoy did not ACK {what} within {STEP_TIMEOUT:?}{exited}\nproxies: {:#?}\n----- envoy log -----\n{}",
        running.proxies.snapshot(),
        envoy.log()
    ))
}

/// A loopback port free right now (Envoy binds the Gateway listener on it).
fn free_port() -> Result<u16, String> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("finding a free port: {e}"))
}
