//! Routing benchmark: the epp's default scheduling profile against round-robin and
//! least-request on simulated vLLM pods, under a shared-prefix chat workload at rising rates.
//!
//! `cargo run --release -p epp --example routing_bench [-- --help]`
//!
//! - **Pods**: `--pods` (4) in-process `inference-sim` servers on 127.0.0.x, one port, with the
//!   simulator's defaults (Llama 3.1 8B on one H100: 256 sequences, 26,000 KV blocks of 16
//!   tokens with prefix caching, 50 µs of prefill per uncached token, 7 ms + 0.1 ms per sequence
//!   per decode step), a fixed seed, and `--time-scale` (real seconds per simulated second) so a
//!   run is short. Every figure printed is in simulated seconds.
//! - **Workload**: `--groups` conversations groups, each with its own system prompt of
//!   `--prefix-words` words (~1 token each), chosen uniformly per request; a fresh user question
//!   of 150–250 words; `max_tokens` uniform in 100–300; streamed. Arrivals are open loop,
//!   Poisson at each `--rates` value (requests per simulated second) for `--window` simulated
//!   seconds; requests without a first token `--drain` seconds after the window count as
//!   infinitely slow. The same seed gives every policy the same requests at the same times.
//!   The groups' prefixes together exceed one pod's KV cache and fit in the pool's: where a
//!   request goes decides whether its prefill is cached.
//! - **Policies**: `epp` is the picker's own code — `Datastore` fed by the real scrape loops
//!   (every 50 ms simulated), the request body parsed as the ext_proc handler parses it, and
//!   `Director::pick` with the built-in profile (queue 2, KV cache 2, prefix cache 3, max-score
//!   picker); `round-robin`; `least-request` (fewest requests in flight from this client, ties
//!   taken in turn). Fresh pods for each policy, warmed up by the policy itself.
//!
//! It also times the pick alone with 100 endpoints (as `pick_bench`).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use epp::datastore::{Datastore, Pod, PoolInfo};
use epp::director::Director;
use epp::metrics::Metrics;
use epp::scheduling::Scheduler;
use epp::scheduling::picker::SplitMix64;
use epp::scrape::ScrapeConfig;

#[path = "shared/pick.rs"]
mod pick;

const MODEL: &str = "meta-llama/Llama-3.1-8B-Instruct";
/// TTFT p90 above this is "not sustained".
const TTFT_LIMIT_S: f64 = 2.0;

