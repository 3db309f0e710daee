//! Scorers, filters, pickers and the scheduler, on synthetic candidates (no I/O).

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use epp::datastore::{Candidate, EndpointMetrics};
use epp::scheduling::config::EndpointPickerConfig;
use epp::scheduling::picker::{Picker, PickerKind, SplitMix64};
use epp::scheduling::scorers::{PrefixCacheScorer, PrefixParameters, Scorer};
use epp::scheduling::{Cycle, InferenceRequest, Scheduler};

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i as u8], 8000))
}

fn candidate(i: usize, waiting: u64, kv: f64) -> Candidate {
    Candidate::with_metrics(
        addr(i),
        EndpointMetrics {
            waiting,
            kv_cache_usage: kv,
            ..EndpointMetrics::default()
        },
    )
}

fn score(scorer: &Scorer, request: &InferenceRequest, candidates: &[Candidate]) -> Vec<f64> {
    let refs: Vec<&Candidate> = candidates.iter().collect();
    let mut cycle = Cycle {
        request,
        prefix_blocks: None,
    };
    scorer.score(&mut cycle, &refs)
}

fn close(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-9)
}

fn chat(prompt: &str) -> InferenceRequest {
    InferenceRequest {
        model: "m".to_owned(),
        prompt: Some(prompt.to_owned()),
        cache_salt: None,
    }
}

#[test]
fn queue_scorer_spreads_scores_between_the_shortest_and_longest_queue() {
    let r = InferenceRequest::default();
    let s = score(
        &Scorer::Queue,
        &r,
        &[
            candidate(1, 0, 0.0),
            candidate(2, 5, 0.0),
            candidate(3, 10, 0.0),
        ],
    );
    assert!(close(&s, &[1.0, 0.5, 0.0]), "{s:?}");
    let equal = score(
        &Scorer::Queue,
        &r,
        &[candidate(1, 7, 0.0), candidate(2, 7, 0.0)],
    );
    assert!(
        close(&equal, &[1.0, 1.0]),
        "equal queues all score 1: {equal:?}"
    );
    assert!(score(&Scorer::Queue, &r, &[]).is_empty());
}

#[test]
fn running_requests_scorer_prefers_fewer_running_requests() {
    let mk = |i, running| {
        Candidate::with_metrics(
            addr(i),
            EndpointMetrics {
                running,
                ..EndpointMetrics::default()
            },
        )
    };
    let s = score(
        &Scorer::RunningRequests,
        &InferenceRequest::default(),
        &[mk(1, 4), mk(2, 0), mk(3, 8)],
    );
    assert!(close(&s, &[0.5, 1.0, 0.0]), "{s:?}");
}

#[test]
fn kv_cache_utilization_scorer_is_the_free_fraction() {
    let s = score(
        &Scorer::KvCacheUtilization,
        &InferenceRequest::default(),
        &[
            candidate(1, 0, 0.2),
            candidate(2, 0, 0.9),
            candidate(3, 0, 1.0),
        ],
    );
    assert!(close(&s, &[0.8, 0.1, 0.0]), "{s:?}");
}

#[test]
fn lora_affinity_scorer_prefers_running_then_free_slot_then_waiting() {
    let set = |names: &[&str]| {
        names
            .iter()
            .map(|s| (*s).to_owned())
            .collect::<BTreeSet<_>>()
    };
    let mk = |i, running: &[&str], waiting: &[&str], max| {
        Candidate::with_metrics(
            addr(i),
            EndpointMetrics {
                running_adapters: set(running),
                waiting_adapters: set(waiting),
                max_loras: max,
                ..EndpointMetrics::default()
            },
        )
    };
    let candidates = [
        mk(1, &["sql-lora"], &[], Some(2)),
        mk(2, &["tweets"], &[], Some(2)),
        mk(3, &["tweets"], &["sql-lora"], Some(2)),
        mk(4, &["a", "b"], &[], Some(2)),
        mk(5, &[], &[], None),
    ];
    let request = InferenceRequest {
        model: "sql-lora".to_owned(),
        ..InferenceRequest::default()
    };
    let s = score(&Scorer::LoraAffinity, &request, &candidates);
    assert!(close(&s, &[1.0, 0.8, 0.6, 0.0, 0.0]), "{s:?}");
}

