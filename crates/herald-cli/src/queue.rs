//! `herald inject` (raw messages onto the events queue) and `herald redrive` (the DLQ
//! re-driver), straight to SQS.

use herald_queue::{QueueError, MAX_BATCH_ENTRIES, MAX_MESSAGE_BYTES};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName, SendMessageBatchRequestEntry};
use clap::Args;
use futures::stream::{self, StreamExt};
use herald_redriver::{RedriveOptions, RedriveReport, Redriver};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::config::Settings;
use crate::failure::{self, failed, usage, Failure, EXIT_FAILED};
use crate::output::{self, read_input, read_stdin, stderr_is_tty};

/// Most bytes in one `SendMessageBatch` (the classic SQS limit every queue accepts).
/// Batches in flight at once.
const CONCURRENT_BATCHES: usize = 8;
/// Matching messages the text report of a re-drive lists one by one.
const MAX_ITEMS_SHOWN: usize = 50;
/// `--json` lists message ids up to this count.
const MAX_IDS_SHOWN: u64 = 100;

#[derive(Args, Debug)]
pub struct InjectArgs {
    /// The queue to send to [env: HERALD_EVENTS_QUEUE_URL].
    #[arg(long, value_name = "URL")]
    queue_url: Option<String>,
    /// The message body.
    #[arg(long, value_name = "TEXT", conflicts_with = "file")]
    body: Option<String>,
    /// Read the body from this file (`-`: standard input).
    #[arg(long, short = 'f', value_name = "PATH")]
    file: Option<PathBuf>,
    /// A message attribute, NAME=VALUE (a String) or NAME:Number=VALUE (repeatable).
    #[arg(long = "attribute", value_name = "NAME=VALUE", value_parser = parse_attribute)]
    attributes: Vec<(String, String, String)>,
    /// Delay each message this many seconds (0-900).
    #[arg(long, value_name = "SECS", default_value_t = 0, value_parser = clap::value_parser!(i32).range(0..=900))]
    delay: i32,
    /// Send the body this many times (SendMessageBatch, 10 per call).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    count: u64,
}

pub const INJECT_HELP: &str = "\
For testing the consumer: the body goes onto the queue as it is, not through the API, so
garbage, old message versions and floods can be tried. Without --body or --file the body
is read from standard input. A progress bar shows on a terminal when --count is over 1.

Examples:
  herald inject --body 'not json'                        # parked on the DLQ as undecodable
  herald inject --file event-message.json --count 500 --attribute source=loadtest
  herald inject --body \"$(cat msg.json)\" --delay 30 --attribute 'attempt:Number=3'
  cat msg.json | herald --json inject";

/// `NAME=VALUE` or `NAME:TYPE=VALUE` as (name, data type, value).
fn parse_attribute(s: &str) -> Result<(String, String, String), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=VALUE, got {s:?}"))?;
    let (name, data_type) = match name.split_once(':') {
        Some((n, t))
            if t == "String"
                || t == "Number"
                || t.starts_with("String.")
                || t.starts_with("Number.") =>
        {
            (n, t)
        }
        Some((_, t)) => {
            return Err(format!(
                "attribute type must be String or Number, not {t:?}"
            ))
        }
        None => (name, "String"),
    };
    if name.trim().is_empty() {
        return Err(format!("expected NAME=VALUE, got {s:?}"));
    }
    Ok((
        name.trim().to_owned(),
        data_type.to_owned(),
        value.to_owned(),
    ))
}

/// AWS configuration from the standard chain (`AWS_ENDPOINT_URL`, `AWS_REGION`, …),
/// every call bounded.
async fn aws() -> aws_config::SdkConfig {
    herald_runtime::aws_config().await
}

fn endpoint(aws: &aws_config::SdkConfig) -> String {
    aws.endpoint_url()
        .unwrap_or("the AWS default endpoint")
        .to_owned()
}

