//! Simulated model servers (`inference-sim`) for a folder served on this machine, so the folder
//! alone is enough:
//!
//! - every `Pod` whose `status.podIP` is a loopback address (127.0.0.0/8) gets a sim on
//!   `podIP:<targetPort>` for each InferencePool selecting it;
//! - every `Backend` endpoint `ip: {address: <loopback>, port}` that an AIServiceBackend routes
//!   a model to gets a sim there, unless something already listens there (a real local server
//!   is used as is).
//!
//! The sim serves the model names of the AIGatewayRoute rules that send to it (the
//! `x-ai-eg-model` Exact header matches), else the Pod's `app` label. Started once, at start.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use infergate_crds::{AIGatewayRoute, InferencePool};
use xds_server::index::IndexSnapshot;

/// What a sim serves and where.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Plan {
    pub ip: IpAddr,
    pub port: u16,
    pub models: Vec<String>,
    /// `Pod default/x` or `Backend default/y`.
    pub for_what: String,
    /// Pods must be served; a Backend's address may already be a real server.
    pub required: bool,
}

/// The sims the folder needs.
pub fn plan(snapshot: &IndexSnapshot) -> Vec<Plan> {
    let mut plans: BTreeMap<(IpAddr, u16), Plan> = BTreeMap::new();
    for (key, pod) in snapshot.pods() {
        let Some(ip) = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|ip| ip.parse::<IpAddr>().ok())
            .filter(is_loopback)
        else {
            continue;
        };
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        for (pool_key, pool) in snapshot.inference_pools() {
            if pool_key.namespace != key.namespace || !selects(pool, &labels) {
                continue;
            }
            let mut models = pool_models(snapshot, &pool_key.namespace, &pool_key.name);
            if models.is_empty() {
                models.extend(labels.get("app").cloned());
            }
            for port in &pool.spec.target_ports {
                let Ok(port) = u16::try_from(port.number) else {
                    continue;
                };
                let plan = plans.entry((ip, port)).or_insert_with(|| Plan {
                    ip,
                    port,
                    models: Vec::new(),
                    for_what: format!("Pod {}/{}", key.namespace, key.name),
                    required: true,
                });
                for model in &models {
                    if !plan.models.contains(model) {
                        plan.models.push(model.clone());
                    }
                }
            }
        }
    }
    for (key, backend) in snapshot.backends() {
        let models = backend_models(snapshot, &key.namespace, &key.name);
        if models.is_empty() {
            continue;
        }
        for endpoint in &backend.spec.endpoints {
            let Some(ip) = endpoint.ip.as_ref() else {
                continue;
            };
            let (Ok(addr), Ok(port)) = (ip.address.parse::<IpAddr>(), u16::try_from(ip.port))
            else {
                continue;
            };
            if !is_loopback(&addr) {
                continue;
            }
            plans.entry((addr, port)).or_insert_with(|| Plan {
                ip: addr,
                port,
                models: models.clone(),
                for_what: format!("Backend {}/{}", key.namespace, key.name),
                required: false,
            });
        }
    }
    plans.into_values().collect()
}

/// Starts the planned sims; prints a line per sim started (or skipped).
pub async fn start(plans: &[Plan], time_scale: f64) -> anyhow::Result<Vec<inference_sim::Running>> {
    let mut sims = Vec::new();
    for (i, plan) in plans.iter().enumerate() {
        let mut config = inference_sim::SimConfig {
            host: plan.ip.to_string(),
            port: plan.port,
            seed: i as u64,
            time_scale,
            ..inference_sim::SimConfig::default()
        };
        if let Some(first) = plan.models.first() {
            config.model = first.clone();
            config.served_model_name = plan.models.clone();
        }
        let model = config.model.clone();
        match inference_sim::start(config).await {
            Ok(sim) => {
                say!(
                    "inference-sim {} for {}: model {}",
                    sim.url(),
                    plan.for_what,
                    plan.models.join(", ").if_empty(&model)
                );
                sims.push(sim);
            }
            Err(err) if !plan.required => {
                say!(
                    "no inference-sim on {}:{} for {} ({err}): using what listens there",
                    plan.ip,
                    plan.port,
                    plan.for_what
                );
            }
            Err(err) => {
                return Err(anyhow::Error::new(err).context(format!(
                    "starting the inference-sim of {} on {}:{}",
                    plan.for_what, plan.ip, plan.port
                )));
            }
        }
    }
    Ok(sims)
}

