//! The two ext_proc legs (DESIGN.md §4): the router leg, an HCM filter on listeners that serve
//! AIGatewayRoutes, and the upstream leg, an upstream HTTP filter on AI rule clusters (so every
//! attempt, including a failover to another provider, is handled afresh). What the extproc
//! expects of each leg is in `extproc/README.md`.

use envoy_types::pb::envoy::config::core::v3::{GrpcService, HeaderValue, grpc_service};
use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::{
    ExtProcPerRoute, ExternalProcessor, MetadataOptions, ProcessingMode, ext_proc_per_route,
    metadata_options::MetadataNamespaces,
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
    AI_GATEWAY_METADATA_NAMESPACE, ATTR_HOST_BACKEND, ATTR_HOST_ROUTE, ATTR_HOST_RULE,
    EXTPROC_ROUTER_FILTER, EXTPROC_UPSTREAM_FILTER, LEG_GRPC_METADATA, LEG_ROUTER, LEG_UPSTREAM,
};
use crate::translate::ir::ExtprocIr;

/// `:authority` of the gRPC calls to the extproc.
pub const EXTPROC_AUTHORITY: &str = "extproc.infergate";

/// Key of cluster `typed_extension_protocol_options` for HTTP upstream settings.
pub const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// The gRPC target, telling the extproc which leg a stream is (`x-infergate-leg`).
fn grpc(ir: &ExtprocIr, leg: &str) -> GrpcService {
    GrpcService {
        target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
            grpc_service::EnvoyGrpc {
                cluster_name: ir.cluster.clone(),
                // Envoy would send the cluster name, whose `/` is not a valid `:authority`
                // (Rust's h2 resets such streams with PROTOCOL_ERROR).
                authority: EXTPROC_AUTHORITY.into(),
                ..Default::default()
            },
        )),
        timeout: Some(duration(ir.message_timeout)),
        initial_metadata: vec![HeaderValue {
            key: LEG_GRPC_METADATA.into(),
            value: leg.into(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Router leg: headers and the buffered request body; the response streams through (so SSE is
/// not held back). The extproc may change modes per request (models list, errors).
fn router_mode() -> ProcessingMode {
    ProcessingMode {
        request_header_mode: HeaderSendMode::Send as i32,
        request_body_mode: BodySendMode::Buffered as i32,
        response_header_mode: HeaderSendMode::Send as i32,
        response_body_mode: BodySendMode::Streamed as i32,
        request_trailer_mode: HeaderSendMode::Skip as i32,
        response_trailer_mode: HeaderSendMode::Skip as i32,
    }
}

/// Upstream leg: headers and the buffered request body (translation, credentials); the
/// response only when it translates one (a per-request mode override), since the router leg
/// reads the backend from Envoy's attributes itself.
fn upstream_mode() -> ProcessingMode {
    ProcessingMode {
        response_header_mode: HeaderSendMode::Skip as i32,
        response_body_mode: BodySendMode::None as i32,
        ..router_mode()
    }
}

/// The chosen host's backend, route and rule (its `infergate.backend` metadata), for the
/// upstream leg. The router leg reads them from response headers the route adds instead.
fn host_attributes() -> Vec<String> {
    [ATTR_HOST_BACKEND, ATTR_HOST_ROUTE, ATTR_HOST_RULE]
        .map(String::from)
        .to_vec()
}

fn processor(ir: &ExtprocIr, leg: &str, mode: ProcessingMode) -> ExternalProcessor {
    ExternalProcessor {
        grpc_service: Some(grpc(ir, leg)),
        processing_mode: Some(mode),
        allow_mode_override: true,
        message_timeout: Some(duration(ir.message_timeout)),
        ..Default::default()
    }
}

/// The router-leg filter for an HTTP connection manager.
pub fn router_filter(ir: &ExtprocIr) -> HttpFilter {
    let router_leg = ExternalProcessor {
        // Costs come back as dynamic metadata; Envoy drops namespaces not listed here.
        metadata_options: Some(MetadataOptions {
            receiving_namespaces: Some(MetadataNamespaces {
                untyped: vec![AI_GATEWAY_METADATA_NAMESPACE.into()],
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..processor(ir, LEG_ROUTER, router_mode())
    };
    HttpFilter {
        name: EXTPROC_ROUTER_FILTER.into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack(&router_leg))),
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
    let leg = HttpFilter {
        name: EXTPROC_UPSTREAM_FILTER.into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack(&upstream_leg(
            ir,
        )))),
        ..Default::default()
    };
    http1_with_filters(vec![leg])
}

/// The upstream-leg ext_proc filter config.
pub fn upstream_leg(ir: &ExtprocIr) -> ExternalProcessor {
    ExternalProcessor {
        request_attributes: host_attributes(),
        ..processor(ir, LEG_UPSTREAM, upstream_mode())
    }
}

/// Upstream protocol options: HTTP/1.1, with `filters` before the codec.
pub fn http1_with_filters(mut filters: Vec<HttpFilter>) -> Any {
    filters.push(HttpFilter {
        name: "envoy.filters.http.upstream_codec".into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack(
            &UpstreamCodec {},
        ))),
        ..Default::default()
    });
    pack(&HttpProtocolOptions {
        upstream_protocol_options: Some(explicit(ProtocolConfig::HttpProtocolOptions(
            Default::default(),
        ))),
        http_filters: filters,
        ..Default::default()
    })
}

/// Protocol options for a gRPC service cluster (HTTP/2 upstream).
pub fn http2_protocol_options() -> Any {
    pack(&HttpProtocolOptions {
        upstream_protocol_options: Some(explicit(ProtocolConfig::Http2ProtocolOptions(
            Default::default(),
        ))),
        ..Default::default()
    })
}

fn explicit(config: ProtocolConfig) -> UpstreamProtocolOptions {
    UpstreamProtocolOptions::ExplicitHttpConfig(ExplicitHttpConfig {
        protocol_config: Some(config),
    })
}
