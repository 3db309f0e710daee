//! `make bench`: the control plane's benchmark. Prints figures; it is not a test and has no
//! pass/fail. See `BENCH.md` beside this file for what it measures and the last figures.
//!
//! ```text
//! cargo run --release -p xds-server --example bench                  # everything (~1 min)
//! cargo run --release -p xds-server --example bench -- translate --rules 10000
//! cargo run --release -p xds-server --example bench -- propagation --edits 50 --quiet-ms 0
//! ```

#[path = "bench/envoy.rs"]
mod envoy;
#[path = "bench/manifests.rs"]
mod manifests;
#[path = "bench/propagation.rs"]
mod propagation;
#[path = "bench/scale.rs"]
mod scale;

use std::process::Command;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use xds_server::pipeline::Debounce;

use propagation::{Report, Scenario};
use scale::{ScaleReport, fail};

/// Pause before each edit in the paced scenarios: longer than the default debounce quiet time, so
/// each edit is the first change after a quiet period.
const PACED: Duration = Duration::from_millis(150);

#[derive(Parser)]
#[command(about = "infergate control-plane benchmark: prints figures, never fails on them")]
struct Args {
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Every size in its own child process, then every propagation scenario (the default).
    All(AllArgs),
    /// One config size: cold folder → snapshot, then one-rule edits on the warm state.
    Translate {
        #[arg(long)]
        rules: usize,
        #[command(flatten)]
        shape: Shape,
        /// Print one JSON line (what `all` reads from its children).
        #[arg(long)]
        json: bool,
    },
    /// Edit → published → Envoy ACK, with the server in-process and a real Envoy.
    Propagation {
        #[arg(long, default_value_t = 50)]
        edits: usize,
        #[arg(long, default_value_t = 10)]
        rules: usize,
        /// Debounce quiet time (the server's default is 100 ms).
        #[arg(long, default_value_t = 100)]
        quiet_ms: u64,
        /// Pause before each edit (after the previous ACK).
        #[arg(long, default_value_t = 150)]
        pause_ms: u64,
        /// Incremental xDS instead of state of the world.
        #[arg(long)]
        delta: bool,
    },
}

#[derive(Parser)]
struct AllArgs {
    #[arg(long, value_delimiter = ',', default_value = "100,1000,10000")]
    sizes: Vec<usize>,
    #[command(flatten)]
    shape: Shape,
    /// Edits per propagation scenario.
    #[arg(long, default_value_t = 50)]
    edits: usize,
    /// Rules of the config edited in the propagation scenarios.
    #[arg(long, default_value_t = 10)]
    propagation_rules: usize,
    /// Sizes of the extra propagation scenarios at scale (0: none).
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    large_rules: Vec<usize>,
    /// Edits per scenario at scale.
    #[arg(long, default_value_t = 10)]
    large_edits: usize,
}

#[derive(clap::Args, Clone, Copy)]
struct Shape {
    /// Rules per AIGatewayRoute object.
    #[arg(long, default_value_t = 100)]
    rules_per_route: usize,
    /// Cold passes per size; the one with the median total is reported.
    #[arg(long, default_value_t = 3)]
    cold_runs: usize,
    /// One-rule edits per size; the one with the median total is reported.
    #[arg(long, default_value_t = 5)]
    edit_runs: usize,
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    // No subcommand: `all` with its defaults.
    let command = args
        .command
        .unwrap_or_else(|| Cmd::All(AllArgs::parse_from(["bench"])));
    match command {
        Cmd::Translate { rules, shape, json } => {
            let report = scale::run(
                rules,
                shape.rules_per_route,
                shape.cold_runs,
                shape.edit_runs,
            );
            if json {
                match serde_json::to_string(&report) {
                    Ok(line) => println!("{line}"),
                    Err(e) => fail(&format!("encoding the report: {e}")),
                }
            } else {
                print_facts();
                print_scale(&[report]);
            }
        }
        Cmd::Propagation {
            edits,
            rules,
            quiet_ms,
            pause_ms,
            delta,
        } => {
            print_facts();
            let envoy_bin = envoy_or_exit();
            let debounce = Debounce {
                quiet: Duration::from_millis(quiet_ms),
                ..Debounce::default()
            };
            let scenario = Scenario {
                rules,
                edits,
                pause: Duration::from_millis(pause_ms),
                debounce,
                delta,
            };
            let report = propagation::run(&envoy_bin, scenario).unwrap_or_else(|e| fail(&e));
            print_propagation(&[report]);
        }
        Cmd::All(all) => run_all(&all),
    }
}

