//! [`Config`] → [`RuntimeConfig`]: validated, compiled, indexed by name.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use super::{
    BackendConfig, BodyMutationConfig, Config, CredentialConfig, HeaderMutationConfig, RouteConfig,
};
use crate::costs::Cost;
use crate::keys;

/// `schema.name`s the extproc can send requests to (every one serves `/v1/chat/completions`).
pub const SUPPORTED_SCHEMAS: &[&str] = &[
    "OpenAI",
    "Anthropic",
    "AzureOpenAI",
    "AWSBedrock",
    "AWSAnthropic",
    "GCPAnthropic",
    "GCPVertexAI",
];

/// The compiled config every request reads.
#[derive(Debug, Default)]
pub struct RuntimeConfig {
    pub version: String,
    pub request_body_limit: u64,
    pub routes: BTreeMap<String, Arc<Route>>,
    pub backends: BTreeMap<String, Arc<Backend>>,
    /// Routes with `llmRequestCosts`, by the models they list, so a request finds the costs to
    /// reserve for without scanning every route.
    pub costed: CostedRoutes,
}

/// The routes that define costs: all of them, and by exact model.
#[derive(Debug, Default)]
pub struct CostedRoutes {
    pub all: Vec<Arc<Route>>,
    pub by_model: std::collections::HashMap<String, Vec<Arc<Route>>>,
}

impl CostedRoutes {
    fn new(routes: &BTreeMap<String, Arc<Route>>) -> CostedRoutes {
        let mut out = CostedRoutes::default();
        for route in routes.values() {
            let costed = !route.costs.is_empty();
            if costed {
                out.all.push(route.clone());
            }
            let mut models: Vec<&str> = route
                .rules
                .iter()
                .flat_map(|rule| rule.models.iter().map(|m| m.id.as_str()))
                .collect();
            models.sort_unstable();
            models.dedup();
            for model in models {
                // Every listed model gets an entry, so one served only by routes without
                // costs reserves nothing rather than falling back to every costed route.
                let entry = out.by_model.entry(model.to_string()).or_default();
                if costed {
                    entry.push(route.clone());
                }
            }
        }
        out
    }

    /// The routes serving `model` by name, or every costed route when none lists it (as with
    /// regex matches).
    pub fn for_model(&self, model: &str) -> &[Arc<Route>] {
        self.by_model.get(model).map_or(&self.all, Vec::as_slice)
    }
}

#[derive(Debug)]
pub struct Route {
    pub name: String,
    /// Lower-case hostnames; empty serves every host.
    pub hostnames: Vec<String>,
    pub rules: Vec<Rule>,
    pub costs: Vec<Cost>,
}

#[derive(Debug)]
pub struct Rule {
    pub models: Vec<ListedModel>,
    pub backend_refs: Vec<BackendRef>,
}

/// A model as `/v1/models` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedModel {
    pub id: String,
    pub owned_by: String,
    pub created: jiff::Timestamp,
}

#[derive(Debug)]
pub struct BackendRef {
    pub backend: String,
    pub model_name_override: Option<String>,
    pub header_mutation: HeaderMutation,
    pub body_mutation: BodyMutation,
}

#[derive(Debug)]
pub struct Backend {
    pub name: String,
    pub schema: Schema,
    pub header_mutation: HeaderMutation,
    pub body_mutation: BodyMutation,
    pub credential: Option<Credential>,
    /// Clients may bring their own credential.
    pub credential_override: Option<CredentialOverride>,
}

/// `credentialOverride.fromRequestHeaders`, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialOverride {
    /// Lower-case request header; `None`: the provider's own credential header.
    pub header: Option<String>,
    pub fallback_to_configured: bool,
}