#[test]
fn prefix_cache_scorer_scores_the_matched_prefix_fraction_of_what_an_endpoint_was_sent() {
    let scorer = Scorer::PrefixCache(PrefixCacheScorer::new(PrefixParameters::default()));
    let candidates = [candidate(1, 0, 0.0), candidate(2, 0, 0.0)];
    let refs: Vec<&Candidate> = candidates.iter().collect();
    // 4 blocks of 64 characters.
    let first: String = "a".repeat(128) + &"b".repeat(128);
    let request = chat(&first);
    let mut cycle = Cycle {
        request: &request,
        prefix_blocks: None,
    };
    assert!(
        close(&scorer.score(&mut cycle, &refs), &[0.0, 0.0]),
        "nothing sent yet"
    );
    assert_eq!(cycle.prefix_blocks.as_ref().map(Vec::len), Some(4));
    scorer.picked(&cycle, &candidates[1]);

    let again = chat(&first);
    let s = score(&scorer, &again, &candidates);
    assert!(close(&s, &[0.0, 1.0]), "the same prompt: {s:?}");

    let half = chat(&("a".repeat(128) + &"c".repeat(128)));
    let s = score(&scorer, &half, &candidates);
    assert!(close(&s, &[0.0, 0.5]), "half the prefix: {s:?}");

    let other_model = InferenceRequest {
        model: "other".to_owned(),
        ..chat(&first)
    };
    let s = score(&scorer, &other_model, &candidates);
    assert!(close(&s, &[0.0, 0.0]), "prefixes are per model: {s:?}");

    let short = chat("shorter than one block");
    assert!(close(&score(&scorer, &short, &candidates), &[0.0, 0.0]));
}

#[test]
fn max_score_picker_orders_by_score_and_truncates_to_max_endpoints() {
    let picker = Picker::max_score(3, 7);
    assert_eq!(picker.pick(&[0.1, 0.9, 0.5, 0.7]), vec![1, 3, 2]);
    let one = Picker::max_score(1, 7);
    assert_eq!(one.pick(&[0.1, 0.9, 0.5]), vec![1]);
    assert!(one.pick(&[]).is_empty());
    assert_eq!(one.pick(&[f64::NAN, 0.2]), vec![1], "NaN ranks last");
}

#[test]
fn max_score_picker_breaks_ties_randomly_and_reproducibly_with_a_seed() {
    let scores = [1.0, 0.2, 1.0, 1.0];
    let run = |seed| {
        let picker = Picker::max_score(1, seed);
        (0..300)
            .map(|_| picker.pick(&scores)[0])
            .collect::<Vec<_>>()
    };
    let a = run(42);
    assert_eq!(a, run(42), "the same seed gives the same picks");
    assert_ne!(a, run(43), "another seed, other picks");
    let mut counts = HashMap::new();
    for i in &a {
        *counts.entry(*i).or_insert(0) += 1;
    }
    assert!(!counts.contains_key(&1), "the lower score never wins");
    for tied in [0, 2, 3] {
        let n = counts.get(&tied).copied().unwrap_or(0);
        assert!(
            (60..=140).contains(&n),
            "tied endpoint {tied} picked {n}/300"
        );
    }
}

#[test]
fn random_picker_ignores_scores() {
    let picker = Picker::new(PickerKind::Random, 1, 3);
    let picks: BTreeSet<usize> = (0..200).map(|_| picker.pick(&[1.0, 0.0, 0.0])[0]).collect();
    assert_eq!(picks, BTreeSet::from([0, 1, 2]));
}

#[test]
fn splitmix_below_stays_in_range() {
    let mut rng = SplitMix64::new(0);
    for n in 1..50 {
        for _ in 0..20 {
            assert!(rng.below(n) < n);
        }
    }
}

#[test]
fn scheduler_sums_scorers_by_profile_weight() {
    let yaml = r#"
plugins:
- type: queue-scorer
- type: kv-cache-utilization-scorer
  name: kv
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
    weight: 3
  - pluginRef: kv
    weight: 0.5
"#;
    let config = EndpointPickerConfig::from_yaml(yaml).expect("config");
    let scheduler = Scheduler::from_config(&config, 1).expect("scheduler");
    assert_eq!(
        scheduler.weights(),
        vec![
            ("queue-scorer".to_owned(), 3.0),
            ("kv-cache-utilization-scorer".to_owned(), 0.5)
        ]
    );
    let candidates = [candidate(1, 0, 0.6), candidate(2, 10, 0.0)];
    let decision = scheduler
        .schedule(&InferenceRequest::default(), &candidates)
        .expect("a pick");
    let scores: Vec<f64> = decision.scores.iter().map(|(_, s)| *s).collect();
    assert!(close(&scores, &[3.0 + 0.5 * 0.4, 0.5]), "{scores:?}");
    assert_eq!(decision.endpoints, vec![addr(1)]);
    assert_eq!(decision.header_value(), "10.0.0.1:8000");
}

