//! Listener + HTTP connection manager over RDS.

use envoy_types::pb::envoy::config::accesslog::v3::{AccessLog, access_log};
use envoy_types::pb::envoy::config::core::v3::{
    Address, SocketAddress, SubstitutionFormatString, socket_address::PortSpecifier,
    substitution_format_string::Format,
};
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
use envoy_types::pb::envoy::extensions::access_loggers::file::v3::{
    FileAccessLog, file_access_log::AccessLogFormat,
};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds,
    http_connection_manager::{CodecType, RouteSpecifier, StripPortMode},
    http_filter,
};
use envoy_types::pb::google::protobuf::{BoolValue, Struct};

use super::{ads_config_source, pack, string_value};
use crate::keys::{AI_GATEWAY_METADATA_NAMESPACE, MODEL_HEADER};
use crate::translate::ir::ListenerIr;

pub fn listener(ir: &ListenerIr) -> Listener {
    let hcm = http_connection_manager(ir);
    Listener {
        name: ir.name.clone(),
        address: Some(socket_address(&ir.address, ir.port)),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.http_connection_manager".into(),
                config_type: Some(filter::ConfigType::TypedConfig(pack(&hcm))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

pub fn socket_address(address: &str, port: u16) -> Address {
    use envoy_types::pb::envoy::config::core::v3::address::Address as Kind;
    Address {
        address: Some(Kind::SocketAddress(SocketAddress {
            address: address.to_string(),
            port_specifier: Some(PortSpecifier::PortValue(u32::from(port))),
            ..Default::default()
        })),
    }
}

fn http_connection_manager(ir: &ListenerIr) -> HttpConnectionManager {
    HttpConnectionManager {
        stat_prefix: ir.name.replace(['/', ':'], "_"),
        codec_type: CodecType::Auto as i32,
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: Some(ads_config_source()),
            route_config_name: ir.route_config.clone(),
        })),
        // Router leg (sets the model the routes match and the token estimates), then rate
        // limits (on `x-ai-eg-model` and the estimates), then each pool's picker (on only on
        // its pool's routes), then the router.
        http_filters: ir
            .extproc
            .iter()
            .map(super::extproc::router_filter)
            .chain(ir.ratelimit.iter().map(super::ratelimit::filter))
            .chain(ir.epps.iter().map(super::epp::filter))
            .chain([router_filter()])
            .collect(),
        early_header_mutation_extensions: if ir.epps.is_empty() {
            Vec::new()
        } else {
            vec![super::epp::strip_destination_header()]
        },
        // Streams of LLM responses outlive Envoy's 5-minute default stream idle timeout.
        stream_idle_timeout: Some(super::duration(std::time::Duration::from_secs(3600))),
        use_remote_address: Some(BoolValue { value: true }),
        // `Host: api.example.com:8080` must match the virtual host `api.example.com`.
        strip_port_mode: Some(StripPortMode::StripAnyHostPort(true)),
        local_reply_config: ir.ai_routes.then(super::local_reply::ai_local_replies),
        access_log: ir.access_log.iter().map(|path| access_log(path)).collect(),
        ..Default::default()
    }
}

fn router_filter() -> HttpFilter {
    HttpFilter {
        name: "envoy.filters.http.router".into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack(
            &Router::default(),
        ))),
        ..Default::default()
    }
}

/// One JSON line per request: what was asked, where it went, and what it cost (the extproc's
/// `io.envoy.ai_gateway` metadata). Single-operator values keep their types (numbers, objects).
fn access_log(path: &str) -> AccessLog {
    let ai = |key: &str| {
        string_value(&format!(
            "%DYNAMIC_METADATA({AI_GATEWAY_METADATA_NAMESPACE}:{key})%"
        ))
    };
    let fields = [
        ("start_time", string_value("%START_TIME%")),
        ("method", string_value("%REQ(:METHOD)%")),
        ("path", string_value("%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%")),
        ("status", string_value("%RESPONSE_CODE%")),
        ("duration_ms", string_value("%DURATION%")),
        ("response_flags", string_value("%RESPONSE_FLAGS%")),
        ("model", string_value(&format!("%REQ({MODEL_HEADER})%"))),
        ("backend", ai("backend_name")),
        ("route", ai("route_name")),
        ("response_model", ai("response_model")),
        (
            "costs",
            string_value(&format!(
                "%DYNAMIC_METADATA({AI_GATEWAY_METADATA_NAMESPACE})%"
            )),
        ),
        ("upstream_host", string_value("%UPSTREAM_HOST%")),
    ];
    let format = Struct {
        fields: fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    };
    let file = FileAccessLog {
        path: path.to_string(),
        access_log_format: Some(AccessLogFormat::LogFormat(SubstitutionFormatString {
            format: Some(Format::JsonFormat(format)),
            ..Default::default()
        })),
    };
    AccessLog {
        name: "envoy.access_loggers.file".into(),
        config_type: Some(access_log::ConfigType::TypedConfig(pack(&file))),
        ..Default::default()
    }
}
