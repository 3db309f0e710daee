//! The translator's own model of the Envoy config it produces. Plain data deriving `Hash`, so a
//! resource's version is a hash of this model (prost maps are `HashMap`s: hashing encoded bytes
//! would give a new version for identical config). `build/` turns each of these into Envoy protos.

use std::collections::BTreeMap;
use std::time::Duration;

/// One Envoy listener: a port on an address, with one HTTP connection manager over RDS.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ListenerIr {
    pub name: String,
    pub address: String,
    pub port: u16,
    /// Name of the RouteConfiguration (fetched over RDS).
    pub route_config: String,
    /// The listener serves AIGatewayRoutes: unknown models get an OpenAI-shaped 404.
    pub ai_routes: bool,
    /// Router-leg ext_proc, on listeners with AIGatewayRoutes when an extproc is configured.
    pub extproc: Option<ExtprocIr>,
    /// JSON access log file.
    pub access_log: Option<String>,
    /// One endpoint-picker ext_proc filter per InferencePool routed to on this listener, after
    /// the router leg and before the router (sorted by filter name).
    pub epps: Vec<EppIr>,
    /// The rate limit filter, after the router leg (so `x-ai-eg-model` is set) and before the
    /// pickers; present when a route on this listener has rate limits.
    pub ratelimit: Option<RateLimitFilterIr>,
}

/// Where Envoy reaches the rate limit service and what it does when it cannot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RateLimitFilterIr {
    pub cluster: String,
    /// How long Envoy waits for a decision.
    pub timeout: Duration,
    /// `true`: a request the service did not answer for is refused (fail closed); `false`: it
    /// passes (fail open, counted in Envoy's `ratelimit.failure_mode_allowed`).
    pub failure_mode_deny: bool,
}

/// One descriptor Envoy sends to the rate limit service for a route; the entry keys and their
/// meaning are the service's wire contract (ratelimit/README.md).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RateLimitIr {
    pub entries: Vec<DescriptorEntryIr>,
    pub hits: HitsIr,
    /// Sent when the stream ends (token usage is known then); never rejects.
    pub on_stream_done: bool,
}

/// Where one descriptor entry's value comes from. A request the entry cannot be made for (a
/// missing header, a failed match, absent metadata) sends no descriptor for that limit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DescriptorEntryIr {
    /// A fixed `key = value` (the rule id, its limit, its mode).
    Fixed { key: String, value: String },
    /// The value of a request header (one counter per distinct value).
    RequestHeader { header: String, key: String },
    /// `key = value` when the header matches (or, with `expect_match: false`, does not).
    HeaderMatch {
        key: String,
        value: String,
        header: String,
        matcher: StringMatchIr,
        expect_match: bool,
    },
    /// A string from dynamic metadata.
    Metadata {
        key: String,
        namespace: String,
        metadata_key: String,
    },
}

/// How many units one descriptor counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HitsIr {
    Number(u64),
    /// A substitution format with one operator, e.g. `%DYNAMIC_METADATA(ns:key)%`.
    Format(String),
}

/// An InferencePool's endpoint picker (EPP) as an HCM ext_proc filter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EppIr {
    /// Filter name, `infergate.epp/<ns>/<pool>`: the key of per-route overrides.
    pub filter: String,
    /// The gRPC cluster of the picker, `epp/<ns>/<pool>`.
    pub cluster: String,
    /// `:authority` of the gRPC calls (the cluster name's `/` is not a valid one).
    pub authority: String,
    pub body_mode: EppBodyModeIr,
    /// The picker may change the processing mode per request.
    pub allow_mode_override: bool,
    /// `FailOpen`: a picker that does not answer lets the request through unpicked.
    pub failure_mode_allow: bool,
    pub message_timeout: Duration,
}

/// How the request body reaches the picker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EppBodyModeIr {
    /// The whole body in one message (`aigateway.envoyproxy.io/processing-body-mode: buffered`).
    Buffered,
    /// Chunks both ways, headers answered after the body (`duplex`).
    FullDuplexStreamed,
}

