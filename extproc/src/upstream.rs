//! Upstream leg: the ext_proc filter on a backend cluster, run once per attempt, so a retry
//! or failover to another provider is prepared afresh for that provider.
//!
//! It keeps no state shared with the router leg: the backend comes from Envoy's attributes
//! (the chosen host's metadata), the model and whether the client streams without usage from
//! headers the router leg set. Per attempt it rewrites the path for the backend's prefix,
//! applies `modelNameOverride` and the header/body mutations, replaces client credentials with
//! the backend's, and, when nothing in the body changes, asks Envoy for headers only. On the
//! response it names the backend in internal headers the router leg reads and removes.

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
}

pub struct UpstreamLeg {
    store: Arc<ConfigStore>,
    trust_backend_header: bool,
    api: ClientApi,
    plan: Option<Plan>,
    body: Vec<u8>,
}

impl UpstreamLeg {
    pub fn new(store: Arc<ConfigStore>, trust_backend_header: bool) -> UpstreamLeg {
        UpstreamLeg {
            store,
            trust_backend_header,
            api: ClientApi::OpenAI,
            plan: None,
            body: Vec::new(),
        }
    }

    /// The answer to one message; errors become the client's error response.
    pub fn handle(&mut self, request: ProcessingRequest) -> ProcessingResponse {
        use envoy_types::pb::envoy::service::ext_proc::v3::processing_request::Request;
        let result = match request.request {
            Some(Request::RequestHeaders(headers)) => {
                self.request_headers(&request.attributes, &headers)
            }
            Some(Request::RequestBody(body)) => self.request_body(body),
            Some(Request::RequestTrailers(_)) => Ok(envoy::request_trailers()),
            Some(Request::ResponseHeaders(_)) => Ok(self.response_headers()),
            Some(Request::ResponseBody(_)) => Ok(envoy::response_body(None)),
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

        let mut changes = HeaderChanges::default();
        let path = upstream_path(&original_path, &backend, self.api)?;
        if headers.get(keys::PATH_PSEUDO_HEADER) != Some(path.as_str()) {
            changes.set(keys::PATH_PSEUDO_HEADER, path);
        }
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
                && matches!(backend.schema, Schema::OpenAI { .. });
            route_name = Some(route.name.clone());
            rule = Some(index);
        }
        inject_credential(&mut changes, &backend)?;
        body_mutations.retain(|m| !m.is_empty());

        let wants_body = !message.end_of_stream
            && (model_name_override.is_some() || !body_mutations.is_empty() || inject_usage);
        self.plan = Some(Plan {
            backend,
            route: route_name,
            rule,
            model_name_override,
            body_mutations,
            inject_usage,
            usage_injected: false,
        });
        let mut response = envoy::request_headers(envoy::common(changes, None, false));
        if !wants_body {
            response.mode_override = Some(envoy::headers_only_mode());
        }
        Ok(response)
    }

    fn request_body(&mut self, body: HttpBody) -> Result<ProcessingResponse> {
        self.body.extend_from_slice(&body.body);
        if !body.end_of_stream {
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

    /// Names the backend for the router leg, replacing anything the provider sent.
    fn response_headers(&self) -> ProcessingResponse {
        let mut changes = HeaderChanges::default();
        for name in keys::INTERNAL_HEADERS {
            changes.remove(name);
        }
        if let Some(plan) = &self.plan {
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
            if plan.usage_injected {
                changes.set(keys::USAGE_INJECTED_HEADER, "true");
            }
        }
        // Same schema both ways: the response body needs nothing from this leg.
        let mut response = envoy::response_headers(envoy::common(changes, None, false));
        response.mode_override = Some(envoy::headers_only_mode());
        response
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
        (Schema::Anthropic { prefix }, ClientApi::Anthropic) => ("/anthropic/v1", prefix),
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

/// Removes every client credential, then sets the backend's own.
fn inject_credential(changes: &mut HeaderChanges, backend: &Backend) -> Result<()> {
    for name in keys::CLIENT_CREDENTIAL_HEADERS {
        changes.remove(name);
    }
    match (&backend.credential, &backend.schema) {
        (None, _) => {}
        (Some(Credential::ApiKey(key)), _) if key.is_empty() => {
            return Err(Error::MissingCredential {
                backend: backend.name.clone(),
            });
        }
        (Some(Credential::ApiKey(key)), Schema::OpenAI { .. }) => {
            changes.set(keys::AUTHORIZATION_HEADER, format!("Bearer {key}"));
        }
        (Some(Credential::ApiKey(key)), Schema::Anthropic { .. }) => {
            changes.set(keys::X_API_KEY_HEADER, key.clone());
        }
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
