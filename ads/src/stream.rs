//! One ADS stream, whichever its flavour: reads requests, follows snapshot changes, applies them
//! in make-before-break order and keeps the registry up to date.
//!
//! The protocol-specific part (what a request subscribes to, what a response contains) lives in
//! [`crate::sotw`] and [`crate::delta`] behind [`Protocol`]; this file owns nonces, ACK/NACK
//! bookkeeping, ordering and coalescing:
//!
//! - The node's snapshot is chosen on the first request, which carries the node.
//! - Requests are answered from the stream's current *view*: the snapshot, or while a change is
//!   being applied, the current step of its [`Plan`].
//! - A step pushes what changed, then waits until the proxy has answered every response sent
//!   during the step (including ones prompted by its own follow-up requests, such as EDS for new
//!   clusters), or until the ACK timeout, after which it logs and carries on.
//! - Snapshots are only looked at between steps, so several arriving during a wait collapse into
//!   the newest, planned from whatever the proxy was last sent.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use futures::StreamExt as _;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tonic::Status;
use tracing::{debug, info, warn};

use crate::ack::{AckState, Reply};
use crate::error::{Error, Result};
use crate::order::{Plan, Step};
use crate::registry::{StreamEntry, StreamKind};
use crate::snapshot::{Snapshot, SnapshotSet};
use crate::type_url;

/// More distinct type URLs than Envoy will ever use on one stream; beyond it requests are dropped
/// so a misbehaving client cannot grow our state without bound.
const MAX_TYPES_PER_STREAM: usize = 32;

/// The fields the driver reads from any discovery request.
pub(crate) struct Meta<'a> {
    pub(crate) node: Option<&'a Node>,
    pub(crate) type_url: &'a str,
    pub(crate) nonce: &'a str,
    pub(crate) error_detail: Option<&'a str>,
}

/// What a push of one type amounts to.
pub(crate) enum Push<R> {
    Send(R),
    /// Nothing to send: the proxy already has all of this view's version it subscribes to.
    UpToDate,
    /// Not subscribed, already sent, or rejected by the proxy.
    Skip,
}

/// SotW or Delta.
pub(crate) trait Protocol: Send + 'static {
    type Request: Send + 'static;
    type Response: Send + 'static;
    const KIND: StreamKind;

    fn meta(request: &Self::Request) -> Meta<'_>;

    /// Updates the subscription and returns the response the request calls for, if any.
    fn on_request(
        &mut self,
        request: Self::Request,
        reply: &Reply,
        view: &Snapshot,
        acks: &AckState,
    ) -> Option<Self::Response>;

    /// Brings the proxy to `view` for one type; `force` names resources to resend even if the
    /// proxy has their version.
    fn on_push(
        &mut self,
        type_url: &str,
        view: &Snapshot,
        force: &BTreeSet<String>,
        acks: &AckState,
    ) -> Push<Self::Response>;

    fn set_nonce(response: &mut Self::Response, nonce: String);
}

pub(crate) type Outbound<R> = mpsc::Sender<Result<R, Status>>;

/// A step being waited on.
struct Waiting {
    /// Types with a response sent during the step.
    types: BTreeSet<String>,
    deadline: Instant,
}

pub(crate) struct Stream<P: Protocol> {
    protocol: P,
    entry: StreamEntry,
    outbound: Outbound<P::Response>,
    snapshots: watch::Receiver<Arc<SnapshotSet>>,
    snapshots_closed: bool,
    ack_timeout: Duration,
    /// Set by the first request.
    node: Option<Node>,
    started: bool,
    acks: BTreeMap<String, AckState>,
    /// The snapshot this stream converges to.
    target: Arc<Snapshot>,
    /// What requests are answered from and pushes compare against.
    view: Arc<Snapshot>,
    plan: Option<Plan>,
    waiting: Option<Waiting>,
    next_nonce: u64,
}

impl<P: Protocol> Stream<P> {
    pub(crate) fn new(
        protocol: P,
        entry: StreamEntry,
        outbound: Outbound<P::Response>,
        snapshots: watch::Receiver<Arc<SnapshotSet>>,
        ack_timeout: Duration,
    ) -> Self {
        Self {
            protocol,
            entry,
            outbound,
            snapshots,
            snapshots_closed: false,
            ack_timeout,
            node: None,
            started: false,
            acks: BTreeMap::new(),
            target: Arc::default(),
            view: Arc::default(),
            plan: None,
            waiting: None,
            next_nonce: 0,
        }
    }

    /// Serves the stream until the proxy goes away.
    pub(crate) async fn run(
        mut self,
        mut inbound: impl futures::Stream<Item = Result<P::Request, Status>> + Unpin,
    ) {
        match self.serve(&mut inbound).await {
            Ok(()) => debug!("stream closed by the proxy"),
            Err(error) => debug!(%error, "stream ended"),
        }
    }

    async fn serve(
        &mut self,
        inbound: &mut (impl futures::Stream<Item = Result<P::Request, Status>> + Unpin),
    ) -> Result<()> {
        loop {
            let deadline = self.waiting.as_ref().map(|w| w.deadline);
            let watch_snapshots = self.started && self.plan.is_none() && !self.snapshots_closed;
            tokio::select! {
                request = inbound.next() => match request {
                    Some(Ok(request)) => self.on_request(request).await?,
                    Some(Err(status)) => {
                        debug!(%status, "stream error from the proxy");
                        return Ok(());
                    }
                    None => return Ok(()),
                },
                changed = self.snapshots.changed(), if watch_snapshots => match changed {
                    Ok(()) => self.on_snapshot(),
                    Err(_) => {
                        info!("snapshot source closed; keeping the last configuration");
                        self.snapshots_closed = true;
                    }
                },
                () = sleep_until(deadline), if deadline.is_some() => {
                    if let Some(waiting) = self.waiting.take() {
                        warn!(
                            types = ?waiting.types,
                            timeout = ?self.ack_timeout,
                            "proxy did not answer in time; continuing the update without its ACK"
                        );
                    }
                }
            }
            self.advance().await?;
        }
    }

