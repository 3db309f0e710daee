//! InferencePool backendRefs (DESIGN.md §5): a rule whose backendRefs are InferencePools sends
//! to the endpoint its pool's endpoint picker (EPP) chooses; with several pools, each takes its
//! weight's share and only its own picker runs on it (per weighted cluster filter overrides).
//!
//! Per pool:
//! - an ext_proc filter `infergate.epp/<ns>/<pool>` on the listeners of the routes that use it,
//!   after the router leg (so `x-ai-eg-model` is set) and before the router, turned off on every
//!   other route. Body mode from the annotation `aigateway.envoyproxy.io/processing-body-mode`
//!   (`buffered`, the default, or `duplex`), `allow_mode_override` from
//!   `aigateway.envoyproxy.io/allow-mode-override`, `failure_mode_allow` from
//!   `endpointPickerRef.failureMode: FailOpen`;
//! - its gRPC cluster `epp/<ns>/<pool>` (HTTP/2): the `endpointPickerRef` Service's cluster DNS
//!   name and port, or [`super::Options::epp_endpoints`];
//! - the traffic cluster `pool/<ns>/<pool>`: ORIGINAL_DST on `x-gateway-destination-endpoint`
//!   (Envoy connects to whatever the picker named). A `FailOpen` pool whose ready Pods the folder
//!   lists gets an EDS cluster of those Pods with Envoy's override-host load balancing instead:
//!   the picked host when there is one (the picker's fallback list on retries), round robin over
//!   the pool when the picker is down — an ORIGINAL_DST cluster has nowhere to send a request the
//!   picker did not answer.
//!
//!   A FailOpen pool's picker cluster is health checked (TCP, no panic routing): Envoy can fail
//!   a duplex-mode ext_proc stream open only before body chunks went to the picker, so a picker
//!   known to be down must be skipped without a connection attempt.
//!
//! Clients never choose the endpoint: listeners with a pool remove a client-sent
//! `x-gateway-destination-endpoint` before route matching (HCM early header mutation).
//!
//! Pool clusters carry no extproc upstream leg: it names its backend from host metadata, which
//! ORIGINAL_DST hosts lack, and the extproc's config has no backend for a pool (it would answer
//! every attempt with an error). Model servers speak OpenAI, so there is nothing to translate;
//! the router leg still reads the response.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use infergate_crds::InferencePool;
use infergate_crds::inference::{AppProtocol, FailureMode};
use k8s_openapi::api::core::v1::Pod;

use super::Cx;
use super::backend::RefError;
use super::ir::{
    ActionIr, ClusterIr, ClusterProtocolIr, DiscoveryIr, EndpointIr, EndpointsIr, EppBodyModeIr,
    EppIr, ForwardIr, LocalityIr, OverrideHostIr,
};
use super::refs::{self, From};
use crate::index::IndexSnapshot;
use crate::object::{Kind, ObjectKey};
use crate::status::{Condition, reason};

/// API group of `InferencePool` backendRefs.
pub const POOL_GROUP: &str = "inference.networking.k8s.io";
/// Kind of `InferencePool` backendRefs.
pub const POOL_KIND: &str = "InferencePool";

/// Request header with the picked endpoint(s), `ip:port[,ip:port…]` (the Endpoint Picker
/// Protocol's; same as `epp::keys::DESTINATION_ENDPOINT`).
pub const DESTINATION_ENDPOINT_HEADER: &str = "x-gateway-destination-endpoint";
/// Dynamic metadata namespace of the picked and the served endpoint (`epp::keys`).
pub const DESTINATION_ENDPOINT_NAMESPACE: &str = "envoy.lb";
/// Key under [`DESTINATION_ENDPOINT_NAMESPACE`] Envoy reports the served endpoint with.
pub const DESTINATION_ENDPOINT_SERVED: &str = "x-gateway-destination-endpoint-served";

/// Pool annotation choosing how the request body reaches the picker.
pub const BODY_MODE_ANNOTATION: &str = "aigateway.envoyproxy.io/processing-body-mode";
/// Pool annotation letting the picker change the processing mode per request.
pub const ALLOW_MODE_OVERRIDE_ANNOTATION: &str = "aigateway.envoyproxy.io/allow-mode-override";