#[derive(Debug, Parser)]
#[command(about = "epp default profile vs round-robin vs least-request on simulated pods")]
struct Args {
    #[arg(long, default_value_t = 4)]
    pods: usize,
    /// Request rates (per simulated second), in order.
    #[arg(long, value_delimiter = ',', default_value = "8,16,24,32,48,64,96,128")]
    rates: Vec<f64>,
    /// Simulated seconds of arrivals per rate.
    #[arg(long, default_value_t = 20.0)]
    window: f64,
    /// Simulated seconds to wait for stragglers after the window.
    #[arg(long, default_value_t = 5.0)]
    drain: f64,
    /// Real seconds per simulated second.
    #[arg(long, default_value_t = 0.5)]
    time_scale: f64,
    /// Groups of requests sharing a system prompt.
    #[arg(long, default_value_t = 128)]
    groups: usize,
    /// Words (~tokens) in each group's system prompt.
    #[arg(long, default_value_t = 6000)]
    prefix_words: usize,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Only these policies (epp, round-robin, least-request).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "epp,round-robin,least-request"
    )]
    policies: Vec<String>,
    /// Picks timed with 100 endpoints (0: skip).
    #[arg(long, default_value_t = 20_000)]
    picks: usize,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    let workload = Workload::new(&args);
    println!(
        "routing_bench: {} pods (inference-sim defaults: Llama-3.1-8B on one H100), time scale {}, seed {}",
        args.pods, args.time_scale, args.seed
    );
    println!(
        "  workload: {} groups x ~{} prefix tokens, ~{} question tokens, 100-300 output tokens, streamed; \
         Poisson arrivals, {} s per rate (+{} s drain); times in simulated seconds",
        args.groups, workload.prefix_tokens, 200, args.window, args.drain
    );
    let mut summary = Vec::new();
    for name in &args.policies {
        let kind = PolicyKind::parse(name)?;
        let levels = runtime.block_on(run_policy(&args, &workload, kind))?;
        summary.push((kind, levels));
    }
    println!();
    println!(
        "{:<14} {:>5} {:>9} {:>9} {:>9} {:>10} {:>10} {:>15}",
        "policy", "rate", "TTFT p50", "TTFT p90", "E2E p90", "out tok/s", "done", "TTFT mean c/e"
    );
    for (kind, levels) in &summary {
        for l in levels {
            if !l.was_run() {
                println!(
                    "{:<14} {:>5} {:>9} (not run: TTFT p90 over {TTFT_LIMIT_S} s at two lower rates)",
                    kind.name(),
                    l.rate,
                    "-"
                );
                continue;
            }
            println!(
                "{:<14} {:>5} {:>9} {:>9} {:>9} {:>10.0} {:>10} {:>15}",
                kind.name(),
                l.rate,
                secs(l.ttft_p50),
                secs(l.ttft_p90),
                secs(l.e2e_p90),
                l.tokens_per_s,
                format!("{}/{}", l.finished, l.sent),
                format!("{:.3}/{:.3}", l.client_ttft_mean, l.engine_ttft_mean),
            );
        }
    }
    println!(
        "(rate: requests per simulated second; times in simulated seconds; timeout: no answer \
         {} s after the window; TTFT mean c/e: as the client measured it / as the engines did)",
        args.drain
    );
    println!();
    println!("highest rate with TTFT p90 <= {TTFT_LIMIT_S} s (req/s):");
    for (kind, levels) in &summary {
        let sustained = levels
            .iter()
            .take_while(|l| l.ttft_p90 <= TTFT_LIMIT_S)
            .last()
            .map_or("none of the rates".to_owned(), |l| l.rate.to_string());
        let note = if levels.iter().all(|l| l.ttft_p90 <= TTFT_LIMIT_S) {
            " (every rate tried)"
        } else {
            ""
        };
        println!("  {:<14} {sustained}{note}", kind.name());
    }
    if args.picks > 0 {
        let f = pick::measure(100, args.picks);
        println!();
        println!(
            "pick latency, {} endpoints, {} picks, prompt ~{} chars: p50 {:?}  p90 {:?}  p99 {:?}  max {:?} ({:.0} picks/s on one thread)",
            f.endpoints, f.picks, f.prompt_chars, f.p50, f.p90, f.p99, f.max, f.per_second
        );
    }
    println!("(ran in {:.0} s)", started.elapsed().as_secs_f64());
    Ok(())
}

fn secs(s: f64) -> String {
    if s.is_finite() {
        format!("{s:.2}")
    } else {
        "timeout".to_owned()
    }
}

/// The requests of every rate, generated from the seed.
struct Workload {
    prefixes: Vec<Arc<str>>,
    prefix_tokens: usize,
    /// Per rate: the requests in arrival order.
    levels: Vec<Vec<Spec>>,
    /// Unmeasured requests each policy starts with.
    warmup: Vec<Spec>,
}

#[derive(Clone)]
struct Spec {
    /// Arrival, simulated seconds from the start of the level.
    at: f64,
    group: usize,
    question: u64,
    max_tokens: usize,
}

