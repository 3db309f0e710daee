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
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
