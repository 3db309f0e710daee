//! An in-process Kubernetes API server fake: list and watch with resourceVersions for any
//! resource path (`/api/v1/...`, `/apis/<group>/<version>/...`, namespaced or not), create,
//! replace, patch (recorded, for status write-back tests) and delete. Tests script it: change
//! objects, end every watch, expire resourceVersions (`410 Gone`), fail watch starts.
//!
//! Objects are stored per (group, plural), whatever version they were written in, as an API
//! server with conversion would serve them.

#![allow(dead_code)] // each test binary uses a different part

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// (group, plural)
type Collection = (String, String);

#[derive(Debug, Clone)]
struct WatchEvent {
    rv: u64,
    collection: Collection,
    namespace: String,
    type_: &'static str,
    object: Value,
}

#[derive(Debug, Clone)]
enum Broadcast {
    Event(WatchEvent),
    /// Ends every open watch.
    Close,
}

/// A request the fake recorded (PATCH, POST, PUT).
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub content_type: String,
    pub body: Value,
}

#[derive(Default)]
struct Store {
    rv: u64,
    objects: BTreeMap<Collection, BTreeMap<(String, String), Value>>,
    history: Vec<WatchEvent>,
    /// Watches from a resourceVersion below this get `410 Gone`.
    gone_below: u64,
    /// Watch starts that still have to fail with a 500.
    failing_watches: usize,
    lists: usize,
    recorded: Vec<Recorded>,
    /// Every list and watch: its path and query.
    reads: Vec<(String, BTreeMap<String, String>)>,
    /// The `Authorization` header of the last request.
    authorization: Option<String>,
}

struct Shared {
    store: Mutex<Store>,
    events: broadcast::Sender<Broadcast>,
}

/// The fake; dropping it stops the server.
pub struct FakeApi {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeApi {
    pub async fn start() -> FakeApi {
        Self::serve(None).await
    }

    /// Serves HTTPS with the certificate in `tests/kube/tls/` (for 127.0.0.1, `localhost` and
    /// `kubernetes.default.svc`, signed by `tls/ca.pem`), as a real API server does.
    pub async fn start_tls() -> FakeApi {
        Self::serve(Some(tls::acceptor())).await
    }

    async fn serve(tls: Option<tokio_rustls::TlsAcceptor>) -> FakeApi {
        let shared = Arc::new(Shared {
            store: Mutex::new(Store {
                rv: 1,
                ..Store::default()
            }),
            events: broadcast::channel(4096).0,
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake API server");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let _ = match tls {
                None => axum::serve(listener, app).await,
                Some(acceptor) => axum::serve(tls::Listener { listener, acceptor }, app).await,
            };
        });
        FakeApi { addr, shared, task }
    }

    /// The `Authorization` header of the last request.
    pub fn authorization(&self) -> Option<String> {
        self.store().authorization.clone()
    }

    /// A kube client for this server (plain HTTP).
    pub fn client(&self) -> kube::Client {
        let url = format!("http://{}", self.addr).parse().expect("url");
        kube::Client::try_from(kube::Config::new(url)).expect("client")
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.shared.store.lock().expect("fake store")
    }

    /// Creates or replaces an object (a manifest with apiVersion, kind, metadata).
    pub fn apply(&self, mut object: Value) {
        let (collection, namespace, name) = identity(&mut object);
        let mut store = self.store();
        let exists = store
            .objects
            .get(&collection)
            .is_some_and(|c| c.contains_key(&(namespace.clone(), name.clone())));
        let type_ = if exists { "MODIFIED" } else { "ADDED" };
        let event = store.put(collection, namespace, name, object, type_);
        let _ = self.shared.events.send(Broadcast::Event(event));
    }

    /// Applies every document of a multi-document YAML text.
    pub fn apply_yaml(&self, text: &str) {
        use serde::Deserialize as _;
        for document in serde_yaml::Deserializer::from_str(text) {
            let value = serde_yaml::Value::deserialize(document).expect("yaml");
            if value.is_null() {
                continue;
            }
            self.apply(serde_json::to_value(value).expect("json"));
        }
    }

    /// Deletes an object.
    pub fn delete(&self, api_version: &str, kind: &str, namespace: &str, name: &str) {
        let collection = (group_of(api_version), plural_of(kind));
        let namespace = if is_namespaced(kind) { namespace } else { "" }.to_string();
        let mut store = self.store();
        let Some(object) = store
            .objects
            .get_mut(&collection)
            .and_then(|c| c.remove(&(namespace.clone(), name.to_string())))
        else {
            panic!("delete: {kind} {namespace}/{name} not found");
        };
        store.rv += 1;
        let event = WatchEvent {
            rv: store.rv,
            collection,
            namespace,
            type_: "DELETED",
            object: with_rv(object, store.rv),
        };
        store.history.push(event.clone());
        let _ = self.shared.events.send(Broadcast::Event(event));
    }

