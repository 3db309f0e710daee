use anyhow::Context;
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = xds_server::cli::Args::parse();
    let config = args.config().map_err(anyhow::Error::msg)?;
    let running = xds_server::server::start_from(args.source(), config)
        .await
        .context("starting xds-server")?;
    stop_signal().await.context("waiting for a stop signal")?;
    tracing::info!("stopping");
    running.shutdown().await;
    Ok(())
}

/// SIGTERM (how Kubernetes stops a pod) or ctrl-c.
async fn stop_signal() -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result,
        _ = term.recv() => Ok(()),
    }
}
