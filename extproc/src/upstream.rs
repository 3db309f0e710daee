//! Upstream leg: the ext_proc filter on a backend cluster, run once per attempt, so a retry
//! or failover to another provider is prepared afresh for that provider.
//!
//! It keeps no state shared with the router leg: the backend comes from Envoy's attributes
//! (the chosen host's metadata), the model and whether the client streams without usage from
//! headers the router leg set. Per attempt it rewrites the path for the backend's prefix,
//! applies `modelNameOverride` and the header/body mutations, replaces client credentials with
//! the backend's, and, when nothing in the body changes, asks Envoy for headers only. On the
//! response it names the backend in internal headers the router leg reads and removes.
//!
//! For a backend whose schema differs from the client's ([`translate::Pair::Chat`]) it
//! translates the request body (then applies the body mutations to the provider's body), and
//! asks Envoy, by a per-request mode override, for the response body too, which it translates
//! back chunk by chunk; every other request keeps the response body out of the extproc.

use std::sync::Arc;

use envoy_types::pb::envoy::service::ext_proc::v3::{
    HttpBody, HttpHeaders, ProcessingRequest, ProcessingResponse,
};
use serde_json::Value;

use crate::api::{ClientApi, Endpoint};
use crate::config::{Backend, ConfigStore, Credential, HeaderMutation, Schema};
use crate::envoy::{self, HeaderChanges, Headers};
use crate::mutation::JsonObject;
use crate::target::Target;
use crate::translate::{self, ChatProvider, Pair, ResponseContext, ResponseTranslator};
use crate::{Error, Result, keys};

/// What the request-headers message decided, for the messages after it.
#[derive(Debug)]
struct Plan {
    backend: Arc<Backend>,
    route: Option<String>,
    rule: Option<usize>,
    model_name_override: Option<String>,
    /// Backend-level then backendRef-level body mutations.
    body_mutations: Vec<crate::config::BodyMutation>,
    /// Add `stream_options.include_usage` if the body streams without it.
    inject_usage: bool,
    usage_injected: bool,
    /// Set for a translated chat request.
    chat: Option<ChatPlan>,
    /// The `:authority` Envoy sends upstream (what a SigV4 signature must cover).
    authority: Option<String>,
}

/// A chat request translated for a provider, and then its response.
struct ChatPlan {
    provider: ChatProvider,
    /// The client speaks Anthropic Messages ([`Pair::Messages`]), not chat completions.
    messages: bool,
    /// The client asks for embeddings ([`Pair::Embeddings`]).
    embeddings: bool,
    /// Known once the request body is read.
    cx: Option<ResponseContext>,
    response: Option<ResponseTranslator>,
}

impl std::fmt::Debug for ChatPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatPlan")
            .field("provider", &self.provider)
            .field("cx", &self.cx)
            .finish_non_exhaustive()
    }
}

pub struct UpstreamLeg {
    store: Arc<ConfigStore>,
    trust_backend_header: bool,
    api: ClientApi,
    plan: Option<Plan>,
    body: Vec<u8>,
    /// Envoy sends the request body in one message (its first message said so): a body
    /// message without `end_of_stream` is then whole, with trailers to follow.
    whole_bodies: bool,
}

impl UpstreamLeg {
    pub fn new(store: Arc<ConfigStore>, trust_backend_header: bool) -> UpstreamLeg {
        UpstreamLeg {
            store,
            trust_backend_header,
            api: ClientApi::OpenAI,
            plan: None,
            body: Vec::new(),
            whole_bodies: false,
        }
    }

    /// The answer to one message; errors become the client's error response.
    pub fn handle(&mut self, request: ProcessingRequest) -> ProcessingResponse {
        use envoy_types::pb::envoy::service::ext_proc::v3::processing_request::Request;
        if let Some(config) = &request.protocol_config {
            self.whole_bodies = envoy::sends_whole_request_body(config);
        }
        let result = match request.request {
            Some(Request::RequestHeaders(headers)) => {
                self.request_headers(&request.attributes, &headers)
            }
            Some(Request::RequestBody(body)) => self.request_body(body),
            Some(Request::RequestTrailers(_)) => Ok(envoy::request_trailers()),
            Some(Request::ResponseHeaders(headers)) => Ok(self.response_headers(&headers)),
            Some(Request::ResponseBody(body)) => Ok(self.response_body(&body)),
            Some(Request::ResponseTrailers(_)) => Ok(envoy::response_trailers()),
            None => Ok(ProcessingResponse::default()),
        };
        result.unwrap_or_else(|err| envoy::immediate(err.into_immediate_response(self.api)))
    }

