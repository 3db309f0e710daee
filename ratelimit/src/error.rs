//! The crate's error type, and the one place an error becomes a gRPC status.
//!
//! Bad descriptors are not errors (see [`crate::descriptor`]); storage failures are, and Envoy
//! sees them as `UNAVAILABLE`, so its configured failure mode (`failure_mode_deny`) applies.

use std::net::SocketAddr;
use std::time::Duration;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("binding {what} on {addr}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid Redis URL {url}")]
    RedisUrl {
        /// With any password replaced by `***`.
        url: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("rate-limit storage: redis call timed out after {}ms", after.as_millis())]
    StorageTimeout { after: Duration },
    #[error("rate-limit storage: redis: {source}")]
    Storage {
        #[source]
        source: redis::RedisError,
    },
    #[error("rate-limit storage: redis script answered {answer}")]
    StorageAnswer { answer: String },
}

impl Error {
    /// Label for the storage-errors metric and the log throttle.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Bind { .. } => "bind",
            Error::RedisUrl { .. } => "url",
            Error::StorageTimeout { .. } => "timeout",
            Error::Storage { source } if source.is_io_error() => "connection",
            Error::Storage { source } if source.is_timeout() => "timeout",
            Error::Storage { .. } => "redis",
            Error::StorageAnswer { .. } => "answer",
        }
    }

    /// A storage failure (the request may be retried; Envoy applies its failure mode).
    pub fn is_storage(&self) -> bool {
        matches!(
            self,
            Error::StorageTimeout { .. } | Error::Storage { .. } | Error::StorageAnswer { .. }
        )
    }
}

impl From<Error> for tonic::Status {
    fn from(err: Error) -> tonic::Status {
        if err.is_storage() {
            tonic::Status::unavailable(err.to_string())
        } else {
            tonic::Status::internal(err.to_string())
        }
    }
}

/// `url` with the password (anything between `://` and `@`) replaced by `***`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme + 3 => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_errors_are_unavailable_with_the_cause_in_the_message() {
        let status = tonic::Status::from(Error::StorageTimeout {
            after: Duration::from_millis(100),
        });
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert_eq!(
            status.message(),
            "rate-limit storage: redis call timed out after 100ms"
        );
    }

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact_url("redis://:s3cret@10.0.0.1:6379/0"),
            "redis://***@10.0.0.1:6379/0"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }
}
