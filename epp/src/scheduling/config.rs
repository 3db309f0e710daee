//! `EndpointPickerConfig` (`inference.networking.x-k8s.io/v1alpha1`), the YAML users write:
//! `plugins: [{type, name?, parameters?}]`, `schedulingProfiles: [{name, plugins: [{pluginRef,
//! weight?}]}]`, `saturationDetector: {pluginRef}`. The Inference Extension's sections this
//! picker does not act on (`featureGates`, `dataLayer`, `flowControl`, `parser`) are accepted and
//! ignored, so its configs load unchanged; unknown top-level keys are an error (a typo should
//! not silently drop a section).
//!
//! Defaults follow upstream: a plugin's name is its type; a scorer without a weight weighs 1; a
//! profile without a picker gets `max-score-picker` (one endpoint); without a
//! `saturationDetector` the `utilization-detector` with default thresholds is used; without any
//! config, [`EndpointPickerConfig::default`] is upstream's built-in one (queue 2, KV cache 2,
//! prefix 3).

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use crate::{Error, Result};

pub const API_VERSION: &str = "inference.networking.x-k8s.io/v1alpha1";
pub const KIND: &str = "EndpointPickerConfig";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointPickerConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub feature_gates: Vec<String>,
    #[serde(default)]
    pub plugins: Vec<PluginSpec>,
    #[serde(default)]
    pub scheduling_profiles: Vec<SchedulingProfile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saturation_detector: Option<PluginRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_layer: Option<serde_yaml::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_control: Option<serde_yaml::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parser: Option<serde_yaml::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub plugin_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<serde_yaml::Value>,
}

impl PluginSpec {
    pub fn new(plugin_type: &str) -> Self {
        PluginSpec {
            name: None,
            plugin_type: plugin_type.to_owned(),
            parameters: None,
        }
    }

    /// The name profiles refer to it by: `name`, or the type when unnamed.
    pub fn name(&self) -> &str {
        self.name
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or(&self.plugin_type)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SchedulingProfile {
    pub name: String,
    #[serde(default)]
    pub plugins: Vec<SchedulingPlugin>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SchedulingPlugin {
    pub plugin_ref: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginRef {
    #[serde(default)]
    pub plugin_ref: String,
}

impl Default for EndpointPickerConfig {
    /// Upstream's built-in configuration.
    fn default() -> Self {
        let weighted = |plugin_ref: &str, weight: f64| SchedulingPlugin {
            plugin_ref: plugin_ref.to_owned(),
            weight: Some(weight),
        };
        EndpointPickerConfig {
            api_version: Some(API_VERSION.to_owned()),
            kind: Some(KIND.to_owned()),
            feature_gates: Vec::new(),
            plugins: vec![
                PluginSpec::new(super::scorers::QUEUE),
                PluginSpec::new(super::scorers::KV_CACHE_UTILIZATION),
                PluginSpec::new(super::scorers::PREFIX_CACHE),
            ],
            scheduling_profiles: vec![SchedulingProfile {
                name: "default".to_owned(),
                plugins: vec![
                    weighted(super::scorers::QUEUE, 2.0),
                    weighted(super::scorers::KV_CACHE_UTILIZATION, 2.0),
                    weighted(super::scorers::PREFIX_CACHE, 3.0),
                ],
            }],
            saturation_detector: None,
            data_layer: None,
            flow_control: None,
            parser: None,
        }
    }
}

impl EndpointPickerConfig {
    /// Parses and checks the document's identity (apiVersion and kind, when present).
    pub fn from_yaml(text: &str) -> Result<Self> {
        let config: EndpointPickerConfig =
            serde_yaml::from_str(text).map_err(|source| Error::ParseConfig { source })?;
        if let Some(v) = config.api_version.as_deref().filter(|v| *v != API_VERSION) {
            return Err(Error::InvalidConfig {
                message: format!("apiVersion {v:?} is not {API_VERSION}"),
            });
        }
        if let Some(k) = config.kind.as_deref().filter(|k| *k != KIND) {
            return Err(Error::InvalidConfig {
                message: format!("kind {k:?} is not {KIND}"),
            });
        }
        Ok(config)
    }

    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadFile {
            path: path.to_owned(),
            source,
        })?;
        EndpointPickerConfig::from_yaml(&text)
    }

    pub fn to_yaml(&self) -> String {
        // Plain data with string keys: serialization cannot fail.
        serde_yaml::to_string(self).unwrap_or_default()
    }
}

/// Decodes a plugin's `parameters` into `T` (absent parameters give `T::default()`).
pub fn parameters<T>(spec: &PluginSpec) -> Result<T>
where
    T: for<'de> Deserialize<'de> + Default,
{
    match &spec.parameters {
        None | Some(serde_yaml::Value::Null) => Ok(T::default()),
        Some(value) => serde_yaml::from_value(value.clone()).map_err(|e| Error::Plugin {
            name: spec.name().to_owned(),
            message: format!("parameters: {e}"),
        }),
    }
}

/// A Go `time.Duration` string (`"200ms"`, `"2s"`, `"1m30s"`, `"1.5h"`), as upstream writes
/// durations in plugin parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoDuration(pub Duration);

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_go_duration(&s)
            .map(GoDuration)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid duration {s:?}")))
    }
}

/// Parses a Go duration string; `None` when it is not one (negative durations included).
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0f64;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += number * seconds;
    }
    Duration::try_from_secs_f64(total).ok()
}