/// The API an upstream speaks, with the path prefix it serves it under (`/v1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schema {
    OpenAI {
        prefix: String,
    },
    /// Native Messages API; also the target of translated chat completions.
    Anthropic {
        prefix: String,
        /// `anthropic-version` of translated requests.
        version: Option<String>,
    },
    /// Azure OpenAI: deployments in the path, `api-version` in the query.
    AzureOpenAI {
        version: String,
    },
    /// AWS Bedrock Converse (chat completions only), SigV4-signed with `AWSCredentials`.
    AWSBedrock,
    /// Claude on AWS Bedrock through InvokeModel: Anthropic bodies (from chat completions or
    /// `/anthropic/v1/messages`), SigV4-signed with `AWSCredentials`.
    AWSAnthropic {
        /// `anthropic_version` of the bodies (Bedrock's when absent).
        version: Option<String>,
    },
    /// Claude on Vertex AI: Anthropic bodies to `rawPredict`/`streamRawPredict`, with the
    /// project and region of its `GCPCredentials` and their minted token.
    GCPAnthropic {
        /// `anthropic_version` of the bodies (Vertex's when absent).
        version: Option<String>,
    },
    /// Gemini on Vertex AI: chat completions to `generateContent`, embeddings to `predict`,
    /// with the project, region and token of its `GCPCredentials`.
    GCPVertexAI,
}

impl Schema {
    pub fn name(&self) -> &'static str {
        match self {
            Schema::OpenAI { .. } => "OpenAI",
            Schema::Anthropic { .. } => "Anthropic",
            Schema::AzureOpenAI { .. } => "AzureOpenAI",
            Schema::AWSBedrock => "AWSBedrock",
            Schema::AWSAnthropic { .. } => "AWSAnthropic",
            Schema::GCPAnthropic { .. } => "GCPAnthropic",
            Schema::GCPVertexAI => "GCPVertexAI",
        }
    }

    /// `gen_ai.provider.name`.
    pub fn provider(&self) -> &'static str {
        match self {
            Schema::OpenAI { .. } => "openai",
            Schema::Anthropic { .. } => "anthropic",
            Schema::AzureOpenAI { .. } => "azure.ai.openai",
            Schema::AWSBedrock | Schema::AWSAnthropic { .. } => "aws.bedrock",
            Schema::GCPAnthropic { .. } | Schema::GCPVertexAI => "gcp.vertex_ai",
        }
    }
}

/// An upstream credential. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    ApiKey(String),
    /// SigV4 signing keys (`AWSCredentials`).
    Aws(AwsCredential),
    /// A service-account key minting OAuth tokens, and the project and region of the models.
    Gcp(GcpCredential),
    /// An Entra ID application's client secret, minting tokens.
    Azure(AzureCredential),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::ApiKey(_) => f.write_str("ApiKey(<redacted>)"),
            Credential::Aws(aws) => {
                write!(f, "Aws {{ region: {:?}, keys: <redacted> }}", aws.region)
            }
            Credential::Gcp(gcp) => write!(
                f,
                "Gcp {{ project: {:?}, region: {:?}, key: <redacted> }}",
                gcp.project, gcp.region
            ),
            Credential::Azure(azure) => write!(
                f,
                "Azure {{ tenant_id: {:?}, client_id: {:?}, secret: <redacted> }}",
                azure.tenant_id, azure.client_id
            ),
        }
    }
}

/// Static AWS keys and the region requests are signed for.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsCredential {
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

/// A GCP project and region, with the service-account key that mints their tokens.
#[derive(Clone, PartialEq, Eq)]
pub struct GcpCredential {
    pub project: String,
    pub region: String,
    pub service_account_key: Option<String>,
    pub token_url: Option<String>,
}

/// An Entra ID application's client credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct AzureCredential {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    pub token_url: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderMutation {
    /// Lower-case name, value.
    pub set: Vec<(String, String)>,
    pub remove: Vec<String>,
}

impl HeaderMutation {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty()
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct BodyMutation {
    /// Field path (split on `.`), value.
    pub set: Vec<(Vec<String>, Value)>,
    pub remove: Vec<Vec<String>>,
}

impl BodyMutation {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty()
    }
}

/// Which kind of object a [`ConfigError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    Route,
    Backend,
}

