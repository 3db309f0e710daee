//! `EndpointPickerConfig`: the seeds' `plugins-config` loads unchanged, the built-in default,
//! and errors that name what is wrong.

use std::path::Path;
use std::time::Duration;

use epp::scheduling::Scheduler;
use epp::scheduling::config::{EndpointPickerConfig, parse_go_duration};
use epp::scheduling::picker::PickerKind;

/// `data["default-plugins.yaml"]` of the `plugins-config` ConfigMap in a seed manifest.
fn seed_plugins_config(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crds/testdata/seeds")
        .join(file);
    let text = std::fs::read_to_string(&path).expect("seed manifest");
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value = <serde_yaml::Value as serde::Deserialize>::deserialize(doc).expect("YAML");
        if value["kind"] == "ConfigMap" && value["metadata"]["name"] == "plugins-config" {
            return value["data"]["default-plugins.yaml"]
                .as_str()
                .expect("config text")
                .to_owned();
        }
    }
    panic!("no plugins-config in {file}");
}

#[test]
fn the_seed_plugins_config_loads_unchanged() {
    for file in ["000-mistral-pool.yaml", "001-mistral-pool.yaml"] {
        let text = seed_plugins_config(file);
        let config = EndpointPickerConfig::from_yaml(&text).expect(file);
        assert_eq!(config.plugins.len(), 3);
        let scheduler = Scheduler::from_config(&config, 1).expect(file);
        assert_eq!(scheduler.profile_name(), "default");
        assert_eq!(
            scheduler.weights(),
            vec![
                ("queue-scorer".to_owned(), 1.0),
                ("kv-cache-utilization-scorer".to_owned(), 1.0),
                ("prefix-cache-scorer".to_owned(), 1.0),
            ],
            "{file}: scorers without weights weigh 1"
        );
        assert_eq!(scheduler.picker().kind(), PickerKind::MaxScore);
        assert_eq!(scheduler.picker().max_endpoints(), 1);
        assert!(scheduler.prefix_scorer().is_some());
    }
}

#[test]
fn the_built_in_config_is_upstreams_default() {
    let scheduler = Scheduler::with_defaults(1).expect("default");
    assert_eq!(
        scheduler.weights(),
        vec![
            ("queue-scorer".to_owned(), 2.0),
            ("kv-cache-utilization-scorer".to_owned(), 2.0),
            ("prefix-cache-scorer".to_owned(), 3.0),
        ]
    );
    let yaml = EndpointPickerConfig::default().to_yaml();
    assert_eq!(
        EndpointPickerConfig::from_yaml(&yaml).expect("round trip"),
        EndpointPickerConfig::default()
    );
}

#[test]
fn upstream_sections_we_do_not_act_on_are_accepted() {
    let yaml = r#"
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
featureGates: [dataLayer]
plugins:
- type: single-profile-handler
- type: prefix-cache-scorer
  parameters: {blockSizeTokens: 32, maxPrefixBlocksToMatch: 64, lruCapacityPerServer: 1000, autoTune: false, unknownKnob: 1}
- type: lora-affinity-scorer
- type: metrics-data-source
- type: core-metrics-extractor
dataLayer:
  sources:
  - pluginRef: metrics-data-source
    extractors: [{pluginRef: core-metrics-extractor}]
parser: {pluginRef: openai-parser}
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: prefix-cache-scorer
    weight: 2
  - pluginRef: lora-affinity-scorer
"#;
    let config = EndpointPickerConfig::from_yaml(yaml).expect("loads");
    let scheduler = Scheduler::from_config(&config, 1).expect("builds");
    let prefix = scheduler.prefix_scorer().expect("prefix scorer");
    assert_eq!(prefix.params().block_chars(), 128);
    assert_eq!(prefix.params().max_blocks(), 64);
    assert!(!prefix.params().auto_tune);
}

#[test]
fn config_without_profiles_gets_one_default_profile_of_every_plugin() {
    let yaml = "plugins: [{type: queue-scorer}, {type: max-score-picker, parameters: {maxNumOfEndpoints: 2}}]";
    let scheduler =
        Scheduler::from_config(&EndpointPickerConfig::from_yaml(yaml).expect("yaml"), 1)
            .expect("builds");
    assert_eq!(scheduler.profile_name(), "default");
    assert_eq!(scheduler.weights(), vec![("queue-scorer".to_owned(), 1.0)]);
    assert_eq!(scheduler.picker().max_endpoints(), 2);
}

#[test]
fn bad_configs_are_rejected_with_what_is_wrong() {
    let cases = [
        ("plugins: [{type: no-such-scorer}]", "no-such-scorer"),
        (
            "plugins: [{type: queue-scorer}]\nschedulingProfiles: [{name: p, plugins: [{pluginRef: missing}]}]",
            "missing",
        ),
        (
            "plugins: [{type: queue-scorer}, {type: queue-scorer}]",
            "twice",
        ),
        ("apiVersion: v2\nplugins: []", "apiVersion"),
        ("kind: Deployment\nplugins: []", "kind"),
        ("plugins: []\nschedulingProfile: []", "schedulingProfile"),
        (
            "plugins: [{type: max-score-picker, parameters: {maxNumOfEndpoints: many}}]",
            "max-score-picker",
        ),
        (
            "plugins: [{type: queue-scorer}]\nschedulingProfiles: [{name: p, plugins: [{pluginRef: queue-scorer, weight: -1}]}]",
            "weight",
        ),
        (
            "plugins: [{type: queue-scorer}]\nsaturationDetector: {pluginRef: queue-scorer}",
            "saturationDetector",
        ),
        (
            "plugins: [{type: utilization-detector, parameters: {queueDepthThreshold: -2}}]",
            "queueDepthThreshold",
        ),
        (
            "plugins: [{type: random-picker}, {type: max-score-picker}]\nschedulingProfiles: [{name: p, plugins: [{pluginRef: random-picker}, {pluginRef: max-score-picker}]}]",
            "two pickers",
        ),
        (": : :", "parsing"),
    ];
    for (yaml, needle) in cases {
        let result =
            EndpointPickerConfig::from_yaml(yaml).and_then(|c| Scheduler::from_config(&c, 1));
        let error = result.expect_err(yaml);
        let text = format!(
            "{error} {:?}",
            std::error::Error::source(&error).map(ToString::to_string)
        );
        assert!(text.contains(needle), "{yaml:?} → {text}");
    }
}

#[test]
fn go_durations_parse() {
    assert_eq!(parse_go_duration("200ms"), Some(Duration::from_millis(200)));
    assert_eq!(parse_go_duration("2s"), Some(Duration::from_secs(2)));
    assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
    assert_eq!(parse_go_duration("1.5h"), Some(Duration::from_secs(5400)));
    assert_eq!(parse_go_duration("250us"), Some(Duration::from_micros(250)));
    assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
    for bad in ["", "5", "-1s", "1d", "ms", "1.2.3s"] {
        assert_eq!(parse_go_duration(bad), None, "{bad}");
    }
}
