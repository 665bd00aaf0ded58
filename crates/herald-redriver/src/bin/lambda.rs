//! The re-driver on AWS Lambda: invoke it with a JSON payload such as
//! `{"dry_run": true, "app_id": "shop", "older_than_secs": 3600}` (every field is
//! optional; `{}` moves everything) and it answers with the re-drive report. The queue
//! URLs come from `HERALD_DLQ_URL` and `HERALD_EVENTS_QUEUE_URL`.
//!
//! Unknown payload fields are refused: a misspelt filter must not turn into a re-drive
//! of the whole DLQ.

use herald_runtime::Load;
use std::sync::Arc;

use herald_redriver::{Filter, RedriveOptions, RedriveReport, Redriver, RedriverConfig};
use lambda_runtime::{service_fn, LambdaEvent};
use serde::Deserialize;

/// What an invocation asks for.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
struct Payload {
    dry_run: bool,
    app_id: Option<String>,
    subscription_id: Option<String>,
    event_type: Option<String>,
    older_than_secs: Option<u32>,
    newer_than_secs: Option<u32>,
    max_messages: Option<usize>,
    rate_per_sec: Option<f64>,
}

impl Payload {
    fn options(self) -> RedriveOptions {
        let secs = |s: Option<u32>| s.map(|s| chrono::Duration::seconds(i64::from(s)));
        let defaults = RedriveOptions::default();
        RedriveOptions {
            filter: Filter {
                app_id: self.app_id,
                subscription_id: self.subscription_id,
                event_type: self.event_type,
                older_than: secs(self.older_than_secs),
                newer_than: secs(self.newer_than_secs),
            },
            dry_run: self.dry_run,
            max_messages: self.max_messages,
            max_examined: None,
            rate_per_sec: self.rate_per_sec.unwrap_or(defaults.rate_per_sec),
            visibility_timeout_secs: defaults.visibility_timeout_secs,
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    herald_runtime::init_tracing(true);
    let config = RedriverConfig::from_env()?;
    let aws = herald_runtime::aws_config().await;
    let redriver = Arc::new(Redriver::new(
        aws_sdk_sqs::Client::new(&aws),
        config.queues.dlq_url,
        config.queues.events_queue_url,
    ));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Option<Payload>>| {
        let redriver = Arc::clone(&redriver);
        async move {
            let opts = event.payload.unwrap_or_default().options();
            tracing::info!(?opts, "re-drive requested");
            let report: RedriveReport = redriver.run(&opts).await?;
            Ok::<RedriveReport, lambda_runtime::Error>(report)
        }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_default_and_map_to_options() {
        let empty: Payload = serde_json::from_str("{}").unwrap();
        assert_eq!(empty.options(), RedriveOptions::default());
        let none: Option<Payload> = serde_json::from_str("null").unwrap();
        assert_eq!(none, None);

        let p: Payload = serde_json::from_str(
            r#"{"dry_run": true, "app_id": "shop", "subscription_id": "sub_1",
                "event_type": "update", "older_than_secs": 3600, "newer_than_secs": 60,
                "max_messages": 5, "rate_per_sec": 2}"#,
        )
        .unwrap();
        let opts = p.options();
        assert!(opts.dry_run);
        assert_eq!(opts.filter.app_id.as_deref(), Some("shop"));
        assert_eq!(opts.filter.subscription_id.as_deref(), Some("sub_1"));
        assert_eq!(opts.filter.event_type.as_deref(), Some("update"));
        assert_eq!(opts.filter.older_than, Some(chrono::Duration::hours(1)));
        assert_eq!(opts.filter.newer_than, Some(chrono::Duration::minutes(1)));
        assert_eq!(opts.max_messages, Some(5));
        assert_eq!(opts.rate_per_sec, 2.0);
    }

    #[test]
    fn misspelt_fields_are_refused() {
        assert!(serde_json::from_str::<Payload>(r#"{"app": "shop"}"#).is_err());
    }
}
