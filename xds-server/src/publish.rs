//! Translation → ADS snapshots. Each resource is built and encoded once per version: unchanged
//! resources reuse the encoding from the previous publish, and a resource shared by several
//! Gateways' snapshots is encoded once.

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use extproc::keys::{CONFIG_RESOURCE_NAME, CONFIG_TYPE_URL};
use infergate_ads::{Snapshot, SnapshotSet, XdsResource, type_url};

use crate::translate::build::{cluster, endpoint, listener, native_upstream, pack, route};
use crate::translate::ir::ClusterProtocolIr;
use crate::translate::{Translation, XdsIr};

type Key = (&'static str, String);

/// Remembers encodings between publishes.
#[derive(Default)]
pub struct Publisher {
    cache: HashMap<Key, Arc<XdsResource>>,
}

impl Publisher {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds the snapshot set for a translation.
    pub fn publish(&mut self, translation: &Translation) -> SnapshotSet {
        let mut fresh: HashMap<Key, Arc<XdsResource>> = HashMap::with_capacity(self.cache.len());
        let extproc = translation
            .extproc
            .as_ref()
            .map(|c| (CONFIG_TYPE_URL, extproc_resource(c)));
        let all = Arc::new(self.snapshot(&translation.all, &mut fresh, extproc));
        let by_gateway: BTreeMap<String, Arc<Snapshot>> = translation
            .by_gateway
            .iter()
            .map(|(gateway, ir)| {
                (
                    gateway.clone(),
                    Arc::new(self.snapshot(ir, &mut fresh, None)),
                )
            })
            .collect();
        self.cache = fresh;
        SnapshotSet { all, by_gateway }
    }

    /// `extra`: a resource outside Envoy's types (the extproc's config).
    fn snapshot(
        &self,
        ir: &XdsIr,
        fresh: &mut HashMap<Key, Arc<XdsResource>>,
        extra: Option<(&'static str, Arc<XdsResource>)>,
    ) -> Snapshot {
        let mut resources: Vec<(&'static str, Arc<XdsResource>)> = Vec::new();
        let mut add =
            |type_url: &'static str,
             name: &str,
             version: String,
             build: &dyn Fn() -> envoy_types::pb::google::protobuf::Any| {
                let key = (type_url, name.to_string());
                let resource = match fresh.get(&key).or_else(|| self.cache.get(&key)) {
                    Some(cached) if cached.version == version => cached.clone(),
                    _ => Arc::new(XdsResource {
                        name: name.to_string(),
                        version,
                        body: build(),
                    }),
                };
                fresh.insert(key, resource.clone());
                resources.push((type_url, resource));
            };
        for l in &ir.listeners {
            add(type_url::LISTENER, &l.name, version(l), &|| {
                pack(&listener::listener(l))
            });
        }
        for r in &ir.route_configs {
            add(type_url::ROUTE, &r.name, version(r), &|| {
                pack(&route::route_configuration(r))
            });
        }
        for c in &ir.clusters {
            add(type_url::CLUSTER, &c.name, version(c), &|| {
                pack(&cluster::cluster(c))
            });
        }
        // Keys injected by Envoy come as SDS secrets (redacted in Envoy's config dump).
        for secret in ir.clusters.iter().filter_map(|c| match &c.protocol {
            ClusterProtocolIr::NativeUpstream(n) => n.credential.as_ref(),
            _ => None,
        }) {
            add(type_url::SECRET, &secret.name, version(secret), &|| {
                pack(&native_upstream::secret(secret))
            });
        }
        for e in &ir.endpoints {
            add(type_url::ENDPOINT, &e.cluster, version(e), &|| {
                pack(&endpoint::cluster_load_assignment(e))
            });
        }
        resources.extend(extra);
        Snapshot::from_shared(resources)
    }
}

/// The extproc's config as one ADS resource: JSON in `Any.value`.
fn extproc_resource(config: &extproc::config::Config) -> Arc<XdsResource> {
    let value = serde_json::to_vec(config).unwrap_or_default();
    Arc::new(XdsResource {
        name: CONFIG_RESOURCE_NAME.to_string(),
        version: config.version.clone(),
        body: envoy_types::pb::google::protobuf::Any {
            type_url: CONFIG_TYPE_URL.to_string(),
            value,
        },
    })
}

/// Content hash of a resource in our model (never of encoded bytes: prost maps are unordered).
pub fn version<T: Hash>(ir: &T) -> String {
    let mut hasher = DefaultHasher::new();
    ir.hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}
