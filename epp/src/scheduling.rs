//! The scheduler: candidates → filters → weighted scorers → picker → ordered endpoints.
//!
//! Built from an [`EndpointPickerConfig`] ([`Scheduler::from_config`]). One profile runs per
//! request: the one named `default`, or the first (profile handlers for several profiles, such
//! as prefill/decode disaggregation, are not implemented; the others are checked and unused).
//! Scheduling is synchronous and allocation-light: no I/O, only a snapshot of the datastore.

pub mod config;
pub mod filters;
pub mod picker;
pub mod prefix;
pub mod saturation;
pub mod scorers;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use self::config::{EndpointPickerConfig, PluginSpec};
use self::filters::{Filter, LowQueueParameters};
use self::picker::{Picker, PickerKind, PickerParameters};
use self::saturation::{DetectorParameters, UtilizationDetector};
use self::scorers::{PrefixCacheScorer, PrefixParameters, Scorer};
use crate::datastore::Candidate;
use crate::{Error, Result};

pub const MAX_SCORE_PICKER: &str = "max-score-picker";
pub const RANDOM_PICKER: &str = "random-picker";
/// Plugin types of the Inference Extension that need nothing here (the single profile handler,
/// the metrics data layer, the OpenAI parser): accepted and ignored.
pub const NO_OP_PLUGINS: &[&str] = &[
    "single-profile-handler",
    "metrics-data-source",
    "core-metrics-extractor",
    "openai-parser",
];

/// What the scheduler knows of a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InferenceRequest {
    /// The body's `model` (empty for a request without a body).
    pub model: String,
    /// The prompt text, for prefix affinity (see [`crate::request`] for how it is built).
    pub prompt: Option<String>,
    /// vLLM's `cache_salt`: prompts with different salts share no cache.
    pub cache_salt: Option<String>,
}

/// Per-request scratch space shared by the plugins of one scheduling cycle.
#[derive(Debug)]
pub struct Cycle<'a> {
    pub request: &'a InferenceRequest,
    /// The prompt's prefix block hashes, once the prefix scorer computed them.
    pub prefix_blocks: Option<Vec<u64>>,
}

/// The outcome of one scheduling cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Primary first, then fallbacks.
    pub endpoints: Vec<SocketAddr>,
    /// Weighted total score of every candidate that passed the filters.
    pub scores: Vec<(SocketAddr, f64)>,
    /// The prompt's prefix blocks (to credit a fallback that ends up serving).
    pub prefix_blocks: Vec<u64>,
}

impl Decision {
    /// `ip:port,ip:port…`, the header and metadata value.
    pub fn header_value(&self) -> String {
        let parts: Vec<String> = self.endpoints.iter().map(SocketAddr::to_string).collect();
        parts.join(",")
    }
}

#[derive(Debug, Clone)]
enum Plugin {
    Scorer(Arc<Scorer>),
    Filter(Arc<Filter>),
    Picker(Arc<Picker>),
    /// `utilization-detector`: a filter in a profile, and the saturation detector.
    Detector(Arc<Filter>, UtilizationDetector),
    NoOp,
}

#[derive(Debug)]
struct Profile {
    name: String,
    filters: Vec<Arc<Filter>>,
    scorers: Vec<(Arc<Scorer>, f64)>,
    picker: Arc<Picker>,
}

/// A built scheduler; share it behind an `Arc`.
#[derive(Debug)]
pub struct Scheduler {
    profile: Profile,
    detector: UtilizationDetector,
    prefix: Vec<Arc<Scorer>>,
}

