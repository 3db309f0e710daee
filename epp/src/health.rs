//! gRPC health (`grpc.health.v1.Health`) on the health port (9003 by default).
//!
//! | service | SERVING when |
//! |---|---|
//! | `""`, `liveness` | the process answers |
//! | `readiness`, `inference-extension`, `envoy.service.ext_proc.v3.ExternalProcessor` | the pool has endpoints and at least one was scraped successfully |
//!
//! Readiness follows the datastore: it drops back to NOT_SERVING when the pool empties.

use std::sync::Arc;

use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::datastore::Datastore;
use crate::keys;

/// Services that follow readiness.
pub const READINESS_SERVICES: &[&str] = &[
    keys::HEALTH_READINESS,
    keys::HEALTH_INFERENCE_EXTENSION,
    keys::HEALTH_EXT_PROC,
];

/// Keeps the reporter in step with the datastore until the task is aborted.
pub async fn run(datastore: Arc<Datastore>, reporter: HealthReporter) {
    for service in ["", keys::HEALTH_LIVENESS] {
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