/// A problem with one object; the control plane turns it into a condition on that object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub kind: ObjectKind,
    pub name: String,
    pub message: String,
    /// Whether the object was left out of the runtime config (`false`: kept, with a warning).
    pub rejected: bool,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            ObjectKind::Route => "route",
            ObjectKind::Backend => "backend",
        };
        write!(f, "{kind} {}: {}", self.name, self.message)
    }
}

#[derive(Debug)]
pub struct BuildOutput {
    pub config: RuntimeConfig,
    pub errors: Vec<ConfigError>,
}

pub(super) fn build(config: &Config) -> BuildOutput {
    let mut errors = Vec::new();
    let mut backends = BTreeMap::new();
    for backend in &config.backends {
        if backends.contains_key(&backend.name) {
            errors.push(reject(ObjectKind::Backend, &backend.name, "duplicate name"));
            continue;
        }
        match build_backend(backend) {
            Ok(b) => {
                backends.insert(backend.name.clone(), Arc::new(b));
            }
            Err(message) => errors.push(reject(ObjectKind::Backend, &backend.name, &message)),
        }
    }
    let mut routes = BTreeMap::new();
    for route in &config.routes {
        if routes.contains_key(&route.name) {
            errors.push(reject(ObjectKind::Route, &route.name, "duplicate name"));
            continue;
        }
        match build_route(route) {
            Ok(r) => {
                for rule in &r.rules {
                    for backend_ref in &rule.backend_refs {
                        if !backends.contains_key(&backend_ref.backend) {
                            let why = if config
                                .backends
                                .iter()
                                .any(|b| b.name == backend_ref.backend)
                            {
                                "is invalid; its requests are refused"
                            } else {
                                "not found"
                            };
                            errors.push(ConfigError {
                                kind: ObjectKind::Route,
                                name: route.name.clone(),
                                message: format!("backend {} {why}", backend_ref.backend),
                                rejected: false,
                            });
                        }
                    }
                }
                routes.insert(route.name.clone(), Arc::new(r));
            }
            Err(message) => errors.push(reject(ObjectKind::Route, &route.name, &message)),
        }
    }
    BuildOutput {
        config: RuntimeConfig {
            version: config.version.clone(),
            request_body_limit: config
                .request_body_limit_bytes
                .unwrap_or(keys::DEFAULT_REQUEST_BODY_LIMIT),
            costed: CostedRoutes::new(&routes),
            routes,
            backends,
        },
        errors,
    }
}

fn reject(kind: ObjectKind, name: &str, message: &str) -> ConfigError {
    ConfigError {
        kind,
        name: name.to_string(),
        message: message.to_string(),
        rejected: true,
    }
}

fn check_name(name: &str) -> Result<(), String> {
    match name.split_once('/') {
        Some((ns, n)) if !ns.is_empty() && !n.is_empty() && !n.contains('/') => Ok(()),
        _ => Err(format!("name {name:?} must be namespace/name")),
    }
}

fn build_route(route: &RouteConfig) -> Result<Route, String> {
    check_name(&route.name)?;
    let mut keys_seen = BTreeSet::new();
    let mut costs = Vec::new();
    for cost in &route.llm_request_costs {
        if !keys_seen.insert(cost.metadata_key.as_str()) {
            return Err(format!(
                "llmRequestCosts: metadataKey {} appears twice",
                cost.metadata_key
            ));
        }
        costs.push(Cost::compile(cost)?);
    }
    let epoch = jiff::Timestamp::UNIX_EPOCH;
    let mut rules = Vec::new();
    for (i, rule) in route.rules.iter().enumerate() {
        let created = rule.models_created_at.or(route.created_at).unwrap_or(epoch);
        let owned_by = rule
            .models_owned_by
            .clone()
            .unwrap_or_else(|| keys::DEFAULT_MODELS_OWNED_BY.to_string());
        let mut models = Vec::new();
        for model in &rule.models {
            if model.is_empty() {
                return Err(format!("rule {i}: empty model name"));
            }
            models.push(ListedModel {
                id: model.clone(),
                owned_by: owned_by.clone(),
                created,
            });
        }
        let mut backend_refs = Vec::new();
        for r in &rule.backend_refs {
            check_name(&r.name).map_err(|e| format!("rule {i}: backendRef {e}"))?;
            if r.model_name_override.as_deref() == Some("") {
                return Err(format!(
                    "rule {i}: backendRef {}: modelNameOverride is empty",
                    r.name
                ));
            }
            backend_refs.push(BackendRef {
                backend: r.name.clone(),
                model_name_override: r.model_name_override.clone(),
                header_mutation: header_mutation(r.header_mutation.as_ref())
                    .map_err(|e| format!("rule {i}: backendRef {}: {e}", r.name))?,
                body_mutation: body_mutation(r.body_mutation.as_ref())
                    .map_err(|e| format!("rule {i}: backendRef {}: {e}", r.name))?,
            });
        }
        rules.push(Rule {
            models,
            backend_refs,
        });
    }
    Ok(Route {
        name: route.name.clone(),
        hostnames: route
            .hostnames
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect(),
        rules,
        costs,
    })
}

