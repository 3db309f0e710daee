//! Writes each object's conditions back to its `status` with server-side apply (field manager
//! `infergate`), after each translation, only for objects whose status changed since the last
//! successful write.

use std::collections::HashMap;
use std::sync::Arc;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::Value;
use tokio::sync::watch;

use super::resources;
use super::status_body::{self, FIELD_MANAGER};
use crate::object::ObjectKey;
use crate::pipeline::Published;

/// Runs until the process ends. `leader` gates writing; `None` always writes (no election).
pub async fn run(
    client: kube::Client,
    published: Arc<Published>,
    mut leader: Option<watch::Receiver<bool>>,
) {
    let mut versions = published.status_version.subscribe();
    // What was last written (with times) and what it was built from (without).
    let mut written: HashMap<ObjectKey, (Value, Value)> = HashMap::new();
    let controller = crate::keys::DEFAULT_CONTROLLER_NAMES[0];
    loop {
        let leading = leader.as_mut().is_none_or(|l| *l.borrow_and_update());
        if leading {
            let report = published.status.load_full();
            for key in report.objects.keys() {
                let Some(wanted) = status_body::status_of(key, &report, controller) else {
                    continue;
                };
                let previous = written.get(key);
                if previous.is_some_and(|(built, _)| *built == wanted) {
                    continue;
                }
                let mut stamped = wanted.clone();
                let now = k8s_openapi::jiff::Timestamp::now()
                    .strftime("%Y-%m-%dT%H:%M:%SZ")
                    .to_string();
                status_body::stamp(&mut stamped, previous.map(|(_, s)| s), &now);
                match write(&client, key, stamped.clone()).await {
                    Ok(()) => {
                        written.insert(key.clone(), (wanted, stamped));
                    }
                    Err(err) => tracing::warn!(object = %key, error = %err, "writing status"),
                }
            }
            written.retain(|key, _| report.objects.contains_key(key));
        } else {
            // A new leader rewrites everything.
            written.clear();
        }
        let leadership = async {
            match leader.as_mut() {
                Some(leader) => leader.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = versions.changed() => if changed.is_err() { return },
            alive = leadership => if !alive { return },
        }
    }
}

async fn write(client: &kube::Client, key: &ObjectKey, status: Value) -> kube::Result<()> {
    let resource = resources::api_resource(key.kind);
    let api: Api<DynamicObject> = if key.namespace.is_empty() {
        Api::all_with(client.clone(), &resource)
    } else {
        Api::namespaced_with(client.clone(), &key.namespace, &resource)
    };
    let patch = status_body::apply_patch(key, &resource.api_version, status);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(&key.name, &params, &Patch::Apply(&patch))
        .await?;
    Ok(())
}
