//! The extproc's configuration (`extproc::config::Config`), derived from the same index
//! snapshot as Envoy's: AIGatewayRoutes with their model rules and costs, AIServiceBackends with
//! schema, mutations and the credential their BackendSecurityPolicy names (the Secret is read
//! here, so the extproc never touches Kubernetes). The extproc's own validation runs too, so a
//! bad CEL cost is a condition on its route at config time, not an error at request time.

use extproc::config::{
    BackendConfig, BackendRefConfig, BodyMutationConfig, Config, CostConfig, CredentialConfig,
    CredentialOverrideConfig, HeaderMutationConfig, ObjectKind, RouteConfig, RuleConfig,
    SUPPORTED_SCHEMAS, SchemaConfig,
};
use infergate_crds::ai_gateway::{BackendSecurityPolicyType, HttpBodyMutation, HttpHeaderMutation};
use infergate_crds::refs::HeaderMatchType;
use infergate_crds::{AIGatewayRoute, AIServiceBackend, BackendSecurityPolicy};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Cx;
use crate::keys::MODEL_HEADER;
use crate::object::{Kind, ObjectKey};
use crate::status::{Condition, reason};

/// Key of a Secret holding an API key (Envoy AI Gateway's convention).
const API_KEY_SECRET_KEY: &str = "apiKey";
/// Key of a Secret holding an AWS shared credentials file (Envoy AI Gateway's convention).
const AWS_CREDENTIALS_SECRET_KEY: &str = "credentials";

pub fn build(cx: &mut Cx<'_>, body_limit: u64) -> Config {
    let snapshot = cx.snapshot;
    let routes = snapshot
        .ai_gateway_routes()
        .map(|(key, route)| route_config(key, route))
        .collect();
    let backends = snapshot
        .ai_service_backends()
        .filter_map(|(key, backend)| backend_config(cx, key, backend))
        .collect();
    let mut config = Config {
        version: String::new(),
        request_body_limit_bytes: Some(body_limit),
        routes,
        backends,
    };
    for error in config.build().errors.into_iter().filter(|e| e.rejected) {
        let kind = match error.kind {
            ObjectKind::Route => Kind::AIGatewayRoute,
            ObjectKind::Backend => Kind::AIServiceBackend,
        };
        let (namespace, name) = error.name.split_once('/').unwrap_or(("", &error.name));
        let key = ObjectKey::new(kind, namespace, name);
        let mut message = error
            .message
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if message.contains("cel") && message.contains("UInt") {
            message.push_str(" (token variables are uint: write 3u, not 3)");
        }
        message.push_str("; the extproc leaves it out");
        cx.status.push(
            &key,
            Condition::fail(reason::ACCEPTED, reason::INVALID, message),
        );
    }
    untranslatable_pairs(cx, &config);
    config.version = crate::publish::version(&serde_json::to_string(&config).unwrap_or_default());
    config
}

/// A rule that sends OpenAI requests to a backend whose schema the extproc cannot translate
/// them to is a condition on that rule at config time (its requests get the extproc's
/// `backend_not_ready` 503), never an Accepted route that fails at request time.
fn untranslatable_pairs(cx: &mut Cx<'_>, config: &Config) {
    for route in &config.routes {
        let (namespace, name) = route.name.split_once('/').unwrap_or(("", &route.name));
        let key = ObjectKey::new(Kind::AIGatewayRoute, namespace, name);
        for (i, rule) in route.rules.iter().enumerate() {
            for (j, backend_ref) in rule.backend_refs.iter().enumerate() {
                let Some(backend) = config.backends.iter().find(|b| b.name == backend_ref.name)
                else {
                    continue;
                };
                let schema = backend.schema.name.as_str();
                if SUPPORTED_SCHEMAS.contains(&schema) {
                    continue;
                }
                cx.status.push(
                    &key,
                    Condition::fail(
                        reason::ACCEPTED,
                        reason::UNSUPPORTED_VALUE,
                        format!(
                            "backend {} has schema {schema}: the gateway cannot translate \
                             /v1/chat/completions to it yet (supported: {}); its requests are \
                             refused",
                            backend.name,
                            SUPPORTED_SCHEMAS.join(", ")
                        ),
                    )
                    .scoped(format!("rule {i} backendRef {j}")),
                );
            }
        }
    }
}