fn build_backend(backend: &BackendConfig) -> Result<Backend, String> {
    check_name(&backend.name)?;
    let prefix = |default: &str| {
        let raw = backend.schema.prefix.as_deref().unwrap_or(default);
        let trimmed = raw.trim_matches('/');
        if trimmed.is_empty() {
            String::new()
        } else {
            format!("/{trimmed}")
        }
    };
    let schema = match backend.schema.name.as_str() {
        "OpenAI" => Schema::OpenAI {
            prefix: prefix(keys::DEFAULT_OPENAI_PREFIX),
        },
        "Anthropic" => Schema::Anthropic {
            prefix: prefix(keys::DEFAULT_ANTHROPIC_PREFIX),
            version: backend.schema.version.clone().filter(|v| !v.is_empty()),
        },
        "AWSBedrock" => Schema::AWSBedrock,
        "GCPVertexAI" => Schema::GCPVertexAI,
        "AWSAnthropic" => Schema::AWSAnthropic {
            version: backend
                .schema
                .version
                .clone()
                .filter(|v| !v.trim().is_empty()),
        },
        "GCPAnthropic" => Schema::GCPAnthropic {
            version: backend
                .schema
                .version
                .clone()
                .filter(|v| !v.trim().is_empty()),
        },
        "AzureOpenAI" => match backend.schema.version.as_deref().map(str::trim) {
            Some(version) if !version.is_empty() => Schema::AzureOpenAI {
                version: version.to_string(),
            },
            _ => return Err("schema AzureOpenAI needs a version (its api-version)".into()),
        },
        other => {
            return Err(format!(
                "schema {other} is not supported yet (supported: {})",
                SUPPORTED_SCHEMAS.join(", ")
            ));
        }
    };
    if let Some(p) = &backend.schema.prefix
        && p.chars().any(|c| c.is_whitespace() || c == '?' || c == '#')
    {
        return Err(format!("schema prefix {p:?} is not a path"));
    }
    let credential = match &backend.credential {
        None => None,
        Some(CredentialConfig::ApiKey { key }) => {
            let key = key.trim();
            if key.is_empty() {
                return Err("credential APIKey: the key is empty".into());
            }
            if key.bytes().any(|b| b.is_ascii_control()) {
                // Never echo the key itself.
                return Err("credential APIKey: the key contains control characters".into());
            }
            Some(Credential::ApiKey(key.to_string()))
        }
        Some(CredentialConfig::AwsCredentials {
            region,
            access_key_id,
            secret_access_key,
            session_token,
        }) => {
            if !matches!(schema, Schema::AWSBedrock | Schema::AWSAnthropic { .. }) {
                return Err(format!(
                    "credential AWSCredentials signs AWSBedrock and AWSAnthropic backends, not {}",
                    schema.name()
                ));
            }
            let region = region.trim();
            let valid_region = !region.is_empty()
                && region
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !valid_region {
                return Err(format!(
                    "credential AWSCredentials: region {region:?} is not a region"
                ));
            }
            let (id, secret) = (access_key_id.trim(), secret_access_key.trim());
            let token = session_token
                .as_deref()
                .map(str::trim)
                .filter(|t| !t.is_empty());
            if id.is_empty() || secret.is_empty() {
                return Err(
                    "credential AWSCredentials: the access key id or secret is empty".into(),
                );
            }
            if [id, secret, token.unwrap_or_default()]
                .iter()
                .any(|v| v.bytes().any(|b| b.is_ascii_control()))
            {
                // Never echo the keys themselves.
                return Err("credential AWSCredentials: a key contains control characters".into());
            }
            Some(Credential::Aws(AwsCredential {
                region: region.to_string(),
                access_key_id: id.to_string(),
                secret_access_key: secret.to_string(),
                session_token: token.map(str::to_string),
            }))
        }
        Some(CredentialConfig::GcpCredentials {
            project_name,
            region,
            service_account_key,
            token_url,
        }) => {
            let (project, region) = (project_name.trim(), region.trim());
            let valid = |v: &str| {
                !v.is_empty()
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            };
            if !valid(project) || !valid(region) {
                return Err(format!(
                    "credential GCPCredentials: project {project:?} or region {region:?} is not a name"
                ));
            }
            Some(Credential::Gcp(GcpCredential {
                project: project.to_string(),
                region: region.to_string(),
                service_account_key: service_account_key.clone(),
                token_url: token_url.clone(),
            }))
        }
        Some(CredentialConfig::AzureCredentials {
            tenant_id,
            client_id,
            client_secret,
            token_url,
        }) => {
            if tenant_id.trim().is_empty()
                || client_id.trim().is_empty()
                || client_secret.trim().is_empty()
            {
                return Err(
                    "credential AzureCredentials: the tenant, client id or secret is empty".into(),
                );
            }
            Some(Credential::Azure(AzureCredential {
                tenant_id: tenant_id.trim().to_string(),
                client_id: client_id.trim().to_string(),
                client_secret: client_secret.trim().to_string(),
                token_url: token_url.clone(),
            }))
        }
    };
    let credential_override = match &backend.credential_override {
        None => None,
        Some(_) if matches!(credential, Some(Credential::Aws(_))) => {
            return Err(
                "credentialOverride cannot stand in for AWSCredentials (requests are signed)"
                    .into(),
            );
        }
        Some(o) => {
            let header = o
                .header
                .as_deref()
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty());
            if let Some(h) = &header
                && !h
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(format!(
                    "credentialOverride header {h:?} is not a header name"
                ));
            }
            Some(CredentialOverride {
                header,
                fallback_to_configured: o.fallback_to_configured,
            })
        }
    };
    if matches!(schema, Schema::GCPAnthropic { .. } | Schema::GCPVertexAI)
        && !matches!(credential, Some(Credential::Gcp(_)))
    {
        return Err(format!(
            "schema {} needs GCPCredentials (their project, region and token)",
            schema.name()
        ));
    }
    Ok(Backend {
        name: backend.name.clone(),
        schema,
        header_mutation: header_mutation(backend.header_mutation.as_ref())?,
        body_mutation: body_mutation(backend.body_mutation.as_ref())?,
        credential,
        credential_override,
    })
}

