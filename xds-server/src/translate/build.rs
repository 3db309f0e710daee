//! Builders from the translator's model ([`super::ir`]) to Envoy protos, one file per xDS type.
//! Each is a pure function with unit tests; the golden tests cover their composition.

pub mod cluster;
pub mod endpoint;
pub mod epp;
pub mod extproc;
pub mod listener;
pub mod local_reply;
pub mod native_upstream;
pub mod ratelimit;
pub mod route;

use std::collections::BTreeMap;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::{
    AggregatedConfigSource, ApiVersion, ConfigSource, Metadata,
    config_source::ConfigSourceSpecifier,
};
use envoy_types::pb::google::protobuf::{
    self as pbuf, Any, Struct, Value, value::Kind as ValueKind,
};

/// Packs a message into `Any` with its canonical type URL.
pub fn pack<T: prost::Message + prost::Name>(message: &T) -> Any {
    Any {
        type_url: T::type_url(),
        value: message.encode_to_vec(),
    }
}

/// `ads: {}` with resource API v3: every dynamic resource comes over the one ADS stream.
pub fn ads_config_source() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
        ..Default::default()
    }
}

pub fn duration(d: Duration) -> pbuf::Duration {
    pbuf::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

pub fn string_value(s: &str) -> Value {
    Value {
        kind: Some(ValueKind::StringValue(s.to_string())),
    }
}

/// Envoy metadata from our `namespace → key → string` model.
pub fn metadata(model: &BTreeMap<String, BTreeMap<String, String>>) -> Option<Metadata> {
    if model.is_empty() {
        return None;
    }
    let filter_metadata = model
        .iter()
        .map(|(namespace, fields)| {
            let fields = fields
                .iter()
                .map(|(k, v)| (k.clone(), string_value(v)))
                .collect();
            (namespace.clone(), Struct { fields })
        })
        .collect();
    Some(Metadata {
        filter_metadata,
        ..Default::default()
    })
}