fn bar(len: u64, template: &str) -> ProgressBar {
    if !stderr_is_tty() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

pub async fn inject(args: InjectArgs, settings: &Settings) -> Result<()> {
    let queue_url = settings.require(
        args.queue_url.as_deref(),
        "--queue-url",
        "HERALD_EVENTS_QUEUE_URL",
    )?;
    let body = match (&args.body, &args.file) {
        (Some(b), _) => b.clone(),
        (None, Some(path)) => String::from_utf8(read_input(path)?)
            .map_err(|_| usage("the body must be UTF-8 text (SQS bodies are)"))?,
        (None, None) => String::from_utf8(read_stdin()?)
            .map_err(|_| usage("the body must be UTF-8 text (SQS bodies are)"))?,
    };
    if body.is_empty() {
        return Err(usage("the body is empty; SQS takes no empty messages"));
    }
    let mut attributes = std::collections::HashMap::new();
    for (name, data_type, value) in &args.attributes {
        attributes.insert(
            name.clone(),
            MessageAttributeValue::builder()
                .data_type(data_type)
                .string_value(value)
                .build()
                .map_err(|e| usage(format!("attribute {name}: {e}")))?,
        );
    }
    let size = body.len()
        + attributes
            .iter()
            .map(|(k, v)| k.len() + v.data_type().len() + v.string_value().map_or(0, str::len))
            .sum::<usize>();
    let per_batch = (MAX_MESSAGE_BYTES / size.max(1)).clamp(1, MAX_BATCH_ENTRIES) as u64;

    let aws = aws().await;
    let where_ = endpoint(&aws);
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let pb = if args.count > 1 {
        bar(
            args.count,
            "{spinner} injecting [{bar:30}] {pos}/{len} messages  {elapsed}, eta {eta}",
        )
    } else {
        ProgressBar::hidden()
    };

    let batches: Vec<(u64, u64)> = (0..args.count)
        .step_by(per_batch as usize)
        .map(|start| (start, per_batch.min(args.count - start)))
        .collect();
    let pb = Arc::new(pb);
    let results = stream::iter(batches)
        .map(|(start, n)| {
            let sqs = sqs.clone();
            let queue_url = queue_url.clone();
            let body = body.clone();
            let attributes = attributes.clone();
            let pb = Arc::clone(&pb);
            async move {
                let entries: Vec<_> = (0..n)
                    .map(|i| {
                        SendMessageBatchRequestEntry::builder()
                            .id(format!("m{}", start + i))
                            .message_body(&body)
                            .delay_seconds(args.delay)
                            .set_message_attributes(
                                (!attributes.is_empty()).then(|| attributes.clone()),
                            )
                            .build()
                            .expect("id and body are set")
                    })
                    .collect();
                let out = sqs
                    .send_message_batch()
                    .queue_url(&queue_url)
                    .set_entries(Some(entries))
                    .send()
                    .await;
                pb.inc(n);
                out
            }
        })
        .buffered(CONCURRENT_BATCHES)
        .collect::<Vec<_>>()
        .await;
    pb.finish_and_clear();

    let mut ids = Vec::new();
    let mut failures = Vec::new();
    for r in results {
        match r {
            Ok(out) => {
                ids.extend(out.successful().iter().map(|s| s.message_id().to_owned()));
                failures.extend(out.failed().iter().map(|f| {
                    json!({"code": f.code(), "message": f.message(), "sender_fault": f.sender_fault()})
                }));
            }
            Err(e) if ids.is_empty() && failures.is_empty() => {
                return Err(failure::sqs("SendMessageBatch", &where_, e));
            }
            Err(e) => failures.push(json!({"code": "request_failed",
                    "message": aws_sdk_sqs::error::DisplayErrorContext(&e).to_string()})),
        }
    }
    let sent = ids.len() as u64;
    if settings.json {
        let mut doc = json!({
            "queue_url": queue_url, "sent": sent, "failed": failures.len(),
            "failures": failures.iter().take(10).collect::<Vec<_>>(),
            "delay_seconds": args.delay,
        });
        if args.count <= MAX_IDS_SHOWN {
            doc["message_ids"] = json!(ids);
        }
        output::json(&doc);
    } else {
        println!(
            "injected {sent} message{} onto {queue_url}{}",
            if sent == 1 { "" } else { "s" },
            if args.delay > 0 {
                format!(" (delayed {} s)", args.delay)
            } else {
                String::new()
            }
        );
        if sent == 1 {
            println!("  message id: {}", ids[0]);
        }
        if !failures.is_empty() {
            println!("{} messages were NOT sent; first reasons:", failures.len());
            for f in failures.iter().take(5) {
                println!("  {}: {}", f["code"], f["message"]);
            }
        }
    }
    if failures.is_empty() {
        Ok(())
    } else if settings.json {
        Err(Failure::Reported(EXIT_FAILED).into())
    } else {
        Err(failed(format!(
            "{} of {} messages were not sent",
            failures.len(),
            args.count
        )))
    }
}

#[derive(Args, Debug)]
pub struct RedriveArgs {
    /// The dead-letter queue to move messages from [env: HERALD_DLQ_URL].
    #[arg(long, value_name = "URL")]
    dlq_url: Option<String>,
    /// The queue to move them to [env: HERALD_EVENTS_QUEUE_URL].
    #[arg(long, value_name = "URL")]
    queue_url: Option<String>,
    #[command(flatten)]
    flags: herald_redriver::RedriveFlags,
}

pub const REDRIVE_HELP: &str = "\
Moves parked deliveries from the dead-letter queue back onto the events queue (the
re-driver library, also run by the re-driver Lambda). A failed delivery goes back as a fresh first attempt
with the same webhook-id; anything else goes back as it was; an undecodable body that
was cut when parked stays. Messages are sent before they are deleted, so a crash can
duplicate one but never lose one. Exits 1 when some matching messages could not be
moved. A progress bar shows on a terminal.

