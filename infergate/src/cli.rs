//! Argument parsing and the three commands.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use xds_server::cli::TranslateArgs;

use crate::envoy::{self, Envoy};

#[derive(Debug, Parser)]
#[command(
    name = "infergate",
    version,
    about = "AI inference gateway: Envoy driven from Gateway API and AI Gateway manifests"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve a folder of YAML locally: starts the xds-server, extproc, rate limit service,
    /// pickers, simulators and Envoy, prints the URLs.
    Run(Box<RunArgs>),
    /// Load a folder of YAML, print every object's conditions; exit 1 if any has an error.
    Validate {
        dir: PathBuf,
        #[command(flatten)]
        translate: TranslateArgs,
    },
    /// Print the CRD manifests (`infergate crds | kubectl apply -f -`).
    Crds,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Folder of manifests; edits are applied live.
    pub dir: PathBuf,
    /// xds-server ADS gRPC address.
    #[arg(long, default_value = "127.0.0.1:18000")]
    pub ads_addr: SocketAddr,
    /// xds-server admin address (/status, /metrics).
    #[arg(long, default_value = "127.0.0.1:18001")]
    pub admin_addr: SocketAddr,
    /// Envoy admin address.
    #[arg(long, default_value = "127.0.0.1:19000")]
    pub envoy_admin_addr: SocketAddr,
    /// Envoy log level (trace, debug, info, warning, error).
    #[arg(long, default_value = "warning")]
    pub envoy_log_level: String,
    /// Envoy worker threads (default: one per core).
    #[arg(long)]
    pub envoy_concurrency: Option<u16>,
    /// extproc gRPC address (started in this process; Envoy's two ext_proc legs call it).
    #[arg(long, default_value = "127.0.0.1:1063")]
    pub extproc_addr: SocketAddr,
    /// extproc admin address (/metrics, /healthz, /readyz).
    #[arg(long, default_value = "127.0.0.1:1064")]
    pub extproc_admin_addr: SocketAddr,
    /// Unix socket Envoy reaches the extproc on, cheaper per message than TCP (default: a
    /// file in the temp folder named after this process, removed on exit).
    #[arg(long, value_name = "PATH")]
    pub extproc_socket: Option<PathBuf>,
    /// Envoy reaches the extproc over TCP at --extproc-addr instead of a Unix socket.
    #[arg(long, conflicts_with = "extproc_socket")]
    pub no_extproc_socket: bool,
    /// Rate limit service gRPC address (BackendTrafficPolicy rate limits).
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub ratelimit_addr: SocketAddr,
    /// Rate limit service admin address (/metrics, /healthz, /readyz).
    #[arg(long, default_value = "127.0.0.1:8082")]
    pub ratelimit_admin_addr: SocketAddr,
    /// Keep rate limit counters in this Redis (`redis://host:port/db`) instead of in memory,
    /// so several gateways share one budget.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// Start no inference-sim for the folder's loopback Pods and Backends.
    #[arg(long)]
    pub no_sims: bool,
    /// Time scale of the started inference-sims (0.1: ten times faster than a real GPU).
    #[arg(long, default_value_t = 1.0)]
    pub sim_time_scale: f64,
    #[command(flatten)]
    pub translate: TranslateArgs,
}

