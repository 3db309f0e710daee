//! Clusters: EDS for IP endpoints, STRICT_DNS for hostnames; locality-weighted so each backend's
//! weight and priority hold; per-backend TLS chosen by endpoint metadata.

use envoy_types::pb::envoy::config::cluster::v3::{
    Cluster, OutlierDetection,
    cluster::{
        ClusterDiscoveryType, CommonLbConfig, DiscoveryType, DnsLookupFamily, EdsClusterConfig,
        LbConfig, LbPolicy, OriginalDstLbConfig, TransportSocketMatch,
        common_lb_config::{LocalityConfigSpecifier, LocalityWeightedLbConfig},
    },
};
use envoy_types::pb::envoy::config::core::v3::{
    DataSource, HealthCheck, TransportSocket, data_source::Specifier, health_check,
    transport_socket,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, UpstreamTlsContext,
    common_tls_context::ValidationContextType,
};
use envoy_types::pb::envoy::r#type::v3::Percent;
use envoy_types::pb::google::protobuf::{Struct, UInt32Value};

use super::{duration, endpoint, epp, extproc, native_upstream, pack, string_value};
use crate::keys::SYSTEM_CA_BUNDLE;
use crate::translate::ir::{
    CaIr, ClusterIr, ClusterProtocolIr, DiscoveryIr, NativeUpstreamIr, TlsIr,
};

pub fn cluster(ir: &ClusterIr) -> Cluster {
    // Pool clusters pick the host the endpoint picker names; the rest weigh localities.
    let locality_weighted =
        ir.override_host.is_none() && !matches!(ir.discovery, DiscoveryIr::OriginalDst { .. });
    let mut cluster = Cluster {
        name: ir.name.clone(),
        connect_timeout: Some(duration(ir.connect_timeout)),
        lb_policy: LbPolicy::RoundRobin as i32,
        common_lb_config: locality_weighted.then(|| CommonLbConfig {
            locality_config_specifier: Some(LocalityConfigSpecifier::LocalityWeightedLbConfig(
                LocalityWeightedLbConfig {},
            )),
            ..Default::default()
        }),
        load_balancing_policy: ir.override_host.as_ref().map(epp::override_host_policy),
        transport_socket_matches: ir.tls.iter().map(transport_socket_match).collect(),
        outlier_detection: ir.outlier_detection.then(outlier_detection),
        typed_extension_protocol_options: match &ir.protocol {
            ClusterProtocolIr::Default => Default::default(),
            ClusterProtocolIr::Http2 => [(
                extproc::HTTP_PROTOCOL_OPTIONS.to_string(),
                extproc::http2_protocol_options(),
            )]
            .into(),
            ClusterProtocolIr::UpstreamExtproc(e) => [(
                extproc::HTTP_PROTOCOL_OPTIONS.to_string(),
                extproc::upstream_protocol_options(e),
            )]
            .into(),
            ClusterProtocolIr::NativeUpstream(n) => [(
                extproc::HTTP_PROTOCOL_OPTIONS.to_string(),
                extproc::http1_with_filters(native_upstream::filters(n)),
            )]
            .into(),
        },
        // Buffered request bodies for the extproc pass through upstream connections too.
        per_connection_buffer_limit_bytes: match &ir.protocol {
            ClusterProtocolIr::UpstreamExtproc(e)
            | ClusterProtocolIr::NativeUpstream(NativeUpstreamIr { extproc: e, .. }) => {
                u32::try_from(e.body_limit)
                    .ok()
                    .map(|value| UInt32Value { value })
            }
            _ => None,
        },
        ..Default::default()
    };
    if ir.tcp_health_check {
        cluster.health_checks = vec![tcp_health_check()];
        cluster
            .common_lb_config
            .get_or_insert_with(Default::default)
            .healthy_panic_threshold = Some(Percent { value: 0.0 });
    }
    match &ir.discovery {
        DiscoveryIr::Eds => {
            cluster.cluster_discovery_type =
                Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32));
            cluster.eds_cluster_config = Some(EdsClusterConfig {
                eds_config: Some(super::ads_config_source()),
                service_name: ir.name.clone(),
            });
        }
        DiscoveryIr::StrictDns(endpoints) => {
            cluster.cluster_discovery_type =
                Some(ClusterDiscoveryType::Type(DiscoveryType::StrictDns as i32));
            cluster.dns_lookup_family = DnsLookupFamily::V4Preferred as i32;
            cluster.load_assignment = Some(endpoint::cluster_load_assignment(endpoints));
        }
        DiscoveryIr::Pipe { path } => {
            cluster.cluster_discovery_type =
                Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32));
            cluster.load_assignment = Some(endpoint::pipe_load_assignment(&ir.name, path));
        }
        DiscoveryIr::OriginalDst { header } => {
            cluster.cluster_discovery_type = Some(ClusterDiscoveryType::Type(
                DiscoveryType::OriginalDst as i32,
            ));
            cluster.lb_policy = LbPolicy::ClusterProvided as i32;
            cluster.lb_config = Some(LbConfig::OriginalDstLbConfig(OriginalDstLbConfig {
                use_http_header: true,
                http_header_name: header.clone(),
                ..Default::default()
            }));
        }
    }
    cluster
}

