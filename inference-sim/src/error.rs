//! The crate's error type. Errors that reach a client are `api::ApiError`, mapped in one place.

/// What went wrong starting or driving the simulator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    #[error("binding {addr}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the simulator has stopped")]
    Stopped,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
