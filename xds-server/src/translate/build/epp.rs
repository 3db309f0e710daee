//! An InferencePool's endpoint picker (DESIGN.md §5): its ext_proc filter in the HTTP
//! connection manager, the early header mutation that removes a client-sent destination, and
//! the override-host load balancing of a pool cluster with known Pods.

use envoy_types::pb::envoy::config::cluster::v3::{LoadBalancingPolicy, load_balancing_policy};
use envoy_types::pb::envoy::config::common::mutation_rules::v3::{
    HeaderMutation as HeaderMutationRule, header_mutation,
};
use envoy_types::pb::envoy::config::core::v3::{GrpcService, TypedExtensionConfig, grpc_service};
use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::{
    ExternalProcessor, MetadataOptions, ProcessingMode,
    metadata_options::MetadataNamespaces,
    processing_mode::{BodySendMode, HeaderSendMode},
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpFilter, http_filter,
};
use envoy_types::pb::envoy::extensions::http::early_header_mutation::header_mutation::v3::HeaderMutation;
use envoy_types::pb::envoy::extensions::load_balancing_policies::override_host::v3::{
    OverrideHost, override_host::OverrideHostSource,
};
use envoy_types::pb::envoy::extensions::load_balancing_policies::round_robin::v3::RoundRobin;
use envoy_types::pb::envoy::r#type::metadata::v3::{
    MetadataKey, metadata_key::PathSegment, metadata_key::path_segment::Segment,
};

use super::{duration, pack};
use crate::translate::ir::{EppBodyModeIr, EppIr, OverrideHostIr};
use crate::translate::pool::{DESTINATION_ENDPOINT_HEADER, DESTINATION_ENDPOINT_NAMESPACE};

/// The picker's ext_proc filter. Request headers and body go to it (whole, or streamed both
/// ways in duplex mode, where Envoy needs the trailers too); response headers go to it so it
/// learns the request ended and which endpoint served it; the response body does not (tokens
/// stream to the client without a detour). It answers with `x-gateway-destination-endpoint`,
/// the same in `envoy.lb` metadata, and `clear_route_cache`.
pub fn filter(ir: &EppIr) -> HttpFilter {
    let duplex = ir.body_mode == EppBodyModeIr::FullDuplexStreamed;
    let mode = ProcessingMode {
        request_header_mode: HeaderSendMode::Send as i32,
        request_body_mode: if duplex {
            BodySendMode::FullDuplexStreamed as i32
        } else {
            BodySendMode::Buffered as i32
        },
        request_trailer_mode: if duplex {
            HeaderSendMode::Send as i32
        } else {
            HeaderSendMode::Skip as i32
        },
        response_header_mode: HeaderSendMode::Send as i32,
        response_body_mode: BodySendMode::None as i32,
        response_trailer_mode: HeaderSendMode::Skip as i32,
    };
    let lb_namespace = MetadataNamespaces {
        untyped: vec![DESTINATION_ENDPOINT_NAMESPACE.into()],
        ..Default::default()
    };
    let processor = ExternalProcessor {
        grpc_service: Some(GrpcService {
            target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
                grpc_service::EnvoyGrpc {
                    cluster_name: ir.cluster.clone(),
                    // The cluster name's `/` is not a valid `:authority` (see extproc.rs).
                    authority: ir.authority.clone(),
                    ..Default::default()
                },
            )),
            timeout: Some(duration(ir.message_timeout)),
            ..Default::default()
        }),
        failure_mode_allow: ir.failure_mode_allow,
        processing_mode: Some(mode),
        allow_mode_override: ir.allow_mode_override,
        message_timeout: Some(duration(ir.message_timeout)),
        // The picked endpoint comes back in `envoy.lb` (Envoy drops namespaces not listed);
        // the served endpoint and a subset hint go to the picker from there.
        metadata_options: Some(MetadataOptions {
            forwarding_namespaces: Some(lb_namespace.clone()),
            receiving_namespaces: Some(lb_namespace),
            ..Default::default()
        }),
        ..Default::default()
    };
    HttpFilter {
        name: ir.filter.clone(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack(&processor))),
        ..Default::default()
    }
}