fn route_config(key: &ObjectKey, route: &AIGatewayRoute) -> RouteConfig {
    let rules = route
        .spec
        .rules
        .iter()
        .map(|rule| RuleConfig {
            models: rule
                .matches
                .iter()
                .flat_map(|m| &m.headers)
                .filter(|h| {
                    h.name.eq_ignore_ascii_case(MODEL_HEADER)
                        && h.match_type() == HeaderMatchType::Exact
                })
                .map(|h| h.value.clone())
                .collect(),
            models_owned_by: rule.models_owned_by.clone(),
            models_created_at: rule.models_created_at.as_ref().map(|t| t.0),
            backend_refs: rule
                .backend_refs
                .iter()
                .filter(|r| !r.is_inference_pool())
                .map(|r| BackendRefConfig {
                    name: format!(
                        "{}/{}",
                        r.namespace.as_deref().unwrap_or(&key.namespace),
                        r.name
                    ),
                    model_name_override: r.model_name_override.clone(),
                    header_mutation: r.header_mutation.as_ref().and_then(header_mutation),
                    body_mutation: r.body_mutation.as_ref().and_then(body_mutation),
                })
                .collect(),
        })
        .collect();
    RouteConfig {
        name: key.namespaced_name(),
        hostnames: route.spec.hostnames.clone(),
        created_at: route.metadata.creation_timestamp.as_ref().map(|t| t.0),
        rules,
        llm_request_costs: route
            .spec
            .llm_request_costs
            .iter()
            .filter_map(|c| {
                Some(CostConfig {
                    metadata_key: c.metadata_key.clone(),
                    kind: reshape(&c.type_)?,
                    cel: c.cel.clone(),
                })
            })
            .collect(),
    }
}

fn backend_config(
    cx: &mut Cx<'_>,
    key: &ObjectKey,
    backend: &AIServiceBackend,
) -> Option<BackendConfig> {
    let schema = &backend.spec.schema;
    let name = serde_json::to_value(schema.name)
        .ok()?
        .as_str()?
        .to_string();
    Some(BackendConfig {
        name: key.namespaced_name(),
        schema: SchemaConfig {
            name,
            prefix: schema.prefix.clone(),
            version: schema.version.clone(),
        },
        header_mutation: backend
            .spec
            .header_mutation
            .as_ref()
            .and_then(header_mutation),
        body_mutation: backend.spec.body_mutation.as_ref().and_then(body_mutation),
        credential: credential(cx, key, backend),
        credential_override: credential_override(cx, key, backend),
    })
}

/// `credentialOverride.fromRequestHeaders` of the backend's policy (`fromDynamicMetadata` is a
/// condition: nothing before the extproc sets such metadata).
fn credential_override(
    cx: &mut Cx<'_>,
    key: &ObjectKey,
    backend: &AIServiceBackend,
) -> Option<CredentialOverrideConfig> {
    let (policy_key, policy) = security_policy(cx.snapshot, key, backend)?;
    let over = policy.spec.credential_override.as_ref()?;
    if over.from_dynamic_metadata.is_some() {
        cx.status.push(
            policy_key,
            Condition::fail(
                reason::ACCEPTED,
                reason::UNSUPPORTED_VALUE,
                "credentialOverride.fromDynamicMetadata is not supported; use fromRequestHeaders",
            )
            .scoped("credentialOverride"),
        );
    }
    let headers = over.from_request_headers.as_ref()?;
    Some(CredentialOverrideConfig {
        header: headers.header.clone(),
        fallback_to_configured: headers.fallback_to_configured.unwrap_or(false),
    })
}

/// The BackendSecurityPolicy that applies to `backend`: the one its
/// `backendSecurityPolicyRef` names, or one whose `targetRefs` select it.
fn security_policy<'s>(
    snapshot: &'s crate::index::IndexSnapshot,
    key: &ObjectKey,
    backend: &AIServiceBackend,
) -> Option<(&'s ObjectKey, &'s BackendSecurityPolicy)> {
    let by_ref = backend
        .spec
        .backend_security_policy_ref
        .as_ref()
        .map(|r| r.name.as_str());
    snapshot.backend_security_policies().find(|(pk, p)| {
        pk.namespace == key.namespace
            && (by_ref == Some(pk.name.as_str())
                || p.spec
                    .target_refs
                    .iter()
                    .any(|t| t.kind == "AIServiceBackend" && t.name == key.name))
    })
}

