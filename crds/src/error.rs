//! Errors of this crate.

/// What can fail in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A CRD could not be serialized to YAML.
    #[error("crd {name}: render yaml")]
    RenderYaml {
        /// The CRD's name.
        name: String,
        /// The serializer's error.
        #[source]
        source: serde_yaml::Error,
    },
    /// A CRD could not be serialized to JSON.
    #[error("crd {name}: render json")]
    RenderJson {
        /// The CRD's name.
        name: String,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },
    /// An object does not match our types.
    #[error("{what}: {source}")]
    Deserialize {
        /// The object, as `Kind namespace/name`.
        what: String,
        /// The deserializer's error.
        #[source]
        source: serde_json::Error,
    },
    /// An object has fields our types do not know.
    #[error("{what}: unknown fields {}", fields.join(", "))]
    UnknownFields {
        /// The object, as `Kind namespace/name`.
        what: String,
        /// Paths of the unknown fields (`spec.rules.0.foo`).
        fields: Vec<String>,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