const WORDS: &[&str] = &[
    "the",
    "model",
    "answer",
    "customer",
    "policy",
    "account",
    "request",
    "server",
    "please",
    "always",
    "never",
    "careful",
    "detail",
    "summary",
    "context",
    "document",
    "reference",
    "billing",
    "refund",
    "shipping",
    "order",
    "product",
    "support",
    "agent",
    "escalate",
    "ticket",
    "priority",
    "language",
    "friendly",
    "concise",
    "example",
    "format",
    "table",
    "include",
    "avoid",
    "mention",
    "internal",
    "tool",
    "search",
    "result",
    "citation",
    "source",
    "date",
    "region",
    "europe",
    "america",
    "price",
    "discount",
    "warranty",
    "return",
    "within",
    "days",
    "receipt",
    "contact",
    "email",
    "phone",
    "hours",
    "weekend",
    "holiday",
    "manager",
    "approval",
    "limit",
    "amount",
    "currency",
];

fn words(rng: &mut SplitMix64, n: usize, out: &mut String) {
    for i in 0..n {
        if i > 0 {
            out.push(if i % 17 == 0 { '.' } else { ' ' });
            if i % 17 == 0 {
                out.push(' ');
            }
        }
        out.push_str(WORDS[rng.below(WORDS.len())]);
    }
}

impl Workload {
    fn new(args: &Args) -> Workload {
        let prefixes: Vec<Arc<str>> = (0..args.groups)
            .map(|g| {
                let mut rng = SplitMix64::new(args.seed ^ (g as u64).wrapping_mul(0x9e37));
                let mut text = format!("You are assistant number {g} of the support team. ");
                words(&mut rng, args.prefix_words, &mut text);
                Arc::from(text)
            })
            .collect();
        let prefix_tokens = inference_sim::tokenizer::encode(&prefixes[0]).len();
        let mut rng = SplitMix64::new(args.seed);
        let mut question = 0;
        let mut generate = |rate: f64, window: f64, rng: &mut SplitMix64| {
            let mut specs = Vec::new();
            let mut at = 0.0;
            loop {
                // Exponential inter-arrival times: a Poisson process.
                let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                at += -(1.0 - u).ln() / rate;
                if at >= window {
                    return specs;
                }
                question += 1;
                specs.push(Spec {
                    at,
                    group: rng.below(args.groups),
                    question,
                    max_tokens: 100 + rng.below(201),
                });
            }
        };
        // About two requests per group, at 16 per second.
        let warmup = generate(16.0, args.groups as f64 / 8.0, &mut rng);
        let levels = args
            .rates
            .iter()
            .map(|rate| generate(*rate, args.window, &mut rng))
            .collect();
        Workload {
            prefixes,
            prefix_tokens,
            levels,
            warmup,
        }
    }

