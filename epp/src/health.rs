//! gRPC health (`grpc.health.v1.Health`) on the health port (9003 by default).
//!
//! | service | SERVING when |
//! |---|---|
//! | `""`, `liveness`, `inference-extension` | the process answers with its pool configured |
//! | `readiness`, `envoy.service.ext_proc.v3.ExternalProcessor` | the pool has endpoints and at least one was scraped successfully |
//!
//! Readiness follows the datastore: it drops back to NOT_SERVING when the pool empties.
//! `inference-extension` does not: the seed manifests (and the Inference Extension's own) use it
//! for the liveness probe, and a picker whose pool is scaled to zero must not be restarted in a
//! loop; while the pool is empty it answers requests with 503 (no ready endpoints).

use std::sync::Arc;

use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::datastore::Datastore;
use crate::keys;

/// Services that follow readiness.
pub const READINESS_SERVICES: &[&str] = &[keys::HEALTH_READINESS, keys::HEALTH_EXT_PROC];

/// Services that are SERVING while the process runs.
pub const LIVENESS_SERVICES: &[&str] =
    &["", keys::HEALTH_LIVENESS, keys::HEALTH_INFERENCE_EXTENSION];

/// Keeps the reporter in step with the datastore until the task is aborted.
pub async fn run(datastore: Arc<Datastore>, reporter: HealthReporter) {
    for service in LIVENESS_SERVICES {
        reporter
            .set_service_status(service, ServingStatus::Serving)
            .await;
    }
    let mut changes = datastore.subscribe();
    let mut last = None;
    loop {
        changes.borrow_and_update();
        let ready = datastore.is_ready();
        if last != Some(ready) {
            let status = if ready {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            for service in READINESS_SERVICES {
                reporter.set_service_status(*service, status).await;
            }
            tracing::info!(ready, "readiness changed");
            last = Some(ready);
        }
        if changes.changed().await.is_err() {
            return;
        }
    }
}
