//! What every Herald binary does at start, in one place: the AWS configuration with
//! bounded calls, logging, and the shutdown signal. The consumer and API Lambdas, the
//! re-driver Lambda, `herald` and the bench all start through here.

pub mod config;
pub mod http_client;
mod json_log;
mod sdk_http;

use std::time::Duration;

pub use config::{ConfigError, Load, Sources, Validate};
pub use json_log::JsonLines;
pub use sdk_http::SdkHttpClient;
use tracing_subscriber::filter::Targets;

/// Longest a single AWS call may take, retries included; the consumer's follow-up
/// allowance (`DeliveryPolicy::worst_case_batch_time`) rests on it.
pub const AWS_OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// AWS SDK configuration from the standard environment (`AWS_ENDPOINT_URL`,
/// `AWS_REGION`, credentials), so the same code runs against the emulator,
/// LocalStack or AWS. Every call is bounded by [`AWS_OPERATION_TIMEOUT`].
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_loader()
        .timeout_config(operation_timeout(AWS_OPERATION_TIMEOUT))
        .load()
        .await
}

/// The AWS SDK's configuration loader with Herald's HTTP client ([`SdkHttpClient`]):
/// the SDK's calls go through reqwest on rustls and *ring*, the HTTP/1.1 client and
/// TLS stack the deliveries use already, instead of the SDK's default on aws-lc-rs
/// and hyper's HTTP/2 client. One HTTP and crypto stack per binary keeps the Lambda
/// packages small. Every SDK configuration in Herald starts here.
pub fn aws_loader() -> aws_config::ConfigLoader {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(SdkHttpClient::default())
}

/// A timeout configuration bounding every call at `timeout`, for clients whose calls
/// legitimately take longer than [`AWS_OPERATION_TIMEOUT`] (long polls).
pub fn operation_timeout(timeout: Duration) -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .operation_timeout(timeout)
        .build()
}

/// Logs through `tracing`: JSON lines (for Lambda and CloudWatch) or human-readable
/// text, filtered by `RUST_LOG` (default `info`) in the targets syntax: a level, and
/// `target=level` pairs such as `warn,herald_consumer=debug`. A JSON line carries the
/// fields of the span it was written in once (not the list of every enclosing span
/// as well). Safe to call more than once: only the first call installs a subscriber.
pub fn init_tracing(json: bool) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let wanted = std::env::var("RUST_LOG").ok();
    let parsed = wanted.as_deref().map(str::parse::<Targets>);
    let filter = match &parsed {
        Some(Ok(targets)) => targets.clone(),
        _ => Targets::new().with_default(tracing::Level::INFO),
    };
    let layer = if json {
        json_log_layer(std::io::stderr).boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed()
    };
    let installed = tracing_subscriber::registry()
        .with(layer.with_filter(filter))
        .try_init()
        .is_ok();
    if let (true, Some(Err(e))) = (installed, parsed) {
        tracing::warn!(rust_log = wanted.as_deref().unwrap_or_default(), error = %e, "RUST_LOG not understood; logging at info");
    }
}

/// The JSON log lines of [`init_tracing`] (Lambda, CloudWatch), written to `writer`:
/// one object per event with the fields of the span it was written in, once
/// ([`JsonLines`]).
pub fn json_log_layer<S, W>(
    writer: W,
) -> tracing_subscriber::fmt::Layer<S, tracing_subscriber::fmt::format::JsonFields, JsonLines, W>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + 'static,
{
    tracing_subscriber::fmt::layer()
        .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
        .event_format(JsonLines)
        .with_writer(writer)
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
