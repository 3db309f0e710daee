//! State-of-the-world ADS (`StreamAggregatedResources`).
//!
//! - A response holds every subscribed resource of its type that exists, with `version_info` set
//!   to the type's version in the view. For listeners and clusters (wildcard) that is all of them;
//!   for routes and endpoints only the named ones, and one that appears later is sent then (the
//!   type's version changes with it).
//! - A type is pushed when its version differs from the one last sent on the stream, unless the
//!   proxy rejected exactly that version: a NACKed version is not sent again until the type
//!   changes. Resources named in a step's `force` set are resent even at the same version.
//! - Requests with a stale nonce are ignored. A request that adds names to the subscription is
//!   answered at once (even after a NACK: the proxy cannot get the new names otherwise).
//! - **The first request of a type on a stream is always answered**, even when its `version_info`
//!   equals the current version (a proxy reconnecting after our restart). Envoy treats an
//!   identical update as a no-op, while staying silent would leave a proxy that lost its state,
//!   or one waiting on a warming cluster or listener, waiting for `initial_fetch_timeout`.

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};

use crate::ack::{AckState, Reply};
use crate::registry::StreamKind;
use crate::snapshot::Snapshot;
use crate::stream::{Meta, Protocol, Push};
use crate::type_url;

/// The subscription of one type.
#[derive(Debug, Default)]
struct Subscription {
    wildcard: bool,
    names: BTreeSet<String>,
    /// Whether any request named resources; after that an empty list means "nothing", not the
    /// legacy wildcard.
    explicit: bool,
}

impl Subscription {
    /// Applies the `resource_names` of a request; returns whether it added anything.
    fn update(&mut self, type_url: &str, resource_names: Vec<String>) -> bool {
        let (wildcard, names) = if resource_names.is_empty() {
            (
                type_url::legacy_wildcard(type_url) && !self.explicit,
                BTreeSet::new(),
            )
        } else {
            self.explicit = true;
            let mut names: BTreeSet<String> = resource_names.into_iter().collect();
            (names.remove("*"), names)
        };
        let added = (wildcard && !self.wildcard) || !names.is_subset(&self.names);
        self.wildcard = wildcard;
        self.names = names;
        added
    }

    fn covers(&self, name: &str) -> bool {
        self.wildcard || self.names.contains(name)
    }

    fn is_empty(&self) -> bool {
        !self.wildcard && self.names.is_empty()
    }
}

#[derive(Debug, Default)]
pub(crate) struct Sotw {
    subscriptions: BTreeMap<String, Subscription>,
}

impl Sotw {
    fn response(&self, type_url: &str, view: &Snapshot) -> DiscoveryResponse {
        let subscription = self.subscriptions.get(type_url);
        DiscoveryResponse {
            version_info: view.version(type_url).to_owned(),
            resources: view
                .resources(type_url)
                .values()
                .filter(|r| subscription.is_some_and(|s| s.covers(&r.name)))
                .map(|r| r.body.clone())
                .collect(),
            type_url: type_url.to_owned(),
            ..DiscoveryResponse::default()
        }
    }
}

impl Protocol for Sotw {
    type Request = DiscoveryRequest;
    type Response = DiscoveryResponse;
    const KIND: StreamKind = StreamKind::Sotw;

    fn meta(request: &DiscoveryRequest) -> Meta<'_> {
        Meta {
            node: request.node.as_ref(),
            type_url: &request.type_url,
            nonce: &request.response_nonce,
            error_detail: request.error_detail.as_ref().map(|s| s.message.as_str()),
        }
    }

    fn on_request(
        &mut self,
        request: DiscoveryRequest,
        reply: &Reply,
        view: &Snapshot,
        acks: &AckState,
    ) -> Option<DiscoveryResponse> {
        if *reply == Reply::Stale {
            return None;
        }
        let type_url = request.type_url;
        let subscription = self.subscriptions.entry(type_url.clone()).or_default();
        let added = subscription.update(&type_url, request.resource_names);
        let version = view.version(&type_url);
        let respond = if subscription.is_empty() {
            false
        } else if acks.never_sent() || added {
            true
        } else if matches!(reply, Reply::Nack { .. }) {
            false
        } else {
            // Catch up if a push was missed; never with a version the proxy rejected.
            acks.sent_version() != Some(version) && !acks.is_nacked(version)
        };
        respond.then(|| self.response(&type_url, view))
    }

    fn on_push(
        &mut self,
        type_url: &str,
        view: &Snapshot,
        force: &BTreeSet<String>,
        acks: &AckState,
    ) -> Push<DiscoveryResponse> {
        let Some(subscription) = self.subscriptions.get(type_url) else {
            return Push::Skip;
        };
        if subscription.is_empty() {
            return Push::Skip;
        }
        let resources = view.resources(type_url);
        let forced = force
            .iter()
            .any(|name| subscription.covers(name) && resources.contains_key(name));
        let version = view.version(type_url);
        if !forced && (acks.sent_version() == Some(version) || acks.is_nacked(version)) {
            return Push::Skip;
        }
        Push::Send(self.response(type_url, view))
    }

    fn set_nonce(response: &mut DiscoveryResponse, nonce: String) {
        response.nonce = nonce;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_names_are_a_wildcard_only_until_names_are_given() {
        let mut s = Subscription::default();
        assert!(s.update(type_url::CLUSTER, vec![]));
        assert!(s.wildcard);
        assert!(s.update(type_url::CLUSTER, vec!["*".into(), "a".into()]));
        assert!(s.wildcard && s.covers("a"));
        assert!(!s.update(type_url::CLUSTER, vec!["a".into()]));
        assert!(!s.wildcard && s.covers("a"));
        assert!(!s.update(type_url::CLUSTER, vec![]));
        assert!(s.is_empty());
    }

    #[test]
    fn empty_names_subscribe_to_nothing_for_routes_and_endpoints() {
        let mut s = Subscription::default();
        assert!(!s.update(type_url::ENDPOINT, vec![]));
        assert!(s.is_empty());
        assert!(s.update(type_url::ENDPOINT, vec!["a".into()]));
        assert!(s.update(type_url::ENDPOINT, vec!["a".into(), "b".into()]));
        assert!(!s.update(type_url::ENDPOINT, vec!["b".into()]));
    }
}
