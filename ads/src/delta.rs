//! Incremental ADS (`DeltaAggregatedResources`).
//!
//! Per type, the stream remembers what the proxy holds: a version per resource name, or that it
//! has been told the name does not exist. A response carries only resources whose version differs
//! (or that must be resent) and the names to remove; `system_version_info` is the type's version in
//! the view, which is also what the registry reports as sent and ACKed.
//!
//! - Subscriptions: `resource_names_subscribe`/`_unsubscribe`, `*` for wildcard, and for listeners
//!   and clusters a first request with neither is a wildcard (legacy). Subscription changes are
//!   honoured even with a stale nonce, as the protocol requires.
//! - The first request of a type may carry `initial_resource_versions` (reconnect): resources the
//!   proxy already has at that version are not resent, and ones that are gone are removed.
//!   The first request of a type is always answered, if need be with an empty response, so a
//!   proxy's initial fetch completes even when there is nothing to send.
//! - Subscribing to a name is answered with the resource even if we think the proxy has it (the
//!   protocol allows the proxy to have forgotten it), or with its name in `removed_resources` if it
//!   does not exist.
//! - What was sent counts as held: after a NACK the rejected resources are not resent until they
//!   change.

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource,
};

use crate::ack::{AckState, Reply};
use crate::registry::StreamKind;
use crate::snapshot::Snapshot;
use crate::stream::{Meta, Protocol, Push};
use crate::type_url;

/// What the proxy holds under one name.
#[derive(Clone, Debug, PartialEq)]
enum Held {
    Version(String),
    /// We told it the resource does not exist.
    Absent,
}

#[derive(Debug, Default)]
struct TypeState {
    wildcard: bool,
    names: BTreeSet<String>,
    held: BTreeMap<String, Held>,
}

impl TypeState {
    fn covers(&self, name: &str) -> bool {
        self.wildcard || self.names.contains(name)
    }

    /// What to send to bring the proxy to `view`: changed resources, plus `force`, and removals
    /// (including `remove`, names that must be removed whatever we believe the proxy holds).
    fn diff(
        &mut self,
        type_url: &str,
        view: &Snapshot,
        force: &BTreeSet<String>,
        remove: BTreeSet<String>,
    ) -> (Vec<Resource>, Vec<String>) {
        let existing = view.resources(type_url);
        let mut resources = Vec::new();
        for (name, resource) in existing {
            if !self.covers(name) {
                continue;
            }
            let held = self.held.get(name) == Some(&Held::Version(resource.version.clone()));
            if !held || force.contains(name) {
                resources.push(Resource {
                    name: name.clone(),
                    version: resource.version.clone(),
                    resource: Some(resource.body.clone()),
                    ..Resource::default()
                });
                self.held
                    .insert(name.clone(), Held::Version(resource.version.clone()));
            }
        }

        let mut removed = remove;
        for name in &self.names {
            if !existing.contains_key(name)
                && (self.held.get(name) != Some(&Held::Absent) || force.contains(name))
            {
                removed.insert(name.clone());
                self.held.insert(name.clone(), Held::Absent);
            }
        }
        // Forget what is no longer subscribed; remove what the wildcard covered but is gone.
        let (names, wildcard) = (&self.names, self.wildcard);
        self.held.retain(|name, held| {
            if names.contains(name) || (wildcard && existing.contains_key(name)) {
                return true;
            }
            if wildcard && matches!(held, Held::Version(_)) {
                removed.insert(name.clone());
            }
            false
        });
        (resources, removed.into_iter().collect())
    }
}

#[derive(Debug, Default)]
pub(crate) struct Delta {
    types: BTreeMap<String, TypeState>,
}

fn response(
    type_url: &str,
    view: &Snapshot,
    (resources, removed_resources): (Vec<Resource>, Vec<String>),
) -> DeltaDiscoveryResponse {
    DeltaDiscoveryResponse {
        system_version_info: view.version(type_url).to_owned(),
        resources,
        type_url: type_url.to_owned(),
        removed_resources,
        ..DeltaDiscoveryResponse::default()
    }
}

impl Protocol for Delta {
    type Request = DeltaDiscoveryRequest;
    type Response = DeltaDiscoveryResponse;
    const KIND: StreamKind = StreamKind::Delta;