/// A TCP connect every second (also without traffic); one failure marks the host down, one
/// success up again.
fn tcp_health_check() -> HealthCheck {
    let second = duration(std::time::Duration::from_secs(1));
    HealthCheck {
        timeout: Some(second),
        interval: Some(second),
        no_traffic_interval: Some(second),
        unhealthy_threshold: Some(UInt32Value { value: 1 }),
        healthy_threshold: Some(UInt32Value { value: 1 }),
        health_checker: Some(health_check::HealthChecker::TcpHealthCheck(
            Default::default(),
        )),
        ..Default::default()
    }
}

/// Fails over quickly: a host that refuses connections or answers 5xx from the gateway's side
/// is ejected, so the next priority takes its traffic without waiting for retries.
fn outlier_detection() -> OutlierDetection {
    OutlierDetection {
        split_external_local_origin_errors: true,
        consecutive_local_origin_failure: Some(UInt32Value { value: 2 }),
        enforcing_consecutive_local_origin_failure: Some(UInt32Value { value: 100 }),
        consecutive_gateway_failure: Some(UInt32Value { value: 3 }),
        enforcing_consecutive_gateway_failure: Some(UInt32Value { value: 100 }),
        interval: Some(duration(std::time::Duration::from_secs(1))),
        base_ejection_time: Some(duration(std::time::Duration::from_secs(5))),
        max_ejection_percent: Some(UInt32Value { value: 100 }),
        ..Default::default()
    }
}

fn transport_socket_match(ir: &TlsIr) -> TransportSocketMatch {
    let context = UpstreamTlsContext {
        sni: ir.sni.clone().unwrap_or_default(),
        common_tls_context: Some(CommonTlsContext {
            alpn_protocols: vec!["http/1.1".into()],
            validation_context_type: validation(ir).map(ValidationContextType::ValidationContext),
            ..Default::default()
        }),
        ..Default::default()
    };
    TransportSocketMatch {
        name: ir.name.clone(),
        r#match: Some(Struct {
            fields: [("tls".to_string(), string_value(&ir.name))].into(),
        }),
        transport_socket: Some(TransportSocket {
            name: "envoy.transport_sockets.tls".into(),
            config_type: Some(transport_socket::ConfigType::TypedConfig(pack(&context))),
        }),
    }
}

fn validation(ir: &TlsIr) -> Option<CertificateValidationContext> {
    if ir.insecure_skip_verify {
        return None;
    }
    let trusted_ca = match ir.ca.as_ref().unwrap_or(&CaIr::System) {
        CaIr::System => Specifier::Filename(SYSTEM_CA_BUNDLE.into()),
        CaIr::InlinePem(pem) => Specifier::InlineString(pem.clone()),
    };
    Some(CertificateValidationContext {
        trusted_ca: Some(DataSource {
            specifier: Some(trusted_ca),
            ..Default::default()
        }),
        ..Default::default()
    })
}
