//! Admin HTTP: `/healthz` (liveness), `/readyz` (a config was applied) and `/metrics`
//! (Prometheus text).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;

use crate::config::ConfigStore;

#[derive(Clone)]
struct AdminState {
    registry: Arc<Registry>,
    store: Arc<ConfigStore>,
}

pub fn router(registry: Arc<Registry>, store: Arc<ConfigStore>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(AdminState { registry, store })
}

/// 200 once a config was applied (from a file or over xDS), 503 before: without one every
/// model is unknown.
async fn readyz(State(state): State<AdminState>) -> Response {
    if state.store.generation() > 0 {
        "ready\n".into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "no extproc config applied yet\n",
        )
            .into_response()
    }
}

async fn metrics(State(state): State<AdminState>) -> Response {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &state.registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(err) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding metrics: {err}\n"),
        )
            .into_response(),
    }
}
