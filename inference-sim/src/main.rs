use anyhow::Context;
use clap::Parser;

/// A vLLM-compatible model server without a GPU.
#[derive(Parser)]
#[command(name = "inference-sim", version)]
struct Args {
    #[command(flatten)]
    config: inference_sim::SimConfig,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let running = inference_sim::start(Args::parse().config)
        .await
        .context("starting inference-sim")?;
    println!("inference-sim serving on {}", running.url());
    tokio::signal::ctrl_c()
        .await
        .context("waiting for ctrl-c")?;
    Ok(())
}