    async fn on_request(&mut self, request: P::Request) -> Result<()> {
        let meta = P::meta(&request);
        if !self.started {
            self.start(meta.node.cloned());
        }
        let type_url = meta.type_url.to_owned();
        let nonce = meta.nonce.to_owned();
        let error_detail = meta.error_detail.map(str::to_owned);
        if type_url.is_empty() {
            warn!(error = %Error::MissingTypeUrl { stream: self.entry.id() }, "ignoring request");
            return Ok(());
        }
        if !self.acks.contains_key(&type_url) {
            if self.acks.len() >= MAX_TYPES_PER_STREAM {
                let error = Error::TooManyTypes {
                    stream: self.entry.id(),
                    type_url,
                };
                warn!(%error, "ignoring request");
                return Ok(());
            }
            if !type_url::KNOWN.contains(&type_url.as_str())
                && self.view.resources(&type_url).is_empty()
                && self.entry.registry().first_sighting(&type_url)
            {
                warn!(%type_url, "proxy asked for a resource type we have none of; answering with no resources");
            }
            self.acks.insert(type_url.clone(), AckState::default());
            self.entry.subscribed(&type_url);
        }
        let acks = self.acks.entry(type_url.clone()).or_default();
        let reply = acks.reply(&nonce, error_detail.as_deref());
        match &reply {
            Reply::Ack { version, latency } => {
                debug!(%type_url, %version, ?latency, "ACK");
                self.entry.acked(&type_url, version, *latency);
            }
            Reply::Nack { version, detail } => {
                warn!(%type_url, %version, error_detail = %detail, "proxy rejected the configuration (NACK)");
                self.entry.nacked(&type_url, version, detail);
            }
            Reply::Stale => debug!(%type_url, %nonce, "stale nonce"),
            Reply::NoNonce | Reply::Again => {}
        }
        let view = self.view.clone();
        if let Some(response) = self.protocol.on_request(request, &reply, &view, acks) {
            self.send(&type_url, response).await?;
        }
        Ok(())
    }

    /// The first request chooses the node's snapshot.
    fn start(&mut self, node: Option<Node>) {
        if let Some(node) = &node {
            self.entry.set_node(&node.id, &node.cluster);
            tracing::Span::current().record("node", node.id.as_str());
        }
        let set = self.snapshots.borrow_and_update().clone();
        self.target = set.for_node(node.as_ref());
        self.view = self.target.clone();
        self.node = node;
        self.started = true;
    }

    fn on_snapshot(&mut self) {
        let set = self.snapshots.borrow_and_update().clone();
        let target = set.for_node(self.node.as_ref());
        if target.same_versions(&self.target) {
            return;
        }
        debug!("new snapshot");
        self.plan = Some(Plan::new(&self.view, &target));
        self.target = target;
    }

    /// Moves the plan on for as long as nothing is left to wait for.
    async fn advance(&mut self) -> Result<()> {
        loop {
            if let Some(waiting) = &self.waiting {
                let answered = waiting
                    .types
                    .iter()
                    .all(|t| self.acks.get(t).is_none_or(|a| !a.in_flight()));
                if !answered {
                    return Ok(());
                }
                self.waiting = None;
            }
            if self.plan.is_none() {
                return Ok(());
            }
            // Coalesce: a snapshot that arrived during the wait replaces the rest of the plan.
            if !self.snapshots_closed && self.snapshots.has_changed().unwrap_or(false) {
                self.on_snapshot();
            }
            match self.plan.as_mut().and_then(Plan::next_step) {
                Some(step) => self.start_step(step).await?,
                None => self.plan = None,
            }
        }
    }

    async fn start_step(&mut self, step: Step) -> Result<()> {
        self.view = step.view;
        self.waiting = Some(Waiting {
            types: BTreeSet::new(),
            deadline: Instant::now() + self.ack_timeout,
        });
        let no_force = BTreeSet::new();
        for type_url in &step.push {
            let Some(acks) = self.acks.get(type_url) else {
                continue; // not subscribed
            };
            let force = step.force.get(type_url).unwrap_or(&no_force);
            match self.protocol.on_push(type_url, &self.view, force, acks) {
                Push::Send(response) => self.send(type_url, response).await?,
                Push::UpToDate => {
                    let version = self.view.version(type_url).to_owned();
                    let in_flight = acks.in_flight();
                    if let Some(acks) = self.acks.get_mut(type_url) {
                        acks.up_to_date(&version);
                    }
                    self.entry.up_to_date(type_url, &version, in_flight);
                }
                Push::Skip => {}
            }
        }
        if self.waiting.as_ref().is_some_and(|w| w.types.is_empty()) {
            self.waiting = None;
        }
        Ok(())
    }

    async fn send(&mut self, type_url: &str, mut response: P::Response) -> Result<()> {
        self.next_nonce += 1;
        let nonce = self.next_nonce.to_string();
        let version = self.view.version(type_url).to_owned();
        P::set_nonce(&mut response, nonce.clone());
        debug!(%type_url, %version, %nonce, "sending");
        self.acks
            .entry(type_url.to_owned())
            .or_default()
            .sent(nonce, &version);
        self.entry.sent(type_url, &version);
        if let Some(waiting) = &mut self.waiting {
            waiting.types.insert(type_url.to_owned());
        }
        self.outbound
            .send(Ok(response))
            .await
            .map_err(|_| Error::StreamClosed {
                stream: self.entry.id(),
            })
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
