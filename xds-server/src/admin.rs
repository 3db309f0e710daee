//! Admin HTTP: `/healthz`, `/readyz`, `/metrics` (Prometheus text), `/status` (JSON).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use infergate_ads::{ProxyRegistry, type_url};
use prometheus_client::registry::Registry;

use crate::pipeline::Published;

#[derive(Clone)]
pub struct AdminState {
    pub published: Arc<Published>,
    pub proxies: ProxyRegistry,
    pub metrics: Arc<Registry>,
}

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .with_state(state)
}

async fn readyz(State(state): State<AdminState>) -> Response {
    if *state.published.ready.borrow() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "config not translated yet\n",
        )
            .into_response()
    }
}

async fn metrics(State(state): State<AdminState>) -> Response {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &state.metrics) {
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

async fn status(State(state): State<AdminState>) -> Response {
    let report = state.published.status.load();
    let snapshots = state.published.snapshots.borrow().clone();
    let versions: serde_json::Map<String, serde_json::Value> = [
        ("listeners", type_url::LISTENER),
        ("routes", type_url::ROUTE),
        ("clusters", type_url::CLUSTER),
        ("endpoints", type_url::ENDPOINT),
    ]
    .into_iter()
    .map(|(name, url)| {
        (
            name.to_string(),
            serde_json::Value::String(snapshots.all.version(url).to_string()),
        )
    })
    .collect();
    let mut body = report.to_json();
    body["versions"] = serde_json::Value::Object(versions);
    body["proxies"] = serde_json::to_value(state.proxies.snapshot()).unwrap_or_default();
    body["servedPorts"] =
        serde_json::to_value(&state.published.translation.load().served_ports).unwrap_or_default();
    axum::Json(body).into_response()
}