/// Headers a mutation may not touch: pseudo-headers, framing, and the gateway's own.
fn check_header_name(name: &str) -> Result<String, String> {
    let lower = name.to_ascii_lowercase();
    let valid = !lower.is_empty()
        && lower
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !valid {
        return Err(format!("headerMutation: {name:?} is not a header name"));
    }
    if lower == keys::HOST_HEADER
        || lower == keys::CONTENT_LENGTH_HEADER
        || lower == "transfer-encoding"
        || lower.starts_with(keys::INTERNAL_HEADER_PREFIX)
    {
        return Err(format!("headerMutation: {name} cannot be changed"));
    }
    Ok(lower)
}

fn header_mutation(config: Option<&HeaderMutationConfig>) -> Result<HeaderMutation, String> {
    let Some(config) = config else {
        return Ok(HeaderMutation::default());
    };
    let mut out = HeaderMutation::default();
    for h in &config.set {
        let name = check_header_name(&h.name)?;
        if h.value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(format!("headerMutation: value of {name} has a line break"));
        }
        out.set.push((name, h.value.clone()));
    }
    for name in &config.remove {
        out.remove.push(check_header_name(name)?);
    }
    Ok(out)
}

fn body_path(path: &str) -> Result<Vec<String>, String> {
    let parts: Vec<String> = path.split('.').map(str::to_string).collect();
    if parts.iter().any(String::is_empty) {
        return Err(format!("bodyMutation: path {path:?} has an empty segment"));
    }
    Ok(parts)
}

