//! What every Herald binary does at start, in one place: the AWS configuration with
//! bounded calls, logging, and the shutdown signal. The consumer and API Lambdas, the
//! re-driver Lambda, `herald` and the bench all start through here.

pub mod config;

use std::time::Duration;

pub use config::{ConfigError, Load, Sources, Validate};

/// Longest a single AWS call may take, retries included; the consumer's follow-up
/// allowance (`DeliveryPolicy::worst_case_batch_time`) rests on it.
pub const AWS_OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// AWS SDK configuration from the standard environment (`AWS_ENDPOINT_URL`,
/// `AWS_REGION`, credentials), so the same code runs against the emulator,
/// LocalStack or AWS. Every call is bounded by [`AWS_OPERATION_TIMEOUT`].
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(operation_timeout(AWS_OPERATION_TIMEOUT))
        .load()
        .await
}

/// A timeout configuration bounding every call at `timeout`, for clients whose calls
/// legitimately take longer than [`AWS_OPERATION_TIMEOUT`] (long polls).
pub fn operation_timeout(timeout: Duration) -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .operation_timeout(timeout)
        .build()
}

/// Logs through `tracing`: JSON lines (for Lambda and CloudWatch) or human-readable
/// text, filtered by `RUST_LOG` (default `info`). Safe to call more than once: only
/// the first call installs a subscriber.
pub fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().with_current_span(true).try_init()
    } else {
        builder.try_init()
    };
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutdown requested; finishing the work in hand");
}
