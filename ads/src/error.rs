//! Errors of the ADS server.
//!
//! Almost nothing here reaches Envoy: a malformed request is logged and ignored so that one bad
//! message never tears down a proxy's configuration stream. The only wire mapping is
//! `impl From<Error> for tonic::Status`.

/// What went wrong while serving a discovery stream.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request did not say which resource type it is about.
    #[error("stream {stream}: request without a type_url")]
    MissingTypeUrl { stream: u64 },

    /// A proxy subscribed to more resource types on one stream than we track.
    #[error("stream {stream}: too many resource types, ignoring {type_url}")]
    TooManyTypes { stream: u64, type_url: String },

    /// The proxy went away while we were sending it a response.
    #[error("stream {stream}: the proxy closed the stream")]
    StreamClosed { stream: u64 },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for tonic::Status {
    fn from(error: Error) -> Self {
        match error {
            Error::MissingTypeUrl { .. } | Error::TooManyTypes { .. } => {
                tonic::Status::invalid_argument(error.to_string())
            }
            Error::StreamClosed { .. } => tonic::Status::cancelled(error.to_string()),
        }
    }
}