/// Prefix of the EPP filter names: `infergate.epp/<ns>/<pool>`.
pub const EPP_FILTER_PREFIX: &str = "infergate.epp";
/// Port of the picker's ext_proc service when `endpointPickerRef` gives none.
pub const DEFAULT_EPP_PORT: u16 = 9002;
/// How long Envoy waits for each picker answer.
pub const EPP_MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);

/// A ready Pod of a pool: what the picker picks among.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ReadyPod {
    pub name: String,
    pub ip: IpAddr,
}

/// Pods of the pool's namespace that its selector matches and that can take traffic: an IP,
/// not terminating or finished, and `Ready` unless the Pod reports no conditions at all (a
/// Pod written in a folder). In name order.
pub fn ready_pods(
    snapshot: &IndexSnapshot,
    namespace: &str,
    pool: &InferencePool,
) -> Vec<ReadyPod> {
    let selector = &pool.spec.selector.match_labels;
    snapshot
        .pods()
        .filter(|(key, _)| key.namespace == namespace)
        .filter(|(_, pod)| {
            let labels = pod.metadata.labels.as_ref();
            selector
                .iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        })
        .filter_map(|(key, pod)| {
            let ip = pod_ready_ip(pod)?;
            Some(ReadyPod {
                name: key.name.clone(),
                ip,
            })
        })
        .collect()
}

fn pod_ready_ip(pod: &Pod) -> Option<IpAddr> {
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let status = pod.status.as_ref()?;
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return None;
    }
    if let Some(conditions) = status.conditions.as_ref().filter(|c| !c.is_empty()) {
        let ready = conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        if !ready {
            return None;
        }
    }
    status.pod_ip.as_deref()?.parse().ok()
}

/// What a pool becomes, whether or not a route uses it.
struct Plan {
    key: ObjectKey,
    epp: Result<EppTarget, RefError>,
    body_mode: EppBodyModeIr,
    allow_mode_override: bool,
    failure_mode: FailureMode,
    /// Annotation values we could not read (the default is used): `(annotation, message)`.
    bad_annotations: Vec<(&'static str, String)>,
    target_ports: Vec<u16>,
    pods: Vec<ReadyPod>,
    h2c: bool,
}

/// Where Envoy reaches the picker.
struct EppTarget {
    host: String,
    port: u16,
    authority: String,
    /// How it was found, for the pool's condition.
    described: String,
}

fn plan(cx: &Cx<'_>, key: &ObjectKey, pool: &InferencePool) -> Plan {
    let annotations = pool.metadata.annotations.clone().unwrap_or_default();
    let mut bad_annotations = Vec::new();
    let body_mode = match annotations.get(BODY_MODE_ANNOTATION).map(|v| v.trim()) {
        None | Some("buffered") => EppBodyModeIr::Buffered,
        Some("duplex") => EppBodyModeIr::FullDuplexStreamed,
        Some(other) => {
            bad_annotations.push((
                BODY_MODE_ANNOTATION,
                format!("{other:?} is not \"buffered\" or \"duplex\"; buffered is used"),
            ));
            EppBodyModeIr::Buffered
        }
    };
    let allow_mode_override = match annotations
        .get(ALLOW_MODE_OVERRIDE_ANNOTATION)
        .map(|v| v.trim())
    {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            bad_annotations.push((
                ALLOW_MODE_OVERRIDE_ANNOTATION,
                format!("{other:?} is not \"true\" or \"false\"; false is used"),
            ));
            false
        }
    };
    let target_ports: BTreeSet<u16> = pool
        .spec
        .target_ports
        .iter()
        .filter_map(|p| u16::try_from(p.number).ok().filter(|p| *p > 0))
        .collect();
    Plan {
        key: key.clone(),
        epp: epp_target(cx, key, pool),
        body_mode,
        allow_mode_override,
        failure_mode: pool
            .spec
            .endpoint_picker_ref
            .as_ref()
            .map(|r| r.failure_mode())
            .unwrap_or_default(),
        bad_annotations,
        target_ports: target_ports.into_iter().collect(),
        pods: ready_pods(cx.snapshot, &key.namespace, pool),
        h2c: pool.spec.app_protocol == Some(AppProtocol::H2c),
    }
}