    fn request_headers(
        &mut self,
        attributes: &std::collections::HashMap<String, envoy_types::pb::google::protobuf::Struct>,
        message: &HttpHeaders,
    ) -> Result<ProcessingResponse> {
        let headers = Headers::from_map(message.headers.as_ref());
        let original_path = headers
            .get(keys::ORIGINAL_PATH_HEADER)
            .or_else(|| headers.get(keys::PATH_PSEUDO_HEADER))
            .unwrap_or("/")
            .to_string();
        let endpoint = Endpoint::from_path(&original_path);
        self.api = endpoint.map_or_else(|| api_of_path(&original_path), Endpoint::api);

        let target = Target::from_attributes(attributes)
            .or_else(|| {
                self.trust_backend_header
                    .then(|| Target::from_headers(&headers))
                    .flatten()
            })
            .ok_or(Error::MissingBackend)?;
        let config = self.store.load();
        let backend = config
            .backends
            .get(&target.backend)
            .cloned()
            .ok_or_else(|| Error::UnknownBackend {
                backend: target.backend.clone(),
                version: config.version.clone(),
            })?;
        let model = headers.get(keys::MODEL_HEADER);
        let found =
            config.find_backend_ref(&target.backend, target.route.as_deref(), target.rule, model);
        if found.is_none() {
            tracing::warn!(backend = %target.backend, route = ?target.route, rule = ?target.rule,
                "no route rule references this backend; no override, mutations or costs");
        }

        let pair = translate::pair(&backend.schema, endpoint, self.api).ok_or_else(|| {
            Error::UnsupportedTranslation {
                backend: backend.name.clone(),
                schema: backend.schema.name(),
                path: original_path.split('?').next().unwrap_or("/").to_string(),
            }
        })?;
        let mut changes = HeaderChanges::default();
        for name in keys::INTERNAL_HEADERS {
            if headers.contains(name) {
                changes.remove(name);
            }
        }
        // The router leg reads the response body: ask for it uncompressed.
        if headers.contains("accept-encoding") {
            changes.remove("accept-encoding");
        }
        apply_headers(&mut changes, &backend.header_mutation);
        let mut body_mutations = vec![backend.body_mutation.clone()];
        let mut model_name_override = None;
        let mut inject_usage = false;
        let (mut route_name, mut rule) = (target.route.clone(), target.rule);
        if let Some((route, index, backend_ref)) = found {
            apply_headers(&mut changes, &backend_ref.header_mutation);
            body_mutations.push(backend_ref.body_mutation.clone());
            model_name_override = backend_ref.model_name_override.clone();
            inject_usage = !route.costs.is_empty()
                && headers.get(keys::STREAM_WITHOUT_USAGE_HEADER) == Some("true")
                && matches!(
                    backend.schema,
                    Schema::OpenAI { .. } | Schema::AzureOpenAI { .. }
                );
            route_name = Some(route.name.clone());
            rule = Some(index);
        }
        let client_credential = client_credential(&backend, &headers)?;
        let token = backend
            .credential
            .as_ref()
            .filter(|_| client_credential.is_none())
            .and_then(|c| self.store.tokens().token(c));
        inject_credential(&mut changes, &backend, token, client_credential)?;
        body_mutations.retain(|m| !m.is_empty());

        // The path; a translated request's is known once its body is read.
        let path = match (pair, &backend.schema) {
            (Pair::Same, _) => Some(upstream_path(&original_path, &backend, self.api)?),
            (Pair::Azure, Schema::AzureOpenAI { version }) => {
                let model = model_name_override
                    .as_deref()
                    .or(model)
                    .ok_or(Error::MissingModel)?;
                let query = original_path.find('?').map_or("", |i| &original_path[i..]);
                let endpoint = endpoint.unwrap_or(Endpoint::ChatCompletions);
                Some(translate::azure::path(endpoint, model, version, query))
            }
            _ => None,
        };
        if let Some(path) = path
            && headers.get(keys::PATH_PSEUDO_HEADER) != Some(path.as_str())
        {
            changes.set(keys::PATH_PSEUDO_HEADER, path);
        }
        let chat = match pair {
            Pair::Chat(provider) | Pair::Messages(provider) | Pair::Embeddings(provider) => {
                Some(ChatPlan {
                    provider,
                    messages: matches!(pair, Pair::Messages(_)),
                    embeddings: matches!(pair, Pair::Embeddings(_)),
                    cx: None,
                    response: None,
                })
            }
            Pair::Same | Pair::Azure => None,
        };
        let wants_body = !message.end_of_stream
            && (model_name_override.is_some()
                || !body_mutations.is_empty()
                || inject_usage
                || chat.is_some());
        let translates_response = pair.translates_response();
        self.plan = Some(Plan {
            backend,
            route: route_name,
            rule,
            model_name_override,
            body_mutations,
            inject_usage,
            usage_injected: false,
            chat,
            authority: headers.get(":authority").map(str::to_string),
        });
        let mut response = envoy::request_headers(envoy::common(changes, None, false));
        if translates_response {
            response.mode_override = Some(envoy::translating_mode());
        } else if !wants_body {
            response.mode_override = Some(envoy::upstream_done_mode());
        }
        Ok(response)
    }