fn run_all(all: &AllArgs) {
    let started = Instant::now();
    print_facts();
    let reports: Vec<ScaleReport> = all
        .sizes
        .iter()
        .map(|&n| translate_in_child(n, all.shape))
        .collect();
    print_scale(&reports);

    let Some(envoy_bin) = envoy::find() else {
        println!("\nPropagation skipped: no Envoy (set ENVOY_BIN or run `make envoy`).");
        return;
    };
    let quiet = Debounce::default().quiet;
    let scenario = |rules, edits, pause, quiet, delta| Scenario {
        rules,
        edits,
        pause,
        debounce: Debounce {
            quiet,
            ..Debounce::default()
        },
        delta,
    };
    let (rules, edits) = (all.propagation_rules, all.edits);
    let mut scenarios = vec![
        scenario(rules, edits, PACED, quiet, false),
        scenario(rules, edits, PACED, quiet, true),
        scenario(rules, edits, Duration::ZERO, quiet, false),
        scenario(rules, edits, Duration::ZERO, Duration::ZERO, false),
    ];
    scenarios.extend(
        all.large_rules
            .iter()
            .filter(|&&n| n > 0)
            .map(|&n| scenario(n, all.large_edits, PACED, quiet, false)),
    );
    let mut results = Vec::new();
    for s in scenarios {
        eprintln!("bench: propagation: {} rules, {} ...", s.rules, s.label());
        match propagation::run(&envoy_bin, s) {
            Ok(report) => results.push(report),
            Err(e) => eprintln!("bench: propagation failed: {e}"),
        }
    }
    print_propagation(&results);
    println!(
        "\nWall time of the whole run: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Runs `bench translate --rules n --json` in a child process, so each size has its own peak RSS.
fn translate_in_child(rules: usize, shape: Shape) -> ScaleReport {
    eprintln!("bench: translate {rules} rules ...");
    let exe = std::env::current_exe().unwrap_or_else(|e| fail(&format!("finding myself: {e}")));
    let out = Command::new(exe)
        .args(["translate", "--json", "--rules", &rules.to_string()])
        .args(["--rules-per-route", &shape.rules_per_route.to_string()])
        .args(["--cold-runs", &shape.cold_runs.to_string()])
        .args(["--edit-runs", &shape.edit_runs.to_string()])
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap_or_else(|e| fail(&format!("running the child: {e}")));
    if !out.status.success() {
        fail(&format!("child for {rules} rules failed: {}", out.status));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line)
        .unwrap_or_else(|e| fail(&format!("child for {rules} rules printed {line:?}: {e}")))
}

fn envoy_or_exit() -> std::path::PathBuf {
    envoy::find().unwrap_or_else(|| fail("no Envoy: set ENVOY_BIN or run `make envoy`"))
}

fn print_facts() {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|(_, v)| v.trim().to_owned())
            })
        })
        .unwrap_or_else(|| "unknown".into());
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_owned())
        })
        .unwrap_or_default();
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "?".into());
    let envoy = envoy::find().map_or_else(|| "not found".into(), |b| envoy::version(&b));
    let command: Vec<String> = std::env::args().collect();
    println!("# infergate control-plane benchmark");
    println!();
    println!("- date: {date}; commit {commit}");
    println!("- command: {}", command.join(" "));
    println!(
        "- machine: {nproc} CPUs ({cpu}), {} MiB RAM, Linux {}",
        mem.parse::<u64>().unwrap_or(0) / 1024,
        kernel.trim()
    );
    println!("- envoy: {envoy}");
}