fn body_mutation(config: Option<&BodyMutationConfig>) -> Result<BodyMutation, String> {
    let Some(config) = config else {
        return Ok(BodyMutation::default());
    };
    let mut out = BodyMutation::default();
    for field in &config.set {
        // JSON text, or else a plain string (Envoy AI Gateway's reading of `value`).
        let value = serde_json::from_str(&field.value)
            .unwrap_or_else(|_| Value::String(field.value.clone()));
        out.set.push((body_path(&field.path)?, value));
    }
    for path in &config.remove {
        out.remove.push(body_path(path)?);
    }
    Ok(out)
}

impl RuntimeConfig {
    /// Models `/v1/models` lists for a request to `host` (port ignored): those of routes with no
    /// hostnames and of routes with a hostname matching `host` (`*.example.com` matches one
    /// label). Without a host, every model. Each id once, in route then rule order.
    pub fn listed_models(&self, host: Option<&str>) -> Vec<ListedModel> {
        let host = host.map(normalize_host);
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for route in self.routes.values() {
            let serves = match &host {
                None => true,
                Some(h) => {
                    route.hostnames.is_empty()
                        || route.hostnames.iter().any(|p| hostname_matches(p, h))
                }
            };
            if !serves {
                continue;
            }
            for rule in &route.rules {
                for model in &rule.models {
                    if seen.insert(model.id.clone()) {
                        out.push(model.clone());
                    }
                }
            }
        }
        out
    }

    /// The route, rule (index) and backend reference an upstream attempt is for. With a route
    /// and rule, exactly that rule; otherwise the first rule serving `model` that references
    /// `backend`.
    pub fn find_backend_ref(
        &self,
        backend: &str,
        route: Option<&str>,
        rule: Option<usize>,
        model: Option<&str>,
    ) -> Option<(&Arc<Route>, usize, &BackendRef)> {
        fn in_rule<'a>(
            route: &'a Arc<Route>,
            i: usize,
            backend: &str,
        ) -> Option<(&'a Arc<Route>, usize, &'a BackendRef)> {
            let rule = route.rules.get(i)?;
            let found = rule.backend_refs.iter().find(|r| r.backend == backend)?;
            Some((route, i, found))
        }
        let named = route.and_then(|r| self.routes.get(r));
        if let (Some(route), Some(i)) = (named, rule) {
            return in_rule(route, i, backend);
        }
        let candidates: Vec<&Arc<Route>> = match named {
            Some(r) => vec![r],
            None => self.routes.values().collect(),
        };
        candidates.into_iter().find_map(|route| {
            (0..route.rules.len())
                .filter(|&i| model.is_none_or(|m| route.rules[i].models.iter().any(|x| x.id == m)))
                .find_map(|i| in_rule(route, i, backend))
        })
    }
}

fn normalize_host(host: &str) -> String {
    let host = host.trim().to_ascii_lowercase();
    // Strip a port, keeping IPv6 literals (`[::1]:8080`).
    if let Some(end) = host.rfind(']') {
        return host[..=end].to_string();
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h.to_string(),
        _ => host,
    }
}

