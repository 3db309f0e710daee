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
    let _running = xds_server::server::start_from(args.source(), config)
        .await
        .context("starting xds-server")?;
    tokio::signal::ctrl_c()
        .await
        .context("waiting for ctrl-c")?;
    Ok(())
}
