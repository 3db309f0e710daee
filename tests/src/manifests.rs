//! YAML pieces the e2e stacks share, so each test writes only what it is about (its routes and
//! policies).

use std::net::SocketAddr;

/// GatewayClass `infergate` and Gateway `default/ai` with listener `http` on `port`.
pub fn gateway(port: u16) -> String {
    format!(
        r#"apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: infergate}}
spec: {{controllerName: infergate.io/gateway-controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: ai, namespace: default}}
spec:
  gatewayClassName: infergate
  listeners: [{{name: http, protocol: HTTP, port: {port}}}]
"#
    )
}

/// A provider the gateway reaches at `addr` with a key: AIServiceBackend `default/<name>` of
/// `schema`, its Backend, and a BackendSecurityPolicy of `credential` (`APIKey`,
/// `AnthropicAPIKey`, …) reading `key` from Secret `default/<name>-key`.
pub fn keyed_backend(
    name: &str,
    schema: &str,
    addr: SocketAddr,
    credential: &str,
    key: &str,
) -> String {
    // The policy's field is the type in lower camel case: `APIKey` → `apiKey`,
    // `AnthropicAPIKey` → `anthropicAPIKey` (a leading acronym is lowered but for the letter
    // that starts the next word).
    let upper = credential
        .bytes()
        .take_while(u8::is_ascii_uppercase)
        .count();
    let lowered = if upper <= 1 || upper == credential.len() {
        upper
    } else {
        upper - 1
    };
    let field = format!(
        "{}{}",
        credential[..lowered].to_ascii_lowercase(),
        &credential[lowered..]
    );
    format!(
        r#"apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIServiceBackend
metadata: {{name: {name}, namespace: default}}
spec:
  schema: {{name: {schema}}}
  backendRef: {{name: {name}, kind: Backend, group: gateway.envoyproxy.io}}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata: {{name: {name}, namespace: default}}
spec:
  endpoints: [{{ip: {{address: '{ip}', port: {port}}}}}]
---
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: BackendSecurityPolicy
metadata: {{name: {name}-key, namespace: default}}
spec:
  type: {credential}
  targetRefs: [{{group: aigateway.envoyproxy.io, kind: AIServiceBackend, name: {name}}}]
  {field}: {{secretRef: {{name: {name}-key}}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: {name}-key, namespace: default}}
stringData: {{apiKey: {key}}}
"#,
        ip = addr.ip(),
        port = addr.port(),
    )
}

/// A provider at `addr` with any schema and security policy: AIServiceBackend
/// `default/<name>` with `schema` (a YAML flow mapping, `{name: AWSBedrock}`), its Backend,
/// and, when `policy` is given, a BackendSecurityPolicy `default/<name>-policy` with that spec
/// (YAML lines, indented two spaces; `targetRefs` added) plus Secret `default/<name>-secret`
/// holding `secret` (key, value).
pub fn provider_backend(
    name: &str,
    schema: &str,
    addr: SocketAddr,
    policy: Option<&str>,
    secret: &[(&str, &str)],
) -> String {
    let mut yaml = format!(
        r#"apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIServiceBackend
metadata: {{name: {name}, namespace: default}}
spec:
  schema: {schema}
  backendRef: {{name: {name}, kind: Backend, group: gateway.envoyproxy.io}}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata: {{name: {name}, namespace: default}}
spec:
  endpoints: [{{ip: {{address: '{ip}', port: {port}}}}}]
"#,
        ip = addr.ip(),
        port = addr.port(),
    );
    if let Some(policy) = policy {
        yaml.push_str(&format!(
            r#"---
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: BackendSecurityPolicy
metadata: {{name: {name}-policy, namespace: default}}
spec:
  targetRefs: [{{group: aigateway.envoyproxy.io, kind: AIServiceBackend, name: {name}}}]
{policy}
---
apiVersion: v1
kind: Secret
metadata: {{name: {name}-secret, namespace: default}}
stringData:
"#
        ));
        for (key, value) in secret {
            yaml.push_str(&format!("  {key}: {}\n", serde_json::Value::from(*value)));
        }
    }
    yaml
}

#[cfg(test)]
mod tests {
    #[test]
    fn credential_fields_are_lower_camel_case() {
        let addr = "127.0.0.1:1".parse().expect("addr");
        let yaml = super::keyed_backend("a", "Anthropic", addr, "AnthropicAPIKey", "k");
        assert!(yaml.contains("  anthropicAPIKey: {secretRef"), "{yaml}");
        let yaml = super::keyed_backend("o", "OpenAI", addr, "APIKey", "k");
        assert!(yaml.contains("  apiKey: {secretRef"), "{yaml}");
    }
}