    fn meta(request: &DeltaDiscoveryRequest) -> Meta<'_> {
        Meta {
            node: request.node.as_ref(),
            type_url: &request.type_url,
            nonce: &request.response_nonce,
            error_detail: request.error_detail.as_ref().map(|s| s.message.as_str()),
        }
    }

    fn on_request(
        &mut self,
        request: DeltaDiscoveryRequest,
        _reply: &Reply,
        view: &Snapshot,
        acks: &AckState,
    ) -> Option<DeltaDiscoveryResponse> {
        let type_url = request.type_url;
        let first = !self.types.contains_key(&type_url);
        let state = self.types.entry(type_url.clone()).or_default();
        let initial = if first {
            request.initial_resource_versions
        } else {
            Default::default()
        };
        if first {
            state.held = initial
                .iter()
                .map(|(name, version)| (name.clone(), Held::Version(version.clone())))
                .collect();
            state.wildcard = request.resource_names_subscribe.is_empty()
                && request.resource_names_unsubscribe.is_empty()
                && type_url::legacy_wildcard(&type_url);
        }

        let mut force = BTreeSet::new();
        let mut remove = BTreeSet::new();
        for name in request.resource_names_subscribe {
            if name == "*" {
                state.wildcard = true;
            } else {
                if !initial.contains_key(&name) {
                    force.insert(name.clone());
                }
                state.names.insert(name);
            }
        }
        for name in request.resource_names_unsubscribe {
            if name == "*" {
                state.wildcard = false;
                continue;
            }
            state.names.remove(&name);
            if state.wildcard {
                // The proxy cannot tell whether the wildcard still covers it: say so either way.
                if view.resources(&type_url).contains_key(&name) {
                    force.insert(name);
                } else {
                    state.held.remove(&name);
                    remove.insert(name);
                }
            } else {
                state.held.remove(&name);
            }
        }

        let diff = state.diff(&type_url, view, &force, remove);
        let nothing = diff.0.is_empty() && diff.1.is_empty();
        (!nothing || acks.never_sent()).then(|| response(&type_url, view, diff))
    }

    fn on_push(
        &mut self,
        type_url: &str,
        view: &Snapshot,
        force: &BTreeSet<String>,
        _acks: &AckState,
    ) -> Push<DeltaDiscoveryResponse> {
        let Some(state) = self.types.get_mut(type_url) else {
            return Push::Skip;
        };
        let diff = state.diff(type_url, view, force, BTreeSet::new());
        if diff.0.is_empty() && diff.1.is_empty() {
            Push::UpToDate
        } else {
            Push::Send(response(type_url, view, diff))
        }
    }

    fn set_nonce(response: &mut DeltaDiscoveryResponse, nonce: String) {
        response.nonce = nonce;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::tests::resource;
    use type_url::{CLUSTER, ENDPOINT};

    fn names(resources: &[Resource]) -> Vec<&str> {
        resources.iter().map(|r| r.name.as_str()).collect()
    }

    #[test]
    fn wildcard_sends_changes_and_removals_only() {
        let mut state = TypeState {
            wildcard: true,
            ..TypeState::default()
        };
        let v1 = Snapshot::new([(CLUSTER, resource("a", "1")), (CLUSTER, resource("b", "1"))]);
        let (sent, removed) = state.diff(CLUSTER, &v1, &BTreeSet::new(), BTreeSet::new());
        assert_eq!(names(&sent), ["a", "b"]);
        assert!(removed.is_empty());

        let v2 = Snapshot::new([(CLUSTER, resource("a", "2"))]);
        let (sent, removed) = state.diff(CLUSTER, &v2, &BTreeSet::new(), BTreeSet::new());
        assert_eq!(names(&sent), ["a"]);
        assert_eq!(removed, ["b"]);

        let (sent, removed) = state.diff(CLUSTER, &v2, &BTreeSet::new(), BTreeSet::new());
        assert!(sent.is_empty() && removed.is_empty());
    }

    #[test]
    fn a_named_resource_that_does_not_exist_is_removed_once() {
        let mut state = TypeState {
            names: BTreeSet::from(["x".to_owned()]),
            ..TypeState::default()
        };
        let empty = Snapshot::default();
        let (_, removed) = state.diff(ENDPOINT, &empty, &BTreeSet::new(), BTreeSet::new());
        assert_eq!(removed, ["x"]);
        let (_, removed) = state.diff(ENDPOINT, &empty, &BTreeSet::new(), BTreeSet::new());
        assert!(removed.is_empty());
        let later = Snapshot::new([(ENDPOINT, resource("x", "1"))]);
        let (sent, _) = state.diff(ENDPOINT, &later, &BTreeSet::new(), BTreeSet::new());
        assert_eq!(names(&sent), ["x"]);
    }
}