fn epp_target(cx: &Cx<'_>, key: &ObjectKey, pool: &InferencePool) -> Result<EppTarget, RefError> {
    let ns = &key.namespace;
    let reference = pool.spec.endpoint_picker_ref.as_ref();
    let overridden = cx.options.epp_endpoints.get(&key.namespaced_name());
    if let Some(r) = reference {
        let group = r.group.as_deref().unwrap_or("");
        let kind = r.kind.as_deref().unwrap_or("Service");
        if !matches!(group, "" | "core") || kind != "Service" {
            return Err((
                reason::INVALID_KIND,
                format!("endpointPickerRef kind {group}/{kind} is not supported; use a Service"),
            ));
        }
    }
    if let Some((host, port)) = overridden {
        let authority = match reference {
            Some(r) => service_dns(&r.name, ns),
            None => format!("{}.{ns}.epp.infergate", key.name),
        };
        return Ok(EppTarget {
            host: host.clone(),
            port: *port,
            authority,
            described: format!("{host}:{port} (set by the gateway's options)"),
        });
    }
    let Some(r) = reference else {
        return Err((
            reason::BACKEND_NOT_FOUND,
            "no endpointPickerRef: the pool has no endpoint picker to ask".to_string(),
        ));
    };
    if cx.snapshot.service(ns, &r.name).is_none() {
        return Err((
            reason::BACKEND_NOT_FOUND,
            format!("endpointPickerRef: Service {ns}/{} not found", r.name),
        ));
    }
    let port = r
        .port
        .and_then(|p| u16::try_from(p.number).ok())
        .filter(|p| *p > 0)
        .unwrap_or(DEFAULT_EPP_PORT);
    let host = service_dns(&r.name, ns);
    Ok(EppTarget {
        described: format!("Service {ns}/{} at {host}:{port}", r.name),
        authority: host.clone(),
        host,
        port,
    })
}

fn service_dns(name: &str, namespace: &str) -> String {
    format!("{name}.{namespace}.svc.cluster.local")
}

/// `infergate.epp/<ns>/<pool>`.
pub fn epp_filter_name(key: &ObjectKey) -> String {
    format!("{EPP_FILTER_PREFIX}/{}", key.namespaced_name())
}

/// `pool/<ns>/<pool>`: where the pool's requests go.
pub fn pool_cluster_name(key: &ObjectKey) -> String {
    format!("pool/{}", key.namespaced_name())
}

/// `epp/<ns>/<pool>`: where Envoy reaches the picker.
pub fn epp_cluster_name(key: &ObjectKey) -> String {
    format!("epp/{}", key.namespaced_name())
}

impl Plan {
    /// Override-host EDS cluster (FailOpen with known Pods) rather than ORIGINAL_DST.
    fn override_host(&self) -> bool {
        self.failure_mode == FailureMode::FailOpen
            && !self.pods.is_empty()
            && !self.target_ports.is_empty()
    }
}

/// The Envoy pieces of a pool a route rule sends to.
struct Served {
    epp: EppIr,
    clusters: Vec<ClusterIr>,
    endpoints: Option<EndpointsIr>,
}

