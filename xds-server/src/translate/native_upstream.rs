//! AI rule clusters that can do without the upstream leg for OpenAI requests.
//!
//! A rule with one backend of the `OpenAI` schema under the client's own `/v1` prefix, with
//! no `modelNameOverride`, no body mutation, no `credentialOverride` and an API key (or no
//! credential), needs from the upstream leg only header work: drop the gateway's internal
//! headers and the client's credentials, apply the header mutations, inject the key. Envoy
//! does that itself (DESIGN.md §4), which saves a gRPC stream per request; the leg stays in
//! the chain, behind a matcher, for the requests it must translate (Anthropic clients).
//! Streamed usage for costs is asked for by the router leg, which runs before routing.

use extproc::config::{BackendConfig, BackendRefConfig, Config, CredentialConfig, RuleConfig};

use super::assemble::RouteModel;
use super::ir::{ClusterIr, ClusterProtocolIr, NativeUpstreamIr, SecretIr};
use super::route_common::route_name;
use crate::keys::{CLIENT_CREDENTIAL_HEADERS, CREDENTIAL_SECRET_PREFIX, INTERNAL_HEADERS};

/// The OpenAI schema's default prefix, which is also the client's: the path goes unchanged.
const OPENAI_DEFAULT_PREFIX: &str = "v1";
const AUTHORIZATION_HEADER: &str = "authorization";
/// The upstream leg asks providers for uncompressed bodies (the router leg reads them).
const ACCEPT_ENCODING_HEADER: &str = "accept-encoding";
/// SigV4 headers a client might send; only signed backends may get them.
const AWS_SIGNING_HEADERS: &[&str] = extproc::keys::AWS_SIGNING_HEADERS;

/// Switches every eligible AI rule cluster in `routes` to [`ClusterProtocolIr::NativeUpstream`].
pub fn apply(config: &Config, routes: &mut [RouteModel]) {
    for model in routes.iter_mut().filter(|m| m.ai) {
        let prefix = format!("{}/rule/", route_name(&model.key));
        let name = model.key.namespaced_name();
        let Some(route) = config.routes.iter().find(|r| r.name == name) else {
            continue;
        };
        for cluster in &mut model.clusters {
            let Some(rule) = cluster
                .name
                .strip_prefix(&prefix)
                .and_then(|i| i.parse::<usize>().ok())
                .and_then(|i| route.rules.get(i))
            else {
                continue;
            };
            if let Some(native) = native(cluster, rule, config) {
                cluster.protocol = ClusterProtocolIr::NativeUpstream(native);
            }
        }
    }
}

fn native(cluster: &ClusterIr, rule: &RuleConfig, config: &Config) -> Option<NativeUpstreamIr> {
    let ClusterProtocolIr::UpstreamExtproc(extproc) = &cluster.protocol else {
        return None;
    };
    let [backend_ref] = rule.backend_refs.as_slice() else {
        return None;
    };
    let backend = config
        .backends
        .iter()
        .find(|b| b.name == backend_ref.name)?;
    if !plain_openai(backend, backend_ref) {
        return None;
    }
    let credential = match &backend.credential {
        None => None,
        Some(CredentialConfig::ApiKey { key }) if !key.trim().is_empty() => Some(SecretIr {
            name: format!("{CREDENTIAL_SECRET_PREFIX}{}", backend.name),
            header: AUTHORIZATION_HEADER.to_string(),
            value: format!("Bearer {key}"),
        }),
        Some(_) => return None,
    };
    let (remove, set) = header_changes(backend, backend_ref);
    Some(NativeUpstreamIr {
        extproc: extproc.clone(),
        remove,
        set,
        credential,
    })
}

/// Nothing in the body changes and the path stays as the client sent it.
fn plain_openai(backend: &BackendConfig, backend_ref: &BackendRefConfig) -> bool {
    let prefix = backend
        .schema
        .prefix
        .as_deref()
        .unwrap_or(OPENAI_DEFAULT_PREFIX)
        .trim_matches('/');
    backend.schema.name == "OpenAI"
        && prefix == OPENAI_DEFAULT_PREFIX
        && backend_ref.model_name_override.is_none()
        && backend
            .body_mutation
            .as_ref()
            .is_none_or(|m| m.set.is_empty() && m.remove.is_empty())
        && backend_ref
            .body_mutation
            .as_ref()
            .is_none_or(|m| m.set.is_empty() && m.remove.is_empty())
        && backend.credential_override.is_none()
}

