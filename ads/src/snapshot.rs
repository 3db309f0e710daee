//! Immutable sets of encoded xDS resources, as the control plane hands them to the ADS server.
//!
//! A [`Snapshot`] holds, per type URL, the resources by name and one version for the whole type.
//! Resource versions are content hashes computed by the caller from its own model (never from
//! encoded bytes: prost map fields are unordered). The per-type version is derived from the sorted
//! `(name, version)` pairs, so two snapshots with the same resources have the same versions no
//! matter how or when they were built. Each resource is encoded once, by the caller, and shared by
//! every stream through an `Arc`.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::Any;
use xxhash_rust::xxh3::Xxh3;

/// One encoded resource.
#[derive(Clone, Debug, PartialEq)]
pub struct XdsResource {
    /// The resource's name (`Cluster.name`, `ClusterLoadAssignment.cluster_name`, ...).
    pub name: String,
    /// A content hash computed by the caller; changes whenever the resource changes.
    pub version: String,
    /// The encoded resource.
    pub body: Any,
}

/// The resources of one type, by name.
pub type Resources = BTreeMap<String, Arc<XdsResource>>;

static NO_RESOURCES: Resources = BTreeMap::new();
static EMPTY_VERSION: LazyLock<String> = LazyLock::new(|| type_version(&NO_RESOURCES));

#[derive(Clone, Debug, Default, PartialEq)]
struct TypeSnapshot {
    version: String,
    resources: Resources,
}

impl TypeSnapshot {
    fn new(resources: Resources) -> Self {
        Self {
            version: type_version(&resources),
            resources,
        }
    }
}

/// Everything one proxy should have: resources per type URL, each type with its own version.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    types: BTreeMap<String, TypeSnapshot>,
}