    /// Ends every open watch; clients re-watch from their last resourceVersion (no relist).
    pub fn end_watches(&self) {
        let _ = self.shared.events.send(Broadcast::Close);
    }

    /// Every resourceVersion handed out so far becomes too old: open watches end and the
    /// next watch from an old version gets `410 Gone`, so clients relist.
    pub fn expire(&self) {
        {
            let mut store = self.store();
            store.rv += 1;
            store.gone_below = store.rv;
        }
        self.end_watches();
    }

    /// The next `n` watch requests fail with `500`.
    pub fn fail_watches(&self, n: usize) {
        self.store().failing_watches = n;
    }

    /// How many list requests were served.
    pub fn lists(&self) -> usize {
        self.store().lists
    }

    /// The list and watch requests received (path, query), in order.
    pub fn reads(&self) -> Vec<(String, BTreeMap<String, String>)> {
        self.store().reads.clone()
    }

    /// The PATCH / POST / PUT requests received, in order.
    pub fn recorded(&self) -> Vec<Recorded> {
        self.store().recorded.clone()
    }

    /// The stored object, if any.
    pub fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let namespace = if is_namespaced(kind) { namespace } else { "" };
        self.store()
            .objects
            .get(&(group_of(api_version), plural_of(kind)))?
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }
}

impl Store {
    fn put(
        &mut self,
        collection: Collection,
        namespace: String,
        name: String,
        object: Value,
        type_: &'static str,
    ) -> WatchEvent {
        self.rv += 1;
        let object = with_rv(object, self.rv);
        self.objects
            .entry(collection.clone())
            .or_default()
            .insert((namespace.clone(), name), object.clone());
        let event = WatchEvent {
            rv: self.rv,
            collection,
            namespace,
            type_,
            object,
        };
        self.history.push(event.clone());
        event
    }
}

fn with_rv(mut object: Value, rv: u64) -> Value {
    object["metadata"]["resourceVersion"] = Value::String(rv.to_string());
    object
}

