//! `bench translate --rules N`: one config size in a process of its own, so its peak RSS is its
//! own. Cold start (folder → index → translate → publish), as the server does at start-up, then
//! a one-rule edit through the same steps with the warm state the running server keeps (the
//! folder source re-parses only the changed file; the publisher reuses unchanged encodings).

use std::time::{Duration, Instant};

use infergate_ads::{SnapshotSet, type_url};
use serde::{Deserialize, Serialize};
use xds_server::index::Index;
use xds_server::publish::Publisher;
use xds_server::source::dir::DirSource;
use xds_server::translate::{Options, Translation, translate};

use crate::manifests::{self, Layout};

/// Times of one pass through the pipeline, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Phases {
    /// `DirSource::load`: read the files, parse YAML into raw objects.
    pub load: f64,
    /// `Index::sync` (typed parse of changed objects) + `Index::snapshot`.
    pub index: f64,
    /// `translate`.
    pub translate: f64,
    /// `Publisher::publish`: build the Envoy protos, encode them, version the snapshot.
    pub publish: f64,
    /// VmRSS after each of the four steps, in KiB.
    pub rss_kib: [u64; 4],
}

impl Phases {
    pub fn total(&self) -> f64 {
        self.load + self.index + self.translate + self.publish
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScaleReport {
    pub rules: usize,
    pub rules_per_route: usize,
    pub route_objects: usize,
    pub objects: usize,
    pub yaml_bytes: u64,
    /// Cold passes, each from scratch; `cold` is the one with the median total.
    pub cold_runs: usize,
    pub cold: Phases,
    /// One-rule edits on the warm state; `edit` is the one with the median total.
    pub edit_runs: usize,
    pub edit: Phases,
    pub listeners: usize,
    pub routes: usize,
    pub clusters: usize,
    pub endpoints: usize,
    /// Encoded size per type: LDS, RDS, CDS, EDS.
    pub encoded_bytes: [usize; 4],
    /// Objects with an error condition, plus source errors (expected 0).
    pub errors: usize,
    /// VmRSS once the YAML is written, before the pipeline runs.
    pub rss_before_kib: u64,
    /// VmHWM after the first cold pass: the peak resident set of one start-up.
    pub peak_rss_kib: u64,
    /// The first cold pass's VmRSS after each step.
    pub first_pass_rss_kib: [u64; 4],
    /// VmHWM at the end, after every pass and edit (the allocator keeps freed pages).
    pub peak_rss_end_kib: u64,
}

/// Keeps what the running server keeps between translations.
struct Warm {
    source: DirSource,
    index: Index,
    publisher: Publisher,
}

pub fn run(
    rules: usize,
    rules_per_route: usize,
    cold_runs: usize,
    edit_runs: usize,
) -> ScaleReport {
    let dir = tempfile::Builder::new()
        .prefix("infergate-bench-")
        .tempdir()
        .unwrap_or_else(|e| fail(&format!("creating a temp dir: {e}")));
    let layout = Layout {
        rules,
        rules_per_route,
        port: 8080,
    };
    let yaml_bytes = manifests::write_all(dir.path(), &layout)
        .unwrap_or_else(|e| fail(&format!("writing manifests: {e}")));
    let options = Options::default();
    let rss_before_kib = proc_status_kib("VmRSS");

    let mut cold: Vec<Phases> = Vec::new();
    let mut peak_rss_kib = 0;
    let mut last = None;
    for _ in 0..cold_runs.max(1) {
        // Drop the previous pass first, so two passes never live at once.
        drop(last.take());
        let mut warm = Warm {
            source: DirSource::new(dir.path()),
            index: Index::new(),
            publisher: Publisher::new(),
        };
        let (phases, translation, set) = pass(&mut warm, &options);
        if cold.is_empty() {
            peak_rss_kib = proc_status_kib("VmHWM");
        }
        cold.push(phases);
        last = Some((warm, translation, set));
    }
    let Some((mut warm, translation, set)) = last else {
        fail("no cold pass ran")
    };

    let mut edits = Vec::new();
    for revision in 0..edit_runs as u64 {
        manifests::edit_route(dir.path(), &layout, 0, revision)
            .unwrap_or_else(|e| fail(&format!("editing a route file: {e}")));
        let (phases, edited, _) = pass(&mut warm, &options);
        if edited.all.route_configs == translation.all.route_configs {
            fail("the edit did not change the route configuration");
        }
        edits.push(phases);
    }

    let ir = &translation.all;
    let encoded = |t: &str| -> usize {
        set.all
            .resources(t)
            .values()
            .map(|r| r.body.value.len())
            .sum()
    };
    let errors = translation.status.source_errors.len()
        + translation
            .status
            .objects
            .values()
            .filter(|s| s.has_errors())
            .count();
    if errors > 0 {
        for line in translation
            .status
            .lines()
            .iter()
            .filter(|l| l.starts_with("error"))
            .take(5)
        {
            eprintln!("bench: {line}");
        }
    }
    ScaleReport {
        rules,
        rules_per_route,
        route_objects: layout.route_objects(),
        objects: warm.index.len(),
        yaml_bytes,
        cold_runs: cold.len(),
        cold: median_by_total(&cold),
        edit_runs: edits.len(),
        edit: median_by_total(&edits),
        listeners: ir.listeners.len(),
        routes: ir
            .route_configs
            .iter()
            .flat_map(|rc| &rc.virtual_hosts)
            .map(|vh| vh.routes.len())
            .sum(),
        clusters: ir.clusters.len(),
        endpoints: ir.endpoints.len(),
        encoded_bytes: [
            encoded(type_url::LISTENER),
            encoded(type_url::ROUTE),
            encoded(type_url::CLUSTER),
            encoded(type_url::ENDPOINT),
        ],
        errors,
        rss_before_kib,
        peak_rss_kib,
        first_pass_rss_kib: cold.first().map(|p| p.rss_kib).unwrap_or_default(),
        peak_rss_end_kib: proc_status_kib("VmHWM"),
    }
}

/// Folder → published snapshot, timing each step.
fn pass(warm: &mut Warm, options: &Options) -> (Phases, Translation, SnapshotSet) {
    let t = Instant::now();
    let view = warm
        .source
        .load()
        .unwrap_or_else(|e| fail(&format!("loading the folder: {e}")));
    let load = t.elapsed();
    let mut rss_kib = [proc_status_kib("VmRSS"), 0, 0, 0];

    let t = Instant::now();
    warm.index.set_source_errors(view.errors);
    warm.index.sync(view.objects);
    let snapshot = warm.index.snapshot();
    let index = t.elapsed();
    rss_kib[1] = proc_status_kib("VmRSS");

    let t = Instant::now();
    let translation = translate(&snapshot, options);
    let translate_time = t.elapsed();
    rss_kib[2] = proc_status_kib("VmRSS");

    let t = Instant::now();
    let set = warm.publisher.publish(&translation);
    let publish = t.elapsed();
    rss_kib[3] = proc_status_kib("VmRSS");

    let phases = Phases {
        load: ms(load),
        index: ms(index),
        translate: ms(translate_time),
        publish: ms(publish),
        rss_kib,
    };
    (phases, translation, set)
}

fn median_by_total(runs: &[Phases]) -> Phases {
    let mut sorted = runs.to_vec();
    sorted.sort_by(|a, b| a.total().total_cmp(&b.total()));
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A `kB` field of `/proc/self/status` (`VmRSS`, `VmHWM`); 0 when unavailable.
pub fn proc_status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                let rest = line.strip_prefix(field)?.strip_prefix(':')?;
                rest.split_whitespace().next()?.parse().ok()
            })
        })
        .unwrap_or(0)
}

pub fn fail(message: &str) -> ! {
    eprintln!("bench: {message}");
    std::process::exit(1)
}
