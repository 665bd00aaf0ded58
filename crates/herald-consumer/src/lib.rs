//! Herald's consumer.
//!
//! [`Consumer::handle`] is the one function from an SQS batch to a partial batch
//! response. The Lambda binary (`herald-consumer-lambda`) and the local worker
//! (`herald worker`) both call it; [`build`] wires it to DynamoDB, the DLQ and HTTP.
//! With the `testing` feature, the `testing` module holds in-memory fakes of its adapters.

pub mod config;
pub mod handler;
pub mod history;
pub mod metrics;
pub mod subscriptions;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod worker;

use std::sync::Arc;

pub use config::{ConsumerConfig, ConsumerSettings};
pub use handler::{Adapters, BatchError, Consumer, DeliveryPolicy};
pub use herald_runtime::ConfigError;

use anyhow::Context;
use herald_core::settings::format_duration;
use herald_delivery::HttpDeliverer;
use herald_queue::SqsOutbox;
use herald_store::{HistoryStore, SubscriptionStore};
use subscriptions::CachedSubscriptions;

/// A consumer wired to the real adapters.
pub fn build(config: &ConsumerConfig, aws: &aws_config::SdkConfig) -> anyhow::Result<Consumer> {
    let dynamo = aws_sdk_dynamodb::Client::new(aws);
    let sealer = herald_seal::Sealer::connect(&config.seal, aws)
        .context("the master key of webhook secrets")?;
    let store = SubscriptionStore::new(dynamo.clone(), &config.subscriptions_table, sealer);
    let deliverer = HttpDeliverer::new(&config.http).context("building the HTTP client")?;
    let adapters = Adapters {
        subscriptions: Arc::new(CachedSubscriptions::new(
            store,
            config.subscription_cache_ttl,
            config.disable_after,
        )),
        deliverer: Arc::new(deliverer),
        outbox: Arc::new(
            SqsOutbox::new(
                aws_sdk_sqs::Client::new(aws),
                &config.events_queue_url,
                &config.dlq_url,
                config.max_queue_delay,
            )
            .with_ordered_queue(config.ordered_queue_url.clone()),
        ),
        history: Arc::new(HistoryStore::new(
            dynamo,
            &config.history_table,
            config.history_retention,
        )),
    };
    let consumer = Consumer::new(adapters, config.delivery.clone());
    Ok(
        match metrics::Metrics::new(&config.metrics, metrics::stdout_sink()) {
            Some(m) => consumer.with_metrics(m),
            None => consumer,
        },
    )
}

/// The events queue's visibility timeout does not exceed the worst-case batch time:
/// a setting to change, not a failure to retry.
#[derive(Debug, thiserror::Error)]
#[error(
    "the events queue's visibility timeout ({visibility_secs} s) must exceed the worst-case batch time \
     ({} s = HERALD_BATCH_START_DEADLINE {} + HERALD_HTTP_TIMEOUT {} + {} for follow-ups); \
     raise the queue's VisibilityTimeout or lower those settings",
    worst_case.as_secs(),
    format_duration(*start_deadline),
    format_duration(*http_timeout),
    format_duration(handler::FOLLOW_UP_ALLOWANCE)
)]
pub struct VisibilityTooShort {
    /// The queue's visibility timeout.
    pub visibility_secs: u64,
    /// The longest a batch can take.
    pub worst_case: std::time::Duration,
    /// `HERALD_BATCH_START_DEADLINE`.
    pub start_deadline: std::time::Duration,
    /// `HERALD_HTTP_TIMEOUT`.
    pub http_timeout: std::time::Duration,
}

/// What the consumer needs to know of the events queue, read at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventsQueue {
    /// Its visibility timeout, in seconds.
    pub visibility_secs: u64,
    /// Its maximum message size, in bytes (`MaximumMessageSize`), for
    /// [`Consumer::with_max_message_bytes`].
    pub max_message_bytes: usize,
}

/// Reads the events queue's visibility timeout and maximum message size, and checks
/// the rule that keeps a message from being processed twice at once: the visibility
/// timeout must exceed the worst-case batch time.
pub async fn check_events_queue(
    sqs: &aws_sdk_sqs::Client,
    config: &ConsumerConfig,
) -> anyhow::Result<EventsQueue> {
    check_queue(sqs, &config.events_queue_url, config).await
}