Examples:
  herald redrive --dry-run
  herald redrive --subscription sub_0190ab... --older-than 1h
  herald redrive --app shop --event-type invoice.paid --max 500 --rate 20
  herald --json redrive --dry-run | jq '.items[].reason'";

impl RedriveArgs {
    fn options(&self) -> RedriveOptions {
        self.flags.options()
    }
}

/// Visible messages on a queue (approximate).
async fn visible(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<u64, QueueError> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .map_err(|e| QueueError::sdk("GetQueueAttributes", &e))?;
    Ok(out
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::ApproximateNumberOfMessages))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

pub async fn redrive(args: RedriveArgs, settings: &Settings) -> Result<()> {
    let dlq = settings.require(args.dlq_url.as_deref(), "--dlq-url", "HERALD_DLQ_URL")?;
    let target = settings.require(
        args.queue_url.as_deref(),
        "--queue-url",
        "HERALD_EVENTS_QUEUE_URL",
    )?;
    let aws = aws().await;
    let where_ = endpoint(&aws);
    let sqs = aws_sdk_sqs::Client::new(&aws);
    // Checks that the DLQ can be reached (a clear exit code when not) and sizes the bar.
    let depth = sqs
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .map_err(|e| failure::sqs("reading the dead-letter queue", &where_, e))?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::ApproximateNumberOfMessages))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    if !settings.json {
        eprintln!(
            "{} {dlq}: about {depth} message{} parked",
            if args.flags.dry_run {
                "examining (dry run)"
            } else {
                "re-driving"
            },
            if depth == 1 { "" } else { "s" }
        );
    }

    // The library reports at the end; meanwhile the bar follows the DLQ's visible count,
    // which falls as the run receives (and moves or holds) messages.
    let pb = bar(
        depth,
        "{spinner} examined ~{pos}/{len} parked messages [{bar:30}] {elapsed}",
    );
    let watcher = {
        let sqs = sqs.clone();
        let dlq = dlq.clone();
        let pb = pb.clone();
        tokio::spawn(async move {
            if pb.is_hidden() {
                return;
            }
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if let Ok(now) = visible(&sqs, &dlq).await {
                    pb.set_position(depth.saturating_sub(now));
                }
            }
        })
    };
    let redriver = Redriver::new(sqs, &dlq, &target);
    let result = redriver.run(&args.options()).await;
    watcher.abort();
    pb.finish_and_clear();
    let report = match result {
        Ok(r) => r,
        Err(herald_redriver::RedriveError::InvalidOptions(m)) => return Err(usage(m)),
        Err(e) => return Err(failed(format!("re-drive failed: {e}"))),
    };
    if settings.json {
        output::json(&report);
    } else {
        print!("{}", human(&report));
    }
    if report.is_complete() {
        Ok(())
    } else {
        Err(failed(format!(
            "{} sends and {} deletes failed; see the report",
            report.send_failed.len(),
            report.delete_failed.len()
        )))
    }
}

/// The report as text: a summary, every matching message, and what did not go to plan.
fn human(report: &RedriveReport) -> String {
    format!(
        "{}{}{}",
        report.summary(),
        report.item_lines(MAX_ITEMS_SHOWN),
        report.leftovers()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_take_a_type() {
        assert_eq!(
            parse_attribute("source=test").unwrap(),
            ("source".into(), "String".into(), "test".into())
        );
        assert_eq!(
            parse_attribute("n:Number=3").unwrap(),
            ("n".into(), "Number".into(), "3".into())
        );
        assert_eq!(
            parse_attribute("eq=a=b").unwrap(),
            ("eq".into(), "String".into(), "a=b".into())
        );
        assert!(parse_attribute("x:Binary=1").is_err());
        assert!(parse_attribute("novalue").is_err());
    }

    #[test]
    fn a_dry_run_report_lists_what_would_move() {
        let report = RedriveReport {
            examined: 2,
            matched: 1,
            dry_run: true,
            items: vec![herald_redriver::ReportItem {
                message_id: "m1".into(),
                kind: herald_redriver::Kind::Failed,
                outcome: herald_redriver::Outcome::WouldMove,
                app_id: Some("shop".into()),
                subscription_id: Some("sub_1".into()),
                event_type: Some("update".into()),
                event_id: Some("evt_1".into()),
                parked_at: None,
                reason: Some("all 8 attempts failed".into()),
            }],
            ..RedriveReport::default()
        };
        let text = human(&report);
        assert!(text.contains("Dry run"), "{text}");
        assert!(text.contains("would move 1"), "{text}");
        assert!(
            text.contains("parked because: all 8 attempts failed"),
            "{text}"
        );
    }
}
