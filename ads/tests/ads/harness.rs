//! Starts the server and plays Envoy.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::google::rpc::Status as RpcStatus;
use infergate_ads::{AdsServer, ProxyRegistry, Snapshot, SnapshotSet, XdsResource, type_url};
use prost::{Message, Name};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::Streaming;
use tonic::transport::Channel;

/// How long to wait for a response that must come.
pub const PATIENCE: Duration = Duration::from_secs(5);
/// How long to listen to be reasonably sure nothing more is coming.
pub const QUIET: Duration = Duration::from_millis(300);

fn any<M: Message + Name>(message: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: message.encode_to_vec(),
    }
}

fn resource(name: &str, version: &str, body: Any) -> XdsResource {
    XdsResource {
        name: name.to_owned(),
        version: version.to_owned(),
        body,
    }
}

pub fn cluster(name: &str, version: &str) -> (&'static str, XdsResource) {
    let body = any(&Cluster {
        name: name.to_owned(),
        ..Cluster::default()
    });
    (type_url::CLUSTER, resource(name, version, body))
}

pub fn endpoints(name: &str, version: &str) -> (&'static str, XdsResource) {
    let body = any(&ClusterLoadAssignment {
        cluster_name: name.to_owned(),
        ..ClusterLoadAssignment::default()
    });
    (type_url::ENDPOINT, resource(name, version, body))
}

pub fn listener(name: &str, version: &str) -> (&'static str, XdsResource) {
    let body = any(&Listener {
        name: name.to_owned(),
        ..Listener::default()
    });
    (type_url::LISTENER, resource(name, version, body))
}

pub fn route(name: &str, version: &str) -> (&'static str, XdsResource) {
    let body = any(&RouteConfiguration {
        name: name.to_owned(),
        ..RouteConfiguration::default()
    });
    (type_url::ROUTE, resource(name, version, body))
}

/// The resource name inside an encoded fake resource.
pub fn name_of(body: &Any) -> String {
    let bytes = body.value.as_slice();
    let name = match body.type_url.as_str() {
        type_url::CLUSTER => Cluster::decode(bytes).map(|c| c.name),
        type_url::ENDPOINT => ClusterLoadAssignment::decode(bytes).map(|c| c.cluster_name),
        type_url::LISTENER => Listener::decode(bytes).map(|l| l.name),
        type_url::ROUTE => RouteConfiguration::decode(bytes).map(|r| r.name),
        other => panic!("unexpected resource type {other}"),
    };
    name.expect("fake resources decode")
}

pub fn set(all: Snapshot) -> SnapshotSet {
    SnapshotSet {
        all: Arc::new(all),
        by_gateway: BTreeMap::new(),
    }
}

pub fn node(id: &str, cluster: &str) -> Node {
    Node {
        id: id.to_owned(),
        cluster: cluster.to_owned(),
        ..Node::default()
    }
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
}

