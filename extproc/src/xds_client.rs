//! The extproc's config from the xds-server over ADS (state of the world), pushed, not polled.
//!
//! The stream subscribes to one resource, [`keys::CONFIG_RESOURCE_NAME`] of type
//! [`keys::CONFIG_TYPE_URL`], whose `Any.value` is the JSON of [`crate::config::Config`]:
//!
//! - A response with the config is applied to the [`ConfigStore`] and ACKed; one without a
//!   resource means "no config yet" and is ACKed without touching the store.
//! - JSON that does not parse is NACKed (`error_detail.code` 3, the previous ACKed version) and
//!   the last good config stays. Per-object errors of a config that parses are logged by the
//!   store and ACKed: the xds-server reports them as conditions.
//! - The node (`extproc-<hostname or pid>`, cluster [`keys::XDS_NODE_CLUSTER`]) is sent on the
//!   first request of each stream only.
//! - A lost stream is retried forever, 100 ms doubling to 5 s, back to 100 ms after a
//!   response. The config stays across outages, and each outage is logged once.

mod backoff;
mod session;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;
use tracing::{debug, info, warn};

use crate::config::ConfigStore;
use crate::{Error, Result, keys};
use backoff::Backoff;
use session::{Outcome, Session, error_chain};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP/2 pings find a server that vanished without closing the connection.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest config accepted (credentials of many backends add up).
const MAX_RESPONSE: usize = 64 * 1024 * 1024;

/// What the client has done so far, as [`XdsClientHandle::status`] reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct XdsStatus {
    /// Whether the current ADS stream has delivered a response.
    pub connected: bool,
    /// How many configs from the xDS server were applied (0: none yet).
    pub applied: u64,
    /// The xDS version of the config in the store, once one was applied.
    pub applied_version: Option<String>,
    /// The last version ACKed.
    pub acked_version: Option<String>,
    /// The last error: a rejected config or a lost stream.
    pub last_error: Option<String>,
}

/// An ADS client feeding a [`ConfigStore`]; [`XdsClient::spawn`] runs it.
#[derive(Debug)]
pub struct XdsClient {
    addr: String,
    endpoint: Endpoint,
    store: Arc<ConfigStore>,
    node_id: String,
}

impl XdsClient {
    /// A client of the xds-server at `HOST:PORT` (or a full `http://` URI).
    pub fn new(xds_addr: impl Into<String>, store: Arc<ConfigStore>) -> Result<XdsClient> {
        let addr = xds_addr.into();
        let uri = if addr.contains("://") {
            addr.clone()
        } else {
            format!("http://{addr}")
        };
        let endpoint = Endpoint::from_shared(uri)
            .map_err(|source| Error::XdsAddress {
                addr: addr.clone(),
                source,
            })?
            .connect_timeout(CONNECT_TIMEOUT)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true);
        Ok(XdsClient {
            addr,
            endpoint,
            store,
            node_id: default_node_id(),
        })
    }

    /// Overrides `node.id` (`extproc-<hostname or pid>` by default).
    pub fn node_id(mut self, id: impl Into<String>) -> XdsClient {
        self.node_id = id.into();
        self
    }

    /// Runs the client until the handle is dropped.
    pub fn spawn(self) -> XdsClientHandle {
        let (status, receiver) = watch::channel(XdsStatus::default());
        let node = Node {
            id: self.node_id.clone(),
            cluster: keys::XDS_NODE_CLUSTER.to_owned(),
            user_agent_name: "infergate-extproc".to_owned(),
            ..Node::default()
        };
        let runner = Runner {
            session: Session::new(node),
            client: self,
            backoff: Backoff::default(),
            outage_logged: false,
            status,
        };
        XdsClientHandle {
            task: tokio::spawn(runner.run()),
            status: receiver,
        }
    }
}

/// Runs an ADS client of the xds-server at `xds_addr` feeding `store`, until the handle is
/// dropped.
pub fn spawn(xds_addr: SocketAddr, store: Arc<ConfigStore>) -> XdsClientHandle {
    match XdsClient::new(xds_addr.to_string(), store) {
        Ok(client) => client.spawn(),
        // `http://` and a socket address always make a URI; report it rather than panic.
        Err(err) => {
            let message = error_chain(&err);
            tracing::error!(error = %message, "xDS client not started");
            let (status, receiver) = watch::channel(XdsStatus {
                last_error: Some(message),
                ..XdsStatus::default()
            });
            XdsClientHandle {
                task: tokio::spawn(async move { drop(status) }),
                status: receiver,
            }
        }
    }
}

/// The running client; dropping it stops the client (the config stays in the store).
#[derive(Debug)]
pub struct XdsClientHandle {
    task: JoinHandle<()>,
    status: watch::Receiver<XdsStatus>,
}