    fn body(&self, spec: &Spec) -> Bytes {
        let mut rng = SplitMix64::new(spec.question.wrapping_mul(0x2545_f491_4f6c_dd1d));
        let mut question = format!("Question {}: ", spec.question);
        let n = 150 + rng.below(101);
        words(&mut rng, n, &mut question);
        question.push('?');
        let body = serde_json::json!({
            "model": MODEL,
            "messages": [
                {"role": "system", "content": &*self.prefixes[spec.group]},
                {"role": "user", "content": question},
            ],
            "max_tokens": spec.max_tokens,
            "stream": true,
        });
        Bytes::from(body.to_string())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PolicyKind {
    Epp,
    RoundRobin,
    LeastRequest,
}

impl PolicyKind {
    fn parse(name: &str) -> Result<Self> {
        Ok(match name.trim() {
            "epp" => PolicyKind::Epp,
            "round-robin" => PolicyKind::RoundRobin,
            "least-request" => PolicyKind::LeastRequest,
            other => bail!("unknown policy {other:?} (epp, round-robin, least-request)"),
        })
    }

    fn name(self) -> &'static str {
        match self {
            PolicyKind::Epp => "epp",
            PolicyKind::RoundRobin => "round-robin",
            PolicyKind::LeastRequest => "least-request",
        }
    }
}

/// Chooses a pod per request.
struct Router {
    kind: PolicyKind,
    endpoints: Vec<SocketAddr>,
    director: Option<Director>,
    next: AtomicUsize,
    in_flight: Vec<AtomicUsize>,
}

impl Router {
    /// Index into `endpoints`.
    fn pick(&self, body: &[u8]) -> Result<usize> {
        let n = self.endpoints.len();
        Ok(match self.kind {
            PolicyKind::RoundRobin => self.next.fetch_add(1, Ordering::Relaxed) % n,
            PolicyKind::LeastRequest => {
                let start = self.next.fetch_add(1, Ordering::Relaxed);
                (0..n)
                    .map(|i| (start + i) % n)
                    .min_by_key(|&i| self.in_flight[i].load(Ordering::Relaxed))
                    .unwrap_or(0)
            }
            PolicyKind::Epp => {
                let director = self.director.as_ref().context("epp without a director")?;
                let request = epp::request::parse_body(body)?;
                let decision = director.pick(&request, None, None)?;
                let primary = decision.endpoints.first().context("empty decision")?;
                self.endpoints
                    .iter()
                    .position(|e| e == primary)
                    .context("picked an endpoint outside the pool")?
            }
        })
    }
}

struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One rate's figures.
struct Level {
    rate: f64,
    sent: usize,
    finished: usize,
    ttft_p50: f64,
    ttft_p90: f64,
    e2e_p90: f64,
    tokens_per_s: f64,
    /// Mean TTFT of the finished requests as this client saw it, and as the pods' engines
    /// recorded it (`vllm:time_to_first_token_seconds`): far apart means the host, not the
    /// simulated GPUs, was the bottleneck.
    client_ttft_mean: f64,
    engine_ttft_mean: f64,
}

impl Level {
    /// A rate not run: the policy was already past the limit at two lower rates.
    fn skipped(rate: f64, sent: usize) -> Level {
        Level {
            rate,
            sent,
            finished: 0,
            ttft_p50: f64::NAN,
            ttft_p90: f64::INFINITY,
            e2e_p90: f64::NAN,
            tokens_per_s: f64::NAN,
            client_ttft_mean: f64::NAN,
            engine_ttft_mean: f64::NAN,
        }
    }

    fn was_run(&self) -> bool {
        !self.ttft_p50.is_nan()
    }
}

/// What each request of a level got to, in real microseconds since it was sent.
struct Progress {
    ttft_us: Vec<AtomicU64>,
    e2e_us: Vec<AtomicU64>,
    tokens: AtomicU64,
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

struct Pool {
    sims: Vec<inference_sim::Running>,
    port: u16,
}

async fn start_pods(args: &Args) -> Result<Pool> {
    let config = |i: usize, port: u16| inference_sim::SimConfig {
        host: Ipv4Addr::new(127, 0, 0, 100 + i as u8).to_string(),
        port,
        seed: args.seed,
        ..inference_sim::SimConfig::for_tests(args.time_scale)
    };
    'attempt: for _ in 0..20 {
        let first = inference_sim::start(config(0, 0)).await?;
        let port = first.addr.port();
        let mut sims = vec![first];
        for i in 1..args.pods {
            match inference_sim::start(config(i, port)).await {
                Ok(sim) => sims.push(sim),
                Err(_) => continue 'attempt,
            }
        }
        return Ok(Pool { sims, port });
    }
    bail!("no port free on 127.0.0.100.. for {} pods", args.pods)
}

async fn run_policy(args: &Args, workload: &Workload, kind: PolicyKind) -> Result<Vec<Level>> {
    let pool = start_pods(args).await?;
    let endpoints: Vec<SocketAddr> = pool.sims.iter().map(|s| s.addr).collect();
    let scale = args.time_scale;
    let mut scraper = None;
    let director = if kind == PolicyKind::Epp {
        let datastore = Arc::new(Datastore::new(
            PoolInfo {
                name: "bench".into(),
                namespace: "default".into(),
                target_ports: vec![pool.port],
            },
            // The picker's 2 s staleness and 50 ms scrape interval, in simulated time.
            Duration::from_secs_f64((2.0 * scale).max(0.2)),
        ));
        datastore.set_pods(
            endpoints
                .iter()
                .enumerate()
                .map(|(i, e)| Pod::new(format!("pod-{i}"), e.ip()))
                .collect(),
        );
        let metrics = Metrics::unregistered();
        let scrape = ScrapeConfig {
            interval: Duration::from_secs_f64(0.05 * scale),
            ..ScrapeConfig::default()
        };
        scraper = Some(epp::scrape::spawn(
            datastore.clone(),
            scrape,
            metrics.clone(),
        ));
        tokio::time::timeout(
            Duration::from_secs(10),
            datastore.wait_for(Datastore::is_ready),
        )
        .await
        .context("the pods' metrics never arrived")?;
        let scheduler = Arc::new(Scheduler::with_defaults(args.seed)?);
        Some(Director::new(datastore, scheduler, &[], metrics))
    } else {
        None
    };
    let router = Arc::new(Router {
        kind,
        in_flight: endpoints.iter().map(|_| AtomicUsize::new(0)).collect(),
        endpoints,
        director,
        next: AtomicUsize::new(0),
    });
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1024)
        .build(connector);