/// A running server.
pub struct Harness {
    pub snapshots: watch::Sender<Arc<SnapshotSet>>,
    pub registry: ProxyRegistry,
    addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl Harness {
    pub async fn start(initial: SnapshotSet) -> Self {
        Self::start_with_ack_timeout(initial, infergate_ads::DEFAULT_ACK_TIMEOUT).await
    }

    pub async fn start_with_ack_timeout(initial: SnapshotSet, ack_timeout: Duration) -> Self {
        init_tracing();
        let (snapshots, receiver) = watch::channel(Arc::new(initial));
        let registry = ProxyRegistry::new();
        let service = AdsServer::new(receiver, registry.clone())
            .with_ack_timeout(ack_timeout)
            .into_service();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let server = tokio::spawn(async move {
            let served = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await;
            if let Err(error) = served {
                panic!("server failed: {error}");
            }
        });
        Self {
            snapshots,
            registry,
            addr,
            server,
        }
    }

    pub fn publish(&self, all: Snapshot) {
        self.snapshots.send_replace(Arc::new(set(all)));
    }

    async fn client(&self) -> AggregatedDiscoveryServiceClient<Channel> {
        AggregatedDiscoveryServiceClient::connect(format!("http://{}", self.addr))
            .await
            .expect("connect to the ADS server")
    }

    pub async fn sotw(&self) -> SotwEnvoy {
        let (requests, inbound) = mpsc::channel(16);
        let responses = self
            .client()
            .await
            .stream_aggregated_resources(ReceiverStream::new(inbound))
            .await
            .expect("open a SotW stream")
            .into_inner();
        SotwEnvoy {
            requests,
            responses,
            node: Some(node("envoy-1", "infergate")),
        }
    }

    pub async fn delta(&self) -> DeltaEnvoy {
        let (requests, inbound) = mpsc::channel(16);
        let responses = self
            .client()
            .await
            .delta_aggregated_resources(ReceiverStream::new(inbound))
            .await
            .expect("open a Delta stream")
            .into_inner();
        DeltaEnvoy {
            requests,
            responses,
            node: Some(node("envoy-1", "infergate")),
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn error_detail(message: &str) -> Option<RpcStatus> {
    Some(RpcStatus {
        code: 3,
        message: message.to_owned(),
        details: vec![],
    })
}

/// A SotW client that behaves like Envoy; the node goes on the first request only.
pub struct SotwEnvoy {
    requests: mpsc::Sender<DiscoveryRequest>,
    responses: Streaming<DiscoveryResponse>,
    node: Option<Node>,
}

impl SotwEnvoy {
    pub fn with_node(mut self, node: Node) -> Self {
        self.node = Some(node);
        self
    }

    pub async fn send(&mut self, mut request: DiscoveryRequest) {
        if let Some(node) = self.node.take() {
            request.node = Some(node);
        }
        self.requests.send(request).await.expect("stream open");
    }

    /// A request for `type_url` with these names, version and nonce.
    pub async fn request(&mut self, type_url: &str, names: &[&str], version: &str, nonce: &str) {
        self.send(DiscoveryRequest {
            version_info: version.to_owned(),
            resource_names: names.iter().map(|n| (*n).to_owned()).collect(),
            type_url: type_url.to_owned(),
            response_nonce: nonce.to_owned(),
            ..DiscoveryRequest::default()
        })
        .await;
    }

    pub async fn ack(&mut self, response: &DiscoveryResponse, names: &[&str]) {
        self.request(
            &response.type_url,
            names,
            &response.version_info,
            &response.nonce,
        )
        .await;
    }

    /// Rejects `response`, reporting `kept` as the version still in use.
    pub async fn nack(
        &mut self,
        response: &DiscoveryResponse,
        names: &[&str],
        kept: &str,
        why: &str,
    ) {
        self.send(DiscoveryRequest {
            version_info: kept.to_owned(),
            resource_names: names.iter().map(|n| (*n).to_owned()).collect(),
            type_url: response.type_url.clone(),
            response_nonce: response.nonce.clone(),
            error_detail: error_detail(why),
            ..DiscoveryRequest::default()
        })
        .await;
    }

    pub async fn recv(&mut self) -> DiscoveryResponse {
        match tokio::time::timeout(PATIENCE, self.responses.message()).await {
            Ok(Ok(Some(response))) => response,
            other => panic!("expected a response, got {other:?}"),
        }
    }

    /// Asserts that nothing arrives for a while.
    pub async fn expect_silence(&mut self) {
        if let Ok(response) = tokio::time::timeout(QUIET, self.responses.message()).await {
            panic!("expected no response, got {response:?}");
        }
    }
}

pub fn names(response: &DiscoveryResponse) -> Vec<String> {
    let mut names: Vec<String> = response.resources.iter().map(name_of).collect();
    names.sort();
    names
}

/// A Delta client that behaves like Envoy.
pub struct DeltaEnvoy {
    requests: mpsc::Sender<DeltaDiscoveryRequest>,
    responses: Streaming<DeltaDiscoveryResponse>,
    node: Option<Node>,
}

impl DeltaEnvoy {
    pub async fn send(&mut self, mut request: DeltaDiscoveryRequest) {
        if let Some(node) = self.node.take() {
            request.node = Some(node);
        }
        self.requests.send(request).await.expect("stream open");
    }

    pub async fn subscribe(&mut self, type_url: &str, subscribe: &[&str], unsubscribe: &[&str]) {
        self.send(DeltaDiscoveryRequest {
            type_url: type_url.to_owned(),
            resource_names_subscribe: subscribe.iter().map(|n| (*n).to_owned()).collect(),
            resource_names_unsubscribe: unsubscribe.iter().map(|n| (*n).to_owned()).collect(),
            ..DeltaDiscoveryRequest::default()
        })
        .await;
    }

    /// A reconnecting proxy's first request for a type.
    pub async fn reconnect(&mut self, type_url: &str, subscribe: &[&str], held: &[(&str, &str)]) {
        self.send(DeltaDiscoveryRequest {
            type_url: type_url.to_owned(),
            resource_names_subscribe: subscribe.iter().map(|n| (*n).to_owned()).collect(),
            initial_resource_versions: held
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect::<HashMap<_, _>>(),
            ..DeltaDiscoveryRequest::default()
        })
        .await;
    }

    pub async fn ack(&mut self, response: &DeltaDiscoveryResponse) {
        self.send(DeltaDiscoveryRequest {
            type_url: response.type_url.clone(),
            response_nonce: response.nonce.clone(),
            ..DeltaDiscoveryRequest::default()
        })
        .await;
    }

    pub async fn nack(&mut self, response: &DeltaDiscoveryResponse, why: &str) {
        self.send(DeltaDiscoveryRequest {
            type_url: response.type_url.clone(),
            response_nonce: response.nonce.clone(),
            error_detail: error_detail(why),
            ..DeltaDiscoveryRequest::default()
        })
        .await;
    }

    pub async fn recv(&mut self) -> DeltaDiscoveryResponse {
        match tokio::time::timeout(PATIENCE, self.responses.message()).await {
            Ok(Ok(Some(response))) => response,
            other => panic!("expected a response, got {other:?}"),
        }
    }

    pub async fn expect_silence(&mut self) {
        if let Ok(response) = tokio::time::timeout(QUIET, self.responses.message()).await {
            panic!("expected no response, got {response:?}");
        }
    }
}

/// `(name, version)` of each resource in a Delta response, sorted.
pub fn versions(response: &DeltaDiscoveryResponse) -> Vec<(String, String)> {
    let mut versions: Vec<(String, String)> = response
        .resources
        .iter()
        .map(|r| (r.name.clone(), r.version.clone()))
        .collect();
    versions.sort();
    versions
}

pub fn removed(response: &DeltaDiscoveryResponse) -> Vec<String> {
    let mut removed = response.removed_resources.clone();
    removed.sort();
    removed
}
