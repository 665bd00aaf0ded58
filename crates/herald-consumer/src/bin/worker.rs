//! The local worker: polls the events queue and runs the consumer on each batch.
//! Stops cleanly on SIGINT or SIGTERM after finishing the batch in hand.

use anyhow::Context;
use herald_consumer::worker::{run, PollSettings};
use herald_consumer::{build, init_tracing, ConsumerConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing(std::env::var("HERALD_LOG_FORMAT").is_ok_and(|f| f == "json"));
    let config = ConsumerConfig::from_env().context("invalid configuration")?;
    let aws = herald_consumer::aws_config().await;
    let consumer = build(&config, &aws)?;
    // Long polls outlast the consumer's 5-second operation timeout: the poller gets
    // its own client whose calls may take the wait plus a margin.
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&aws)
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .operation_timeout(config.worker_wait + std::time::Duration::from_secs(10))
                    .build(),
            )
            .build(),
    );
    herald_consumer::check_visibility_timeout(&sqs, &config).await?;
    let settings = PollSettings {
        queue_url: config.events_queue_url.clone(),
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