trait IfEmpty {
    fn if_empty(self, other: &str) -> String;
}

impl IfEmpty for String {
    fn if_empty(self, other: &str) -> String {
        if self.is_empty() {
            other.to_owned()
        } else {
            self
        }
    }
}

fn is_loopback(ip: &IpAddr) -> bool {
    ip.is_loopback()
}

fn selects(pool: &InferencePool, labels: &BTreeMap<String, String>) -> bool {
    let selector = &pool.spec.selector.match_labels;
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The `x-ai-eg-model` values of the route rules (in `namespace`) whose backendRefs satisfy
/// `to`.
fn rule_models(
    snapshot: &IndexSnapshot,
    namespace: &str,
    to: impl Fn(&infergate_crds::ai_gateway::AIGatewayRouteRuleBackendRef) -> bool,
) -> Vec<String> {
    let mut models = BTreeSet::new();
    for (key, route) in snapshot.ai_gateway_routes() {
        if key.namespace != namespace {
            continue;
        }
        let route: &AIGatewayRoute = route;
        for rule in &route.spec.rules {
            if !rule
                .backend_refs
                .iter()
                .any(|r| r.namespace.as_deref().is_none_or(|ns| ns == namespace) && to(r))
            {
                continue;
            }
            for m in &rule.matches {
                for header in &m.headers {
                    let exact = matches!(
                        header.match_type(),
                        infergate_crds::refs::HeaderMatchType::Exact
                    );
                    if exact && header.name.eq_ignore_ascii_case("x-ai-eg-model") {
                        models.insert(header.value.clone());
                    }
                }
            }
        }
    }
    models.into_iter().collect()
}

fn pool_models(snapshot: &IndexSnapshot, namespace: &str, pool: &str) -> Vec<String> {
    rule_models(snapshot, namespace, |r| {
        r.kind.as_deref() == Some("InferencePool") && r.name == pool
    })
}

fn backend_models(snapshot: &IndexSnapshot, namespace: &str, backend: &str) -> Vec<String> {
    let services: Vec<String> = snapshot
        .ai_service_backends()
        .filter(|(key, asb)| {
            let r = &asb.spec.backend_ref;
            key.namespace == namespace
                && r.kind.as_deref() == Some("Backend")
                && r.name == backend
                && r.namespace.as_deref().is_none_or(|ns| ns == namespace)
        })
        .map(|(key, _)| key.name.clone())
        .collect();
    rule_models(snapshot, namespace, |r| {
        matches!(r.kind.as_deref(), None | Some("AIServiceBackend")) && services.contains(&r.name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use xds_server::source::dir::DirSource;

    #[test]
    fn the_quickstart_needs_a_sim_per_pod_and_one_for_the_backend() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart");
        let snapshot = crate::pools::load(&mut DirSource::new(dir)).expect("load");
        let plans: Vec<(String, u16, Vec<String>)> = plan(&snapshot)
            .into_iter()
            .map(|p| (p.ip.to_string(), p.port, p.models))
            .collect();
        let llama = vec!["meta-llama/Llama-3.1-8B-Instruct".to_owned()];
        let mistral = vec!["mistral:latest".to_owned()];
        assert_eq!(
            plans,
            vec![
                (
                    "127.0.0.1".into(),
                    8000,
                    vec!["some-cool-self-hosted-model".to_owned()]
                ),
                ("127.0.0.11".into(), 8000, llama.clone()),
                ("127.0.0.12".into(), 8000, llama),
                ("127.0.0.13".into(), 8080, mistral.clone()),
                ("127.0.0.14".into(), 8080, mistral.clone()),
                ("127.0.0.15".into(), 8080, mistral),
            ]
        );
    }
}