fn serve(cx: &Cx<'_>, plan: &Plan, epp: &EppTarget) -> Served {
    let key = &plan.key;
    let epp_cluster = epp_cluster_name(key);
    let epp_ir = EppIr {
        filter: epp_filter_name(key),
        cluster: epp_cluster.clone(),
        authority: epp.authority.clone(),
        body_mode: plan.body_mode,
        allow_mode_override: plan.allow_mode_override,
        failure_mode_allow: plan.failure_mode == FailureMode::FailOpen,
        message_timeout: EPP_MESSAGE_TIMEOUT,
    };
    let picker = ClusterIr {
        name: epp_cluster.clone(),
        discovery: DiscoveryIr::StrictDns(EndpointsIr {
            cluster: epp_cluster,
            localities: vec![LocalityIr {
                name: "epp".into(),
                priority: 0,
                weight: 1,
                endpoints: vec![EndpointIr {
                    address: epp.host.clone(),
                    port: epp.port,
                    metadata: BTreeMap::new(),
                }],
            }],
        }),
        tls: Vec::new(),
        outlier_detection: false,
        connect_timeout: cx.options.connect_timeout,
        protocol: ClusterProtocolIr::Http2,
        override_host: None,
        tcp_health_check: plan.failure_mode == FailureMode::FailOpen,
    };
    let name = pool_cluster_name(key);
    let protocol = if plan.h2c {
        ClusterProtocolIr::Http2
    } else {
        ClusterProtocolIr::Default
    };
    let (discovery, override_host, endpoints) = if plan.override_host() {
        let endpoints = plan
            .pods
            .iter()
            .flat_map(|pod| {
                plan.target_ports.iter().map(move |port| EndpointIr {
                    address: pod.ip.to_string(),
                    port: *port,
                    metadata: BTreeMap::new(),
                })
            })
            .collect();
        let assignment = EndpointsIr {
            cluster: name.clone(),
            localities: vec![LocalityIr {
                name: key.namespaced_name(),
                priority: 0,
                weight: 1,
                endpoints,
            }],
        };
        let override_host = OverrideHostIr {
            header: DESTINATION_ENDPOINT_HEADER.into(),
            metadata: (
                DESTINATION_ENDPOINT_NAMESPACE.into(),
                DESTINATION_ENDPOINT_HEADER.into(),
            ),
            served: (
                DESTINATION_ENDPOINT_NAMESPACE.into(),
                DESTINATION_ENDPOINT_SERVED.into(),
            ),
        };
        (DiscoveryIr::Eds, Some(override_host), Some(assignment))
    } else {
        (
            DiscoveryIr::OriginalDst {
                header: DESTINATION_ENDPOINT_HEADER.into(),
            },
            None,
            None,
        )
    };
    let pool_cluster = ClusterIr {
        name,
        discovery,
        tls: Vec::new(),
        outlier_detection: false,
        connect_timeout: cx.options.connect_timeout,
        protocol,
        override_host,
        tcp_health_check: false,
    };
    Served {
        epp: epp_ir,
        clusters: vec![pool_cluster, picker],
        endpoints,
    }
}

/// One backendRef of a rule, as far as pools are concerned.
pub(crate) struct RuleRef<'a> {
    /// `Some((namespace, name))` when the ref is an InferencePool.
    pub pool: Option<(&'a str, &'a str)>,
    /// Group and kind as written, for refs that name InferencePool under another group.
    pub group: &'a str,
    /// The backendRef's weight (default applied).
    pub weight: u32,
}

/// What a rule with an InferencePool backendRef becomes.
pub(crate) enum RuleOutcome {
    /// No InferencePool among the backendRefs: translate the rule as usual.
    NoPool,
    /// Forward to the pools: the action, clusters and endpoints are in the route model; `epps`
    /// maps each pool cluster of the action to its picker's filter.
    Forward {
        action: ActionIr,
        epps: BTreeMap<String, String>,
    },
    /// The rule answers 500; `resolved` says whether its references resolved (the condition is
    /// already pushed).
    Invalid { resolved: bool },
}

/// The parts of a route model a pool rule adds to.
pub(crate) struct RuleSink<'m> {
    pub clusters: &'m mut Vec<ClusterIr>,
    pub endpoints: &'m mut Vec<EndpointsIr>,
}