/// Where Envoy reaches the extproc and how long it waits for it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExtprocIr {
    pub cluster: String,
    pub message_timeout: Duration,
    /// Largest request body Envoy buffers for the extproc (bytes).
    pub body_limit: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteConfigIr {
    pub name: String,
    pub virtual_hosts: Vec<VirtualHostIr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VirtualHostIr {
    pub name: String,
    pub domains: Vec<String>,
    /// Request body buffer limit (bytes), raised for AI virtual hosts so whole prompts buffer.
    pub body_limit: Option<u64>,
    /// In match order (Gateway API precedence already applied).
    pub routes: Vec<RouteIr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteIr {
    /// `kind/namespace/name/rule/<i>/match/<j>`: shows up in Envoy stats and logs.
    pub name: String,
    pub matcher: MatchIr,
    pub action: ActionIr,
    /// Route metadata for the extproc and access logs (`namespace → key → value`).
    pub metadata: BTreeMap<String, BTreeMap<String, String>>,
    /// The router-leg ext_proc is turned off on this route (an HTTPRoute on an AI listener).
    pub extproc_disabled: bool,
    /// The endpoint-picker filter of each InferencePool cluster this route sends to (pool
    /// cluster → filter name). With two pools or more (a weighted split), each weighted cluster
    /// turns the other pools' pickers off, so only the picker of the pool it sends to runs.
    pub epps: BTreeMap<String, String>,
    /// Endpoint-picker filters of the listener turned off on this route (every one not in
    /// [`RouteIr::epps`]; set when the route is placed on a listener).
    pub epp_disabled: Vec<String>,
    /// Rate limit descriptors of the policies that apply here (set when the route is placed on
    /// a listener).
    pub rate_limits: Vec<RateLimitIr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct MatchIr {
    pub path: PathMatchIr,
    pub headers: Vec<HeaderMatchIr>,
    pub query: Vec<QueryMatchIr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathMatchIr {
    Exact(String),
    /// Gateway API `PathPrefix`: matches whole path segments.
    Prefix(String),
    Regex(String),
}

impl Default for PathMatchIr {
    fn default() -> Self {
        PathMatchIr::Prefix("/".into())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HeaderMatchIr {
    pub name: String,
    pub value: StringMatchIr,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QueryMatchIr {
    pub name: String,
    pub value: StringMatchIr,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StringMatchIr {
    Exact(String),
    Regex(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ActionIr {
    Forward(ForwardIr),
    /// A local answer (e.g. 500 for a rule whose backends are all unresolved).
    Respond {
        status: u32,
        body: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ForwardIr {
    /// Clusters with weights; one entry means a plain `cluster` action.
    pub clusters: Vec<(String, u32)>,
    /// Weight given to a local 500 for backendRefs that did not resolve (Gateway API semantics).
    pub invalid_weight: u32,
    pub timeout: Option<Duration>,
    pub per_try_timeout: Option<Duration>,
    /// Number of retries that fail over to the next priority (0 = no retry policy).
    pub failover_retries: u32,
    /// `Host` becomes the picked endpoint's hostname (providers behind a DNS name, such as
    /// `api.openai.com`, route and sign on it); IP endpoints keep the client's.
    pub auto_host_rewrite: bool,
    /// A BackendTrafficPolicy's retry (set when the route is placed on a listener).
    pub retry: Option<Box<RetryIr>>,
    /// The response names the chosen host's backend, route and rule (its `infergate.backend`
    /// metadata) in internal headers for the router leg, which strips them again. Set when
    /// the route is placed on a listener with the router leg.
    pub names_backend: bool,
}

/// A BackendTrafficPolicy's `retry`, in Envoy's terms.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RetryIr {
    /// Envoy `retry_on` conditions, comma-separated.
    pub retry_on: String,
    pub num_retries: u32,
    /// For `retriable-status-codes`.
    pub status_codes: Vec<u32>,
    pub per_try_timeout: Option<Duration>,
    /// Base and maximum back-off interval.
    pub back_off: Option<(Duration, Option<Duration>)>,
    /// Attempts on one priority before the next (failover routes).
    pub attempts_per_priority: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClusterIr {
    pub name: String,
    pub discovery: DiscoveryIr,
    /// One TLS context per distinct upstream TLS setting, matched on endpoint metadata.
    pub tls: Vec<TlsIr>,
    /// Eject hosts that fail so later requests go to the next priority directly.
    pub outlier_detection: bool,
    pub connect_timeout: Duration,
    pub protocol: ClusterProtocolIr,
    /// Send to the host a request names (an InferencePool's picked endpoint), else fall back to
    /// round robin; `None` is locality-weighted round robin.
    pub override_host: Option<OverrideHostIr>,
    /// Envoy checks the hosts with TCP connects and never sends to one that fails (no panic
    /// routing): a FailOpen pool's picker that is down is then skipped at once, which is what
    /// lets the ext_proc filter fail open before any of the body went to it.
    pub tcp_health_check: bool,
}

/// Envoy's override-host load balancing: the endpoint picker names the host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OverrideHostIr {
    /// Request header with `ip:port[,ip:port…]`.
    pub header: String,
    /// Dynamic metadata `(namespace, key)` with the same list.
    pub metadata: (String, String),
    /// Dynamic metadata `(namespace, key)` the served host is written to.
    pub served: (String, String),
}

/// What a cluster speaks upstream.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClusterProtocolIr {
    /// Envoy's default (HTTP/1.1).
    Default,
    /// HTTP/2 (gRPC services).
    Http2,
    /// HTTP/1.1 with the extproc's upstream leg before the codec (AI rule clusters).
    UpstreamExtproc(ExtprocIr),
    /// HTTP/1.1 to one plain OpenAI-schema backend: Envoy's own filters do what the upstream
    /// leg would for OpenAI requests (headers, key), and the leg runs only for the requests
    /// it has to translate.
    NativeUpstream(NativeUpstreamIr),
}

/// The upstream leg's work for an OpenAI request to a plain OpenAI backend, as Envoy filters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NativeUpstreamIr {
    /// Still run for requests whose original path is not an OpenAI one (`/v1/...`).
    pub extproc: ExtprocIr,
    /// Request headers removed: internal ones, client credentials, `accept-encoding` and
    /// the mutations' removals.
    pub remove: Vec<String>,
    /// Request headers set, in order (the mutations' `set`).
    pub set: Vec<(String, String)>,
    /// Injected from an SDS secret, so the key never shows in Envoy's config dump.
    pub credential: Option<SecretIr>,
}

/// A header value Envoy injects from an SDS generic secret.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SecretIr {
    /// The SDS resource name.
    pub name: String,
    pub header: String,
    pub value: String,
}

impl std::fmt::Debug for SecretIr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretIr")
            .field("name", &self.name)
            .field("header", &self.header)
            .field("value", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DiscoveryIr {
    /// Endpoints arrive over EDS (all addresses are IPs).
    Eds,
    /// Endpoints inline, hostnames resolved by Envoy.
    StrictDns(EndpointsIr),
    /// No endpoints: each request goes to the `ip:port` its `header` names (an InferencePool's
    /// picked endpoint); Envoy creates hosts on demand.
    OriginalDst { header: String },
    /// One local endpoint on a Unix socket (a co-located service such as the extproc).
    Pipe { path: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TlsIr {
    /// Matched against endpoint metadata `envoy.transport_socket_match: {tls: <name>}`.
    pub name: String,
    pub sni: Option<String>,
    /// PEM file or inline PEM of CAs; `None` with `insecure_skip_verify` false uses the system CAs.
    pub ca: Option<CaIr>,
    pub insecure_skip_verify: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CaIr {
    System,
    InlinePem(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EndpointsIr {
    pub cluster: String,
    pub localities: Vec<LocalityIr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LocalityIr {
    /// Names the backend this group of endpoints belongs to (shows in Envoy stats).
    pub name: String,
    pub priority: u32,
    pub weight: u32,
    pub endpoints: Vec<EndpointIr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EndpointIr {
    pub address: String,
    pub port: u16,
    /// Host metadata (`namespace → key → value`), read by the extproc's upstream leg.
    pub metadata: BTreeMap<String, BTreeMap<String, String>>,
}

impl EndpointIr {
    /// True when the address is an IP literal (EDS can carry it); false for a hostname.
    pub fn is_ip(&self) -> bool {
        self.address.parse::<std::net::IpAddr>().is_ok()
    }
}
