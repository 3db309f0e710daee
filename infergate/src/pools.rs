//! InferencePools served locally by `infergate run`: one endpoint picker (`epp`) per pool, in
//! this process, fed the pool's ready Pods from the folder.
//!
//! - The picker's `EndpointPickerConfig` comes from the folder as a cluster would mount it: the
//!   epp Deployment for the pool (`--pool-name <pool>` in its container args) names
//!   `--config-file /dir/key`; the volume mounted on `/dir` names a ConfigMap, whose
//!   `data[key]` is the config. Without such a Deployment, the picker's default config.
//!   ConfigMaps and Deployments are not read by the xds-server, so this reads the folder's YAML
//!   itself, once at start.
//! - Pods: the pool's ready Pods ([`xds_server::translate::pool::ready_pods`]) recomputed from
//!   the folder each time the xds-server publishes a translation (a folder edit), so a Pod
//!   added to or removed from the folder is picked / no longer picked.
//!
//! The pool's InferenceObjectives (priorities) are read once, at start. Pools added to the folder
//! after start get no picker until `run` is restarted.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use epp::scheduling::config::EndpointPickerConfig;
use infergate_crds::InferencePool;
use tokio::sync::watch;
use xds_server::index::{Index, IndexSnapshot};
use xds_server::source::dir::DirSource;

/// The folder's objects as the translator sees them.
pub fn load(source: &mut DirSource) -> anyhow::Result<IndexSnapshot> {
    let view = source
        .load()
        .with_context(|| format!("reading {}", source.root().display()))?;
    let mut index = Index::new();
    index.set_source_errors(view.errors);
    index.sync(view.objects);
    Ok(index.snapshot())
}

/// The picker's view of the pool's ready Pods.
pub fn pool_pods(
    snapshot: &IndexSnapshot,
    namespace: &str,
    pool: &InferencePool,
) -> Vec<epp::datastore::Pod> {
    xds_server::translate::pool::ready_pods(snapshot, namespace, pool)
        .into_iter()
        .map(|ready| {
            let labels = snapshot
                .pod(namespace, &ready.name)
                .and_then(|p| p.metadata.labels.clone())
                .unwrap_or_default();
            epp::datastore::Pod {
                name: ready.name,
                address: ready.ip,
                labels,
            }
        })
        .collect()
}

/// A running picker and what feeds it.
pub struct Epp {
    /// `ns/pool`, the key of [`xds_server::translate::Options::epp_endpoints`].
    pub key: String,
    pub namespace: String,
    pub pool: InferencePool,
    pub running: epp::Running,
    pods: watch::Sender<Vec<epp::datastore::Pod>>,
}

/// Starts a picker per InferencePool of `snapshot`, every listener on 127.0.0.1 ephemeral
/// ports; prints a line per picker.
pub async fn start_epps(dir: &Path, snapshot: &IndexSnapshot) -> anyhow::Result<Vec<Epp>> {
    let yaml = FolderYaml::read(dir);
    let mut epps = Vec::new();
    for (key, pool) in snapshot.inference_pools() {
        let namespace = key.namespace.clone();
        let (picker, from) = match yaml.picker_config(&namespace, &key.name) {
            Some((text, from)) => {
                let config = EndpointPickerConfig::from_yaml(&text)
                    .with_context(|| format!("InferencePool {namespace}/{}: {from}", key.name))?;
                (config, from)
            }
            None => (EndpointPickerConfig::default(), "default config".to_owned()),
        };
        let (tx, rx) = watch::channel(pool_pods(snapshot, &namespace, pool));
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let target_ports = pool
            .spec
            .target_ports
            .iter()
            .filter_map(|p| u16::try_from(p.number).ok())
            .collect();
        let config = epp::Config {
            grpc_addr: loopback,
            health_addr: loopback,
            metrics_addr: loopback,
            pool: epp::datastore::PoolInfo {
                name: key.name.clone(),
                namespace: namespace.clone(),
                target_ports,
            },
            pods: epp::datastore::PodSource::Watch(rx),
            picker,
            objectives: objectives(snapshot, &namespace, &key.name),
            ..epp::Config::default()
        };
        let running = epp::start(config)
            .await
            .with_context(|| format!("starting the endpoint picker of {namespace}/{}", key.name))?;
        let bound = running.bound();
        say!(
            "epp {namespace}/{}: grpc {} metrics http://{}/metrics ({from})",
            key.name,
            bound.grpc,
            bound.metrics
        );
        epps.push(Epp {
            key: format!("{namespace}/{}", key.name),
            namespace,
            pool: pool.clone(),
            running,
            pods: tx,
        });
    }
    Ok(epps)
}

