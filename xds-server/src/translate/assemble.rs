//! Attached route rules → one listener, route configuration and cluster set per Gateway port,
//! in Gateway API precedence order.

use std::collections::{BTreeMap, BTreeSet};

use super::attach::{ListenerRef, hostnames_intersect};
use super::gateway::GatewayModel;
use super::ir::{
    ActionIr, ClusterIr, ClusterProtocolIr, DiscoveryIr, EndpointIr, EndpointsIr, EppIr, ForwardIr,
    ListenerIr, LocalityIr, MatchIr, PathMatchIr, RouteConfigIr, RouteIr, VirtualHostIr,
};
use super::rate_limit::RateLimits;
use super::{ExtprocOptions, Options, XdsIr};
use crate::object::ObjectKey;

/// A translated route object, ready to be placed on listeners.
#[derive(Debug)]
pub struct RouteModel {
    pub key: ObjectKey,
    /// `metadata.creationTimestamp`, for precedence ties.
    pub created: Option<String>,
    pub hostnames: Vec<String>,
    pub attached: Vec<ListenerRef>,
    pub rules: Vec<RouteIr>,
    pub clusters: Vec<ClusterIr>,
    pub endpoints: Vec<EndpointsIr>,
    /// An AIGatewayRoute: its listeners answer unknown models with a 404 JSON error.
    pub ai: bool,
}

/// Gateway API route precedence; smaller sorts first.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Precedence {
    path_kind: u8,
    /// Longer prefixes first.
    path_len: std::cmp::Reverse<usize>,
    /// Method matches first (`:method` header).
    no_method: bool,
    headers: std::cmp::Reverse<usize>,
    query: std::cmp::Reverse<usize>,
    created: Option<String>,
    route: String,
    order: usize,
}

fn precedence(
    m: &MatchIr,
    created: &Option<String>,
    route: &ObjectKey,
    order: usize,
) -> Precedence {
    let (path_kind, len) = match &m.path {
        PathMatchIr::Exact(p) => (0, p.len()),
        PathMatchIr::Regex(r) => (1, r.len()),
        PathMatchIr::Prefix(p) => (2, p.len()),
    };
    let has_method = m.headers.iter().any(|h| h.name == ":method");
    Precedence {
        path_kind,
        path_len: std::cmp::Reverse(len),
        no_method: !has_method,
        headers: std::cmp::Reverse(m.headers.len() - usize::from(has_method)),
        query: std::cmp::Reverse(m.query.len()),
        // Routes without a timestamp (files) sort after timestamped ones, by name.
        created: created.clone().or_else(|| Some("~".into())),
        route: format!("{}/{}", route.kind, route.namespaced_name()),
        order,
    }
}