    fn request_body(&mut self, body: HttpBody) -> Result<ProcessingResponse> {
        self.body.extend_from_slice(&body.body);
        if !body.end_of_stream && !self.whole_bodies {
            // Not buffered: the body goes on unchanged (the filter should buffer it).
            return Ok(envoy::request_body(None));
        }
        let Some(plan) = self.plan.as_mut() else {
            return Ok(envoy::request_body(None));
        };
        let bytes = std::mem::take(&mut self.body);
        if bytes.is_empty() {
            return Ok(envoy::request_body(None));
        }
        if plan.chat.is_some() {
            return translate_request(plan, &bytes);
        }
        let mut object =
            JsonObject::parse(&bytes).map_err(|source| Error::InvalidJson { source })?;
        let backend = plan.backend.name.clone();
        let fail = |message: String| Error::BodyMutation {
            backend: backend.clone(),
            message,
        };
        if let Some(model) = &plan.model_name_override {
            object
                .set(&["model".to_string()], &Value::String(model.clone()))
                .map_err(fail)?;
        }
        if plan.inject_usage && object.is_true("stream") && !include_usage(&object) {
            object
                .set(
                    &["stream_options".to_string(), "include_usage".to_string()],
                    &Value::Bool(true),
                )
                .map_err(fail)?;
            plan.usage_injected = true;
        }
        for mutation in &plan.body_mutations {
            object.apply(mutation).map_err(fail)?;
        }
        let new = object.to_vec();
        let mut changes = HeaderChanges::default();
        changes.set(keys::CONTENT_LENGTH_HEADER, new.len().to_string());
        Ok(envoy::request_body(envoy::common(
            changes,
            Some(new),
            false,
        )))
    }

    /// Names the backend for the router leg, replacing anything the provider sent; a
    /// translated response gets its OpenAI headers and keeps its body coming.
    fn response_headers(&mut self, message: &HttpHeaders) -> ProcessingResponse {
        let mut changes = HeaderChanges::default();
        for name in keys::INTERNAL_HEADERS {
            changes.remove(name);
        }
        let mut translating = false;
        if let Some(plan) = &mut self.plan {
            changes.set(keys::BACKEND_HEADER, plan.backend.name.clone());
            if let Some(route) = &plan.route {
                changes.set(keys::ROUTE_HEADER, route.clone());
            }
            if let Some(rule) = plan.rule {
                changes.set(keys::RULE_HEADER, rule.to_string());
            }
            if let Some(model) = &plan.model_name_override {
                changes.set(keys::MODEL_OVERRIDE_HEADER, model.clone());
            }
            if let Some(chat) = &mut plan.chat
                && let Some(cx) = chat.cx.clone()
            {
                let headers = Headers::from_map(message.headers.as_ref());
                let status = headers
                    .get(keys::STATUS_PSEUDO_HEADER)
                    .and_then(|s| s.parse::<u16>().ok())
                    .unwrap_or(0);
                let (translator, translated) =
                    ResponseTranslator::start(chat.provider, cx, status, &headers);
                changes.extend(translated);
                chat.response = Some(translator);
                translating = !message.end_of_stream;
            }
            if plan.usage_injected {
                changes.set(keys::USAGE_INJECTED_HEADER, "true");
            }
        }
        let mut response = envoy::response_headers(envoy::common(changes, None, false));
        if !translating {
            // Same schema both ways: the response body needs nothing from this leg.
            response.mode_override = Some(envoy::headers_only_mode());
        }
        response
    }