/// The credential of the BackendSecurityPolicy that applies to `backend`: the one its
/// `backendSecurityPolicyRef` names, or one whose `targetRefs` select it.
fn credential(
    cx: &mut Cx<'_>,
    key: &ObjectKey,
    backend: &AIServiceBackend,
) -> Option<CredentialConfig> {
    let (policy_key, policy) = security_policy(cx.snapshot, key, backend)?;
    let resolved = match policy.spec.type_ {
        BackendSecurityPolicyType::AWSCredentials => aws_credentials(cx, policy_key, policy),
        BackendSecurityPolicyType::GCPCredentials => {
            super::token_credentials::gcp_credential(cx, policy_key, policy)
        }
        BackendSecurityPolicyType::AzureCredentials => {
            super::token_credentials::azure_credential(cx, policy_key, policy)
        }
        _ => api_key(cx, policy_key, policy).map(|key| CredentialConfig::ApiKey { key }),
    };
    match resolved {
        Ok(credential) => {
            cx.status.push(
                policy_key,
                Condition::ok(
                    reason::RESOLVED_REFS,
                    reason::RESOLVED_REFS,
                    "credential resolved",
                ),
            );
            Some(credential)
        }
        Err((why, message)) => {
            cx.status.push(
                policy_key,
                Condition::fail(reason::RESOLVED_REFS, why, message),
            );
            None
        }
    }
}

fn api_key(
    cx: &Cx<'_>,
    policy_key: &ObjectKey,
    policy: &BackendSecurityPolicy,
) -> Result<String, (&'static str, String)> {
    let spec = &policy.spec;
    let credential = match spec.type_ {
        BackendSecurityPolicyType::APIKey => spec.api_key.as_ref(),
        BackendSecurityPolicyType::AnthropicAPIKey => spec.anthropic_api_key.as_ref(),
        BackendSecurityPolicyType::AzureAPIKey => spec.azure_api_key.as_ref(),
        other => {
            return Err((
                reason::UNSUPPORTED_VALUE,
                format!("credential type {other:?} is not supported yet"),
            ));
        }
    };
    let Some(credential) = credential else {
        return Err((
            reason::INVALID,
            format!("type {:?} needs its credential field set", spec.type_),
        ));
    };
    let secret = secret(cx, policy_key, &credential.secret_ref)?;
    secret
        .get(API_KEY_SECRET_KEY)
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            (
                reason::INVALID,
                format!("Secret {} has no {API_KEY_SECRET_KEY:?} key", secret.name),
            )
        })
}

/// A Secret's values (`stringData` over `data`), and its `namespace/name` for messages.
pub(super) struct SecretValues {
    pub(super) name: String,
    pub(super) values: std::collections::BTreeMap<String, String>,
}

impl SecretValues {
    pub(super) fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }
}

pub(super) fn secret(
    cx: &Cx<'_>,
    policy_key: &ObjectKey,
    secret_ref: &infergate_crds::refs::SecretObjectReference,
) -> Result<SecretValues, (&'static str, String)> {
    let namespace = secret_ref
        .namespace
        .as_deref()
        .unwrap_or(&policy_key.namespace);
    let name = format!("{namespace}/{}", secret_ref.name);
    let Some(secret) = cx.snapshot.secret(namespace, &secret_ref.name) else {
        return Err((
            reason::BACKEND_NOT_FOUND,
            format!("Secret {name} not found"),
        ));
    };
    let mut values = std::collections::BTreeMap::new();
    for (k, v) in secret.data.iter().flatten() {
        if let Ok(text) = String::from_utf8(v.0.clone()) {
            values.insert(k.clone(), text);
        }
    }
    for (k, v) in secret.string_data.iter().flatten() {
        values.insert(k.clone(), v.clone());
    }
    Ok(SecretValues { name, values })
}