pub fn assemble(
    gateways: &[GatewayModel],
    routes: Vec<RouteModel>,
    options: &Options,
    epps: &BTreeMap<String, EppIr>,
    rate_limits: &RateLimits,
    retries: &super::retry::Retries,
) -> (XdsIr, BTreeMap<String, XdsIr>) {
    // (gateway, port) → vhost domain → routes with precedence; and whether AI routes are there.
    type VHosts = BTreeMap<String, (Vec<(Precedence, RouteIr)>, bool)>;
    let mut ports: BTreeMap<(usize, u16), VHosts> = BTreeMap::new();
    let mut used_clusters: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for (g, gateway) in gateways.iter().enumerate() {
        for listener in gateway.listeners.iter().filter(|l| l.valid) {
            let vhosts = ports.entry((g, listener.port)).or_default();
            vhosts
                .entry(domain_key(listener.hostname.as_deref()))
                .or_default();
        }
    }
    let mut clusters: BTreeMap<String, ClusterIr> = BTreeMap::new();
    let mut endpoints: BTreeMap<String, EndpointsIr> = BTreeMap::new();
    // A route attached to two listeners of one port lands in a virtual host once.
    let mut placed: BTreeSet<(usize, u16, String, ObjectKey)> = BTreeSet::new();
    for route in routes {
        for at in &route.attached {
            let listener = &gateways[at.gateway].listeners[at.listener];
            let domains = effective_domains(listener.hostname.as_deref(), &route.hostnames);
            let vhosts = ports.entry((at.gateway, listener.port)).or_default();
            for domain in domains {
                let place = (at.gateway, listener.port, domain.clone(), route.key.clone());
                if !placed.insert(place) {
                    continue;
                }
                let (entries, ai) = vhosts.entry(domain).or_default();
                *ai |= route.ai;
                let limits = if options.ratelimit.is_some() {
                    rate_limits.for_placement(&route.key, &gateways[at.gateway].key, &listener.name)
                } else {
                    Vec::new()
                };
                let retry =
                    retries.for_placement(&route.key, &gateways[at.gateway].key, &listener.name);
                for (order, rule) in route.rules.iter().enumerate() {
                    let p = precedence(&rule.matcher, &route.created, &route.key, order);
                    // Only AI routes go through the router leg (settled per listener below).
                    let forwards = matches!(rule.action, ActionIr::Forward(_));
                    let action = match &rule.action {
                        ActionIr::Forward(forward) => ActionIr::Forward(ForwardIr {
                            retry: retry
                                .clone()
                                .map(Box::new)
                                .or_else(|| forward.retry.clone()),
                            names_backend: route.ai && options.extproc.is_some(),
                            ..forward.clone()
                        }),
                        other => other.clone(),
                    };
                    let rule = RouteIr {
                        extproc_disabled: !route.ai,
                        rate_limits: if forwards { limits.clone() } else { Vec::new() },
                        action,
                        ..rule.clone()
                    };
                    entries.push((p, rule));
                }
            }
            let used = used_clusters.entry(at.gateway).or_default();
            used.extend(route.clusters.iter().map(|c| c.name.clone()));
        }
        if !route.attached.is_empty() {
            for cluster in route.clusters {
                clusters.entry(cluster.name.clone()).or_insert(cluster);
            }
            for e in route.endpoints {
                endpoints.entry(e.cluster.clone()).or_insert(e);
            }
        }
    }
    let mut all = XdsIr::default();
    let mut by_gateway: BTreeMap<String, XdsIr> = BTreeMap::new();
    for ((g, port), vhosts) in ports {
        let gateway = &gateways[g];
        let name = format!("{}/{port}", gateway.key.namespaced_name());
        let ai_routes = vhosts.values().any(|(_, ai)| *ai);
        let extproc = options
            .extproc
            .as_ref()
            .filter(|_| ai_routes)
            .map(|e| e.ir());
        // Every InferencePool's picker a route of this port sends to; each is on only there.
        let listener_epps: Vec<EppIr> = vhosts
            .values()
            .flat_map(|(entries, _)| entries.iter().flat_map(|(_, r)| r.epps.values()))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter_map(|filter| epps.get(filter).cloned())
            .collect();
        let virtual_hosts: Vec<VirtualHostIr> = vhosts
            .into_iter()
            .map(|(domain, (mut entries, ai))| {
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                let mut routes: Vec<RouteIr> = entries.into_iter().map(|(_, r)| r).collect();
                if ai {
                    routes.push(unknown_model_route(&name));
                }
                if extproc.is_none() {
                    routes.iter_mut().for_each(|r| r.extproc_disabled = false);
                }
                for route in &mut routes {
                    route.epp_disabled = listener_epps
                        .iter()
                        .filter(|e| !route.epps.values().any(|f| *f == e.filter))
                        .map(|e| e.filter.clone())
                        .collect();
                }
                // Pickers buffer whole prompts too.
                let pool_routes = routes.iter().any(|r| !r.epps.is_empty());
                let body_limit = extproc
                    .as_ref()
                    .filter(|_| ai || pool_routes)
                    .map(|e| e.body_limit)
                    .or(pool_routes.then_some(ExtprocOptions::DEFAULT_BODY_LIMIT));
                VirtualHostIr {
                    name: format!("{name}/{domain}"),
                    domains: vec![domain],
                    body_limit,
                    routes,
                }
            })
            .collect();
        let limited = virtual_hosts
            .iter()
            .any(|v| v.routes.iter().any(|r| !r.rate_limits.is_empty()));
        let listener = ListenerIr {
            ratelimit: options
                .ratelimit
                .as_ref()
                .filter(|_| limited)
                .map(|r| r.ir()),
            name: name.clone(),
            address: options.listener_address.clone(),
            port,
            route_config: name.clone(),
            ai_routes,
            extproc: extproc.clone(),
            access_log: options.access_log.as_ref().map(|p| p.display().to_string()),
            epps: listener_epps,
        };
        let route_config = RouteConfigIr {
            name,
            virtual_hosts,
        };
        let per = by_gateway.entry(gateway.key.namespaced_name()).or_default();
        per.listeners.push(listener.clone());
        per.route_configs.push(route_config.clone());
        all.listeners.push(listener);
        all.route_configs.push(route_config);
    }
    for (g, used) in used_clusters {
        let per = by_gateway
            .entry(gateways[g].key.namespaced_name())
            .or_default();
        per.clusters
            .extend(used.iter().filter_map(|c| clusters.get(c).cloned()));
        per.endpoints
            .extend(used.iter().filter_map(|c| endpoints.get(c).cloned()));
    }
    if let Some(extproc) = &options.extproc {
        let service = extproc_cluster(extproc, options);
        for config in by_gateway.values_mut().chain(std::iter::once(&mut all)) {
            if config.listeners.iter().any(|l| l.extproc.is_some()) {
                config.clusters.push(service.clone());
            }
        }
    }
    if let Some(ratelimit) = &options.ratelimit {
        let service = grpc_cluster(
            crate::keys::RATELIMIT_CLUSTER,
            "ratelimit",
            &ratelimit.endpoints,
            options,
        );
        for config in by_gateway.values_mut().chain(std::iter::once(&mut all)) {
            if config.listeners.iter().any(|l| l.ratelimit.is_some()) {
                config.clusters.push(service.clone());
            }
        }
    }
    all.clusters.extend(clusters.into_values());
    all.endpoints = endpoints.into_values().collect();
    (all, by_gateway)
}

