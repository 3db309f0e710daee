//! The translator: a pure function from an index snapshot to Envoy resources and per-object
//! conditions.
//!
//! Policy: a bad user object becomes a condition on that object and is left out (or, for a
//! Gateway API route rule whose backends do not resolve, answers 500 as the spec asks). It never
//! fails the whole translation, and an object that failed to parse keeps its last good version
//! (the index hands us that one).

pub mod build;
pub mod ir;
pub mod pool;
mod pool_parents;

mod ai_route;
mod assemble;
mod attach;
mod backend;
mod duration;
mod endpoint_slices;
mod extproc_config;
mod gateway;
mod http_route;
mod native_upstream;
mod rate_limit;
mod refs;
mod regex_check;
mod retry;
mod route_common;
mod token_credentials;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::index::IndexSnapshot;
use crate::status::{Condition, StatusReport, reason};
use ir::{ClusterIr, EndpointsIr, ListenerIr, RouteConfigIr};

/// Knobs of the translation that are not in the manifests.
#[derive(Debug, Clone)]
pub struct Options {
    /// Address Envoy listeners bind (e.g. `0.0.0.0`, `127.0.0.1` in tests).
    pub listener_address: String,
    /// Added to Gateway listener ports below 1024 (Envoy Gateway's local convention: 80 → 10080).
    /// 0 keeps ports as written.
    pub privileged_port_offset: u16,
    /// GatewayClass `controllerName`s we serve.
    pub controller_names: Vec<String>,
    /// Upstream connect timeout.
    pub connect_timeout: Duration,
    /// Where the extproc listens; `None` serves AIGatewayRoutes on the `x-ai-eg-model` header
    /// alone, without the extproc's two legs.
    pub extproc: Option<ExtprocOptions>,
    /// File Envoy appends one JSON line per request to (with the model, backend and costs).
    pub access_log: Option<std::path::PathBuf>,
    /// Where Envoy reaches an InferencePool's endpoint picker, by pool `namespace/name`:
    /// `(host, port)` of its ext_proc gRPC service, in place of the `endpointPickerRef` Service's
    /// cluster DNS name (for pickers run by `infergate run` or a test).
    pub epp_endpoints: BTreeMap<String, (String, u16)>,
    /// Where the rate limit service listens; `None` leaves BackendTrafficPolicy rate limits
    /// unenforced (a condition on each policy says so).
    pub ratelimit: Option<RateLimitOptions>,
}

/// The rate limit service as Envoy reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitOptions {
    /// `(host, port)` of each replica's gRPC listener (or a DNS name resolving to several).
    pub endpoints: Vec<(String, u16)>,
    /// How long Envoy waits for a decision before applying the failure mode.
    pub timeout: Duration,
    /// Refuse requests when the service cannot decide (fail closed); the default lets them
    /// through (fail open).
    pub failure_mode_deny: bool,
}

impl RateLimitOptions {
    pub fn ir(&self) -> ir::RateLimitFilterIr {
        ir::RateLimitFilterIr {
            cluster: crate::keys::RATELIMIT_CLUSTER.to_string(),
            timeout: self.timeout,
            failure_mode_deny: self.failure_mode_deny,
        }
    }
}

/// The extproc as Envoy reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtprocOptions {
    /// `(host, port)` of each extproc replica's gRPC listener (a DNS name resolving to several
    /// replicas works too). Unused when `unix_socket` is set.
    pub endpoints: Vec<(String, u16)>,
    /// The extproc's Unix socket, for an extproc on Envoy's machine: cheaper per message than
    /// TCP over loopback.
    pub unix_socket: Option<String>,
    /// How long Envoy waits for each ext_proc answer.
    pub message_timeout: Duration,
    /// Largest request body Envoy buffers for the extproc (bytes); the extproc enforces the same.
    pub body_limit: u64,
}

impl ExtprocOptions {
    /// Default request body limit: 32 MiB.
    pub const DEFAULT_BODY_LIMIT: u64 = 32 * 1024 * 1024;