    eprintln!(
        "{}: warming up with {} requests",
        kind.name(),
        workload.warmup.len()
    );
    run_level(args, workload, &workload.warmup, &router, &client, 0.0).await?;
    let mut levels = Vec::new();
    let mut over_limit = 0;
    for (rate, specs) in args.rates.iter().zip(&workload.levels) {
        if over_limit >= 2 {
            // Queues only grow from here; the table says so rather than waiting for it.
            levels.push(Level::skipped(*rate, specs.len()));
            continue;
        }
        let level = run_level(args, workload, specs, &router, &client, *rate).await?;
        eprintln!(
            "{:<14} rate {:>5}: TTFT p50 {} p90 {}, E2E p90 {}, {:.0} output tok/s, {}/{} done; \
             mean TTFT {:.3} (client) vs {:.3} (engines)",
            kind.name(),
            rate,
            secs(level.ttft_p50),
            secs(level.ttft_p90),
            secs(level.e2e_p90),
            level.tokens_per_s,
            level.finished,
            level.sent,
            level.client_ttft_mean,
            level.engine_ttft_mean,
        );
        if level.ttft_p90 > TTFT_LIMIT_S {
            over_limit += 1;
        }
        levels.push(level);
    }
    if let Some(scraper) = scraper {
        scraper.abort();
    }
    drop(pool);
    Ok(levels)
}

