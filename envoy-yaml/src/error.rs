use thiserror::Error;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum Error {
    #[error("unknown message type {type_name}: add its .proto file to envoy-yaml/build.rs")]
    UnknownType { type_name: String },
    #[error("decode {type_name}")]
    Decode {
        type_name: String,
        #[source]
        source: prost::DecodeError,
    },
    /// Also a nested `Any` whose type is not compiled in (the message names it).
    #[error("serialize {type_name}")]
    Serialize {
        type_name: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("write yaml")]
    Yaml(#[source] serde_yaml::Error),
}