/// HCM early header mutation (before route matching and every filter): a client-sent
/// `x-gateway-destination-endpoint` is removed, so only the picker names the endpoint.
pub fn strip_destination_header() -> TypedExtensionConfig {
    let mutation = HeaderMutation {
        mutations: vec![HeaderMutationRule {
            action: Some(header_mutation::Action::Remove(
                DESTINATION_ENDPOINT_HEADER.into(),
            )),
        }],
    };
    TypedExtensionConfig {
        name: "envoy.http.early_header_mutation.header_mutation".into(),
        typed_config: Some(pack(&mutation)),
    }
}

/// Override-host load balancing: the host the picker named (header, then `envoy.lb`
/// metadata; later entries of its list serve retries), round robin when it named none that is
/// in the cluster. The served host goes to `envoy.lb` metadata for the picker.
pub fn override_host_policy(ir: &OverrideHostIr) -> LoadBalancingPolicy {
    let key = |(namespace, key): &(String, String)| MetadataKey {
        key: namespace.clone(),
        path: vec![PathSegment {
            segment: Some(Segment::Key(key.clone())),
        }],
    };
    let policy = OverrideHost {
        override_host_sources: vec![
            OverrideHostSource {
                header: ir.header.clone(),
                metadata: None,
            },
            OverrideHostSource {
                header: String::new(),
                metadata: Some(key(&ir.metadata)),
            },
        ],
        selected_host_key: Some(key(&ir.served)),
        fallback_policy: Some(single_policy(
            "envoy.load_balancing_policies.round_robin",
            pack(&RoundRobin::default()),
        )),
    };
    single_policy("envoy.load_balancing_policies.override_host", pack(&policy))
}

fn single_policy(
    name: &str,
    config: envoy_types::pb::google::protobuf::Any,
) -> LoadBalancingPolicy {
    LoadBalancingPolicy {
        policies: vec![load_balancing_policy::Policy {
            typed_extension_config: Some(TypedExtensionConfig {
                name: name.into(),
                typed_config: Some(config),
            }),
        }],
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::ExternalProcessor;
    use prost::Message;

    use super::*;

    fn ir(body_mode: EppBodyModeIr, fail_open: bool) -> EppIr {
        EppIr {
            filter: "infergate.epp/default/p".into(),
            cluster: "epp/default/p".into(),
            authority: "p-epp.default.svc.cluster.local".into(),
            body_mode,
            allow_mode_override: false,
            failure_mode_allow: fail_open,
            message_timeout: Duration::from_secs(10),
        }
    }

    fn processor(filter: &HttpFilter) -> ExternalProcessor {
        let Some(http_filter::ConfigType::TypedConfig(any)) = &filter.config_type else {
            panic!("typed config expected");
        };
        ExternalProcessor::decode(any.value.as_slice()).expect("ExternalProcessor")
    }

    #[test]
    fn duplex_mode_streams_the_body_and_sends_trailers() {
        let p = processor(&filter(&ir(EppBodyModeIr::FullDuplexStreamed, true)));
        let mode = p.processing_mode.expect("mode");
        assert_eq!(
            mode.request_body_mode,
            BodySendMode::FullDuplexStreamed as i32
        );
        assert_eq!(mode.request_trailer_mode, HeaderSendMode::Send as i32);
        assert_eq!(mode.response_body_mode, BodySendMode::None as i32);
        assert!(p.failure_mode_allow);
    }

    #[test]
    fn buffered_mode_sends_the_whole_body_without_trailers() {
        let f = filter(&ir(EppBodyModeIr::Buffered, false));
        assert_eq!(f.name, "infergate.epp/default/p");
        let p = processor(&f);
        let mode = p.processing_mode.expect("mode");
        assert_eq!(mode.request_body_mode, BodySendMode::Buffered as i32);
        assert_eq!(mode.request_trailer_mode, HeaderSendMode::Skip as i32);
        assert!(!p.failure_mode_allow);
        let Some(grpc_service::TargetSpecifier::EnvoyGrpc(grpc)) =
            p.grpc_service.and_then(|g| g.target_specifier)
        else {
            panic!("envoy_grpc expected");
        };
        assert_eq!(grpc.cluster_name, "epp/default/p");
        assert_eq!(grpc.authority, "p-epp.default.svc.cluster.local");
    }
}