/// Translates a rule whose backendRefs include an InferencePool. Every backendRef must then be
/// an InferencePool (a weighted split with a Service or AIServiceBackend would bypass the
/// picker); several pools split by weight, each request picked by the picker of the pool its
/// share went to.
pub(crate) fn translate_rule(
    cx: &mut Cx<'_>,
    route: &ObjectKey,
    from: &From<'_>,
    scope: &str,
    refs: &[RuleRef<'_>],
    (timeout, per_try_timeout): (Option<Duration>, Option<Duration>),
    sink: RuleSink<'_>,
) -> RuleOutcome {
    let pools = refs.iter().filter(|r| r.pool.is_some()).count();
    if pools == 0 {
        return RuleOutcome::NoPool;
    }
    if pools < refs.len() {
        let message = format!(
            "a rule that sends to an InferencePool must have only InferencePool backendRefs; this one has {} backendRefs, {pools} of them InferencePool(s); the rule answers 500",
            refs.len(),
        );
        cx.status.push(
            route,
            Condition::fail(reason::ACCEPTED, reason::UNSUPPORTED_VALUE, message).scoped(scope),
        );
        return RuleOutcome::Invalid { resolved: true };
    }
    let mut served = Vec::new();
    let mut resolved = true;
    for (j, r) in refs.iter().enumerate() {
        let Some((namespace, name)) = r.pool else {
            continue;
        };
        let ref_scope = format!("{scope} backendRef {j}");
        if r.group != POOL_GROUP {
            let message = format!(
                "InferencePool group {:?} is not supported; use {POOL_GROUP} (InferencePool v1)",
                r.group
            );
            cx.status.push(
                route,
                Condition::fail(reason::RESOLVED_REFS, reason::INVALID_KIND, message)
                    .scoped(ref_scope),
            );
            resolved = false;
            continue;
        }
        match resolve(cx, from, namespace, name) {
            Ok(pool) => served.push((pool, r.weight)),
            Err((why, message)) => {
                cx.status.push(
                    route,
                    Condition::fail(reason::RESOLVED_REFS, why, message).scoped(ref_scope),
                );
                resolved = false;
            }
        }
    }
    if !resolved {
        return RuleOutcome::Invalid { resolved: false };
    }
    // The same pool twice is one cluster with the summed weight.
    let mut clusters: Vec<(String, u32)> = Vec::new();
    let mut epps = BTreeMap::new();
    for (pool, weight) in served {
        let cluster = pool.clusters[0].name.clone();
        match clusters.iter_mut().find(|(c, _)| *c == cluster) {
            Some((_, w)) => *w = w.saturating_add(weight),
            None => {
                clusters.push((cluster.clone(), weight));
                epps.insert(cluster, pool.epp.filter.clone());
                cx.epps.insert(pool.epp.filter.clone(), pool.epp);
                sink.clusters.extend(pool.clusters);
                sink.endpoints.extend(pool.endpoints);
            }
        }
    }
    // Weight 0 takes no share; no share at all answers 500, as for other backends.
    clusters.retain(|(_, w)| *w > 0);
    epps.retain(|cluster, _| clusters.iter().any(|(c, _)| c == cluster));
    if clusters.is_empty() {
        return RuleOutcome::Invalid { resolved: true };
    }
    RuleOutcome::Forward {
        action: ActionIr::Forward(ForwardIr {
            clusters,
            invalid_weight: 0,
            timeout,
            per_try_timeout,
            failover_retries: 0,
            auto_host_rewrite: false,
            retry: None,
            names_backend: false,
        }),
        epps,
    }
}

fn resolve(cx: &Cx<'_>, from: &From<'_>, namespace: &str, name: &str) -> Result<Served, RefError> {
    if !refs::permitted(cx, from, POOL_GROUP, POOL_KIND, namespace, name) {
        return Err((
            reason::REF_NOT_PERMITTED,
            format!(
                "InferencePool {namespace}/{name} is in another namespace and no ReferenceGrant there permits {} from namespace {}",
                from.kind, from.namespace
            ),
        ));
    }
    let Some(pool) = cx.snapshot.inference_pool(namespace, name) else {
        return Err((
            reason::BACKEND_NOT_FOUND,
            format!("InferencePool {namespace}/{name} not found"),
        ));
    };
    let key = ObjectKey::new(Kind::InferencePool, namespace, name);
    let plan = plan(cx, &key, pool);
    match &plan.epp {
        Ok(epp) => Ok(serve(cx, &plan, epp)),
        Err((why, message)) => Err((why, format!("InferencePool {namespace}/{name}: {message}"))),
    }
}

/// Conditions on every InferencePool: whether its picker resolved, its annotations, and a
/// warning when no ready Pod matches its selector.
pub(crate) fn report(cx: &mut Cx<'_>) {
    let snapshot = cx.snapshot;
    for (key, pool) in snapshot.inference_pools() {
        let plan = plan(cx, key, pool);
        let mut conditions = Vec::new();
        for (annotation, message) in &plan.bad_annotations {
            conditions.push(
                Condition::fail(reason::ACCEPTED, reason::UNSUPPORTED_VALUE, message.clone())
                    .scoped(format!("annotation {annotation}")),
            );
        }
        let mode = match plan.body_mode {
            EppBodyModeIr::Buffered => "buffered",
            EppBodyModeIr::FullDuplexStreamed => "duplex",
        };
        let failure = match plan.failure_mode {
            FailureMode::FailOpen => "FailOpen",
            FailureMode::FailClose => "FailClose",
        };
        match &plan.epp {
            Ok(epp) => {
                let routing = if plan.override_host() {
                    "the picked Pod, or any ready Pod while the picker is down"
                } else {
                    "the endpoint the picker names"
                };
                conditions.push(Condition::ok(
                    reason::ACCEPTED,
                    reason::ACCEPTED,
                    format!(
                        "requests go to {routing} ({mode} body, {failure}, ports {})",
                        ports(&plan.target_ports)
                    ),
                ));
                conditions.push(Condition::ok(
                    reason::RESOLVED_REFS,
                    reason::RESOLVED_REFS,
                    format!("endpoint picker: {}", epp.described),
                ));
            }
            Err((why, message)) => {
                conditions.push(Condition::fail(
                    reason::ACCEPTED,
                    reason::INVALID_PARAMETERS,
                    "routes to this pool answer 500 until it has an endpoint picker",
                ));
                conditions.push(Condition::fail(reason::RESOLVED_REFS, why, message.clone()));
            }
        }
        if plan.pods.is_empty() {
            let selector: Vec<String> = pool
                .spec
                .selector
                .match_labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let mut message = format!(
                "no ready Pod in namespace {} matches selector {}; the picker answers 503 until one does",
                key.namespace,
                selector.join(",")
            );
            if plan.failure_mode == FailureMode::FailOpen {
                message.push_str(", and while the picker is down requests have nowhere to go");
            }
            conditions.push(
                Condition::ok(reason::RESOLVED_REFS, reason::NO_READY_PODS, message)
                    .scoped("selector"),
            );
        }
        for condition in conditions {
            cx.status.push(key, condition);
        }
    }
}

fn ports(ports: &[u16]) -> String {
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    ports.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "labels": {"app": "vllm"}},
            "status": status,
        }))
        .expect("pod")
    }

    #[test]
    fn a_pod_written_without_conditions_is_ready_once_it_has_an_ip() {
        let ip = pod_ready_ip(&pod(serde_json::json!({"podIP": "10.0.0.1"})));
        assert_eq!(ip, Some("10.0.0.1".parse().expect("ip")));
        assert_eq!(pod_ready_ip(&pod(serde_json::json!({}))), None);
    }

    #[test]
    fn pods_not_ready_finished_or_without_a_valid_ip_are_left_out() {
        let not_ready = serde_json::json!({
            "podIP": "10.0.0.1", "conditions": [{"type": "Ready", "status": "False"}]
        });
        assert_eq!(pod_ready_ip(&pod(not_ready)), None);
        let failed = serde_json::json!({"podIP": "10.0.0.1", "phase": "Failed"});
        assert_eq!(pod_ready_ip(&pod(failed)), None);
        assert_eq!(
            pod_ready_ip(&pod(serde_json::json!({"podIP": "pending"}))),
            None
        );
        let ready = serde_json::json!({
            "podIP": "10.0.0.2", "phase": "Running",
            "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}]
        });
        assert_eq!(
            pod_ready_ip(&pod(ready)),
            Some("10.0.0.2".parse().expect("ip"))
        );
    }

    #[test]
    fn a_terminating_pod_is_left_out() {
        let mut p = pod(serde_json::json!({"podIP": "10.0.0.1"}));
        p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            Default::default(),
        ));
        assert_eq!(pod_ready_ip(&p), None);
    }

    #[test]
    fn names_follow_the_pool() {
        let key = ObjectKey::new(Kind::InferencePool, "default", "mistral");
        assert_eq!(epp_filter_name(&key), "infergate.epp/default/mistral");
        assert_eq!(epp_cluster_name(&key), "epp/default/mistral");
        assert_eq!(pool_cluster_name(&key), "pool/default/mistral");
    }
}