    /// A chunk of a translated response, replaced by its OpenAI translation.
    fn response_body(&mut self, body: &HttpBody) -> ProcessingResponse {
        let Some(translator) = self
            .plan
            .as_mut()
            .and_then(|p| p.chat.as_mut())
            .and_then(|c| c.response.as_mut())
        else {
            return envoy::response_body(None);
        };
        let out = translator.body(&body.body, body.end_of_stream);
        envoy::response_body(envoy::common(HeaderChanges::default(), Some(out), false))
    }
}

/// The client's chat request in the provider's schema, with the body mutations applied to
/// the provider's body.
fn translate_request(plan: &mut Plan, bytes: &[u8]) -> Result<ProcessingResponse> {
    let backend = plan.backend.clone();
    let Some(chat) = plan.chat.as_mut() else {
        return Ok(envoy::request_body(None));
    };
    let invalid = |message: String| Error::TranslateRequest {
        backend: backend.name.clone(),
        message,
    };
    if chat.embeddings {
        #[derive(serde::Deserialize)]
        struct Named {
            model: String,
        }
        let named: Named = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
        let model = plan.model_name_override.clone().unwrap_or(named.model);
        let (project, region) = gcp_location(&backend)?;
        let body = translate::gemini::embeddings_request(bytes).map_err(|e| invalid(e.message))?;
        chat.cx = Some(ResponseContext {
            model: model.clone(),
            embeddings: true,
            ..ResponseContext::default()
        });
        let upstream = json_request(
            translate::gemini::embeddings_path(&project, &region, &model),
            body,
        );
        return finish_request(plan, upstream);
    }
    if chat.messages {
        let upstream = messages_request(plan.model_name_override.as_deref(), &backend, bytes)
            .map_err(|e| invalid(e.message))?;
        let (upstream, cx) = upstream;
        chat.cx = Some(cx);
        return finish_request(plan, upstream);
    }
    let request: translate::openai::ChatRequest =
        serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
    let model = plan
        .model_name_override
        .clone()
        .unwrap_or_else(|| request.model.clone());
    let upstream = match (chat.provider, &backend.schema) {
        (ChatProvider::Anthropic, Schema::Anthropic { prefix, version }) => {
            translate::anthropic::from_openai::request(&request, &model, prefix, version.as_deref())
        }
        (ChatProvider::Bedrock, Schema::AWSBedrock) => {
            translate::bedrock::from_openai::request(&request, &model)
        }
        (ChatProvider::Gemini, Schema::GCPVertexAI) => {
            let (project, region) = gcp_location(&backend)?;
            translate::gemini::request(&request, &project, &region, &model)
        }
        (ChatProvider::GcpAnthropic, Schema::GCPAnthropic { version }) => {
            let (project, region) = gcp_location(&backend)?;
            translate::anthropic::from_openai::request(&request, &model, "", None).and_then(
                |messages| {
                    let (body, _) =
                        translate::gcp_anthropic::wrap(&messages.body, version.as_deref())?;
                    Ok(json_request(
                        translate::gcp_anthropic::path(&project, &region, &model, request.stream),
                        body,
                    ))
                },
            )
        }
        (ChatProvider::AwsAnthropic, Schema::AWSAnthropic { version }) => {
            translate::anthropic::from_openai::request(&request, &model, "", None).and_then(
                |messages| {
                    let (body, _) =
                        translate::aws_anthropic::wrap(&messages.body, version.as_deref())?;
                    Ok(json_request(
                        translate::aws_anthropic::path(&model, request.stream),
                        body,
                    ))
                },
            )
        }
        (provider, schema) => {
            return Err(invalid(format!(
                "{provider:?} translation does not fit schema {}",
                schema.name()
            )));
        }
    }
    .map_err(|e| invalid(e.message))?;
    // A translated stream always ends with usage; the router leg hides it from a client that
    // did not ask.
    plan.usage_injected = request.stream && !request.include_usage();
    chat.cx = Some(ResponseContext {
        model: model.clone(),
        stream: request.stream,
        usage_chunk: request.stream,
        anthropic_client: false,
        embeddings: false,
    });
    finish_request(plan, upstream)
}