fn print_scale(reports: &[ScaleReport]) {
    println!();
    println!("## Translate + serialize (cold: folder → published snapshot)");
    println!();
    if let Some(r) = reports.first() {
        println!(
            "AIGatewayRoutes of {} rules each; each rule: header match on x-ai-eg-model, its own \
             AIServiceBackend → Backend (one IP) → EDS cluster. Median of {} cold passes per size, \
             each size in its own process.",
            r.rules_per_route, r.cold_runs
        );
    }
    println!();
    println!(
        "| rules | route objs | objects | YAML | load | index | translate | publish | total | peak RSS |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in reports {
        let c = &r.cold;
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | **{}** | {} |",
            r.rules,
            r.route_objects,
            r.objects,
            mib(r.yaml_bytes),
            fmt_ms(c.load),
            fmt_ms(c.index),
            fmt_ms(c.translate),
            fmt_ms(c.publish),
            fmt_ms(c.total()),
            mib(r.peak_rss_kib * 1024),
        );
    }
    println!();
    println!(
        "Resident set of the first cold pass: before it, then after each step (what the process \
         holds at that point), and the peak. `peak, end` is VmHWM after every pass and edit."
    );
    println!();
    println!(
        "| rules | before | after load | after index | after translate | after publish | peak | peak, end |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in reports {
        let [load, index, translate, publish] = r.first_pass_rss_kib;
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.rules,
            mib(r.rss_before_kib * 1024),
            mib(load * 1024),
            mib(index * 1024),
            mib(translate * 1024),
            mib(publish * 1024),
            mib(r.peak_rss_kib * 1024),
            mib(r.peak_rss_end_kib * 1024),
        );
    }
    println!();
    println!(
        "Output (encoded protos); `errors` counts objects with a failed condition (expected 0):"
    );
    println!();
    println!("| rules | routes | clusters | CLAs | LDS | RDS | CDS | EDS | errors |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in reports {
        let [lds, rds, cds, eds] = r.encoded_bytes;
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.rules,
            r.routes,
            r.clusters,
            r.endpoints,
            kib(lds),
            kib(rds),
            kib(cds),
            kib(eds),
            r.errors,
        );
    }
    println!();
    println!(
        "## One-rule edit on the warm state (what each save costs the running server; median of {} edits)",
        reports.first().map_or(0, |r| r.edit_runs)
    );
    println!();
    println!("| rules | load | index | translate | publish | total |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for r in reports {
        let e = &r.edit;
        println!(
            "| {} | {} | {} | {} | {} | **{}** |",
            r.rules,
            fmt_ms(e.load),
            fmt_ms(e.index),
            fmt_ms(e.translate),
            fmt_ms(e.publish),
            fmt_ms(e.total()),
        );
    }
}

fn print_propagation(reports: &[Report]) {
    println!();
    println!("## Propagation: file write → snapshot published → Envoy ACK");
    println!();
    println!(
        "Server in-process (dir watcher, `Debounce` as listed; default = {} ms quiet / {} s max), one \
         Envoy (--concurrency 1). Each edit renames a rewritten route file into place (changes one \
         rule's model header, so only RDS changes). Percentiles are nearest-rank: with 50 samples p99 \
         is the largest sample, the same as max.",
        Debounce::default().quiet.as_millis(),
        Debounce::default().max.as_secs()
    );
    println!();
    println!(
        "| scenario | rules | edits | write→ACK p50 | p99 | max | write→published p50 | p99 | published→ACK p50 | p99 | Envoy start→first ACK | types changed | NACKs |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|");
    for r in reports {
        let total: Vec<f64> = r.samples.iter().map(|s| ms(s.acked)).collect();
        let published: Vec<f64> = r.samples.iter().map(|s| ms(s.published)).collect();
        let ack: Vec<f64> = r
            .samples
            .iter()
            .map(|s| ms(s.acked.saturating_sub(s.published)))
            .collect();
        let types: Vec<&str> = r.changed_types.iter().map(|t| short_type(t)).collect();
        println!(
            "| {} | {} | {} | **{}** | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.scenario.label(),
            r.scenario.rules,
            r.samples.len(),
            fmt_ms(pct(&total, 50.0)),
            fmt_ms(pct(&total, 99.0)),
            fmt_ms(pct(&total, 100.0)),
            fmt_ms(pct(&published, 50.0)),
            fmt_ms(pct(&published, 99.0)),
            fmt_ms(pct(&ack, 50.0)),
            fmt_ms(pct(&ack, 99.0)),
            fmt_ms(ms(r.first_ack)),
            types.join("+"),
            r.nacks,
        );
    }
}

/// Nearest-rank percentile.
fn pct(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn short_type(t: &str) -> &'static str {
    match t {
        _ if t == infergate_ads::type_url::LISTENER => "LDS",
        _ if t == infergate_ads::type_url::ROUTE => "RDS",
        _ if t == infergate_ads::type_url::CLUSTER => "CDS",
        _ if t == infergate_ads::type_url::ENDPOINT => "EDS",
        _ => "?",
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn fmt_ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2} ms")
    } else if v < 100.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.0} ms")
    }
}

fn kib(bytes: usize) -> String {
    format!("{:.0} KiB", bytes as f64 / 1024.0)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}