/// Collection, namespace and name of a manifest; defaults its namespace like kubectl.
fn identity(object: &mut Value) -> (Collection, String, String) {
    let api_version = object["apiVersion"]
        .as_str()
        .expect("apiVersion")
        .to_string();
    let kind = object["kind"].as_str().expect("kind").to_string();
    let name = object["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_string();
    let namespace = if is_namespaced(&kind) {
        let ns = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string();
        object["metadata"]["namespace"] = Value::String(ns.clone());
        ns
    } else {
        String::new()
    };
    ((group_of(&api_version), plural_of(&kind)), namespace, name)
}

fn group_of(api_version: &str) -> String {
    api_version
        .rsplit_once('/')
        .map(|(g, _)| g.to_string())
        .unwrap_or_default()
}

fn plural_of(kind: &str) -> String {
    let lower = kind.to_lowercase();
    if let Some(stem) = lower
        .strip_suffix('y')
        .filter(|stem| !stem.ends_with(['a', 'e', 'i', 'o', 'u']))
    {
        format!("{stem}ies")
    } else if lower.ends_with('s') {
        format!("{lower}es")
    } else {
        format!("{lower}s")
    }
}

fn is_namespaced(kind: &str) -> bool {
    !matches!(
        kind,
        "GatewayClass" | "Namespace" | "ClusterRole" | "ClusterRoleBinding"
    )
}

/// A parsed resource path.
struct Path {
    collection: Collection,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

fn parse_path(path: &str) -> Option<Path> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", _version, rest @ ..] => (String::new(), rest),
        ["apis", group, _version, rest @ ..] => (group.to_string(), rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
        rest => (None, rest),
    };
    let (plural, name, subresource) = match rest {
        [plural] => (plural, None, None),
        [plural, name] => (plural, Some(name.to_string()), None),
        [plural, name, sub] => (plural, Some(name.to_string()), Some(sub.to_string())),
        _ => return None,
    };
    Some(Path {
        collection: (group, plural.to_string()),
        namespace,
        name,
        subresource,
    })
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

fn error(code: StatusCode, reason: &str, message: &str) -> Response {
    (code, axum::Json(status(code.as_u16(), reason, message))).into_response()
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<BTreeMap<String, String>>,
    body: Bytes,
) -> Response {
    let Some(path) = parse_path(uri.path()) else {
        return error(StatusCode::NOT_FOUND, "NotFound", uri.path());
    };
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body: Value = if body.is_empty() {
        Value::Null
    } else if content_type.contains("yaml") {
        serde_yaml::from_slice(&body).unwrap_or(Value::Null)
    } else {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    };
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    shared.store.lock().expect("store").authorization = authorization;
    if method != Method::GET && method != Method::DELETE {
        shared.store.lock().expect("store").recorded.push(Recorded {
            method: method.to_string(),
            path: uri.path().to_string(),
            query: query.clone(),
            content_type,
            body: body.clone(),
        });
    }
    let watching = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
    if method == Method::GET && path.name.is_none() {
        let read = (uri.path().to_string(), query.clone());
        shared.store.lock().expect("store").reads.push(read);
    }
    match (method, &path.name) {
        (Method::GET, None) if watching => watch(&shared, &path, &query),
        (Method::GET, None) => list(&shared, &path, &query),
        (Method::GET, Some(name)) => get(&shared, &path, name),
        (Method::POST, None) => write(&shared, &path, body, true),
        (Method::PUT, Some(_)) => write(&shared, &path, body, false),
        (Method::PATCH, Some(name)) => patch(&shared, &path, name, body),
        _ => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            uri.path(),
        ),
    }
}

fn in_namespace(path: &Path, namespace: &str) -> bool {
    path.namespace.as_deref().is_none_or(|ns| ns == namespace)
}

/// The name a `fieldSelector=metadata.name=<name>` asks for (the only field selector the
/// fake understands).
fn selected_name(query: &BTreeMap<String, String>) -> Option<String> {
    query
        .get("fieldSelector")
        .and_then(|s| s.strip_prefix("metadata.name="))
        .map(str::to_string)
}

fn list(shared: &Shared, path: &Path, query: &BTreeMap<String, String>) -> Response {
    let mut store = shared.store.lock().expect("store");
    store.lists += 1;
    let name = selected_name(query);
    let items: Vec<Value> = store
        .objects
        .get(&path.collection)
        .map(|c| {
            c.iter()
                .filter(|((ns, n), _)| {
                    in_namespace(path, ns) && name.as_ref().is_none_or(|want| want == n)
                })
                .map(|(_, o)| o.clone())
                .collect()
        })
        .unwrap_or_default();
    axum::Json(json!({
        "apiVersion": "v1", "kind": "List",
        "metadata": {"resourceVersion": store.rv.to_string()},
        "items": items,
    }))
    .into_response()
}

fn get(shared: &Shared, path: &Path, name: &str) -> Response {
    let store = shared.store.lock().expect("store");
    let ns = path.namespace.clone().unwrap_or_default();
    match store
        .objects
        .get(&path.collection)
        .and_then(|c| c.get(&(ns, name.to_string())))
    {
        Some(object) => axum::Json(object.clone()).into_response(),
        None => error(StatusCode::NOT_FOUND, "NotFound", name),
    }
}

fn write(shared: &Shared, path: &Path, mut body: Value, create: bool) -> Response {
    let ns = path.namespace.clone().unwrap_or_default();
    if !ns.is_empty() {
        body["metadata"]["namespace"] = Value::String(ns.clone());
    }
    let Some(name) = body["metadata"]["name"].as_str().map(str::to_string) else {
        return error(StatusCode::BAD_REQUEST, "BadRequest", "metadata.name");
    };
    let mut store = shared.store.lock().expect("store");
    let current = store
        .objects
        .get(&path.collection)
        .and_then(|c| c.get(&(ns.clone(), name.clone())))
        .cloned();
    let type_ = match (&current, create) {
        (Some(_), true) => return error(StatusCode::CONFLICT, "AlreadyExists", &name),
        (None, false) => return error(StatusCode::NOT_FOUND, "NotFound", &name),
        (Some(current), false) => {
            let wanted = body["metadata"]["resourceVersion"].as_str();
            if wanted.is_some() && wanted != current["metadata"]["resourceVersion"].as_str() {
                return error(StatusCode::CONFLICT, "Conflict", &name);
            }
            "MODIFIED"
        }
        (None, true) => "ADDED",
    };
    let event = store.put(path.collection.clone(), ns, name, body, type_);
    let _ = shared.events.send(Broadcast::Event(event.clone()));
    (StatusCode::OK, axum::Json(event.object)).into_response()
}

/// Server-side apply, simplified: the patch's top-level fields (or `status` for the status
/// subresource) replace the stored ones.
fn patch(shared: &Shared, path: &Path, name: &str, body: Value) -> Response {
    let ns = path.namespace.clone().unwrap_or_default();
    let mut store = shared.store.lock().expect("store");
    let Some(mut object) = store
        .objects
        .get(&path.collection)
        .and_then(|c| c.get(&(ns.clone(), name.to_string())))
        .cloned()
    else {
        return error(StatusCode::NOT_FOUND, "NotFound", name);
    };
    match path.subresource.as_deref() {
        Some("status") => object["status"] = body["status"].clone(),
        _ => {
            if let (Some(target), Some(patch)) = (object.as_object_mut(), body.as_object()) {
                for (k, v) in patch {
                    if k != "metadata" && k != "apiVersion" && k != "kind" {
                        target.insert(k.clone(), v.clone());
                    }
                }
            }
        }
    }
    let event = store.put(
        path.collection.clone(),
        ns,
        name.to_string(),
        object,
        "MODIFIED",
    );
    let _ = shared.events.send(Broadcast::Event(event.clone()));
    (StatusCode::OK, axum::Json(event.object)).into_response()
}

fn watch(shared: &Shared, path: &Path, query: &BTreeMap<String, String>) -> Response {
    // Subscribe before reading the backlog so nothing falls between the two.
    let live = shared.events.subscribe();
    let mut store = shared.store.lock().expect("store");
    if store.failing_watches > 0 {
        store.failing_watches -= 1;
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "scripted watch failure",
        );
    }
    let from: u64 = query
        .get("resourceVersion")
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(store.rv);
    let line = |value: Value| -> Result<Bytes, Infallible> {
        let mut text = value.to_string();
        text.push('\n');
        Ok(Bytes::from(text))
    };
    if from < store.gone_below {
        let gone =
            json!({"type": "ERROR", "object": status(410, "Expired", "too old resource version")});
        return Body::from_stream(futures::stream::iter([line(gone)])).into_response();
    }
    let collection = path.collection.clone();
    let namespace = path.namespace.clone();
    let name = selected_name(query);
    let wanted = move |e: &WatchEvent| {
        e.collection == collection
            && namespace.as_deref().is_none_or(|ns| ns == e.namespace)
            && name
                .as_deref()
                .is_none_or(|n| e.object["metadata"]["name"].as_str() == Some(n))
    };
    let backlog: Vec<WatchEvent> = store
        .history
        .iter()
        .filter(|e| e.rv > from && wanted(e))
        .cloned()
        .collect();
    let last = backlog.last().map_or(from, |e| e.rv);
    drop(store);
    let as_line = move |e: WatchEvent| line(json!({"type": e.type_, "object": e.object}));
    let backlog = futures::stream::iter(backlog).map(as_line);
    let live = tokio_stream::wrappers::BroadcastStream::new(live)
        .take_while(|m| std::future::ready(!matches!(m, Ok(Broadcast::Close))))
        .filter_map(move |m| {
            let event = match m {
                Ok(Broadcast::Event(e)) if e.rv > last && wanted(&e) => Some(as_line(e)),
                _ => None,
            };
            std::future::ready(event)
        });
    Body::from_stream(backlog.chain(live)).into_response()
}

