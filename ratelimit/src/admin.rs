//! Admin HTTP: `/healthz` (liveness), `/readyz` (the storage answers: always for memory, a
//! PING for Redis) and `/metrics` (Prometheus text).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;

use crate::storage::Storage;

#[derive(Clone)]
struct AdminState {
    registry: Arc<Registry>,
    storage: Arc<dyn Storage>,
}

pub fn router(registry: Arc<Registry>, storage: Arc<dyn Storage>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(AdminState { registry, storage })
}

async fn readyz(State(state): State<AdminState>) -> Response {
    match state.storage.ready().await {
        Ok(()) => "ready\n".into_response(),
        Err(err) => (StatusCode::SERVICE_UNAVAILABLE, format!("{err}\n")).into_response(),
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