    pub fn ir(&self) -> ir::ExtprocIr {
        ir::ExtprocIr {
            cluster: crate::keys::EXTPROC_CLUSTER.to_string(),
            message_timeout: self.message_timeout,
            body_limit: self.body_limit,
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            listener_address: "0.0.0.0".into(),
            privileged_port_offset: 0,
            controller_names: crate::keys::DEFAULT_CONTROLLER_NAMES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            connect_timeout: Duration::from_secs(5),
            extproc: None,
            access_log: None,
            epp_endpoints: BTreeMap::new(),
            ratelimit: None,
        }
    }
}

/// Envoy config for one set of Gateways, in the translator's model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct XdsIr {
    pub listeners: Vec<ListenerIr>,
    pub route_configs: Vec<RouteConfigIr>,
    pub clusters: Vec<ClusterIr>,
    /// For EDS clusters only.
    pub endpoints: Vec<EndpointsIr>,
}

/// The translator's output.
#[derive(Debug, Clone, Default)]
pub struct Translation {
    /// Every Gateway's config (for Envoys whose node cluster is `infergate`).
    pub all: XdsIr,
    /// Per Gateway `namespace/name`.
    pub by_gateway: BTreeMap<String, XdsIr>,
    pub status: StatusReport,
    /// Where each Gateway listener is served: `namespace/name` → `(listener name, port)`.
    pub served_ports: BTreeMap<String, Vec<(String, u16)>>,
    /// The extproc's configuration, when an extproc is configured.
    pub extproc: Option<extproc::config::Config>,
}

pub fn translate(snapshot: &IndexSnapshot, options: &Options) -> Translation {
    let mut status = StatusReport {
        source_errors: snapshot.source_errors.clone(),
        ..Default::default()
    };
    for (key, invalid) in &snapshot.invalid {
        let suffix = if invalid.serving_last_good {
            "; the last good version keeps serving"
        } else {
            ""
        };
        status.push(
            key,
            Condition::fail(
                reason::ACCEPTED,
                reason::INVALID,
                format!("{}{suffix}", invalid.message),
            ),
        );
    }
    let mut cx = Cx {
        snapshot,
        options,
        status,
        epps: BTreeMap::new(),
    };
    let gateways = gateway::resolve(&mut cx);
    let attachments = attach::Attachments::new(&gateways);
    let mut routes = Vec::new();
    http_route::translate_all(&mut cx, &attachments, &mut routes);
    ai_route::translate_all(&mut cx, &attachments, &mut routes);
    regex_check::drop_bad_matches(&mut cx, &mut routes);
    let extproc = options
        .extproc
        .as_ref()
        .map(|e| extproc_config::build(&mut cx, e.body_limit));
    if let Some(config) = &extproc {
        native_upstream::apply(config, &mut routes);
    }
    pool::report(&mut cx);
    let rate_limits = rate_limit::compile(&mut cx);
    let retries = retry::compile(&mut cx);
    backend::report_unattached(&mut cx);
    cx.status.pool_parents = pool_parents::collect(snapshot, &cx.status);
    let (all, by_gateway) =
        assemble::assemble(&gateways, routes, options, &cx.epps, &rate_limits, &retries);
    for (key, origin) in &snapshot.origins {
        if let Some(object) = cx.status.objects.get_mut(key) {
            object.origin = Some(origin.clone());
        }
    }
    let served_ports = gateways
        .iter()
        .map(|g| {
            let ports = g
                .listeners
                .iter()
                .filter(|l| l.valid)
                .map(|l| (l.name.clone(), l.port))
                .collect();
            (g.key.namespaced_name(), ports)
        })
        .collect();
    Translation {
        all,
        by_gateway,
        status: cx.status,
        served_ports,
        extproc,
    }
}

/// What every translation step shares.
pub(crate) struct Cx<'a> {
    pub snapshot: &'a IndexSnapshot,
    pub options: &'a Options,
    pub status: StatusReport,
    /// Endpoint-picker filters of the InferencePools route rules send to, by filter name.
    pub epps: BTreeMap<String, ir::EppIr>,
}