/// Envoy domain for a listener hostname (`*` for any).
fn domain_key(hostname: Option<&str>) -> String {
    hostname.unwrap_or("*").to_string()
}

/// Where a route's rules go on a listener: the listener's hostname, narrowed by the route's.
fn effective_domains(listener: Option<&str>, route: &[String]) -> Vec<String> {
    if route.is_empty() {
        return vec![domain_key(listener)];
    }
    let mut domains: Vec<String> = route
        .iter()
        .filter(|h| hostnames_intersect(listener, h))
        .map(|h| match listener {
            // The more specific of the two wins.
            Some(l) if h.starts_with("*.") && !l.starts_with("*.") => l.to_string(),
            _ => h.clone(),
        })
        .collect();
    domains.sort();
    domains.dedup();
    domains
}

/// Last route of an AI virtual host: a 404 that the listener's local reply turns into an
/// OpenAI-shaped `model_not_found` error.
fn unknown_model_route(listener: &str) -> RouteIr {
    RouteIr {
        name: format!("{listener}/unknown-model"),
        matcher: MatchIr::default(),
        action: ActionIr::Respond {
            status: 404,
            body: String::new(),
        },
        metadata: BTreeMap::new(),
        extproc_disabled: false,
        epps: BTreeMap::new(),
        epp_disabled: Vec::new(),
        rate_limits: Vec::new(),
    }
}

/// The gRPC cluster Envoy reaches the extproc through (HTTP/2, DNS so several replicas behind
/// one name all take traffic).
fn extproc_cluster(extproc: &ExtprocOptions, options: &Options) -> ClusterIr {
    if let Some(path) = &extproc.unix_socket {
        let mut cluster = grpc_cluster(crate::keys::EXTPROC_CLUSTER, "extproc", &[], options);
        cluster.discovery = DiscoveryIr::Pipe { path: path.clone() };
        return cluster;
    }
    grpc_cluster(
        crate::keys::EXTPROC_CLUSTER,
        "extproc",
        &extproc.endpoints,
        options,
    )
}

/// A gRPC service's cluster: HTTP/2, strict DNS over the given `(host, port)`s.
fn grpc_cluster(
    name: &str,
    locality: &str,
    endpoints: &[(String, u16)],
    options: &Options,
) -> ClusterIr {
    let endpoints = endpoints
        .iter()
        .map(|(address, port)| EndpointIr {
            address: address.clone(),
            port: *port,
            metadata: BTreeMap::new(),
        })
        .collect();
    let name = name.to_string();
    let localities = vec![LocalityIr {
        name: locality.into(),
        priority: 0,
        weight: 1,
        endpoints,
    }];
    ClusterIr {
        name: name.clone(),
        discovery: DiscoveryIr::StrictDns(EndpointsIr {
            cluster: name,
            localities,
        }),
        tls: Vec::new(),
        outlier_detection: false,
        connect_timeout: options.connect_timeout,
        protocol: ClusterProtocolIr::Http2,
        override_host: None,
        tcp_health_check: false,
    }
}