/// An Anthropic Messages request rewrapped for the backend's cloud, and what its response
/// translator needs.
fn messages_request(
    model_name_override: Option<&str>,
    backend: &Backend,
    bytes: &[u8],
) -> std::result::Result<(translate::UpstreamRequest, ResponseContext), translate::RequestError> {
    #[derive(serde::Deserialize)]
    struct Named {
        #[serde(default)]
        model: String,
    }
    let named: Named =
        serde_json::from_slice(bytes).map_err(|e| translate::RequestError::new(e.to_string()))?;
    let model = model_name_override.map_or(named.model, str::to_string);
    match &backend.schema {
        Schema::AWSAnthropic { version } => {
            let (body, stream) = translate::aws_anthropic::wrap(bytes, version.as_deref())?;
            let upstream = json_request(translate::aws_anthropic::path(&model, stream), body);
            let cx = anthropic_client(model, stream);
            Ok((upstream, cx))
        }
        Schema::GCPAnthropic { version } => {
            let (project, region) = gcp_location(backend)
                .map_err(|_| translate::RequestError::new("the backend has no GCP project"))?;
            let (body, stream) = translate::gcp_anthropic::wrap(bytes, version.as_deref())?;
            let upstream = json_request(
                translate::gcp_anthropic::path(&project, &region, &model, stream),
                body,
            );
            let cx = anthropic_client(model, stream);
            Ok((upstream, cx))
        }
        Schema::OpenAI { prefix } => {
            let (upstream, stream) =
                translate::openai::from_anthropic::request(bytes, &model, prefix)?;
            let cx = anthropic_client(model, stream);
            Ok((upstream, cx))
        }
        other => Err(translate::RequestError::new(format!(
            "Messages cannot be rewrapped for schema {}",
            other.name()
        ))),
    }
}

/// Applies the body mutations to a translated request, signs it when the backend signs, and
/// sends it on with its path and headers.
fn finish_request(plan: &Plan, upstream: translate::UpstreamRequest) -> Result<ProcessingResponse> {
    let backend = plan.backend.clone();
    let mut body = upstream.body;
    if !plan.body_mutations.is_empty() {
        let mut object =
            JsonObject::parse(&body).map_err(|source| Error::InvalidJson { source })?;
        for mutation in &plan.body_mutations {
            object
                .apply(mutation)
                .map_err(|message| Error::BodyMutation {
                    backend: backend.name.clone(),
                    message,
                })?;
        }
        body = object.to_vec();
    }
    let mut changes = HeaderChanges::default();
    // Signed last, over the final path, headers and body.
    if let Some(Credential::Aws(aws)) = &backend.credential {
        let host = plan
            .authority
            .clone()
            .unwrap_or_else(|| translate::bedrock::runtime_host(&aws.region));
        let signed: Vec<(&str, &str)> = upstream
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let signature = crate::auth::aws::sign_request(
            aws,
            translate::bedrock::SIGNING_SERVICE,
            &host,
            &upstream.path,
            &signed,
            &body,
            std::time::SystemTime::now(),
        )
        .map_err(|message| {
            tracing::warn!(backend = %backend.name, %message, "SigV4 signing failed");
            Error::MissingCredential {
                backend: backend.name.clone(),
            }
        })?;
        for (name, value) in signature {
            changes.set(&name, value);
        }
    }
    changes.set(keys::PATH_PSEUDO_HEADER, upstream.path);
    for (name, value) in upstream.headers {
        changes.set(&name, value);
    }
    changes.set(keys::CONTENT_LENGTH_HEADER, body.len().to_string());
    Ok(envoy::request_body(envoy::common(
        changes,
        Some(body),
        false,
    )))
}

/// A translated request with a JSON body.
fn json_request(path: String, body: Vec<u8>) -> translate::UpstreamRequest {
    translate::UpstreamRequest {
        path,
        headers: vec![(
            keys::CONTENT_TYPE_HEADER.to_string(),
            "application/json".to_string(),
        )],
        body,
    }
}

/// The response context of an Anthropic Messages client.
fn anthropic_client(model: String, stream: bool) -> ResponseContext {
    ResponseContext {
        model,
        stream,
        anthropic_client: true,
        ..ResponseContext::default()
    }
}

/// A credential the caller brought under `credentialOverride`.
struct ClientCredential {
    /// The request header it came in.
    from: String,
    value: String,
}