/// The InferenceObjectives bound to the pool (priority 0 when unset), as the folder has them at
/// start.
pub fn objectives(
    snapshot: &IndexSnapshot,
    namespace: &str,
    pool: &str,
) -> Vec<epp::director::Objective> {
    snapshot
        .inference_objectives()
        .filter(|(key, o)| key.namespace == namespace && o.spec.pool_ref.name == pool)
        .map(|(key, o)| epp::director::Objective {
            name: key.name.clone(),
            priority: o.spec.priority.unwrap_or(epp::director::DEFAULT_PRIORITY),
        })
        .collect()
}

/// `Options::epp_endpoints` for the pickers.
pub fn endpoints(epps: &[Epp]) -> BTreeMap<String, (String, u16)> {
    epps.iter()
        .map(|e| {
            let grpc = e.running.bound().grpc;
            (e.key.clone(), (grpc.ip().to_string(), grpc.port()))
        })
        .collect()
}

/// Keeps each picker's Pods current: re-reads the folder whenever the xds-server publishes.
/// Ends when the server's publisher is dropped.
pub fn feed_pods<T: Send + Sync + 'static>(
    dir: PathBuf,
    epps: Arc<Vec<Epp>>,
    mut published: watch::Receiver<T>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut source = DirSource::new(&dir);
        while published.changed().await.is_ok() {
            let snapshot = match load(&mut source) {
                Ok(snapshot) => snapshot,
                Err(err) => {
                    tracing::warn!(error = %format!("{err:#}"), "re-reading pods; keeping the last ones");
                    continue;
                }
            };
            for epp in epps.iter() {
                // The pool as the folder has it now (its selector may have changed).
                let pool = snapshot
                    .inference_pool(
                        &epp.namespace,
                        &epp.pool.metadata.name.clone().unwrap_or_default(),
                    )
                    .unwrap_or(&epp.pool);
                let pods = pool_pods(&snapshot, &epp.namespace, pool);
                epp.pods.send_if_modified(|current| {
                    if *current == pods {
                        false
                    } else {
                        *current = pods;
                        true
                    }
                });
            }
        }
    })
}

/// The folder's ConfigMaps and Deployments (which the xds-server skips), for the picker config.
#[derive(Default)]
struct FolderYaml {
    /// `(namespace, name)` → data.
    config_maps: BTreeMap<(String, String), BTreeMap<String, String>>,
    deployments: Vec<serde_yaml::Value>,
}

impl FolderYaml {
    fn read(dir: &Path) -> Self {
        let mut out = FolderYaml::default();
        let mut files = Vec::new();
        collect(dir, &mut files);
        files.sort();
        for file in files {
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            for doc in serde_yaml::Deserializer::from_str(&text) {
                let Ok(value) = <serde_yaml::Value as serde::Deserialize>::deserialize(doc) else {
                    continue;
                };
                let kind = value
                    .get("kind")
                    .and_then(|k| k.as_str())
                    .unwrap_or_default();
                let meta = |field: &str| {
                    value
                        .get("metadata")
                        .and_then(|m| m.get(field))
                        .and_then(|v| v.as_str())
                        .map(str::to_owned)
                };
                let namespace = meta("namespace").unwrap_or_else(|| "default".to_owned());
                match kind {
                    "ConfigMap" => {
                        let Some(name) = meta("name") else { continue };
                        let data = value
                            .get("data")
                            .and_then(|d| {
                                serde_yaml::from_value::<BTreeMap<String, String>>(d.clone()).ok()
                            })
                            .unwrap_or_default();
                        out.config_maps.insert((namespace, name), data);
                    }
                    "Deployment" => {
                        let mut value = value.clone();
                        if let Some(m) = value.get_mut("metadata").and_then(|m| m.as_mapping_mut())
                        {
                            m.insert("namespace".into(), namespace.into());
                        }
                        out.deployments.push(value);
                    }
                    _ => {}
                }
            }
        }
        out
    }

