#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ratelimit::cli::Args::parse_and_run().await
}