impl XdsClientHandle {
    /// Resolves once a config from the xDS server has been applied (at once if one has), with
    /// `true`; `false` if the client stopped first. Wrap it in a timeout.
    pub async fn first_config(&self) -> bool {
        let mut status = self.status.clone();
        status.wait_for(|s| s.applied > 0).await.is_ok()
    }

    pub fn status(&self) -> XdsStatus {
        self.status.borrow().clone()
    }

    /// Notified on every change of [`XdsStatus`].
    pub fn subscribe(&self) -> watch::Receiver<XdsStatus> {
        self.status.clone()
    }

    pub fn abort(&self) {
        self.task.abort();
    }

    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl Drop for XdsClientHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Runner {
    client: XdsClient,
    session: Session,
    backoff: Backoff,
    /// Whether the current outage was logged (once per outage, not per retry).
    outage_logged: bool,
    status: watch::Sender<XdsStatus>,
}

impl Runner {
    async fn run(mut self) {
        info!(xds = %self.client.addr, node = %self.client.node_id, "xDS client started");
        loop {
            let Err(err) = self.stream().await;
            let message = error_chain(&err);
            self.status.send_modify(|s| {
                s.connected = false;
                s.last_error = Some(message.clone());
            });
            if self.outage_logged {
                debug!(error = %message, "xDS server still unreachable");
            } else {
                warn!(
                    error = %message,
                    "xDS server unreachable; retrying with backoff, keeping the current config"
                );
                self.outage_logged = true;
            }
            tokio::time::sleep(self.backoff.next_delay()).await;
        }
    }

    /// One ADS stream, until it fails.
    async fn stream(&mut self) -> Result<Infallible> {
        let addr = &self.client.addr;
        let channel = self
            .client
            .endpoint
            .connect()
            .await
            .map_err(|source| Error::XdsConnect {
                addr: addr.clone(),
                source,
            })?;
        let stream_error = |status: tonic::Status| Error::XdsStream {
            addr: addr.clone(),
            code: status.code(),
            message: status.message().to_owned(),
        };
        let closed = || Error::XdsStreamClosed { addr: addr.clone() };
        let (requests, outbound) = mpsc::channel(4);
        requests
            .send(self.session.first_request())
            .await
            .map_err(|_| closed())?;
        let mut responses = AggregatedDiscoveryServiceClient::new(channel)
            .max_decoding_message_size(MAX_RESPONSE)
            .stream_aggregated_resources(ReceiverStream::new(outbound))
            .await
            .map_err(stream_error)?
            .into_inner();
        loop {
            let response = responses
                .message()
                .await
                .map_err(stream_error)?
                .ok_or_else(closed)?;
            if !self.status.borrow().connected {
                if self.outage_logged {
                    info!(xds = %addr, "reconnected to the xDS server");
                    self.outage_logged = false;
                }
                self.backoff.reset();
                self.status.send_modify(|s| s.connected = true);
            }
            let (outcome, reply) = self.session.on_response(&response, &self.client.store);
            report(&self.status, outcome);
            if let Some(reply) = reply {
                requests.send(reply).await.map_err(|_| closed())?;
            }
        }
    }
}

/// Logs an outcome and records it in the status.
fn report(status: &watch::Sender<XdsStatus>, outcome: Outcome) {
    match outcome {
        Outcome::Applied { version, errors } => {
            info!(%version, errors, "applied the extproc config from xDS");
            status.send_modify(|s| {
                s.applied += 1;
                s.applied_version = Some(version.clone());
                s.acked_version = Some(version);
            });
        }
        Outcome::Unchanged { version } => {
            debug!(%version, "xDS config unchanged");
            status.send_modify(|s| s.acked_version = Some(version));
        }
        Outcome::NoConfig { version } => {
            info!(%version, "the xDS server has no extproc config; keeping the current one");
            status.send_modify(|s| s.acked_version = Some(version));
        }
        Outcome::Rejected { version, message } => {
            warn!(%version, error = %message, "rejected the extproc config from xDS (NACK)");
            status.send_modify(|s| s.last_error = Some(message));
        }
        Outcome::Ignored { type_url } => {
            debug!(%type_url, "ignoring an xDS response of a type we did not ask for");
        }
    }
}

/// `extproc-<hostname>`, or `extproc-<pid>` without one.
fn default_node_id() -> String {
    let clean = |h: String| Some(h.trim().to_owned()).filter(|h| !h.is_empty());
    let hostname = std::env::var("HOSTNAME").ok().and_then(clean).or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .and_then(clean)
    });
    match hostname {
        Some(hostname) => format!("extproc-{hostname}"),
        None => format!("extproc-{}", std::process::id()),
    }
}