#[test]
fn default_scheduler_avoids_the_loaded_endpoint() {
    let scheduler = Scheduler::with_defaults(5).expect("scheduler");
    let candidates = [
        candidate(1, 12, 0.7),
        candidate(2, 0, 0.1),
        candidate(3, 3, 0.3),
    ];
    for _ in 0..20 {
        let d = scheduler
            .schedule(&chat("hello"), &candidates)
            .expect("pick");
        assert_eq!(d.endpoints, vec![addr(2)]);
    }
}

#[test]
fn default_scheduler_follows_prefix_affinity_when_load_is_even() {
    let scheduler = Scheduler::with_defaults(5).expect("scheduler");
    let candidates = [
        candidate(1, 1, 0.2),
        candidate(2, 1, 0.2),
        candidate(3, 1, 0.2),
    ];
    let system = "You are a helpful assistant. ".repeat(20);
    let first = scheduler
        .schedule(&chat(&format!("{system} question one")), &candidates)
        .expect("pick")
        .endpoints[0];
    for i in 0..10 {
        let d = scheduler
            .schedule(&chat(&format!("{system} question {i}")), &candidates)
            .expect("pick");
        assert_eq!(
            d.endpoints[0], first,
            "shared prefix sticks to one endpoint"
        );
    }
}

#[test]
fn stale_endpoints_are_picked_only_when_nothing_is_fresh() {
    let scheduler = Scheduler::with_defaults(1).expect("scheduler");
    let mut stale = candidate(1, 0, 0.0);
    stale.fresh = false;
    stale.age = Some(Duration::from_secs(30));
    let busy = candidate(2, 50, 0.95);
    for _ in 0..10 {
        let d = scheduler
            .schedule(&InferenceRequest::default(), &[stale.clone(), busy.clone()])
            .expect("pick");
        assert_eq!(
            d.endpoints,
            vec![addr(2)],
            "fresh beats unknown, however busy"
        );
    }
    let mut also_stale = busy.clone();
    also_stale.fresh = false;
    let d = scheduler
        .schedule(&InferenceRequest::default(), &[stale, also_stale])
        .expect("all stale still picks");
    assert_eq!(d.endpoints, vec![addr(1)], "then by the last known metrics");
    assert!(
        scheduler
            .schedule(&InferenceRequest::default(), &[])
            .is_none()
    );
}

#[test]
fn utilization_filter_drops_endpoints_over_the_limits_and_fails_open() {
    let yaml = r#"
plugins:
- type: utilization-detector
  parameters: {queueDepthThreshold: 4, kvCacheUtilThreshold: 0.5, headroom: 0.5}
- type: random-picker
  parameters: {maxNumOfEndpoints: 5}
schedulingProfiles:
- name: default
  plugins: [{pluginRef: utilization-detector}, {pluginRef: random-picker}]
"#;
    let config = EndpointPickerConfig::from_yaml(yaml).expect("config");
    let scheduler = Scheduler::from_config(&config, 9).expect("scheduler");
    // Limits: queue < 6, KV < 0.75.
    let candidates = [
        candidate(1, 5, 0.7),
        candidate(2, 6, 0.0),
        candidate(3, 0, 0.75),
        candidate(4, 1, 0.1),
    ];
    let d = scheduler
        .schedule(&InferenceRequest::default(), &candidates)
        .expect("pick");
    let picked: BTreeSet<SocketAddr> = d.endpoints.into_iter().collect();
    assert_eq!(picked, BTreeSet::from([addr(1), addr(4)]));
    let all_over = [candidate(1, 9, 0.0), candidate(2, 0, 0.9)];
    let d = scheduler
        .schedule(&InferenceRequest::default(), &all_over)
        .expect("fails open");
    assert_eq!(d.endpoints.len(), 2);
}

#[test]
fn low_queue_filter_keeps_short_queues() {
    let yaml = r#"
plugins:
- type: low-queue-filter
  parameters: {threshold: 3}
- type: kv-cache-utilization-scorer
schedulingProfiles:
- name: default
  plugins: [{pluginRef: low-queue-filter}, {pluginRef: kv-cache-utilization-scorer}]
"#;
    let scheduler =
        Scheduler::from_config(&EndpointPickerConfig::from_yaml(yaml).expect("config"), 1)
            .expect("scheduler");
    // The emptier KV cache is behind a long queue: filtered out first.
    let d = scheduler
        .schedule(
            &InferenceRequest::default(),
            &[candidate(1, 10, 0.0), candidate(2, 1, 0.8)],
        )
        .expect("pick");
    assert_eq!(d.endpoints, vec![addr(2)]);
}
