use std::collections::HashMap;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::Metadata;
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, http_connection_manager, http_filter,
};
use envoy_types::pb::google::protobuf::{Any, Struct, Value, value::Kind};
use prost::{Message, Name};

fn any<M: Message + Name>(message: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: message.encode_to_vec(),
    }
}

fn string(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.into())),
    }
}

fn cluster_with_metadata() -> Cluster {
    let keys = [
        "model", "backend", "route", "provider", "schema", "region", "zone", "cost",
    ];
    let fields: HashMap<String, Value> = keys
        .iter()
        .map(|k| (k.to_string(), string(&format!("{k}-value"))))
        .collect();
    let namespaces = [
        "io.envoy.ai_gateway",
        "envoy.lb",
        "infergate",
        "aigw.request_attributes",
    ];
    let filter_metadata = namespaces
        .iter()
        .map(|ns| {
            (
                ns.to_string(),
                Struct {
                    fields: fields.clone(),
                },
            )
        })
        .collect();
    Cluster {
        name: "openai".into(),
        metadata: Some(Metadata {
            filter_metadata,
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn cluster_metadata_yields_identical_yaml_across_encodings() {
    let first = envoy_yaml::message_to_yaml(&cluster_with_metadata()).expect("render");
    for _ in 0..20 {
        // A fresh HashMap per message: a new hash seed, so a new iteration order when encoding.
        let bytes = cluster_with_metadata().encode_to_vec();
        let yaml = envoy_yaml::to_yaml(&Cluster::type_url(), &bytes).expect("render");
        assert_eq!(yaml, first);
    }
    let envoy_lb = first.find("  envoy.lb:").expect("envoy.lb namespace");
    let ai_gateway = first
        .find("  io.envoy.ai_gateway:")
        .expect("ai_gateway namespace");
    assert!(envoy_lb < ai_gateway, "namespaces are sorted:\n{first}");
}

#[test]
fn http_connection_manager_inside_a_listener_filter_is_expanded() {
    let router = HttpFilter {
        name: "envoy.filters.http.router".into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(
            any(&Router::default()),
        )),
        ..Default::default()
    };
    let hcm = HttpConnectionManager {
        stat_prefix: "ingress".into(),
        http_filters: vec![router],
        route_specifier: Some(http_connection_manager::RouteSpecifier::Rds(
            Default::default(),
        )),
        ..Default::default()
    };
    let listener = Listener {
        name: "default/ai-gateway/http".into(),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.http_connection_manager".into(),
                config_type: Some(filter::ConfigType::TypedConfig(any(&hcm))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let yaml = envoy_yaml::any_to_yaml(&any(&listener)).expect("render");
    assert_eq!(
        yaml,
        "\
filter_chains:
- filters:
  - name: envoy.filters.network.http_connection_manager
    typed_config:
      '@type': type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      http_filters:
      - name: envoy.filters.http.router
        typed_config:
          '@type': type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
      rds: {}
      stat_prefix: ingress
name: default/ai-gateway/http
"
    );
}

#[test]
fn unknown_type_is_an_error_naming_it() {
    let err = envoy_yaml::to_yaml("type.googleapis.com/acme.Nope", &[]).expect_err("unknown");
    assert!(err.to_string().contains("acme.Nope"), "{err}");
}

#[test]
fn nested_any_of_an_uncompiled_type_is_an_error() {
    let listener = Listener {
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "x".into(),
                config_type: Some(filter::ConfigType::TypedConfig(Any {
                    type_url: "type.googleapis.com/acme.Nope".into(),
                    value: vec![],
                })),
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let err = envoy_yaml::message_to_yaml(&listener).expect_err("nested unknown type");
    let chain = format!(
        "{err}: {}",
        std::error::Error::source(&err)
            .map(|s| s.to_string())
            .unwrap_or_default()
    );
    assert!(chain.contains("acme.Nope"), "{chain}");
}
