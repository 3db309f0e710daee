//! Make-before-break: how one stream moves from the configuration it has to a new snapshot.
//!
//! A change is applied in up to three steps, each a complete view of what the proxy should hold
//! at that point; the stream pushes the types of a step that differ from what it sent, waits until
//! the proxy has answered every response of the step (or a timeout), then moves on:
//!
//! 1. **make**: secrets, clusters and endpoints become the union of old and new (new wins), so
//!    everything the new routes point at exists while the old routes still work. Clusters whose
//!    definition changed get their endpoints resent even if those did not change: Envoy re-warms
//!    an updated cluster and waits for a fresh `ClusterLoadAssignment`.
//! 2. **switch**: listeners and routes (and any other type) become the new ones.
//! 3. **break**: clusters, endpoints and secrets become exactly the new snapshot, dropping what no
//!    route uses any more.
//!
//! A step that changes nothing is skipped by the stream. The last step's view is the new snapshot
//! itself, so a finished plan leaves the proxy on the snapshot's versions. Endpoints are matched to
//! clusters by name (`ClusterLoadAssignment.cluster_name == Cluster.name`), the convention of
//! EDS clusters without `service_name`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use crate::snapshot::{Resources, Snapshot};
use crate::type_url::{CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET};

/// One step of a plan.
#[derive(Debug)]
pub(crate) struct Step {
    /// What the proxy should hold once this step is done.
    pub(crate) view: Arc<Snapshot>,
    /// The types to push, in order.
    pub(crate) push: Vec<String>,
    /// Per type, resources to resend even if the proxy has their version.
    pub(crate) force: BTreeMap<String, BTreeSet<String>>,
}

/// The remaining steps of a change.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    steps: VecDeque<Step>,
}

/// Types whose old resources are kept until routes have moved off them.
const MAKE: [&str; 3] = [SECRET, CLUSTER, ENDPOINT];
/// Clusters go before their endpoints and secrets, since they refer to them.
const BREAK: [&str; 3] = [CLUSTER, ENDPOINT, SECRET];

impl Plan {
    /// Plans the move from `from` (what the stream last pushed) to `to`.
    pub(crate) fn new(from: &Snapshot, to: &Arc<Snapshot>) -> Self {
        let mut make = BTreeMap::new();
        for type_url in MAKE {
            make.insert(
                type_url.to_owned(),
                union(from.resources(type_url), to.resources(type_url)),
            );
        }
        let switched = switched_types(from, to);
        let mut after_make = make.clone();
        for type_url in &switched {
            after_make.insert(type_url.clone(), from.resources(type_url).clone());
        }
        let mut after_switch = make;
        for type_url in &switched {
            after_switch.insert(type_url.clone(), to.resources(type_url).clone());
        }

        let make = Step {
            view: Arc::new(Snapshot::from_types(after_make)),
            push: MAKE.iter().map(|t| (*t).to_owned()).collect(),
            force: BTreeMap::from([(ENDPOINT.to_owned(), changed_clusters(from, to))]),
        };
        let switch = Step {
            view: Arc::new(Snapshot::from_types(after_switch)),
            push: switched,
            force: BTreeMap::new(),
        };
        let brk = Step {
            view: to.clone(),
            push: BREAK.iter().map(|t| (*t).to_owned()).collect(),
            force: BTreeMap::new(),
        };
        Self {
            steps: VecDeque::from([make, switch, brk]),
        }
    }

    pub(crate) fn next_step(&mut self) -> Option<Step> {
        self.steps.pop_front()
    }
}

/// Listeners, then routes, then any other type either snapshot has, in type URL order.
fn switched_types(from: &Snapshot, to: &Snapshot) -> Vec<String> {
    let others: BTreeSet<&str> = from
        .type_urls()
        .chain(to.type_urls())
        .filter(|t| !MAKE.contains(t) && *t != LISTENER && *t != ROUTE)
        .collect();
    [LISTENER, ROUTE]
        .into_iter()
        .chain(others)
        .map(str::to_owned)
        .collect()
}

fn union(old: &Resources, new: &Resources) -> Resources {
    let mut all = old.clone();
    all.extend(new.iter().map(|(name, r)| (name.clone(), r.clone())));
    all
}

/// Clusters present in both snapshots with different versions.
fn changed_clusters(from: &Snapshot, to: &Snapshot) -> BTreeSet<String> {
    let old = from.resources(CLUSTER);
    to.resources(CLUSTER)
        .iter()
        .filter(|(name, r)| old.get(*name).is_some_and(|o| o.version != r.version))
        .map(|(name, _)| name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::tests::resource;

    fn names(snapshot: &Snapshot, type_url: &str) -> Vec<String> {
        snapshot.resources(type_url).keys().cloned().collect()
    }

    #[test]
    fn new_clusters_arrive_before_routes_and_old_ones_leave_after() {
        let from = Snapshot::new([
            (CLUSTER, resource("old", "1")),
            (ENDPOINT, resource("old", "1")),
            (LISTENER, resource("l", "1")),
            (ROUTE, resource("r", "1")),
        ]);
        let to = Arc::new(Snapshot::new([
            (CLUSTER, resource("new", "1")),
            (ENDPOINT, resource("new", "1")),
            (LISTENER, resource("l", "1")),
            (ROUTE, resource("r", "2")),
        ]));
        let mut plan = Plan::new(&from, &to);

        let make = plan.next_step().expect("make step");
        assert_eq!(names(&make.view, CLUSTER), ["new", "old"]);
        assert_eq!(names(&make.view, ENDPOINT), ["new", "old"]);
        assert_eq!(make.view.version(ROUTE), from.version(ROUTE));
        assert_eq!(make.push, [SECRET, CLUSTER, ENDPOINT]);

        let switch = plan.next_step().expect("switch step");
        assert_eq!(names(&switch.view, CLUSTER), ["new", "old"]);
        assert_eq!(switch.view.version(ROUTE), to.version(ROUTE));
        assert_eq!(switch.push, [LISTENER, ROUTE]);

        let brk = plan.next_step().expect("break step");
        assert!(Arc::ptr_eq(&brk.view, &to));
        assert_eq!(brk.push, [CLUSTER, ENDPOINT, SECRET]);
        assert!(plan.next_step().is_none());
    }

    #[test]
    fn changed_clusters_force_their_endpoints() {
        let from = Snapshot::new([(CLUSTER, resource("a", "1")), (CLUSTER, resource("b", "1"))]);
        let to = Arc::new(Snapshot::new([
            (CLUSTER, resource("a", "2")),
            (CLUSTER, resource("b", "1")),
            (CLUSTER, resource("c", "1")),
        ]));
        let make = Plan::new(&from, &to).next_step().expect("make step");
        assert_eq!(
            make.force.get(ENDPOINT),
            Some(&BTreeSet::from(["a".to_owned()]))
        );
    }

    #[test]
    fn other_types_switch_with_the_routes() {
        let other = "type.googleapis.com/envoy.config.route.v3.VirtualHost";
        let from = Snapshot::default();
        let to = Arc::new(Snapshot::new([(other, resource("vh", "1"))]));
        let mut plan = Plan::new(&from, &to);
        let _make = plan.next_step();
        let switch = plan.next_step().expect("switch step");
        assert_eq!(switch.push, [LISTENER, ROUTE, other]);
        assert_eq!(names(&switch.view, other), ["vh"]);
    }
}
