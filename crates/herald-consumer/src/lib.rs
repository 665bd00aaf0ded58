//! Herald's consumer.
//!
//! [`Consumer::handle`] is the one function from an SQS batch to a partial batch
//! response. The Lambda binary (`herald-consumer-lambda`) and the local worker
//! (`herald-worker`) both call it; [`build`] wires it to DynamoDB, the DLQ and HTTP.

pub mod config;
pub mod dead_letters;
pub mod delivery;
pub mod handler;
pub mod subscriptions;
pub mod worker;

use std::sync::Arc;

pub use config::{ConfigError, ConsumerConfig};
pub use handler::Consumer;

use dead_letters::SqsDeadLetters;
use delivery::HttpDeliverer;
use herald_store::SubscriptionStore;
use subscriptions::CachedSubscriptions;

/// AWS SDK configuration from the standard environment (`AWS_ENDPOINT_URL`,
/// `AWS_REGION`, credentials), so the same code runs against the emulator,
/// LocalStack or AWS.
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await
}

/// A consumer wired to the real adapters.
pub fn build(config: &ConsumerConfig, aws: &aws_config::SdkConfig) -> anyhow::Result<Consumer> {
    let store = SubscriptionStore::new(
        aws_sdk_dynamodb::Client::new(aws),
        &config.subscriptions_table,
    );
    let deliverer = HttpDeliverer::new(&config.http)
        .map_err(|e| anyhow::anyhow!("building the HTTP client: {e}"))?;
    Ok(Consumer::new(
        Arc::new(CachedSubscriptions::new(
            store,
            config.subscription_cache_ttl,
        )),
        Arc::new(deliverer),
        Arc::new(SqsDeadLetters::new(
            aws_sdk_sqs::Client::new(aws),
            &config.dlq_url,
        )),
        config.delivery_concurrency,
    ))
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