fn hostname_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .strip_suffix(suffix)
            .and_then(|p| p.strip_suffix('.'))
            .is_some_and(|label| !label.is_empty() && !label.contains('.')),
        None => pattern == host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{
        BackendRefConfig, CostConfig, CostKind, HeaderConfig, RuleConfig, SchemaConfig,
    };

    fn route(name: &str, hostnames: &[&str], models: &[&str]) -> RouteConfig {
        RouteConfig {
            name: name.into(),
            hostnames: hostnames.iter().map(|h| h.to_string()).collect(),
            rules: vec![RuleConfig {
                models: models.iter().map(|m| m.to_string()).collect(),
                backend_refs: vec![BackendRefConfig {
                    name: "default/openai".into(),
                    ..BackendRefConfig::default()
                }],
                ..RuleConfig::default()
            }],
            ..RouteConfig::default()
        }
    }

    fn backend(name: &str, schema: &str) -> BackendConfig {
        BackendConfig {
            name: name.into(),
            schema: SchemaConfig {
                name: schema.into(),
                ..SchemaConfig::default()
            },
            ..BackendConfig::default()
        }
    }

    #[test]
    fn request_body_limit_defaults_to_32_mib() {
        let out = Config::default().build();
        assert_eq!(out.config.request_body_limit, 32 * 1024 * 1024);
        let out = Config {
            request_body_limit_bytes: Some(1024),
            ..Config::default()
        }
        .build();
        assert_eq!(out.config.request_body_limit, 1024);
    }

    #[test]
    fn config_json_uses_the_control_plane_field_names() {
        let config = Config::from_json(
            br#"{"routes":[{"name":"ns/r","rules":[{"models":["m"],"backendRefs":[{"name":"ns/b","modelNameOverride":"m2"}]}],
                "llmRequestCosts":[{"metadataKey":"k","type":"CEL","cel":"total_tokens"}]}],
                "backends":[{"name":"ns/b","schema":{"name":"OpenAI","prefix":"/v1"},
                "credential":{"kind":"APIKey","key":"sk-x"}}]}"#,
        )
        .expect("parses");
        assert!(format!("{config:?}").contains("<redacted>"));
        assert!(!format!("{config:?}").contains("sk-x"));
        let out = config.build();
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        assert!(Config::from_json(br#"{"routes":[{"name":"a/b","typo":1}]}"#).is_err());
    }

    #[test]
    fn route_with_a_bad_cel_cost_is_left_out_and_named() {
        let mut bad = route("default/bad", &[], &["a"]);
        bad.llm_request_costs = vec![CostConfig {
            metadata_key: "cost".into(),
            kind: CostKind::Cel,
            cel: Some("input_tokens +".into()),
        }];
        let config = Config {
            routes: vec![bad, route("default/good", &[], &["b"])],
            backends: vec![backend("default/openai", "OpenAI")],
            ..Config::default()
        };
        let out = config.build();
        assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
        assert_eq!(out.errors[0].name, "default/bad");
        assert!(out.errors[0].rejected);
        assert!(
            out.errors[0]
                .to_string()
                .starts_with("route default/bad: llmRequestCosts cost: cel")
        );
        assert!(out.config.routes.contains_key("default/good"));
        assert!(!out.config.routes.contains_key("default/bad"));
    }

    #[test]
    fn aws_credentials_sign_bedrock_backends_only_and_never_echo_keys() {
        let aws = CredentialConfig::AwsCredentials {
            region: "eu-west-1".into(),
            access_key_id: "AKIDSECRETISH".into(),
            secret_access_key: "very-secret".into(),
            session_token: Some("  ".into()),
        };
        let mut b = backend("default/bedrock", "AWSBedrock");
        b.credential = Some(aws.clone());
        let built = build_backend(&b).expect("bedrock with keys");
        match built.credential {
            Some(Credential::Aws(c)) => {
                assert_eq!(c.region, "eu-west-1");
                assert_eq!(c.session_token, None, "a blank token is no token");
            }
            other => panic!("{other:?}"),
        }
        assert!(!format!("{:?} {aws:?}", built.schema).contains("very-secret"));
        let mut wrong = backend("default/openai", "OpenAI");
        wrong.credential = Some(aws);
        let err = build_backend(&wrong).expect_err("AWS keys on OpenAI");
        assert!(err.contains("AWSBedrock"), "{err}");
        let mut bad = backend("default/bedrock", "AWSBedrock");
        bad.credential = Some(CredentialConfig::AwsCredentials {
            region: "eu-west-1".into(),
            access_key_id: "AKID".into(),
            secret_access_key: "very-secret\n".into(),
            session_token: Some("tok\u{7}".into()),
        });
        let err = build_backend(&bad).expect_err("control characters");
        assert!(
            !err.contains("very-secret") && !err.contains("tok"),
            "{err}"
        );
    }

    #[test]
    fn unsupported_schema_rejects_the_backend_and_warns_its_routes() {
        let config = Config {
            routes: vec![route("default/r", &[], &["a"])],
            backends: vec![backend("default/openai", "Cohere")],
            ..Config::default()
        };
        let out = config.build();
        assert_eq!(out.errors.len(), 2, "{:?}", out.errors);
        assert!(out.errors[0].message.contains("Cohere is not supported"));
        assert!(!out.errors[1].rejected);
        assert!(out.config.routes.contains_key("default/r"));
    }

    #[test]
    fn header_mutation_cannot_touch_host_or_internal_headers() {
        let mut b = backend("default/openai", "OpenAI");
        b.header_mutation = Some(HeaderMutationConfig {
            set: vec![HeaderConfig {
                name: "x-infergate-backend".into(),
                value: "x".into(),
            }],
            remove: vec![],
        });
        let out = Config {
            backends: vec![b],
            ..Config::default()
        }
        .build();
        assert!(out.errors[0].message.contains("cannot be changed"));
    }

    #[test]
    fn credential_errors_never_show_the_key() {
        let mut b = backend("default/openai", "OpenAI");
        b.credential = Some(CredentialConfig::ApiKey {
            key: "sk-secret\nvalue".into(),
        });
        let out = Config {
            backends: vec![b],
            ..Config::default()
        }
        .build();
        let shown = format!("{} {:?}", out.errors[0], out.errors[0]);
        assert!(!shown.contains("sk-secret"), "{shown}");
    }

    #[test]
    fn listed_models_follow_hostnames() {
        let config = Config {
            routes: vec![
                route("default/any", &[], &["shared"]),
                route("default/a", &["api.example.com"], &["a"]),
                route("default/wild", &["*.example.org"], &["w"]),
            ],
            backends: vec![backend("default/openai", "OpenAI")],
            ..Config::default()
        }
        .build()
        .config;
        let ids = |host| {
            config
                .listed_models(host)
                .into_iter()
                .map(|m| m.id)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(None), ["a", "shared", "w"]);
        assert_eq!(ids(Some("API.example.com:8080")), ["a", "shared"]);
        assert_eq!(ids(Some("x.example.org")), ["shared", "w"]);
        assert_eq!(ids(Some("x.y.example.org")), ["shared"]);
        assert_eq!(ids(Some("other")), ["shared"]);
    }

    #[test]
    fn backend_ref_is_found_by_rule_or_by_model() {
        let mut r = route("default/r", &[], &["a"]);
        r.rules.push(RuleConfig {
            models: vec!["b".into()],
            backend_refs: vec![BackendRefConfig {
                name: "default/openai".into(),
                model_name_override: Some("b-2024".into()),
                ..BackendRefConfig::default()
            }],
            ..RuleConfig::default()
        });
        let config = Config {
            routes: vec![r],
            backends: vec![backend("default/openai", "OpenAI")],
            ..Config::default()
        }
        .build()
        .config;
        let by_rule = config.find_backend_ref("default/openai", Some("default/r"), Some(1), None);
        assert_eq!(
            by_rule.and_then(|(_, _, r)| r.model_name_override.as_deref()),
            Some("b-2024")
        );
        let by_model = config.find_backend_ref("default/openai", None, None, Some("b"));
        assert_eq!(
            by_model.and_then(|(_, _, r)| r.model_name_override.as_deref()),
            Some("b-2024")
        );
        assert!(
            config
                .find_backend_ref("default/other", None, None, Some("b"))
                .is_none()
        );
    }
}