pub fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(*args),
        Command::Validate { dir, translate } => validate(&dir, &translate),
        Command::Crds => crds(),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn validate(dir: &std::path::Path, translate: &TranslateArgs) -> anyhow::Result<ExitCode> {
    let mut options = translate.options().map_err(anyhow::Error::msg)?;
    // Validate what `run` serves: with the extproc, so costs (CEL) and credentials are checked.
    if options.extproc.is_none() {
        let default = extproc::server::Options::default().grpc_addr.to_string();
        let extproc = xds_server::cli::extproc_options(&default, translate.request_body_limit);
        options.extproc = Some(extproc.map_err(anyhow::Error::msg)?);
    }
    // And with the rate limit service `run` starts, so rate limit policies are checked too.
    if options.ratelimit.is_none() {
        let default = ratelimit::Options::default().grpc_addr.to_string();
        options.ratelimit = Some(xds_server::translate::RateLimitOptions {
            endpoints: xds_server::cli::host_ports("--ratelimit", &default)
                .map_err(anyhow::Error::msg)?,
            timeout: Duration::from_millis(translate.ratelimit_timeout_ms),
            failure_mode_deny: translate.ratelimit_fail_closed,
        });
    }
    let report = xds_server::server::validate(dir, &options)
        .with_context(|| format!("reading {}", dir.display()))?;
    for line in report.lines() {
        println!("{line}");
    }
    Ok(if report.has_errors() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn crds() -> anyhow::Result<ExitCode> {
    print!(
        "{}",
        infergate_crds::render_all_yaml().context("rendering CRDs")?
    );
    Ok(ExitCode::SUCCESS)
}

fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: RunArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.dir.is_dir(), "{} is not a folder", args.dir.display());
    let envoy_bin = envoy::find()?;
    // The extproc first: the translator needs the port it bound.
    let store = extproc::config::ConfigStore::new();
    let socket = (!args.no_extproc_socket).then(|| {
        args.extproc_socket.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!("infergate-extproc-{}.sock", std::process::id()))
        })
    });
    let extproc_options = extproc::server::Options {
        grpc_addr: args.extproc_addr,
        admin_addr: args.extproc_admin_addr,
        grpc_unix: socket.clone(),
        ..Default::default()
    };
    let extproc = extproc::server::Server::start_with_otlp(
        extproc_options,
        store.clone(),
        // OTLP metrics when OTEL_EXPORTER_OTLP_ENDPOINT is set, as the extproc binary does.
        extproc::otlp::OtlpConfig::from_env(),
    )
    .await
    .context("starting the extproc")?;
    // The rate limit service, in memory unless a Redis is given; it holds no config of its
    // own (every descriptor carries its limit), so policies added later work at once.
    let ratelimit = ratelimit::Server::start(ratelimit::Options {
        grpc_addr: args.ratelimit_addr,
        admin_addr: args.ratelimit_admin_addr,
        storage: match &args.redis_url {
            Some(url) => ratelimit::StorageOptions::redis(url.clone()),
            None => ratelimit::StorageOptions::Memory,
        },
    })
    .await
    .context("starting the rate limit service")?;
    say!(
        "ratelimit: grpc {} metrics http://{}/metrics ({})",
        ratelimit.bound().grpc,
        ratelimit.bound().admin,
        if args.redis_url.is_some() {
            "Redis"
        } else {
            "in memory"
        }
    );
    // The folder's model servers (sims for loopback Pods and Backends) and a picker per
    // InferencePool, before the xds-server: the translator needs the pickers' ports.
    let snapshot = crate::pools::load(&mut xds_server::source::dir::DirSource::new(&args.dir))?;
    let _sims = if args.no_sims {
        Vec::new()
    } else {
        crate::sims::start(&crate::sims::plan(&snapshot), args.sim_time_scale).await?
    };
    let epps = std::sync::Arc::new(crate::pools::start_epps(&args.dir, &snapshot).await?);
    drop(snapshot);
    let mut translate = args.translate.options().map_err(anyhow::Error::msg)?;
    translate
        .epp_endpoints
        .extend(crate::pools::endpoints(&epps));
    let target = match extproc.unix_socket() {
        Some(path) => format!("{}{}", xds_server::cli::UNIX_PREFIX, path.display()),
        None => extproc.bound().grpc.to_string(),
    };
    translate.extproc = Some(
        xds_server::cli::extproc_options(&target, args.translate.request_body_limit)
            .map_err(anyhow::Error::msg)?,
    );
    if translate.ratelimit.is_none() {
        let target = ratelimit.bound().grpc.to_string();
        translate.ratelimit = Some(xds_server::translate::RateLimitOptions {
            endpoints: xds_server::cli::host_ports("--ratelimit", &target)
                .map_err(anyhow::Error::msg)?,
            timeout: Duration::from_millis(args.translate.ratelimit_timeout_ms),
            failure_mode_deny: args.translate.ratelimit_fail_closed,
        });
    }
    let config = xds_server::server::Config {
        dir: args.dir.clone(),
        ads_addr: args.ads_addr,
        admin_addr: args.admin_addr,
        translate,
        debounce: args.translate.debounce(),
    };
    let server = xds_server::server::start(config)
        .await
        .context("starting the xds-server")?;
    server.ready().await;
    let _pod_feed = crate::pools::feed_pods(
        args.dir.clone(),
        epps.clone(),
        server.published.snapshots.subscribe(),
    );
    // The extproc takes its config from the xds-server over ADS, as it does in a cluster.
    let xds_client = extproc::xds_client::spawn(server.ads_addr, store);
    tokio::time::timeout(Duration::from_secs(10), xds_client.first_config())
        .await
        .context("waiting for the extproc's first config")?;
    let report = server.published.status.load_full();
    for line in report.lines().iter().filter(|l| l.starts_with("error")) {
        eprintln!("{line}");
    }
    let bootstrap = envoy_yaml::bootstrap::bootstrap(&envoy_yaml::bootstrap::BootstrapOptions {
        node_id: format!("infergate-run-{}", std::process::id()),
        xds_addr: server.ads_addr,
        admin_addr: args.envoy_admin_addr,
        ..Default::default()
    });
    let mut envoy = Envoy::start(
        &envoy_bin,
        &bootstrap,
        args.envoy_admin_addr,
        &args.envoy_log_level,
        args.envoy_concurrency,
    )
    .context("starting Envoy")?;
    envoy
        .wait_ready(Duration::from_secs(30))
        .await
        .context("waiting for Envoy")?;
    print_urls(&server, &args);
    tokio::select! {
        status = envoy.wait() => {
            let status = status.context("waiting for Envoy")?;
            anyhow::bail!("envoy exited: {status}")
        }
        signal = stop_signal() => {
            signal.context("waiting for a stop signal")?;
            eprintln!("stopping");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Ctrl-C, or SIGTERM (what `kill` and service managers send): either way Envoy, the sims and
/// the pickers are stopped and the bootstrap file is removed as `run` returns.
async fn stop_signal() -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result,
        _ = term.recv() => Ok(()),
    }
}

fn print_urls(server: &xds_server::server::Running, args: &RunArgs) {
    let translation = server.published.translation.load();
    let host = match args.translate.listener_address.as_str() {
        "0.0.0.0" | "::" => "127.0.0.1".to_string(),
        other => other.to_string(),
    };
    let mut any = false;
    for (gateway, listeners) in &translation.served_ports {
        for (name, port) in listeners {
            any = true;
            let note = if args.translate.privileged_port_offset > 0
                && *port >= args.translate.privileged_port_offset
                && *port - args.translate.privileged_port_offset < 1024
            {
                format!(
                    " (port {} + {} because privileged ports need root)",
                    port - args.translate.privileged_port_offset,
                    args.translate.privileged_port_offset
                )
            } else {
                String::new()
            };
            say!("Gateway {gateway} listener {name}: http://{host}:{port}{note}");
        }
    }
    if !any {
        say!(
            "no Gateway listener is served yet: add a Gateway to {} (edits apply live)",
            args.dir.display()
        );
    }
    say!(
        "status: http://{}/status   envoy admin: http://{}",
        server.admin_addr,
        args.envoy_admin_addr
    );
}