/// The header a provider reads its credential from.
fn provider_credential_header(schema: &Schema) -> &'static str {
    match schema {
        Schema::Anthropic { .. } => keys::X_API_KEY_HEADER,
        Schema::AzureOpenAI { .. } => keys::AZURE_API_KEY_HEADER,
        _ => keys::AUTHORIZATION_HEADER,
    }
}

/// The caller's own credential, when the backend lets clients bring one and this one did;
/// a 401 when the backend requires it and it is missing.
fn client_credential(backend: &Backend, headers: &Headers) -> Result<Option<ClientCredential>> {
    let Some(policy) = &backend.credential_override else {
        return Ok(None);
    };
    let from = policy
        .header
        .clone()
        .unwrap_or_else(|| provider_credential_header(&backend.schema).to_string());
    match headers.get(&from).map(str::trim).filter(|v| !v.is_empty()) {
        Some(value) => Ok(Some(ClientCredential {
            value: value.to_string(),
            from,
        })),
        None if policy.fallback_to_configured && backend.credential.is_some() => Ok(None),
        None => Err(Error::ClientCredentialRequired { header: from }),
    }
}

/// The project and region of a GCP backend's credential.
fn gcp_location(backend: &Backend) -> Result<(String, String)> {
    match &backend.credential {
        Some(Credential::Gcp(gcp)) => Ok((gcp.project.clone(), gcp.region.clone())),
        _ => Err(Error::MissingCredential {
            backend: backend.name.clone(),
        }),
    }
}

fn include_usage(object: &JsonObject) -> bool {
    object
        .get("stream_options")
        .and_then(|raw| serde_json::from_str::<Value>(raw.get()).ok())
        .and_then(|v| v.get("include_usage").and_then(Value::as_bool))
        .unwrap_or(false)
}

fn api_of_path(path: &str) -> ClientApi {
    if path.starts_with("/anthropic/") {
        ClientApi::Anthropic
    } else {
        ClientApi::OpenAI
    }
}

/// The path on the upstream: the client's path below its API prefix (`/v1`,
/// `/anthropic/v1`), under the backend's prefix, query kept.
fn upstream_path(original: &str, backend: &Backend, api: ClientApi) -> Result<String> {
    let (path, query) = match original.find('?') {
        Some(i) => original.split_at(i),
        None => (original, ""),
    };
    let (client_prefix, prefix) = match (&backend.schema, api) {
        (Schema::OpenAI { prefix }, ClientApi::OpenAI) => ("/v1", prefix),
        (Schema::Anthropic { prefix, .. }, ClientApi::Anthropic) => ("/anthropic/v1", prefix),
        (schema, _) => {
            return Err(Error::UnsupportedTranslation {
                backend: backend.name.clone(),
                schema: schema.name(),
                path: path.to_string(),
            });
        }
    };
    let rest = path
        .strip_prefix(client_prefix)
        .filter(|r| r.is_empty() || r.starts_with('/'))
        .unwrap_or(path);
    Ok(format!("{prefix}{rest}{query}"))
}

fn apply_headers(changes: &mut HeaderChanges, mutation: &HeaderMutation) {
    for name in &mutation.remove {
        changes.remove(name);
    }
    for (name, value) in &mutation.set {
        changes.set(name, value.clone());
    }
}