mod tls {
    use std::path::PathBuf;
    use std::sync::Arc;

    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_rustls::TlsAcceptor;
    use tokio_rustls::server::TlsStream;

    pub fn dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/kube/tls")
    }

    pub fn acceptor() -> TlsAcceptor {
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let certs = CertificateDer::pem_file_iter(dir().join("server.pem"))
            .expect("server.pem")
            .collect::<Result<Vec<_>, _>>()
            .expect("certificates");
        let key = PrivateKeyDer::from_pem_file(dir().join("server.key")).expect("server.key");
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server TLS config");
        TlsAcceptor::from(Arc::new(config))
    }

    /// Accepted connections after their TLS handshake (failed handshakes are dropped).
    pub struct Listener {
        pub listener: TcpListener,
        pub acceptor: TlsAcceptor,
    }

    impl axum::serve::Listener for Listener {
        type Io = TlsStream<TcpStream>;
        type Addr = std::net::SocketAddr;

        async fn accept(&mut self) -> (Self::Io, Self::Addr) {
            loop {
                let Ok((tcp, addr)) = self.listener.accept().await else {
                    continue;
                };
                if let Ok(tls) = self.acceptor.accept(tcp).await {
                    return (tls, addr);
                }
            }
        }

        fn local_addr(&self) -> std::io::Result<Self::Addr> {
            self.listener.local_addr()
        }
    }
}

/// The folder with the fake's certificate, key and CA.
pub fn tls_dir() -> std::path::PathBuf {
    tls::dir()
}
