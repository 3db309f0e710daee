//! The crate's error type, and the one place an error becomes what the client sees.
//!
//! Messages name the object and never carry a secret: credentials are only ever in
//! [`crate::config::Credential`], whose `Debug` is redacted and which no error holds.

use envoy_types::pb::envoy::service::ext_proc::v3::ImmediateResponse;

use crate::api::ClientApi;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("parsing extproc config")]
    ParseConfig {
        #[source]
        source: serde_json::Error,
    },
    #[error("reading extproc config {path}")]
    ReadConfig {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("binding {what} on {addr}")]
    Bind {
        what: &'static str,
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("binding the ext_proc Unix socket {path}")]
    BindUnix {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid xDS server address {addr:?}")]
    XdsAddress {
        addr: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("connecting to the xDS server at {addr}")]
    XdsConnect {
        addr: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("ADS stream with the xDS server at {addr}: {code:?}: {message}")]
    XdsStream {
        addr: String,
        code: tonic::Code,
        message: String,
    },
    #[error("the xDS server at {addr} closed the ADS stream")]
    XdsStreamClosed { addr: String },
    #[error("the xDS response does not hold one extproc config: {message}")]
    XdsResource { message: String },
    #[error("building the OTLP metrics exporter for {endpoint}")]
    Otlp {
        endpoint: String,
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },

    // Client errors: answered with the client API's error shape.
    #[error("the request body is not valid JSON: {source}")]
    InvalidJson {
        #[source]
        source: serde_json::Error,
    },
    #[error("the request body must be a JSON object")]
    NotAnObject,
    #[error("you must provide a model parameter")]
    MissingModel,
    #[error("{field} must be {expected}")]
    InvalidField {
        field: &'static str,
        expected: &'static str,
    },
    #[error("the request has no body")]
    MissingBody,
    #[error("content type {content_type:?} is not supported; use application/json")]
    UnsupportedContentType { content_type: String },
    #[error("the request body is larger than the limit of {limit} bytes")]
    BodyTooLarge { limit: u64 },
    #[error("{method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },

    // Gateway-side errors on the upstream leg.
    #[error("no backend in the request attributes or headers")]
    MissingBackend,
    #[error("backend {backend} is not in the extproc config (version {version:?})")]
    UnknownBackend { backend: String, version: String },
    #[error("backend {backend} has no usable upstream credential")]
    MissingCredential { backend: String },
    #[error("this backend takes the caller's own credential in the {header} header")]
    ClientCredentialRequired { header: String },
    #[error("backend {backend} ({schema}) cannot serve {path}")]
    UnsupportedTranslation {
        backend: String,
        schema: &'static str,
        path: String,
    },
    #[error("applying the body mutation of backend {backend}: {message}")]
    BodyMutation { backend: String, message: String },
    #[error("the request cannot be translated for backend {backend}: {message}")]
    TranslateRequest { backend: String, message: String },
}

impl Error {
    /// HTTP status the client gets.
    pub fn status(&self) -> u16 {
        match self {
            Error::InvalidJson { .. }
            | Error::NotAnObject
            | Error::MissingModel
            | Error::InvalidField { .. }
            | Error::MissingBody
            | Error::UnsupportedTranslation { .. }
            | Error::TranslateRequest { .. } => 400,
            Error::MissingCredential { .. } | Error::ClientCredentialRequired { .. } => 401,
            Error::MethodNotAllowed { .. } => 405,
            Error::BodyTooLarge { .. } => 413,
            Error::UnsupportedContentType { .. } => 415,
            Error::UnknownBackend { .. } => 503,
            Error::ParseConfig { .. }
            | Error::ReadConfig { .. }
            | Error::Bind { .. }
            | Error::BindUnix { .. }
            | Error::XdsAddress { .. }
            | Error::XdsConnect { .. }
            | Error::XdsStream { .. }
            | Error::XdsStreamClosed { .. }
            | Error::XdsResource { .. }
            | Error::Otlp { .. }
            | Error::MissingBackend
            | Error::BodyMutation { .. } => 500,
        }
    }

    /// Machine-readable code for the error body.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidJson { .. } | Error::NotAnObject => "invalid_json",
            Error::MissingModel => "missing_model",
            Error::InvalidField { .. } | Error::TranslateRequest { .. } => "invalid_value",
            Error::MissingBody => "missing_body",
            Error::UnsupportedContentType { .. } => "unsupported_content_type",
            Error::BodyTooLarge { .. } => "request_too_large",
            Error::MethodNotAllowed { .. } => "method_not_allowed",
            Error::MissingCredential { .. } => "missing_upstream_credential",
            Error::ClientCredentialRequired { .. } => "missing_client_credential",
            Error::UnknownBackend { .. } => "backend_not_ready",
            Error::UnsupportedTranslation { .. } => "unsupported_api_for_model",
            Error::ParseConfig { .. }
            | Error::ReadConfig { .. }
            | Error::Bind { .. }
            | Error::BindUnix { .. }
            | Error::XdsAddress { .. }
            | Error::XdsConnect { .. }
            | Error::XdsStream { .. }
            | Error::XdsStreamClosed { .. }
            | Error::XdsResource { .. }
            | Error::Otlp { .. }
            | Error::MissingBackend
            | Error::BodyMutation { .. } => "internal_error",
        }
    }

    /// What the client sees, in its own API's error shape. The one mapping from our errors to
    /// the wire; 5xx details stay in our log, the client gets a generic message.
    pub fn into_immediate_response(self, api: ClientApi) -> ImmediateResponse {
        let status = self.status();
        let message = if status >= 500 && status != 503 {
            tracing::error!(error = %self, "gateway error");
            "the gateway failed to process the request".to_string()
        } else {
            tracing::debug!(error = %self, status, "request rejected");
            self.to_string()
        };
        let body = api.error_body(status, self.code(), &message);
        crate::envoy::immediate_response(status, "application/json", body)
    }
}
