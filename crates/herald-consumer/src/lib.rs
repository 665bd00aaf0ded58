//! Herald's consumer.
//!
//! [`Consumer::handle`] is the one function from an SQS batch to a partial batch
//! response. The Lambda binary (`herald-consumer-lambda`) and the local worker
//! (`herald-worker`) both call it; [`build`] wires it to DynamoDB, the DLQ and HTTP.

pub mod config;
pub mod delivery;
pub mod handler;
pub mod history;
pub mod outbox;
pub mod subscriptions;
pub mod worker;

use std::sync::Arc;

pub use config::{ConfigError, ConsumerConfig};
pub use handler::{Adapters, Consumer, DeliveryPolicy};

use anyhow::{bail, Context};
use delivery::HttpDeliverer;
use herald_store::{AttemptStore, SubscriptionStore};
use outbox::SqsOutbox;
use subscriptions::CachedSubscriptions;

/// Longest a single AWS call of the consumer may take, retries included; the
/// follow-up allowance in [`DeliveryPolicy::worst_case_batch_time`] rests on it.
pub const AWS_OPERATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// AWS SDK configuration from the standard environment (`AWS_ENDPOINT_URL`,
/// `AWS_REGION`, credentials), so the same code runs against the emulator,
/// LocalStack or AWS. Every call is bounded by [`AWS_OPERATION_TIMEOUT`].
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_timeout(AWS_OPERATION_TIMEOUT)
                .build(),
        )
        .load()
        .await
}

/// A consumer wired to the real adapters.
pub fn build(config: &ConsumerConfig, aws: &aws_config::SdkConfig) -> anyhow::Result<Consumer> {
    let dynamo = aws_sdk_dynamodb::Client::new(aws);
    let store = SubscriptionStore::new(dynamo.clone(), &config.subscriptions_table);
    let deliverer = HttpDeliverer::new(&config.http).context("building the HTTP client")?;
    let adapters = Adapters {
        subscriptions: Arc::new(CachedSubscriptions::new(
            store,
            config.subscription_cache_ttl,
            config.disable_after,
        )),
        deliverer: Arc::new(deliverer),
        outbox: Arc::new(SqsOutbox::new(
            aws_sdk_sqs::Client::new(aws),
            &config.events_queue_url,
            &config.dlq_url,
            config.max_queue_delay,
        )),
        history: Arc::new(AttemptStore::new(
            dynamo,
            &config.attempts_table,
            config.history_retention,
        )),
    };
    Ok(Consumer::new(adapters, config.delivery.clone()))
}

/// Checks the rule that keeps a message from being processed twice at once: the
/// events queue's visibility timeout must exceed the worst-case batch time.
pub async fn check_visibility_timeout(
    sqs: &aws_sdk_sqs::Client,
    config: &ConsumerConfig,
) -> anyhow::Result<()> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&config.events_queue_url)
        .attribute_names(QueueAttributeName::VisibilityTimeout)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))
        .context("reading the events queue's visibility timeout")?;
    let visibility: u64 = attrs
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::VisibilityTimeout))
        .and_then(|v| v.parse().ok())
        .context("the events queue reported no visibility timeout")?;
    let worst = config.delivery.worst_case_batch_time();
    if visibility <= worst.as_secs() {
        bail!(
            "the events queue's visibility timeout ({visibility} s) must exceed the worst-case batch time \
             ({} s = HERALD_BATCH_START_DEADLINE_SECS {} s + HERALD_HTTP_TIMEOUT_MS {} ms + {} s for follow-ups); \
             raise the queue's VisibilityTimeout or lower those settings",
            worst.as_secs(),
            config.delivery.start_deadline.as_secs(),
            config.http.total_timeout.as_millis(),
            handler::FOLLOW_UP_ALLOWANCE.as_secs()
        );
    }
    tracing::info!(
        visibility_s = visibility,
        worst_case_s = worst.as_secs(),
        "visibility timeout checked"
    );
    Ok(())
}

/// Runs the local worker until SIGINT or SIGTERM: checks the visibility-timeout rule,
/// then long-polls the events queue and hands each batch to the consumer, finishing
/// the batch in hand before it stops. `herald-worker` and `herald worker` both call it.
pub async fn run_worker(config: ConsumerConfig) -> anyhow::Result<()> {
    run_worker_until(config, shutdown_signal()).await
}

/// [`run_worker`], stopping when `shutdown` completes instead of on a signal (the
/// tests run workers in-process this way). The batch in hand when it completes is
/// finished first: delivered, retried or parked, its history written and its
/// messages deleted.
pub async fn run_worker_until(
    config: ConsumerConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let aws = aws_config().await;
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
    check_visibility_timeout(&sqs, &config).await?;
    let settings = worker::PollSettings {
        queue_url: config.events_queue_url.clone(),
        wait_seconds: config.worker_wait.as_secs() as i32,
        batch_size: config.worker_batch_size,
    };
    worker::run(&sqs, &consumer, &settings, shutdown).await;
    Ok(())
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutdown requested; finishing the current batch");
}

/// Logs through `tracing`: JSON lines (for Lambda and CloudWatch) or human-readable
/// text, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().with_current_span(true).init();
    } else {
        builder.init();
    }
}