impl Scheduler {
    /// Instantiates the config's plugins and its profile. `seed` seeds the pickers' tie-breaking.
    pub fn from_config(config: &EndpointPickerConfig, seed: u64) -> Result<Self> {
        let mut plugins: BTreeMap<String, Plugin> = BTreeMap::new();
        for (i, spec) in config.plugins.iter().enumerate() {
            let name = spec.name().to_owned();
            let plugin = build_plugin(spec, seed.wrapping_add(i as u64))?;
            if plugins.insert(name.clone(), plugin).is_some() {
                return Err(Error::InvalidConfig {
                    message: format!("plugin name {name:?} is used twice"),
                });
            }
        }
        let detector = match config
            .saturation_detector
            .as_ref()
            .map(|d| d.plugin_ref.as_str())
            .filter(|r| !r.is_empty())
        {
            None => match plugins.get(saturation::UTILIZATION_DETECTOR) {
                Some(Plugin::Detector(_, d)) => d.clone(),
                _ => UtilizationDetector::default(),
            },
            Some(reference) => match plugins.get(reference) {
                Some(Plugin::Detector(_, d)) => d.clone(),
                Some(_) => {
                    return Err(Error::InvalidConfig {
                        message: format!(
                            "saturationDetector {reference:?} is not a {}",
                            saturation::UTILIZATION_DETECTOR
                        ),
                    });
                }
                None => {
                    return Err(Error::InvalidConfig {
                        message: format!("saturationDetector {reference:?} is not a plugin"),
                    });
                }
            },
        };
        let mut profiles = Vec::new();
        for spec in &config.scheduling_profiles {
            profiles.push(build_profile(spec, &plugins, seed)?);
        }
        if profiles.is_empty() {
            // Upstream: one profile `default` with every filter, scorer and picker.
            let spec = config::SchedulingProfile {
                name: "default".to_owned(),
                plugins: config
                    .plugins
                    .iter()
                    .map(|p| config::SchedulingPlugin {
                        plugin_ref: p.name().to_owned(),
                        weight: None,
                    })
                    .collect(),
            };
            profiles.push(build_profile(&spec, &plugins, seed)?);
        }
        let index = profiles
            .iter()
            .position(|p| p.name == "default")
            .unwrap_or(0);
        let profile = profiles.swap_remove(index);
        if !profiles.is_empty() {
            tracing::warn!(
                used = %profile.name,
                "several scheduling profiles and no profile handler: only one runs"
            );
        }
        let prefix = profile
            .scorers
            .iter()
            .filter(|(s, _)| matches!(**s, Scorer::PrefixCache(_)))
            .map(|(s, _)| s.clone())
            .collect();
        Ok(Scheduler {
            profile,
            detector,
            prefix,
        })
    }

    /// The built-in configuration.
    pub fn with_defaults(seed: u64) -> Result<Self> {
        Scheduler::from_config(&EndpointPickerConfig::default(), seed)
    }

    pub fn profile_name(&self) -> &str {
        &self.profile.name
    }

    /// Each scorer's type-independent description and weight, in profile order.
    pub fn weights(&self) -> Vec<(String, f64)> {
        self.profile
            .scorers
            .iter()
            .map(|(s, w)| (scorer_type(s).to_owned(), *w))
            .collect()
    }

    pub fn picker(&self) -> &Picker {
        &self.profile.picker
    }

    pub fn detector(&self) -> &UtilizationDetector {
        &self.detector
    }

    /// Picks among `candidates`; `None` when there are none.
    pub fn schedule(
        &self,
        request: &InferenceRequest,
        candidates: &[Candidate],
    ) -> Option<Decision> {
        let mut remaining: Vec<&Candidate> = filters::prefer_fresh(candidates.iter().collect());
        for filter in &self.profile.filters {
            remaining = filter.filter(remaining);
        }
        if remaining.is_empty() {
            return None;
        }
        let mut cycle = Cycle {
            request,
            prefix_blocks: None,
        };
        let mut totals = vec![0.0; remaining.len()];
        for (scorer, weight) in &self.profile.scorers {
            let scores = scorer.score(&mut cycle, &remaining);
            for (total, score) in totals.iter_mut().zip(scores) {
                *total += weight * score;
            }
        }
        let order = self.profile.picker.pick(&totals);
        let primary = *remaining.get(*order.first()?)?;
        for (scorer, _) in &self.profile.scorers {
            scorer.picked(&cycle, primary);
        }
        Some(Decision {
            endpoints: order.iter().map(|&i| remaining[i].addr).collect(),
            scores: remaining.iter().map(|c| c.addr).zip(totals).collect(),
            prefix_blocks: cycle.prefix_blocks.unwrap_or_default(),
        })
    }

    /// The data plane reports `served` served a request whose pick was `decision`: when a
    /// fallback served it, that endpoint now holds the prompt's prefix too.
    pub fn record_served(&self, decision: &Decision, served: SocketAddr) {
        if decision.endpoints.first() == Some(&served) {
            return;
        }
        for scorer in &self.prefix {
            if let Scorer::PrefixCache(p) = &**scorer {
                p.record_blocks(served, &decision.prefix_blocks);
            }
        }
    }

    /// Forgets per-endpoint state of endpoints that left the pool.
    pub fn retain_endpoints(&self, endpoints: &HashMap<SocketAddr, Arc<str>>) {
        for scorer in &self.prefix {
            if let Scorer::PrefixCache(p) = &**scorer {
                p.retain(|a| endpoints.contains_key(a));
            }
        }
    }