/// `AWSCredentials`: the region, and static keys from the AWS shared credentials file in the
/// Secret's `credentials` key (the policy's profile, `default` when unset), or from
/// `aws_access_key_id` / `aws_secret_access_key` / `aws_session_token` keys of the Secret
/// itself. Messages name the missing field, never a value.
fn aws_credentials(
    cx: &Cx<'_>,
    policy_key: &ObjectKey,
    policy: &BackendSecurityPolicy,
) -> Result<CredentialConfig, (&'static str, String)> {
    let Some(aws) = policy.spec.aws_credentials.as_ref() else {
        return Err((
            reason::INVALID,
            "type AWSCredentials needs awsCredentials set".into(),
        ));
    };
    if aws.region.trim().is_empty() {
        return Err((reason::INVALID, "awsCredentials.region is empty".into()));
    }
    let Some(file) = aws.credentials_file.as_ref() else {
        let why = if aws.oidc_exchange_token.is_some() {
            "awsCredentials.oidcExchangeToken is not supported yet; use credentialsFile"
        } else {
            "awsCredentials needs credentialsFile"
        };
        return Err((reason::UNSUPPORTED_VALUE, why.into()));
    };
    let secret = secret(cx, policy_key, &file.secret_ref)?;
    let profile = file.profile.as_deref().unwrap_or("default");
    let keys = match secret.get(AWS_CREDENTIALS_SECRET_KEY) {
        Some(text) => aws_profile(text, profile).ok_or_else(|| {
            (
                reason::INVALID,
                format!(
                    "Secret {}: the credentials file has no [{profile}] profile",
                    secret.name
                ),
            )
        })?,
        None => secret
            .values
            .iter()
            .map(|(k, v)| (k.clone(), v.trim().to_string()))
            .collect(),
    };
    let get = |name: &str| {
        keys.get(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let (Some(access_key_id), Some(secret_access_key)) =
        (get("aws_access_key_id"), get("aws_secret_access_key"))
    else {
        return Err((
            reason::INVALID,
            format!(
                "Secret {}: profile {profile} needs aws_access_key_id and aws_secret_access_key",
                secret.name
            ),
        ));
    };
    Ok(CredentialConfig::AwsCredentials {
        region: aws.region.trim().to_string(),
        access_key_id,
        secret_access_key,
        session_token: get("aws_session_token"),
    })
}

/// The `key = value` pairs of `[profile]` in an AWS shared credentials file.
fn aws_profile(text: &str, profile: &str) -> Option<std::collections::BTreeMap<String, String>> {
    let mut current: Option<&str> = None;
    let mut found = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            current = Some(name.strip_prefix("profile ").unwrap_or(name).trim());
            if current == Some(profile) {
                found.get_or_insert_with(std::collections::BTreeMap::new);
            }
            continue;
        }
        if current == Some(profile)
            && let Some((k, v)) = line.split_once('=')
            && let Some(map) = found.as_mut()
        {
            map.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    found
}

fn header_mutation(m: &HttpHeaderMutation) -> Option<HeaderMutationConfig> {
    reshape(m)
}

fn body_mutation(m: &HttpBodyMutation) -> Option<BodyMutationConfig> {
    reshape(m)
}

/// Our CRD types and the extproc's config types share their JSON shape.
fn reshape<T: Serialize, U: DeserializeOwned>(value: &T) -> Option<U> {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
}

#[cfg(test)]
mod tests {
    use super::aws_profile;

    #[test]
    fn the_named_profile_of_a_credentials_file_is_read() {
        let file = "# comment\n[default]\naws_access_key_id = AKID1\naws_secret_access_key=s1\n\n[profile prod]\nAWS_ACCESS_KEY_ID = AKID2\naws_secret_access_key = s2\naws_session_token = t2\n";
        let default = aws_profile(file, "default").expect("default");
        assert_eq!(
            default.get("aws_access_key_id").map(String::as_str),
            Some("AKID1")
        );
        assert_eq!(default.get("aws_session_token"), None);
        let prod = aws_profile(file, "prod").expect("prod");
        assert_eq!(
            prod.get("aws_access_key_id").map(String::as_str),
            Some("AKID2")
        );
        assert_eq!(
            prod.get("aws_session_token").map(String::as_str),
            Some("t2")
        );
        assert!(aws_profile(file, "dev").is_none());
    }
}