/// What the upstream leg does to the headers: internal and credential headers out, then the
/// backend's mutation, then the backendRef's (a later `set` wins, a later `remove` undoes an
/// earlier `set`).
fn header_changes(
    backend: &BackendConfig,
    backend_ref: &BackendRefConfig,
) -> (Vec<String>, Vec<(String, String)>) {
    let mut remove: Vec<String> = INTERNAL_HEADERS
        .iter()
        .chain(CLIENT_CREDENTIAL_HEADERS)
        .chain(AWS_SIGNING_HEADERS)
        .chain(&[ACCEPT_ENCODING_HEADER])
        .map(|h| h.to_string())
        .collect();
    let mut set: Vec<(String, String)> = Vec::new();
    for mutation in [&backend.header_mutation, &backend_ref.header_mutation]
        .into_iter()
        .flatten()
    {
        for name in &mutation.remove {
            let name = name.to_ascii_lowercase();
            set.retain(|(n, _)| *n != name);
            if !remove.contains(&name) {
                remove.push(name);
            }
        }
        for header in &mutation.set {
            let name = header.name.to_ascii_lowercase();
            set.retain(|(n, _)| *n != name);
            set.push((name, header.value.clone()));
        }
    }
    (remove, set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> Config {
        serde_json::from_str(json).expect("config")
    }

    fn eligible(backend: &str, backend_ref: &str) -> Option<NativeUpstreamIr> {
        let config = config(&format!(
            r#"{{"routes":[{{"name":"ns/r","rules":[{{"backendRefs":[{backend_ref}]}}]}}],
                "backends":[{backend}]}}"#
        ));
        let cluster = ClusterIr {
            name: "aigatewayroute/ns/r/rule/0".into(),
            discovery: super::super::ir::DiscoveryIr::Eds,
            tls: Vec::new(),
            outlier_detection: true,
            connect_timeout: std::time::Duration::from_secs(1),
            protocol: ClusterProtocolIr::UpstreamExtproc(super::super::ir::ExtprocIr {
                cluster: "infergate/extproc".into(),
                message_timeout: std::time::Duration::from_secs(1),
                body_limit: 1,
            }),
            override_host: None,
            tcp_health_check: false,
        };
        native(&cluster, &config.routes[0].rules[0], &config)
    }

    #[test]
    fn a_plain_openai_backend_with_a_key_is_native() {
        let native = eligible(
            r#"{"name":"ns/b","schema":{"name":"OpenAI"},"credential":{"kind":"APIKey","key":"sk-1"},
                "headerMutation":{"set":[{"name":"X-A","value":"1"},{"name":"x-b","value":"2"}]}}"#,
            r#"{"name":"ns/b","headerMutation":{"remove":["x-b"],"set":[{"name":"x-a","value":"3"}]}}"#,
        )
        .expect("native");
        let secret = native.credential.expect("credential");
        assert_eq!(secret.name, "infergate/credential/ns/b");
        assert_eq!(secret.value, "Bearer sk-1");
        assert!(!format!("{secret:?}").contains("sk-1"));
        assert_eq!(native.set, [("x-a".to_string(), "3".to_string())]);
        for header in [
            "authorization",
            "x-api-key",
            "api-key",
            "accept-encoding",
            "x-b",
        ] {
            assert!(native.remove.iter().any(|h| h == header), "{header}");
        }
    }

    #[test]
    fn anything_that_changes_the_body_path_or_signs_keeps_the_upstream_leg() {
        let key = r#""credential":{"kind":"APIKey","key":"sk-1"}"#;
        let cases = [
            (format!(r#"{{"name":"ns/b","schema":{{"name":"OpenAI","prefix":"/api/v1"}},{key}}}"#), r#"{"name":"ns/b"}"#),
            (format!(r#"{{"name":"ns/b","schema":{{"name":"OpenAI"}},{key}}}"#), r#"{"name":"ns/b","modelNameOverride":"m"}"#),
            (format!(r#"{{"name":"ns/b","schema":{{"name":"OpenAI"}},{key},"bodyMutation":{{"remove":["x"]}}}}"#), r#"{"name":"ns/b"}"#),
            (format!(r#"{{"name":"ns/b","schema":{{"name":"OpenAI"}},{key},"credentialOverride":{{}}}}"#), r#"{"name":"ns/b"}"#),
            (format!(r#"{{"name":"ns/b","schema":{{"name":"Anthropic"}},{key}}}"#), r#"{"name":"ns/b"}"#),
            (r#"{"name":"ns/b","schema":{"name":"OpenAI"},"credential":{"kind":"APIKey","key":""}}"#.to_string(), r#"{"name":"ns/b"}"#),
            (format!(r#"{{"name":"ns/b","schema":{{"name":"OpenAI"}},{key}}}"#), r#"{"name":"ns/b"},{"name":"ns/b"}"#),
        ];
        for (backend, backend_ref) in &cases {
            assert!(
                eligible(backend, backend_ref).is_none(),
                "{backend} {backend_ref}"
            );
        }
        assert!(
            eligible(
                r#"{"name":"ns/b","schema":{"name":"OpenAI","prefix":"/v1/"}}"#,
                r#"{"name":"ns/b"}"#
            )
            .is_some()
        );
    }
}
