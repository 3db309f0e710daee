//! The gRPC service: one task per ADS stream.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument as _;

use crate::delta::Delta;
use crate::registry::ProxyRegistry;
use crate::snapshot::SnapshotSet;
use crate::sotw::Sotw;
use crate::stream::{Protocol, Stream};

/// How long a make-before-break step waits for the proxy's ACKs before carrying on.
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// Responses buffered per stream before the stream task waits for the proxy to read.
const OUTBOUND_BUFFER: usize = 16;

type ResponseStream<R> = Pin<Box<dyn futures::Stream<Item = Result<R, Status>> + Send>>;

/// The Aggregated Discovery Service, SotW and Delta, serving whatever snapshots it is given.
#[derive(Clone, Debug)]
pub struct AdsServer {
    snapshots: watch::Receiver<Arc<SnapshotSet>>,
    registry: ProxyRegistry,
    ack_timeout: Duration,
}

impl AdsServer {
    /// Serves the latest value of `snapshots` to every proxy, recording them in `registry`.
    pub fn new(snapshots: watch::Receiver<Arc<SnapshotSet>>, registry: ProxyRegistry) -> Self {
        Self {
            snapshots,
            registry,
            ack_timeout: DEFAULT_ACK_TIMEOUT,
        }
    }

    /// How long each make-before-break step waits for ACKs (default 5 s).
    pub fn with_ack_timeout(mut self, ack_timeout: Duration) -> Self {
        self.ack_timeout = ack_timeout;
        self
    }

    pub fn into_service(self) -> AggregatedDiscoveryServiceServer<Self> {
        AggregatedDiscoveryServiceServer::new(self)
    }

    fn spawn<P: Protocol + Default>(
        &self,
        inbound: Streaming<P::Request>,
    ) -> ResponseStream<P::Response>
    where
        Streaming<P::Request>: futures::Stream<Item = Result<P::Request, Status>> + Unpin,
    {
        let (outbound, responses) = mpsc::channel(OUTBOUND_BUFFER);
        let entry = self.registry.connect(P::KIND);
        let span = tracing::info_span!(
            "ads",
            stream = entry.id(),
            kind = ?P::KIND,
            node = tracing::field::Empty
        );
        let stream = Stream::new(
            P::default(),
            entry,
            outbound,
            self.snapshots.clone(),
            self.ack_timeout,
        );
        tokio::spawn(stream.run(inbound).instrument(span));
        Box::pin(ReceiverStream::new(responses))
    }
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsServer {
    type StreamAggregatedResourcesStream = ResponseStream<DiscoveryResponse>;
    type DeltaAggregatedResourcesStream = ResponseStream<DeltaDiscoveryResponse>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        Ok(Response::new(self.spawn::<Sotw>(request.into_inner())))
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Ok(Response::new(self.spawn::<Delta>(request.into_inner())))
    }
}