    /// The config text of the pool's epp Deployment, and where it came from.
    fn picker_config(&self, namespace: &str, pool: &str) -> Option<(String, String)> {
        for deployment in &self.deployments {
            let ns = deployment
                .get("metadata")
                .and_then(|m| m.get("namespace"))
                .and_then(|v| v.as_str())
                .unwrap_or("default");
            let spec = deployment.get("spec")?.get("template")?.get("spec")?;
            let containers = spec.get("containers")?.as_sequence()?;
            for container in containers {
                let args: Vec<&str> = container
                    .get("args")
                    .and_then(|a| a.as_sequence())
                    .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
                    .unwrap_or_default();
                let pool_name = flag(&args, "--pool-name");
                let pool_ns = flag(&args, "--pool-namespace").unwrap_or(ns);
                if pool_name != Some(pool) || pool_ns != namespace {
                    continue;
                }
                let config_file = flag(&args, "--config-file")?;
                // The volume mounted on the config file's folder, and the ConfigMap behind it.
                let mounts = container
                    .get("volumeMounts")
                    .and_then(|m| m.as_sequence())?;
                for mount in mounts {
                    let Some(path) = mount.get("mountPath").and_then(|p| p.as_str()) else {
                        continue;
                    };
                    let Some(key) = config_file
                        .strip_prefix(path.trim_end_matches('/'))
                        .and_then(|rest| rest.strip_prefix('/'))
                    else {
                        continue;
                    };
                    let volume = mount.get("name").and_then(|n| n.as_str())?;
                    let config_map = spec
                        .get("volumes")?
                        .as_sequence()?
                        .iter()
                        .find(|v| v.get("name").and_then(|n| n.as_str()) == Some(volume))?
                        .get("configMap")?
                        .get("name")?
                        .as_str()?;
                    let data = self
                        .config_maps
                        .get(&(ns.to_owned(), config_map.to_owned()))?;
                    let text = data.get(key)?;
                    return Some((text.clone(), format!("ConfigMap {ns}/{config_map} {key}")));
                }
            }
        }
        None
    }
}

/// The value of `--name value` or `--name=value`.
fn flag<'a>(args: &[&'a str], name: &str) -> Option<&'a str> {
    args.iter().enumerate().find_map(|(i, arg)| {
        if *arg == name {
            args.get(i + 1).copied()
        } else {
            arg.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('='))
        }
    })
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quickstart_mistral_pool_gets_its_config_map() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart");
        let yaml = FolderYaml::read(&dir);
        let (text, from) = yaml
            .picker_config("default", "mistral")
            .expect("mistral config");
        assert_eq!(
            from,
            "ConfigMap default/plugins-config default-plugins.yaml"
        );
        EndpointPickerConfig::from_yaml(&text).expect("the seed's config loads");
        assert!(
            yaml.picker_config("default", "vllm-llama3-8b-instruct")
                .is_none()
        );
    }

    #[test]
    fn flags_in_both_spellings() {
        let args = ["--pool-name", "a", "--config-file=/c/x.yaml"];
        assert_eq!(flag(&args, "--pool-name"), Some("a"));
        assert_eq!(flag(&args, "--config-file"), Some("/c/x.yaml"));
        assert_eq!(flag(&args, "--v"), None);
    }
}
