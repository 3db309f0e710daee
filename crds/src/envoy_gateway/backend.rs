//! `Backend`: endpoints outside the cluster's Services (FQDN, IP or Unix socket), with TLS settings.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::refs::{ConditionsStatus, LocalObjectReference, SecretObjectReference};

/// Spec of a `Backend`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "gateway.envoyproxy.io",
    version = "v1alpha1",
    kind = "Backend",
    doc = "Backend lists endpoints outside the cluster Services (FQDN, IP or Unix socket) and their TLS settings.",
    plural = "backends",
    shortname = "be",
    namespaced,
    status = "BackendStatus",
    derive = "Default",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct BackendSpec {
    /// `Endpoints` (the default) or `DynamicResolver`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<BackendType>,
    /// Where to connect.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<BackendEndpoint>,
    /// Application protocols, such as `gateway.envoyproxy.io/h2c`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub app_protocols: Vec<AppProtocolType>,
    /// Use this backend only when the primary ones are unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<bool>,
    /// Upstream TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<BackendTlsSettings>,
}

/// Status of a `Backend`.
pub type BackendStatus = ConditionsStatus;

/// How the endpoints of a `Backend` are found.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum BackendType {
    /// The listed endpoints.
    Endpoints,
    /// Resolve the request's host at request time.
    DynamicResolver,
}

/// An application protocol spoken to the backend.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum AppProtocolType {
    /// HTTP/2 over cleartext.
    #[serde(rename = "gateway.envoyproxy.io/h2c")]
    H2c,
    /// WebSocket over cleartext.
    #[serde(rename = "gateway.envoyproxy.io/ws")]
    Ws,
    /// WebSocket over TLS.
    #[serde(rename = "gateway.envoyproxy.io/wss")]
    Wss,
}

/// One endpoint; exactly one of `fqdn`, `ip` and `unix` is set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackendEndpoint {
    /// Host name to send to the endpoint (SNI/Host), when it differs from the address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// A DNS name and port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fqdn: Option<FqdnEndpoint>,
    /// An IP address and port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpEndpoint>,
    /// A Unix domain socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unix: Option<UnixSocket>,
    /// Locality zone, for zone-aware routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

/// A DNS name and port.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FqdnEndpoint {
    /// DNS name.
    pub hostname: String,
    /// Port.
    #[schemars(range(min = 0, max = 65535))]
    pub port: i32,
}

/// An IP address and port.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IpEndpoint {
    /// IPv4 or IPv6 address.
    pub address: String,
    /// Port.
    #[schemars(range(min = 0, max = 65535))]
    pub port: i32,
}

/// A Unix domain socket path.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnixSocket {
    /// Socket path.
    pub path: String,
}

/// Upstream TLS settings of a `Backend`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackendTlsSettings {
    /// ConfigMaps or Secrets holding CA certificates (key `ca.crt`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ca_certificate_refs: Vec<LocalObjectReference>,
    /// `System`: use the system trust store.
    #[serde(
        default,
        rename = "wellKnownCACertificates",
        skip_serializing_if = "Option::is_none"
    )]
    pub well_known_ca_certificates: Option<WellKnownCaCertificates>,
    /// Do not verify the server certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
    /// SNI to send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// Send the endpoint's host name as SNI.
    #[serde(
        default,
        rename = "autoSNIFromEndpointHostname",
        skip_serializing_if = "Option::is_none"
    )]
    pub auto_sni_from_endpoint_hostname: Option<bool>,
    /// Client certificate for mutual TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate_ref: Option<SecretObjectReference>,
    /// Minimum TLS version: `Auto`, `1.0`–`1.3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_version: Option<String>,
    /// Maximum TLS version: `Auto`, `1.0`–`1.3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_version: Option<String>,
    /// Cipher suites.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ciphers: Vec<String>,
    /// ECDH curves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ecdh_curves: Vec<String>,
    /// Signature algorithms.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signature_algorithms: Vec<String>,
    /// TLS fingerprints to compute (`JA3`, `JA4`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fingerprints: Vec<String>,
    /// ALPN protocols (`h2`, `http/1.1`, `http/1.0`).
    #[serde(
        default,
        rename = "alpnProtocols",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub alpn_protocols: Vec<String>,
}

/// A well-known CA set.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum WellKnownCaCertificates {
    /// The system trust store.
    System,
}
