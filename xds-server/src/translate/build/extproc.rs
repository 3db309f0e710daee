//! The two ext_proc legs (DESIGN.md §4): the router leg, an HCM filter on listeners that serve
//! AIGatewayRoutes, and the upstream leg, an upstream HTTP filter on AI rule clusters (so every
//! attempt, including a failover to another provider, is translated afresh).

use envoy_types::pb::envoy::config::core::v3::{GrpcService, grpc_service};
use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::{
    ExtProcPerRoute, ExternalProcessor, ProcessingMode, ext_proc_per_route,
    processing_mode::{BodySendMode, HeaderSendMode},
};
use envoy_types::pb::envoy::extensions::filters::http::upstream_codec::v3::UpstreamCodec;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpFilter, http_filter,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions,
    http_protocol_options::{
        ExplicitHttpConfig, UpstreamProtocolOptions, explicit_http_config::ProtocolConfig,
    },
};
use envoy_types::pb::google::protobuf::Any;

use super::{duration, pack};
use crate::keys::{
    EXTPROC_ROUTER_FILTER, EXTPROC_UPSTREAM_FILTER, UPSTREAM_HOST_METADATA_ATTRIBUTE,
};
use crate::translate::ir::ExtprocIr;

/// Key of cluster `typed_extension_protocol_options` for HTTP upstream settings.
pub const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

fn grpc(ir: &ExtprocIr) -> GrpcService {
    GrpcService {
        target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
            grpc_service::EnvoyGrpc {
                cluster_name: ir.cluster.clone(),
                ..Default::default()
            },
        )),
        timeout: Some(duration(ir.message_timeout)),
        ..Default::default()
    }
}

/// Headers and the buffered request body go to the extproc; the response streams through it
/// (so SSE is not held back) and the extproc may change modes per request.
fn processing_mode() -> ProcessingMode {
    ProcessingMode {
        request_header_mode: HeaderSendMode::Send as i32,
        request_body_mode: BodySendMode::Buffered as i32,
        response_header_mode: HeaderSendMode::Send as i32,
        response_body_mode: BodySendMode::Streamed as i32,
        request_trailer_mode: HeaderSendMode::Skip as i32,
        response_trailer_mode: HeaderSendMode::Skip as i32,
    }
}

fn processor(ir: &ExtprocIr, request_attributes: Vec<String>) -> ExternalProcessor {
    ExternalProcessor {
        grpc_service: Some(grpc(ir)),
        processing_mode: Some(processing_mode()),
        allow_mode_override: true,
        message_timeout: Some(duration(ir.message_timeout)),
        request_attributes,
        ..Default::default()
    }
}

/// The router-leg filter for an HTTP connection manager.
pub fn router_filter(ir: &ExtprocIr) -> HttpFilter {
    HttpFilter {
        name: EXTPROC_ROUTER_FILTER.into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack(&processor(
            ir,
            Vec::new(),
        )))),
        ..Default::default()
    }
}

/// Per-route config turning the router leg off (HTTPRoute routes on an AI listener).
pub fn disabled_on_route() -> Any {
    pack(&ExtProcPerRoute {
        r#override: Some(ext_proc_per_route::Override::Disabled(true)),
    })
}

/// Upstream protocol options of an AI rule cluster: HTTP/1.1 upstream, with the upstream leg
/// (which learns its backend from the host's metadata) before the codec.
pub fn upstream_protocol_options(ir: &ExtprocIr) -> Any {
    let upstream_leg = processor(ir, vec![UPSTREAM_HOST_METADATA_ATTRIBUTE.to_string()]);
    let options = HttpProtocolOptions {
        upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(
            ExplicitHttpConfig {
                protocol_config: Some(ProtocolConfig::HttpProtocolOptions(Default::default())),
            },
        )),
        http_filters: vec![
            HttpFilter {
                name: EXTPROC_UPSTREAM_FILTER.into(),
                config_type: Some(http_filter::ConfigType::TypedConfig(pack(&upstream_leg))),
                ..Default::default()
            },
            HttpFilter {
                name: "envoy.filters.http.upstream_codec".into(),
                config_type: Some(http_filter::ConfigType::TypedConfig(pack(
                    &UpstreamCodec {},
                ))),
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    pack(&options)
}

/// Protocol options for a gRPC service cluster (HTTP/2 upstream).
pub fn http2_protocol_options() -> Any {
    pack(&HttpProtocolOptions {
        upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(
            ExplicitHttpConfig {
                protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(Default::default())),
            },
        )),
        ..Default::default()
    })
}
