//! The crate's error type. Request errors become immediate responses in exactly one place,
//! [`crate::handlers::immediate_error`], with the status from [`Error::http_status`].

use std::net::SocketAddr;
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    // Start-up.
    #[error("reading {path}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing EndpointPickerConfig: {source}")]
    ParseConfig {
        #[source]
        source: serde_yaml::Error,
    },
    #[error("EndpointPickerConfig: {message}")]
    InvalidConfig { message: String },
    #[error("EndpointPickerConfig plugin {name}: {message}")]
    Plugin { name: String, message: String },
    #[error("binding {what} on {addr}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },

    // Requests: answered with an immediate response.
    #[error("the request body is not valid JSON: {source}")]
    InvalidJson {
        #[source]
        source: serde_json::Error,
    },
    #[error("the request body must be a JSON object")]
    NotAnObject,
    #[error("the request body has no model")]
    MissingModel,
    #[error("{field} must be {expected}")]
    InvalidField {
        field: &'static str,
        expected: &'static str,
    },
    #[error("the request body is larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("no ready endpoint in pool {pool}")]
    NoReadyEndpoint { pool: String },
    #[error("the subset hint names no endpoint of pool {pool}")]
    EmptySubset { pool: String },
    #[error(
        "pool {pool} is saturated; sheddable request (objective {objective:?}, priority {priority}) dropped"
    )]
    Shed {
        pool: String,
        objective: Option<String>,
        priority: i32,
    },
}

impl Error {
    /// The HTTP status a request error is answered with (`None` for start-up errors).
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Error::InvalidJson { .. }
            | Error::NotAnObject
            | Error::MissingModel
            | Error::InvalidField { .. } => Some(400),
            Error::BodyTooLarge { .. } => Some(413),
            Error::Shed { .. } => Some(429),
            Error::NoReadyEndpoint { .. } | Error::EmptySubset { .. } => Some(503),
            Error::ReadFile { .. }
            | Error::ParseConfig { .. }
            | Error::InvalidConfig { .. }
            | Error::Plugin { .. }
            | Error::Bind { .. } => None,
        }
    }

    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::InvalidJson { .. }
            | Error::NotAnObject
            | Error::MissingModel
            | Error::InvalidField { .. } => "bad_request",
            Error::BodyTooLarge { .. } => "body_too_large",
            Error::Shed { .. } => "shed",
            Error::NoReadyEndpoint { .. } => "no_ready_endpoint",
            Error::EmptySubset { .. } => "empty_subset",
            _ => "internal",
        }
    }
}
