//! The local worker: polls the events queue and runs the consumer on each batch.
//! Stops cleanly on SIGINT or SIGTERM after finishing the batch in hand.

use anyhow::Context;
use herald_consumer::worker::{run, PollSettings};
use herald_consumer::{build, init_tracing, ConsumerConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing(std::env::var("HERALD_LOG_FORMAT").is_ok_and(|f| f == "json"));
    let config = ConsumerConfig::from_env().context("invalid configuration")?;
    let queue_url = config
        .events_queue_url
        .clone()
        .context("HERALD_EVENTS_QUEUE_URL must be set for the worker")?;
    let aws = herald_consumer::aws_config().await;
    let consumer = build(&config, &aws)?;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let settings = PollSettings {
        queue_url,
        wait_seconds: config.worker_wait.as_secs() as i32,
        batch_size: config.worker_batch_size,
    };
    run(&sqs, &consumer, &settings, shutdown_signal()).await;
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutdown requested; finishing the current batch");
}