/// Removes every client credential, then sets the backend's own. SigV4 headers go whatever
/// the backend: a client may not pass its own, and a retry that fails over from an AWS backend
/// to another provider starts from the headers the first attempt signed.
fn inject_credential(
    changes: &mut HeaderChanges,
    backend: &Backend,
    token: Option<String>,
    client: Option<ClientCredential>,
) -> Result<()> {
    for name in keys::CLIENT_CREDENTIAL_HEADERS
        .iter()
        .chain(keys::AWS_SIGNING_HEADERS)
    {
        changes.remove(name);
    }
    if let Some(client) = client {
        // The caller's own credential, in the provider's own header.
        changes.remove(&client.from);
        let header = provider_credential_header(&backend.schema);
        let value = if header == keys::AUTHORIZATION_HEADER && !client.value.contains(' ') {
            format!("Bearer {}", client.value)
        } else {
            client.value
        };
        changes.set(header, value);
        return Ok(());
    }
    match (&backend.credential, &backend.schema) {
        (None, _) => {}
        (Some(Credential::ApiKey(key)), _) if key.is_empty() => {
            return Err(Error::MissingCredential {
                backend: backend.name.clone(),
            });
        }
        // A GCP backend takes GCPCredentials (the config refuses anything else); a bearer
        // key is what any other credential could mean there.
        (
            Some(Credential::ApiKey(key)),
            Schema::OpenAI { .. } | Schema::GCPAnthropic { .. } | Schema::GCPVertexAI,
        ) => {
            changes.set(keys::AUTHORIZATION_HEADER, format!("Bearer {key}"));
        }
        (Some(Credential::ApiKey(key)), Schema::Anthropic { .. }) => {
            changes.set(keys::X_API_KEY_HEADER, key.clone());
        }
        (Some(Credential::ApiKey(key)), Schema::AzureOpenAI { .. }) => {
            changes.set(keys::AZURE_API_KEY_HEADER, key.clone());
        }
        // Bedrock API keys.
        (Some(Credential::ApiKey(key)), Schema::AWSBedrock | Schema::AWSAnthropic { .. }) => {
            changes.set(keys::AUTHORIZATION_HEADER, format!("Bearer {key}"));
        }
        // Signed once the translated body is known.
        (Some(Credential::Aws(_)), _) => {}
        // Minted tokens: none yet (or expired without a refresh) is a 503.
        (Some(Credential::Gcp(_) | Credential::Azure(_)), _) => match token {
            Some(token) => changes.set(keys::AUTHORIZATION_HEADER, format!("Bearer {token}")),
            None => {
                return Err(Error::MissingCredential {
                    backend: backend.name.clone(),
                });
            }
        },
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(schema: Schema) -> Backend {
        Backend {
            name: "default/b".into(),
            schema,
            header_mutation: HeaderMutation::default(),
            body_mutation: Default::default(),
            credential: None,
            credential_override: None,
        }
    }

    #[test]
    fn path_moves_under_the_backend_prefix_with_query() {
        let b = backend(Schema::OpenAI {
            prefix: "/api/openai/v1".into(),
        });
        assert_eq!(
            upstream_path("/v1/chat/completions?x=1", &b, ClientApi::OpenAI).ok(),
            Some("/api/openai/v1/chat/completions?x=1".to_string())
        );
        let b = backend(Schema::OpenAI { prefix: "".into() });
        assert_eq!(
            upstream_path("/v1/embeddings", &b, ClientApi::OpenAI).ok(),
            Some("/embeddings".to_string())
        );
    }

    fn request_headers(pairs: &[(&str, &str)]) -> Headers {
        use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
        Headers::from_map(Some(&HeaderMap {
            headers: pairs
                .iter()
                .map(|(k, v)| HeaderValue {
                    key: (*k).into(),
                    value: (*v).into(),
                    ..Default::default()
                })
                .collect(),
        }))
    }

    #[test]
    fn a_client_credential_goes_to_the_providers_own_header_or_is_required() {
        let mut b = backend(Schema::OpenAI {
            prefix: "/v1".into(),
        });
        b.credential = Some(Credential::ApiKey("sk-configured".into()));
        b.credential_override = Some(crate::config::CredentialOverride {
            header: Some("x-user-key".into()),
            fallback_to_configured: false,
        });
        let own = client_credential(&b, &request_headers(&[("x-user-key", "sk-own")]))
            .expect("allowed")
            .expect("taken");
        let mut changes = HeaderChanges::default();
        inject_credential(&mut changes, &b, None, Some(own)).expect("injects");
        let debug = format!("{changes:?}");
        assert!(
            debug.contains("Bearer sk-own") && !debug.contains("sk-configured"),
            "{debug}"
        );

        let missing = client_credential(&b, &request_headers(&[]))
            .err()
            .expect("required");
        assert_eq!(missing.status(), 401);

        b.credential_override = Some(crate::config::CredentialOverride {
            header: None,
            fallback_to_configured: true,
        });
        assert!(
            client_credential(&b, &request_headers(&[]))
                .expect("falls back")
                .is_none()
        );
        let own = client_credential(&b, &request_headers(&[("authorization", "Bearer sk-mine")]))
            .expect("allowed");
        assert_eq!(own.map(|c| c.value).as_deref(), Some("Bearer sk-mine"));
    }

    #[test]
    fn anthropic_client_cannot_use_an_openai_backend() {
        let b = backend(Schema::OpenAI {
            prefix: "/v1".into(),
        });
        let err = upstream_path("/anthropic/v1/messages", &b, ClientApi::Anthropic)
            .expect_err("unsupported");
        assert_eq!(err.status(), 400);
    }
}