    /// The prefix scorer of the profile, if any (tests, status).
    pub fn prefix_scorer(&self) -> Option<&PrefixCacheScorer> {
        self.prefix.iter().find_map(|s| match &**s {
            Scorer::PrefixCache(p) => Some(p),
            _ => None,
        })
    }
}

fn scorer_type(s: &Scorer) -> &'static str {
    match s {
        Scorer::Queue => scorers::QUEUE,
        Scorer::KvCacheUtilization => scorers::KV_CACHE_UTILIZATION,
        Scorer::PrefixCache(_) => scorers::PREFIX_CACHE,
        Scorer::LoraAffinity => scorers::LORA_AFFINITY,
        Scorer::RunningRequests => scorers::RUNNING_REQUESTS,
    }
}

fn build_plugin(spec: &PluginSpec, seed: u64) -> Result<Plugin> {
    let plugin_error = |message: String| Error::Plugin {
        name: spec.name().to_owned(),
        message,
    };
    Ok(match spec.plugin_type.as_str() {
        scorers::QUEUE => Plugin::Scorer(Arc::new(Scorer::Queue)),
        // Upstream's earlier name for the same scorer.
        scorers::KV_CACHE_UTILIZATION | "kv-cache-scorer" => {
            Plugin::Scorer(Arc::new(Scorer::KvCacheUtilization))
        }
        scorers::PREFIX_CACHE => {
            let params: PrefixParameters = config::parameters(spec)?;
            Plugin::Scorer(Arc::new(Scorer::PrefixCache(PrefixCacheScorer::new(
                params,
            ))))
        }
        scorers::LORA_AFFINITY => Plugin::Scorer(Arc::new(Scorer::LoraAffinity)),
        scorers::RUNNING_REQUESTS => Plugin::Scorer(Arc::new(Scorer::RunningRequests)),
        MAX_SCORE_PICKER | RANDOM_PICKER => {
            let params: PickerParameters = config::parameters(spec)?;
            let kind = if spec.plugin_type == MAX_SCORE_PICKER {
                PickerKind::MaxScore
            } else {
                PickerKind::Random
            };
            Plugin::Picker(Arc::new(Picker::new(kind, params.max_endpoints(), seed)))
        }
        saturation::UTILIZATION_DETECTOR => {
            let params: DetectorParameters = config::parameters(spec)?;
            let detector = UtilizationDetector::from_parameters(&params).map_err(plugin_error)?;
            Plugin::Detector(Arc::new(Filter::Utilization(detector.clone())), detector)
        }
        filters::LOW_QUEUE => {
            let params: LowQueueParameters = config::parameters(spec)?;
            Plugin::Filter(Arc::new(Filter::LowQueue(params)))
        }
        t if NO_OP_PLUGINS.contains(&t) => Plugin::NoOp,
        other => return Err(plugin_error(format!("unknown plugin type {other:?}"))),
    })
}

fn build_profile(
    spec: &config::SchedulingProfile,
    plugins: &BTreeMap<String, Plugin>,
    seed: u64,
) -> Result<Profile> {
    let mut filters = Vec::new();
    let mut scorers = Vec::new();
    let mut picker = None;
    for entry in &spec.plugins {
        let plugin = plugins
            .get(&entry.plugin_ref)
            .ok_or_else(|| Error::InvalidConfig {
                message: format!(
                    "profile {:?}: pluginRef {:?} names no plugin",
                    spec.name, entry.plugin_ref
                ),
            })?;
        match plugin {
            Plugin::Scorer(s) => {
                let weight = entry.weight.unwrap_or(1.0);
                if !weight.is_finite() || weight < 0.0 {
                    return Err(Error::InvalidConfig {
                        message: format!(
                            "profile {:?}: weight of {:?} must be a number >= 0",
                            spec.name, entry.plugin_ref
                        ),
                    });
                }
                scorers.push((s.clone(), weight));
            }
            Plugin::Filter(f) | Plugin::Detector(f, _) => filters.push(f.clone()),
            Plugin::Picker(p) => {
                if picker.replace(p.clone()).is_some() {
                    return Err(Error::InvalidConfig {
                        message: format!("profile {:?} has two pickers", spec.name),
                    });
                }
            }
            Plugin::NoOp => {}
        }
    }
    Ok(Profile {
        name: spec.name.clone(),
        filters,
        scorers,
        picker: picker
            .unwrap_or_else(|| Arc::new(Picker::max_score(picker::DEFAULT_MAX_ENDPOINTS, seed))),
    })
}
