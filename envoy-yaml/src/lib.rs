//! Canonical YAML for Envoy protobuf messages, and the Envoy bootstrap template.
//!
//! [`to_yaml`] decodes protobuf bytes with the descriptors of the Envoy API (compiled at build time
//! from the `.proto` files `envoy-types` ships), prints them as proto JSON (proto field names,
//! default values left out, nested `google.protobuf.Any` expanded with `@type`) and writes that as
//! YAML with every object's keys sorted. The output is byte-identical for equal messages, however
//! their map fields (`Struct`, `metadata.filter_metadata`, …) were ordered when encoded, so it can be
//! committed as a golden file and diffed in review.
//!
//! ```
//! use envoy_types::pb::envoy::config::cluster::v3::Cluster;
//!
//! let cluster = Cluster { name: "openai".into(), ..Default::default() };
//! assert_eq!(envoy_yaml::message_to_yaml(&cluster).unwrap(), "name: openai\n");
//! ```

pub mod bootstrap;
mod canonical;
mod descriptors;
mod error;

pub use descriptors::descriptor_pool;
pub use error::{Error, Result};

use envoy_types::pb::google::protobuf::Any;
use prost_reflect::{DynamicMessage, SerializeOptions};

/// The YAML of the message `bytes` encode, whose type `type_url` names
/// (`type.googleapis.com/envoy.config.cluster.v3.Cluster`, or the bare full name).
pub fn to_yaml(type_url: &str, bytes: &[u8]) -> Result<String> {
    yaml(&to_value(type_url, bytes)?)
}

/// The YAML of the message inside `any` (without an `@type` line for it; nested `Any`s have one).
pub fn any_to_yaml(any: &Any) -> Result<String> {
    to_yaml(&any.type_url, &any.value)
}

/// The YAML of a prost message of the Envoy API.
pub fn message_to_yaml<M: prost::Message + prost::Name>(message: &M) -> Result<String> {
    to_yaml(&M::full_name(), &message.encode_to_vec())
}

/// The canonical JSON value of a message, keys sorted: for golden files that combine several
/// messages into one document before writing it with [`yaml`].
pub fn to_value(type_url: &str, bytes: &[u8]) -> Result<serde_json::Value> {
    let type_name = type_url.rsplit('/').next().unwrap_or(type_url);
    let descriptor = descriptor_pool()
        .get_message_by_name(type_name)
        .ok_or_else(|| Error::UnknownType {
            type_name: type_name.to_owned(),
        })?;
    let message = DynamicMessage::decode(descriptor, bytes).map_err(|source| Error::Decode {
        type_name: type_name.to_owned(),
        source,
    })?;
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .skip_default_fields(true)
        // Readable numbers; Envoy accepts 64-bit integers unquoted.
        .stringify_64_bit_integers(false);
    let value = message
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|source| Error::Serialize {
            type_name: type_name.to_owned(),
            source,
        })?;
    Ok(canonical::sort_keys(value))
}

/// YAML text for a value (use values from [`to_value`], whose keys are sorted).
pub fn yaml(value: &serde_json::Value) -> Result<String> {
    serde_yaml::to_string(value).map_err(Error::Yaml)
}
