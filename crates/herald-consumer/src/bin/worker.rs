//! The local worker: polls the events queue and runs the consumer on each batch.
//! Stops cleanly on SIGINT or SIGTERM after finishing the batch in hand.
//! `herald worker` runs the same loop ([`herald_consumer::run_worker`]).

use anyhow::Context;
use herald_consumer::{init_tracing, run_worker, ConsumerConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing(std::env::var("HERALD_LOG_FORMAT").is_ok_and(|f| f == "json"));
    let config = ConsumerConfig::from_env().context("invalid configuration")?;
    run_worker(config).await
}