impl Snapshot {
    /// Builds a snapshot from `(type URL, resource)` pairs. A later resource replaces an earlier one
    /// of the same type and name.
    pub fn new(resources: impl IntoIterator<Item = (&'static str, XdsResource)>) -> Self {
        Self::from_shared(
            resources
                .into_iter()
                .map(|(type_url, r)| (type_url, Arc::new(r))),
        )
    }

    /// Like [`Snapshot::new`], for resources already shared (e.g. the same encoded cluster in
    /// several Gateways' snapshots): the encoded bytes are not copied.
    pub fn from_shared(
        resources: impl IntoIterator<Item = (&'static str, Arc<XdsResource>)>,
    ) -> Self {
        let mut by_type: BTreeMap<String, Resources> = BTreeMap::new();
        for (type_url, resource) in resources {
            by_type
                .entry(type_url.to_owned())
                .or_default()
                .insert(resource.name.clone(), resource);
        }
        Self::from_types(by_type)
    }

    /// Builds a snapshot from resources already grouped by type URL.
    pub(crate) fn from_types(by_type: BTreeMap<String, Resources>) -> Self {
        Self {
            types: by_type
                .into_iter()
                .map(|(type_url, resources)| (type_url, TypeSnapshot::new(resources)))
                .collect(),
        }
    }

    /// The version of one type: a hash of its sorted `(name, version)` pairs. A type without
    /// resources has the version of the empty set.
    pub fn version(&self, type_url: &str) -> &str {
        self.types
            .get(type_url)
            .map_or(EMPTY_VERSION.as_str(), |t| t.version.as_str())
    }

    /// The resources of one type, by name (empty for a type this snapshot does not have).
    pub fn resources(&self, type_url: &str) -> &Resources {
        self.types
            .get(type_url)
            .map_or(&NO_RESOURCES, |t| &t.resources)
    }

    /// The type URLs that have resources in this snapshot.
    pub fn type_urls(&self) -> impl Iterator<Item = &str> {
        self.types.keys().map(String::as_str)
    }

    /// Whether every type has the same version in both snapshots.
    pub fn same_versions(&self, other: &Snapshot) -> bool {
        self.types
            .keys()
            .chain(other.types.keys())
            .all(|t| self.version(t) == other.version(t))
    }
}

/// Hashes sorted `(name, version)` pairs, each length-prefixed so that no two different sets can
/// produce the same byte stream.
fn type_version(resources: &Resources) -> String {
    let mut hasher = Xxh3::new();
    for (name, resource) in resources {
        for part in [name.as_bytes(), resource.version.as_bytes()] {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
    }
    format!("{:016x}", hasher.digest())
}

/// The snapshots for every proxy: one per Gateway, and one with everything.
#[derive(Clone, Debug, Default)]
pub struct SnapshotSet {
    /// Served to proxies that do not name a single Gateway (`node.cluster: infergate`).
    pub all: Arc<Snapshot>,
    /// Keyed by `"namespace/name"` of the Gateway.
    pub by_gateway: BTreeMap<String, Arc<Snapshot>>,
}

impl SnapshotSet {
    /// The snapshot for a proxy: `node.cluster == "namespace/name"` of a Gateway selects that
    /// Gateway's snapshot; anything else (no node, `infergate`, an unknown Gateway) gets `all`.
    pub fn for_node(&self, node: Option<&Node>) -> Arc<Snapshot> {
        node.and_then(|node| self.by_gateway.get(&node.cluster))
            .unwrap_or(&self.all)
            .clone()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn resource(name: &str, version: &str) -> XdsResource {
        XdsResource {
            name: name.to_owned(),
            version: version.to_owned(),
            body: Any {
                type_url: String::new(),
                value: name.as_bytes().to_vec(),
            },
        }
    }

    #[test]
    fn type_version_depends_only_on_names_and_versions() {
        let a = Snapshot::new([
            (crate::type_url::CLUSTER, resource("a", "1")),
            (crate::type_url::CLUSTER, resource("b", "1")),
        ]);
        let b = Snapshot::new([
            (crate::type_url::CLUSTER, resource("b", "1")),
            (crate::type_url::CLUSTER, resource("a", "1")),
        ]);
        assert_eq!(
            a.version(crate::type_url::CLUSTER),
            b.version(crate::type_url::CLUSTER)
        );
        assert!(a.same_versions(&b));

        let c = Snapshot::new([
            (crate::type_url::CLUSTER, resource("a", "1")),
            (crate::type_url::CLUSTER, resource("b", "2")),
        ]);
        assert_ne!(
            a.version(crate::type_url::CLUSTER),
            c.version(crate::type_url::CLUSTER)
        );
    }

    #[test]
    fn pairs_are_not_ambiguous_when_concatenated() {
        let a = Snapshot::new([(crate::type_url::CLUSTER, resource("ab", "c"))]);
        let b = Snapshot::new([(crate::type_url::CLUSTER, resource("a", "bc"))]);
        assert_ne!(
            a.version(crate::type_url::CLUSTER),
            b.version(crate::type_url::CLUSTER)
        );
    }

    #[test]
    fn a_missing_type_has_the_empty_version_and_no_resources() {
        let empty = Snapshot::default();
        let with_empty_type = Snapshot::from_types(BTreeMap::from([(
            crate::type_url::ROUTE.to_owned(),
            Resources::new(),
        )]));
        assert_eq!(
            empty.version(crate::type_url::ROUTE),
            with_empty_type.version(crate::type_url::ROUTE)
        );
        assert!(empty.resources(crate::type_url::ROUTE).is_empty());
        assert!(empty.same_versions(&with_empty_type));
    }

    #[test]
    fn node_cluster_selects_the_gateway_snapshot() {
        let gateway = Arc::new(Snapshot::new([(
            crate::type_url::LISTENER,
            resource("l", "1"),
        )]));
        let set = SnapshotSet {
            all: Arc::new(Snapshot::default()),
            by_gateway: BTreeMap::from([("default/gw".to_owned(), gateway.clone())]),
        };
        let node = |cluster: &str| Node {
            cluster: cluster.to_owned(),
            ..Node::default()
        };
        assert!(Arc::ptr_eq(
            &set.for_node(Some(&node("default/gw"))),
            &gateway
        ));
        assert!(Arc::ptr_eq(
            &set.for_node(Some(&node("infergate"))),
            &set.all
        ));
        assert!(Arc::ptr_eq(
            &set.for_node(Some(&node("default/other"))),
            &set.all
        ));
        assert!(Arc::ptr_eq(&set.for_node(None), &set.all));
    }
}
