//! Configuration sources. A source turns the outside world into [`RawObject`]s and calls the
//! index's `apply` / `delete`; it knows nothing of Envoy. The directory source (`dir`) and the
//! Kubernetes source (`kube`) make the same [`crate::index::Index`] calls.

pub mod dir;
pub mod document;
pub mod env;
pub mod kube;

use std::fmt;

use crate::object::Origin;

/// A problem with a document that kept it from becoming an object (bad YAML, missing `kind`,
/// unknown variable…). Shown in `/status` and by `infergate validate`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SourceError {
    pub origin: Origin,
    /// `Kind namespace/name` when the document got that far.
    pub object: Option<String>,
    pub message: String,
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.object {
            Some(object) => write!(f, "{}: {object}: {}", self.origin, self.message),
            None => write!(f, "{}: {}", self.origin, self.message),
        }
    }
}
