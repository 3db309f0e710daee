//! One kind's watcher: kube-rs list + watch events → [`Change`]s.

use futures::StreamExt as _;
use kube::api::{Api, DynamicObject};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use tokio::sync::mpsc;

use super::Change;
use super::convert;
use crate::object::{Kind, ObjectKey, RawObject};

/// What a watcher watches.
#[derive(Debug, Clone)]
pub enum Scope {
    /// Every object of a kind (in the API's namespace, or all).
    Kind(Kind),
    /// One named object (a field selector on its name, in its namespace).
    Named(ObjectKey),
}

impl Scope {
    fn kind(&self) -> Kind {
        match self {
            Scope::Kind(kind) => *kind,
            Scope::Named(key) => key.kind,
        }
    }

    fn config(&self) -> watcher::Config {
        match self {
            Scope::Kind(_) => watcher::Config::default(),
            Scope::Named(key) => {
                watcher::Config::default().fields(&format!("metadata.name={}", key.name))
            }
        }
    }

    /// The change a complete (re)list makes.
    fn listed(&self, mut objects: Vec<RawObject>) -> Change {
        match self {
            Scope::Kind(kind) => Change::Listed {
                kind: *kind,
                objects,
            },
            Scope::Named(key) => Change::ListedOne {
                key: key.clone(),
                object: objects.pop(),
            },
        }
    }
}

/// Watches `scope` until the receiver is gone. kube-rs relists by itself after `410 Gone` in
/// the stream; a watch that cannot even start because its resourceVersion is too old
/// (`410` as the HTTP answer) restarts the watcher here, which relists too.
pub async fn run(api: Api<DynamicObject>, scope: Scope, tx: mpsc::UnboundedSender<Change>) {
    let kind = scope.kind();
    let mut listed_once = false;
    loop {
        let mut events = watcher::watcher(api.clone(), scope.config())
            .default_backoff()
            .boxed();
        let mut buffer: Vec<RawObject> = Vec::new();
        while let Some(event) = events.next().await {
            let change = match event {
                Ok(Event::Init) => {
                    buffer.clear();
                    continue;
                }
                Ok(Event::InitApply(object)) => {
                    buffer.extend(convert::raw_object(kind, object));
                    continue;
                }
                Ok(Event::InitDone) => {
                    listed_once = true;
                    tracing::debug!(%kind, objects = buffer.len(), "kubernetes: listed");
                    scope.listed(std::mem::take(&mut buffer))
                }
                Ok(Event::Apply(object)) => match convert::raw_object(kind, object) {
                    Some(raw) => Change::Apply(raw),
                    None => continue,
                },
                Ok(Event::Delete(object)) => match convert::key(kind, &object) {
                    Some(key) => Change::Delete(key),
                    None => continue,
                },
                Err(err) => {
                    match classify(&err) {
                        Failure::NotServed if !listed_once => {
                            // The CRD is not installed: the kind has no objects. Keep trying,
                            // but let the other kinds start serving.
                            tracing::warn!(%kind, error = %err, "kubernetes: kind not served (CRD installed?); treating it as empty");
                            listed_once = true;
                            if tx.send(scope.listed(Vec::new())).is_err() {
                                return;
                            }
                        }
                        Failure::Gone => {
                            tracing::info!(%kind, error = %err, "kubernetes: resourceVersion expired; relisting");
                            break;
                        }
                        _ => {
                            tracing::warn!(%kind, error = %err, "kubernetes: watch error; retrying")
                        }
                    }
                    continue;
                }
            };
            if tx.send(change).is_err() {
                return;
            }
        }
    }
}

enum Failure {
    NotServed,
    Gone,
    Other,
}

fn classify(err: &watcher::Error) -> Failure {
    let code = match err {
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status)) => status.code,
        _ => return Failure::Other,
    };
    match (err, code) {
        (_, 404) => Failure::NotServed,
        (watcher::Error::WatchStartFailed(_), 410) => Failure::Gone,
        _ => Failure::Other,
    }
}