/// As [`check_events_queue`], for the queue at `url` (the ordered queue's batches
/// are bound by the same rule).
pub async fn check_queue(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    config: &ConsumerConfig,
) -> anyhow::Result<EventsQueue> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::VisibilityTimeout)
        .attribute_names(QueueAttributeName::MaximumMessageSize)
        .send()
        .await
        .map_err(|e| herald_queue::QueueError::sdk("GetQueueAttributes", &e))
        .context("reading the events queue's visibility timeout and maximum message size")?;
    let attribute = |name: QueueAttributeName| {
        attrs
            .attributes()
            .and_then(|a| a.get(&name))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let visibility = attribute(QueueAttributeName::VisibilityTimeout)
        .context("the events queue reported no visibility timeout")?;
    let max_message_bytes = attribute(QueueAttributeName::MaximumMessageSize)
        .context("the events queue reported no maximum message size")?
        as usize;
    let worst = config.delivery.worst_case_batch_time();
    if visibility <= worst.as_secs() {
        return Err(VisibilityTooShort {
            visibility_secs: visibility,
            worst_case: worst,
            start_deadline: config.delivery.start_deadline,
            http_timeout: config.http.total_timeout,
        }
        .into());
    }
    tracing::info!(
        visibility_s = visibility,
        worst_case_s = worst.as_secs(),
        max_message_bytes,
        "events queue checked"
    );
    Ok(EventsQueue {
        visibility_secs: visibility,
        max_message_bytes,
    })
}

/// Runs the local worker until `shutdown` completes (`herald worker` passes SIGINT or
/// SIGTERM, `herald dev` its stop flag): checks the visibility-timeout
/// rule, then long-polls the events queue and hands each batch to the consumer, several
/// batches at once ([`worker::run`]), finishing the batches in hand before it stops.
pub async fn run_worker_until(
    config: ConsumerConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let aws = herald_runtime::aws_config().await;
    let consumer = build(&config, &aws)?;
    // Long polls outlast the usual 5-second operation timeout: the poller gets its
    // own client whose calls may take the wait plus a margin.
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&aws)
            .timeout_config(herald_runtime::operation_timeout(
                config.worker_wait + std::time::Duration::from_secs(10),
            ))
            .build(),
    );
    let queue = check_events_queue(&sqs, &config).await?;
    let consumer = Arc::new(consumer.with_max_message_bytes(queue.max_message_bytes));
    let settings = worker::PollSettings::of(&config);
    let queue: Arc<dyn herald_queue::MessageSource> = Arc::new(herald_queue::SqsSource::new(
        sqs.clone(),
        config.events_queue_url.clone(),
    ));
    let Some(ordered_url) = &config.ordered_queue_url else {
        worker::run(&queue, &consumer, &settings, shutdown).await;
        return Ok(());
    };
    // The ordered queue too, as its own event source mapping does on AWS: batches of
    // at most 10 (a FIFO queue's limit), no batching window. One batch at a time: the
    // local emulator (moto) decides which message groups are in flight when a long
    // poll starts, so a poll waiting beside a batch in hand could take the next
    // message of that batch's group; SQS itself never hands out a group's messages
    // while one is in flight.
    check_queue(&sqs, ordered_url, &config).await?;
    let ordered_queue: Arc<dyn herald_queue::MessageSource> =
        Arc::new(herald_queue::SqsSource::new(sqs, ordered_url.clone()));
    let ordered = worker::PollSettings {
        batch_size: settings.batch_size.min(10),
        batch_window: std::time::Duration::ZERO,
        batches_in_flight: 1,
        ..settings.clone()
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let both = futures::future::join(
        worker::run(&queue, &consumer, &settings, until_stopped(stopped.clone())),
        worker::run(&ordered_queue, &consumer, &ordered, until_stopped(stopped)),
    );
    tokio::pin!(both);
    tokio::select! {
        _ = &mut both => {}
        () = shutdown => {
            let _ = stop.send(true);
            both.await;
        }
    }
    Ok(())
}