async fn run_level(
    args: &Args,
    workload: &Workload,
    specs: &[Spec],
    router: &Arc<Router>,
    client: &HttpClient,
    rate: f64,
) -> Result<Level> {
    let scale = args.time_scale;
    let progress = Arc::new(Progress {
        ttft_us: specs.iter().map(|_| AtomicU64::new(u64::MAX)).collect(),
        e2e_us: specs.iter().map(|_| AtomicU64::new(u64::MAX)).collect(),
        tokens: AtomicU64::new(0),
    });
    let last_token = Arc::new(AtomicU64::new(0));
    let engine_before = engine_ttft(client, &router.endpoints).await?;
    let start = tokio::time::Instant::now() + Duration::from_millis(20);
    let real = |sim_s: f64| Duration::from_secs_f64(sim_s * scale);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, spec) in specs.iter().enumerate() {
        tokio::time::sleep_until(start + real(spec.at)).await;
        let body = workload.body(spec);
        let index = router.pick(&body)?;
        let router = router.clone();
        let client = client.clone();
        let progress = progress.clone();
        let last_token = last_token.clone();
        tasks.spawn(async move {
            let sent = Instant::now();
            router.in_flight[index].fetch_add(1, Ordering::Relaxed);
            let _guard = InFlight(&router.in_flight[index]);
            let result = send(&client, router.endpoints[index], body, |first| {
                let us = sent.elapsed().as_micros() as u64;
                if first {
                    progress.ttft_us[i].store(us, Ordering::Relaxed);
                }
                progress.tokens.fetch_add(1, Ordering::Relaxed);
                last_token.fetch_max((start.elapsed().as_micros()) as u64, Ordering::Relaxed);
            })
            .await;
            match result {
                Ok(()) => {
                    progress.e2e_us[i].store(sent.elapsed().as_micros() as u64, Ordering::Relaxed)
                }
                Err(error) => eprintln!("request {i}: {error:#}"),
            }
        });
    }
    let deadline = start + real(specs.last().map_or(0.0, |s| s.at) + args.drain);
    while tokio::time::timeout_at(deadline, tasks.join_next())
        .await
        .is_ok_and(|next| next.is_some())
    {}
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}

    let to_sim = |us: u64| {
        if us == u64::MAX {
            f64::INFINITY
        } else {
            us as f64 / 1e6 / scale
        }
    };
    let mut ttft: Vec<f64> = progress
        .ttft_us
        .iter()
        .map(|a| to_sim(a.load(Ordering::Relaxed)))
        .collect();
    let mut e2e: Vec<f64> = progress
        .e2e_us
        .iter()
        .map(|a| to_sim(a.load(Ordering::Relaxed)))
        .collect();
    ttft.sort_by(f64::total_cmp);
    e2e.sort_by(f64::total_cmp);
    let finished = e2e.iter().filter(|s| s.is_finite()).count();
    let engine_after = engine_ttft(client, &router.endpoints).await?;
    let answered: Vec<f64> = ttft.iter().copied().filter(|s| s.is_finite()).collect();
    let client_ttft_mean = answered.iter().sum::<f64>() / answered.len().max(1) as f64;
    let engine_ttft_mean =
        (engine_after.0 - engine_before.0) / (engine_after.1 - engine_before.1).max(1.0);
    let elapsed = to_sim(last_token.load(Ordering::Relaxed)).max(1e-9);
    Ok(Level {
        rate,
        sent: specs.len(),
        finished,
        ttft_p50: quantile(&ttft, 0.5),
        ttft_p90: quantile(&ttft, 0.9),
        e2e_p90: quantile(&e2e, 0.9),
        tokens_per_s: progress.tokens.load(Ordering::Relaxed) as f64 / elapsed,
        client_ttft_mean,
        engine_ttft_mean,
    })
}

/// Sum and count of `vllm:time_to_first_token_seconds` over the pods.
async fn engine_ttft(client: &HttpClient, endpoints: &[SocketAddr]) -> Result<(f64, f64)> {
    let (mut sum, mut count) = (0.0, 0.0);
    for endpoint in endpoints {
        let request = http::Request::get(format!("http://{endpoint}/metrics"))
            .body(Full::new(Bytes::new()))?;
        let response = client.request(request).await?;
        let text = response.into_body().collect().await?.to_bytes();
        for line in String::from_utf8_lossy(&text).lines() {
            let value = || -> f64 {
                line.rsplit(' ')
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0.0)
            };
            if line.starts_with("vllm:time_to_first_token_seconds_sum{") {
                sum += value();
            } else if line.starts_with("vllm:time_to_first_token_seconds_count{") {
                count += value();
            }
        }
    }
    Ok((sum, count))
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

/// Streams one chat completion; `on_token(first)` per SSE chunk carrying a token.
async fn send(
    client: &HttpClient,
    endpoint: SocketAddr,
    body: Bytes,
    mut on_token: impl FnMut(bool),
) -> Result<()> {
    let request = http::Request::post(format!("http://{endpoint}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(Full::new(body))?;
    let response = client.request(request).await?;
    let status = response.status();
    let mut body = response.into_body();
    if !status.is_success() {
        let text = body.collect().await?.to_bytes();
        bail!("{endpoint}: {status} {}", String::from_utf8_lossy(&text));
    }
    let mut first = true;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        // One frame per engine step: the token's chunk (then usage and [DONE] on the last).
        let chunks = data
            .split(|b| *b == b'\n')
            .filter(|l| l.starts_with(b"data: {"))
            .count();
        for _ in 0..chunks {
            on_token(first);
            first = false;
        }
    }
    Ok(())
}
