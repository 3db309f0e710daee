//! `GET /v1/models` and vLLM's runtime adapter endpoints (`/v1/load_lora_adapter`,
//! `/v1/unload_lora_adapter`), which change the adapters requests may name.

use std::sync::{Arc, PoisonError};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{ApiError, App, parse, unix_secs};
use crate::config::LoraModule;

#[derive(Serialize)]
struct ModelList {
    object: &'static str,
    data: Vec<ModelCard>,
}

/// vLLM's `ModelCard`.
#[derive(Serialize)]
struct ModelCard {
    id: String,
    object: &'static str,
    created: u64,
    owned_by: &'static str,
    root: String,
    parent: Option<String>,
    max_model_len: Option<usize>,
    permission: Vec<Permission>,
}

#[derive(Serialize)]
struct Permission {
    id: String,
    object: &'static str,
    created: u64,
    allow_create_engine: bool,
    allow_sampling: bool,
    allow_logprobs: bool,
    allow_search_indices: bool,
    allow_view: bool,
    allow_fine_tuning: bool,
    organization: &'static str,
    group: Option<()>,
    is_blocking: bool,
}

impl App {
    fn card(&self, id: String, root: String, parent: Option<String>) -> ModelCard {
        let created = unix_secs();
        ModelCard {
            max_model_len: parent.is_none().then_some(self.max_model_len),
            permission: vec![Permission {
                id: self.next_id("modelperm"),
                object: "model_permission",
                created,
                allow_create_engine: false,
                allow_sampling: true,
                allow_logprobs: true,
                allow_search_indices: false,
                allow_view: true,
                allow_fine_tuning: false,
                organization: "*",
                group: None,
                is_blocking: false,
            }],
            id,
            object: "model",
            created,
            owned_by: "vllm",
            root,
            parent,
        }
    }
}

pub(super) async fn list(State(app): State<Arc<App>>) -> Response {
    let base = app.served[0].clone();
    let mut data: Vec<ModelCard> = app
        .served
        .iter()
        .map(|name| app.card(name.clone(), app.root.clone(), None))
        .collect();
    let adapters = app
        .adapters
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    data.extend(
        adapters
            .into_iter()
            .map(|a| app.card(a.name, a.path, Some(base.clone()))),
    );
    Json(ModelList {
        object: "list",
        data,
    })
    .into_response()
}

#[derive(Deserialize)]
struct LoadAdapter {
    #[serde(default)]
    lora_name: Option<String>,
    #[serde(default)]
    lora_path: Option<String>,
}

pub(super) async fn load_adapter(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let result = (|| {
        let request: LoadAdapter = parse(&body)?;
        let (Some(name), Some(path)) = (request.lora_name, request.lora_path) else {
            return Err(ApiError::bad_request(
                "Both 'lora_name' and 'lora_path' must be provided.",
            ));
        };
        let mut adapters = app.adapters.write().unwrap_or_else(PoisonError::into_inner);
        if adapters.iter().any(|a| a.name == name) || app.served.contains(&name) {
            return Err(ApiError::bad_request(format!(
                "The lora adapter '{name}' has already been loaded."
            )));
        }
        adapters.push(LoraModule {
            name: name.clone(),
            path,
        });
        Ok(format!(
            "Success: LoRA adapter '{name}' added successfully."
        ))
    })();
    match result {
        Ok(message) => (StatusCode::OK, message).into_response(),
        Err(error) => error.into_response(),
    }
}

#[derive(Deserialize)]
struct UnloadAdapter {
    #[serde(default)]
    lora_name: Option<String>,
}

pub(super) async fn unload_adapter(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let result = (|| {
        let request: UnloadAdapter = parse(&body)?;
        let Some(name) = request.lora_name else {
            return Err(ApiError::bad_request(
                "'lora_name' needs to be provided to unload a LoRA adapter.",
            ));
        };
        let mut adapters = app.adapters.write().unwrap_or_else(PoisonError::into_inner);
        let before = adapters.len();
        adapters.retain(|a| a.name != name);
        if adapters.len() == before {
            return Err(ApiError {
                status: StatusCode::NOT_FOUND,
                message: format!("The lora adapter '{name}' cannot be found."),
                param: None,
            });
        }
        Ok(format!(
            "Success: LoRA adapter '{name}' removed successfully."
        ))
    })();
    match result {
        Ok(message) => (StatusCode::OK, message).into_response(),
        Err(error) => error.into_response(),
    }
}
