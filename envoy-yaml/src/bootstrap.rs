//! The Envoy bootstrap: ADS to the xds-server and nothing else.
//!
//! `envoy-bootstrap/bootstrap.yaml` is [`bootstrap`] of [`BootstrapOptions::default`] (a test checks
//! it); the CLI and the e2e tests render their own ports, node and xDS flavour from the same template.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Where Envoy finds the xds-server and what it tells it about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapOptions {
    /// `node.id`: this Envoy instance (shown in the xds-server's logs and `/status`).
    pub node_id: String,
    /// `node.cluster`: `infergate` serves every Gateway, `<namespace>/<gateway-name>` serves one.
    pub node_cluster: String,
    /// The xds-server's ADS gRPC address.
    pub xds_addr: SocketAddr,
    /// Envoy's admin listener.
    pub admin_addr: SocketAddr,
    /// Incremental xDS (`DELTA_GRPC`) instead of state of the world (`GRPC`).
    pub delta: bool,
}

/// The node cluster that serves every Gateway.
pub const ALL_GATEWAYS: &str = "infergate";
pub const DEFAULT_XDS_PORT: u16 = 18000;
pub const DEFAULT_ADMIN_PORT: u16 = 19000;

impl Default for BootstrapOptions {
    fn default() -> Self {
        let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
        Self {
            node_id: "infergate".into(),
            node_cluster: ALL_GATEWAYS.into(),
            xds_addr: SocketAddr::new(localhost, DEFAULT_XDS_PORT),
            admin_addr: SocketAddr::new(localhost, DEFAULT_ADMIN_PORT),
            delta: false,
        }
    }
}

/// The bootstrap YAML for `opts`.
pub fn bootstrap(opts: &BootstrapOptions) -> String {
    let node_id = scalar(&opts.node_id);
    let node_cluster = scalar(&opts.node_cluster);
    let api_type = if opts.delta { "DELTA_GRPC" } else { "GRPC" };
    let xds_ip = ip(opts.xds_addr.ip());
    let xds_port = opts.xds_addr.port();
    let admin_ip = ip(opts.admin_addr.ip());
    let admin_port = opts.admin_addr.port();
    format!(
        r#"# Envoy bootstrap for infergate: everything else comes from the xds-server over ADS.
# Rendered by `envoy_yaml::bootstrap::bootstrap`; envoy-bootstrap/bootstrap.yaml is its default, and
# `make gen` rewrites that file. See envoy-bootstrap/README.md for the node convention.
node:
  # `cluster: infergate` serves every Gateway; `cluster: <namespace>/<gateway-name>` serves one.
  id: {node_id}
  cluster: {node_cluster}
dynamic_resources:
  ads_config:
    api_type: {api_type}
    transport_api_version: V3
    set_node_on_first_message_only: true
    grpc_services:
    - envoy_grpc:
        cluster_name: xds_cluster
  lds_config:
    resource_api_version: V3
    ads: {{}}
  cds_config:
    resource_api_version: V3
    ads: {{}}
static_resources:
  clusters:
  - name: xds_cluster
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: xds_cluster
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address:
                address: {xds_ip}
                port_value: {xds_port}
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config:
          http2_protocol_options:
            connection_keepalive:
              interval: 30s
              timeout: 5s
    upstream_connection_options:
      tcp_keepalive:
        keepalive_probes: 3
        keepalive_time: 30
        keepalive_interval: 5
admin:
  address:
    socket_address:
      address: {admin_ip}
      port_value: {admin_port}
"#
    )
}

/// An IP as a YAML scalar: IPv6 is quoted (a plain `::1` is not a string to every parser).
fn ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("\"{v6}\""),
    }
}

/// A YAML scalar: plain when it is obviously a string, else a double-quoted (JSON) string.
fn scalar(s: &str) -> String {
    let plain = s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        && !matches!(s, "true" | "false" | "null" | "yes" | "no" | "on" | "off");
    if plain {
        s.to_owned()
    } else {
        serde_json::Value::from(s).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_that_yaml_would_misread_are_quoted() {
        assert_eq!(scalar("default/ai-gateway"), "default/ai-gateway");
        assert_eq!(scalar("true"), "\"true\"");
        assert_eq!(scalar("a: b"), "\"a: b\"");
        assert_eq!(scalar(""), "\"\"");
        assert_eq!(scalar("0123"), "\"0123\"");
    }

    #[test]
    fn delta_switches_the_ads_api_type() {
        let delta = bootstrap(&BootstrapOptions {
            delta: true,
            ..Default::default()
        });
        assert!(delta.contains("api_type: DELTA_GRPC\n"));
        assert!(bootstrap(&BootstrapOptions::default()).contains("api_type: GRPC\n"));
    }

    #[test]
    fn ipv6_addresses_are_quoted() {
        let opts = BootstrapOptions {
            xds_addr: "[::1]:18000".parse().expect("literal address"),
            ..Default::default()
        };
        assert!(bootstrap(&opts).contains("address: \"::1\"\n"));
    }
}
