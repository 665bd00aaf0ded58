//! Moves messages from Herald's dead-letter queue (DLQ) back onto the events queue.
//!
//! A run receives the DLQ ten messages at a time, classifies each body, applies a
//! [`Filter`], and re-sends what matches to the target queue:
//!
//! * a [`DeadLetter::Failed`] delivery goes back as a fresh
//!   [`QueueMessage::Delivery`]: attempt 1, due now, with the reason it was parked in
//!   `last_result`;
//! * a [`DeadLetter::Undecodable`] goes back as its original body, unless that body
//!   was cut when it was parked: such a message cannot be restored and stays on the
//!   DLQ (reported in [`RedriveReport::skipped_unmovable`]);
//! * anything else (typically a raw queue message SQS moved itself after
//!   `maxReceiveCount` receives, or garbage) goes back as it is, with its message
//!   attributes.
//!
//! # Never losing a message
//!
//! Each message is sent to the target queue *before* it is deleted from the DLQ, and
//! only entries whose send succeeded are deleted. A failed send leaves the message on
//! the DLQ (reported in [`RedriveReport::send_failed`]). The price is that a crash, or
//! a failed delete, between the send and the delete leaves the message on both queues,
//! so it can be delivered twice; receivers dedupe on the `webhook-id` header, which is
//! stable per event and subscription.
//!
//! Messages received but not moved (they did not match, the run is a dry run, they
//! cannot be moved, or their send failed) are made visible again at the end of the run
//! with `ChangeMessageVisibility(0)`. Until then they are held in flight for at most
//! [`RedriveOptions::visibility_timeout_secs`]: a run over a DLQ so large that it
//! outlasts that timeout sees held messages come back, and stops there (it never
//! handles a message twice). The re-driver only uses the basic SQS API
//! (receive, send, delete, change visibility), not `StartMessageMoveTask`.

#![warn(missing_docs)]

pub mod settings;
pub use settings::RedriverConfig;

use std::collections::{HashMap, HashSet};
use std::time::Duration as StdDuration;

use aws_sdk_sqs::error::ProvideErrorMetadata;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    MessageAttributeValue, MessageSystemAttributeName, SendMessageBatchRequestEntry,
};
use chrono::{DateTime, Utc};
use herald_core::{DeadLetter, DeliveryTask, QueueMessage};
use serde::Serialize;
use tokio::time::Instant;

/// Most entries SQS takes in one batch call, and most messages one receive returns.
pub const MAX_BATCH_ENTRIES: usize = 10;
/// Default ceiling on messages sent per second.
pub const DEFAULT_RATE_PER_SEC: f64 = 50.0;
/// Default time, in seconds, received messages stay hidden from other consumers.
pub const DEFAULT_VISIBILITY_TIMEOUT_SECS: i32 = 60;

/// The re-drive flags, shared by `herald-redrive` and `herald redrive`.
#[derive(clap::Args, Debug, Clone)]
pub struct RedriveFlags {
    /// Report what would move; move and delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Only events of this app.
    #[arg(long, value_name = "APP_ID")]
    pub app: Option<String>,
    /// Only deliveries to this webhook (subscription).
    #[arg(long, value_name = "SUBSCRIPTION_ID")]
    pub subscription: Option<String>,
    /// Only events of this type.
    #[arg(long, value_name = "TYPE")]
    pub event_type: Option<String>,
    /// Only messages parked at least this long ago (s, m, h or d: 90s, 30m, 1h, 2d).
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    pub older_than: Option<chrono::Duration>,
    /// Only messages parked at most this long ago (s, m, h or d).
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    pub newer_than: Option<chrono::Duration>,
    /// Stop after this many matching messages.
    #[arg(long, value_name = "N")]
    pub max: Option<usize>,
    /// Send at most this many messages per second.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_RATE_PER_SEC)]
    pub rate: f64,
    /// Seconds the run holds received messages before they show again on their own.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_VISIBILITY_TIMEOUT_SECS)]
    pub visibility_timeout: i32,
}

impl RedriveFlags {
    /// The library options these flags ask for.
    pub fn options(&self) -> RedriveOptions {
        RedriveOptions {
            filter: Filter {
                app_id: self.app.clone(),
                subscription_id: self.subscription.clone(),
                event_type: self.event_type.clone(),
                older_than: self.older_than,
                newer_than: self.newer_than,
            },
            dry_run: self.dry_run,
            max_messages: self.max,
            rate_per_sec: self.rate,
            visibility_timeout_secs: self.visibility_timeout,
        }
    }
}
/// Most bytes (bodies and attributes) put in one `SendMessageBatch` call: the classic
/// SQS limit, which every queue accepts.
const MAX_BATCH_BYTES: usize = 262_144;
/// Most message attributes SQS accepts on one message.
const MAX_MESSAGE_ATTRIBUTES: usize = 10;
/// Longest visibility timeout SQS accepts (12 hours).
const MAX_VISIBILITY_TIMEOUT_SECS: i32 = 43_200;

/// Why a re-drive failed as a whole. Failures of single messages are reported in the
/// [`RedriveReport`] instead.
#[derive(Debug, thiserror::Error)]
pub enum RedriveError {
    /// The options make no sense (a rate that is not positive, a visibility timeout
    /// outside what SQS accepts, ...).
    #[error("invalid re-drive options: {0}")]
    InvalidOptions(String),
    /// A duration that is not a number followed by `s`, `m`, `h` or `d`.
    #[error("bad duration {0:?}: expected a number with a unit s, m, h or d, such as 30m or 1h")]
    BadDuration(String),
    /// Receiving from the DLQ failed. Messages moved before the failure stay moved;
    /// messages held by the run were made visible again (best effort).
    #[error("receiving from the dead-letter queue failed after moving {moved} messages: {reason}")]
    Receive {
        /// Messages moved before the failure.
        moved: usize,
        /// What SQS (or the connection) said.
        reason: String,
    },
}

/// Parses an age such as `90s`, `30m`, `1h` or `2d` (plain numbers are seconds).
pub fn parse_age(s: &str) -> Result<chrono::Duration, RedriveError> {
    let bad = || RedriveError::BadDuration(s.to_owned());
    let std = herald_core::retry::parse_duration(s).map_err(|_| bad())?;
    chrono::Duration::from_std(std).map_err(|_| bad())
}

/// Which dead letters a run moves. Every criterion set must hold; a criterion about
/// something that cannot be known for a message (an app for garbage, say) does not
/// hold, so a filtered run never moves what it cannot identify.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// Only events of this app (tenant).
    pub app_id: Option<String>,
    /// Only deliveries to this subscription.
    pub subscription_id: Option<String>,
    /// Only events of this type.
    pub event_type: Option<String>,
    /// Only messages parked (or, when the body does not say, sent) at least this long ago.
    pub older_than: Option<chrono::Duration>,
    /// Only messages parked (or sent) at most this long ago.
    pub newer_than: Option<chrono::Duration>,
}

impl Filter {
    /// Whether no criterion is set (everything matches).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Whether a message with these facts matches, at time `now`.
    pub fn matches(&self, facts: &Facts, now: DateTime<Utc>) -> bool {
        fn same(want: &Option<String>, have: &Option<String>) -> bool {
            match want {
                None => true,
                Some(want) => have.as_deref() == Some(want.as_str()),
            }
        }
        if !same(&self.app_id, &facts.app_id)
            || !same(&self.subscription_id, &facts.subscription_id)
            || !same(&self.event_type, &facts.event_type)
        {
            return false;
        }
        if self.older_than.is_none() && self.newer_than.is_none() {
            return true;
        }
        let Some(at) = facts.timestamp else {
            return false;
        };
        let age = now - at;
        self.older_than.is_none_or(|d| age >= d) && self.newer_than.is_none_or(|d| age <= d)
    }
}

/// How a run behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct RedriveOptions {
    /// Which messages to move.
    pub filter: Filter,
    /// Report what would move, and move (and delete) nothing.
    pub dry_run: bool,
    /// Stop once this many messages have matched.
    pub max_messages: Option<usize>,
    /// Ceiling on messages sent per second; the run sleeps to stay under it.
    pub rate_per_sec: f64,
    /// How long received messages stay hidden while the run holds them, in seconds.
    pub visibility_timeout_secs: i32,
}

impl Default for RedriveOptions {
    fn default() -> Self {
        Self {
            filter: Filter::default(),
            dry_run: false,
            max_messages: None,
            rate_per_sec: DEFAULT_RATE_PER_SEC,
            visibility_timeout_secs: DEFAULT_VISIBILITY_TIMEOUT_SECS,
        }
    }
}

impl RedriveOptions {
    fn validate(&self) -> Result<(), RedriveError> {
        if !(self.rate_per_sec.is_finite() && self.rate_per_sec > 0.0) {
            return Err(RedriveError::InvalidOptions(format!(
                "the rate must be a positive number of messages per second, not {}",
                self.rate_per_sec
            )));
        }
        if !(1..=MAX_VISIBILITY_TIMEOUT_SECS).contains(&self.visibility_timeout_secs) {
            return Err(RedriveError::InvalidOptions(format!(
                "the visibility timeout must be 1 to {MAX_VISIBILITY_TIMEOUT_SECS} seconds, not {}",
                self.visibility_timeout_secs
            )));
        }
        Ok(())
    }
}

/// What a DLQ message turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A [`DeadLetter::Failed`] delivery.
    Failed,
    /// A [`DeadLetter::Undecodable`] message.
    Undecodable,
    /// A raw [`QueueMessage`], typically moved by SQS after `maxReceiveCount` receives.
    QueueMessage,
    /// Anything else.
    Unrecognized,
}

/// What happened to a matching message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Sent to the target queue and deleted from the DLQ.
    Moved,
    /// Dry run: it would have been moved.
    WouldMove,
    /// It cannot be moved; it stays on the DLQ.
    Unmovable,
    /// The send failed; it stays on the DLQ.
    SendFailed,
}

impl Outcome {
    /// The outcome in words, for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WouldMove => "would move",
            Self::Unmovable => "unmovable",
            Self::Moved => "moved",
            Self::SendFailed => "send failed",
        }
    }
}

/// What can be known about a DLQ message, for filtering and for the attributes it
/// is sent with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// The event's app (tenant).
    pub app_id: Option<String>,
    /// The delivery's subscription.
    pub subscription_id: Option<String>,
    /// The event's type.
    pub event_type: Option<String>,
    /// The event's id.
    pub event_id: Option<String>,
    /// When the message was parked, else when it was sent to the DLQ.
    pub timestamp: Option<DateTime<Utc>>,
}

impl Facts {
    fn of_queue_message(msg: &QueueMessage) -> Self {
        let (event, subscription_id) = match msg {
            QueueMessage::Event { event } => (event, None),
            QueueMessage::Delivery { delivery } => {
                (&delivery.event, Some(delivery.subscription_id.to_string()))
            }
        };
        Self {
            app_id: Some(event.app_id.to_string()),
            subscription_id,
            event_type: Some(event.event_type.to_string()),
            event_id: Some(event.id.to_string()),
            timestamp: None,
        }
    }

    /// Fills what the body did not tell from the message attributes (`app_id`,
    /// `subscription_id`, `event_type`, `event_id`) and, for the time, the SQS
    /// `SentTimestamp` system attribute (milliseconds since the epoch).
    pub fn fill_from_attributes(
        &mut self,
        attributes: &HashMap<String, MessageAttributeValue>,
        sent_timestamp: Option<&str>,
    ) {
        let get = |name: &str| {
            attributes
                .get(name)
                .and_then(|v| v.string_value())
                .map(str::to_owned)
        };
        self.app_id = self.app_id.take().or_else(|| get("app_id"));
        self.subscription_id = self
            .subscription_id
            .take()
            .or_else(|| get("subscription_id"));
        self.event_type = self.event_type.take().or_else(|| get("event_type"));
        self.event_id = self.event_id.take().or_else(|| get("event_id"));
        self.timestamp = self.timestamp.or_else(|| {
            sent_timestamp
                .and_then(|s| s.parse::<i64>().ok())
                .and_then(DateTime::from_timestamp_millis)
        });
    }
}

/// What to do with a DLQ message, should it match.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Send this body to the target queue.
    Move {
        /// The body to send.
        body: String,
        /// Whether the DLQ message's own attributes go with it.
        copy_attributes: bool,
    },
    /// Leave it on the DLQ, for this reason.
    Unmovable {
        /// Why it cannot be moved.
        why: String,
    },
}

/// A DLQ message body, classified.
#[derive(Debug, Clone, PartialEq)]
pub struct Classified {
    /// What the body is.
    pub kind: Kind,
    /// What moving it means.
    pub plan: Plan,
    /// What the body tells about it.
    pub facts: Facts,
    /// Why it was parked, when the body says.
    pub reason: Option<String>,
}

/// Classifies a DLQ message body; `now` stamps the fresh schedule of a failed delivery.
pub fn classify(body: &str, now: DateTime<Utc>) -> Classified {
    match DeadLetter::decode(body) {
        Ok(DeadLetter::Failed {
            reason,
            delivery,
            parked_at,
            ..
        }) => {
            let mut facts = Facts::of_queue_message(&QueueMessage::Delivery {
                delivery: delivery.clone(),
            });
            facts.timestamp = Some(parked_at);
            let fresh = QueueMessage::Delivery {
                delivery: DeliveryTask {
                    event: delivery.event,
                    subscription_id: delivery.subscription_id,
                    attempt: 1,
                    first_attempt_at: now,
                    not_before: now,
                    last_result: Some(format!("re-driven from the DLQ after: {reason}")),
                },
            };
            Classified {
                kind: Kind::Failed,
                plan: Plan::Move {
                    body: fresh.encode(),
                    copy_attributes: false,
                },
                facts,
                reason: Some(reason),
            }
        }
        Ok(DeadLetter::Undecodable {
            reason,
            body,
            body_truncated,
            parked_at,
            ..
        }) => {
            let mut facts = QueueMessage::decode(&body)
                .map(|m| Facts::of_queue_message(&m))
                .unwrap_or_default();
            facts.timestamp = Some(parked_at);
            let plan = if body_truncated {
                Plan::Unmovable {
                    why: format!(
                        "the original body was cut to its first {} bytes when it was parked, so it cannot be restored",
                        body.len()
                    ),
                }
            } else {
                Plan::Move {
                    body,
                    copy_attributes: false,
                }
            };
            Classified {
                kind: Kind::Undecodable,
                plan,
                facts,
                reason: Some(reason),
            }
        }
        Err(_) => {
            let (kind, facts) = match QueueMessage::decode(body) {
                Ok(msg) => (Kind::QueueMessage, Facts::of_queue_message(&msg)),
                Err(_) => (Kind::Unrecognized, Facts::default()),
            };
            Classified {
                kind,
                plan: Plan::Move {
                    body: body.to_owned(),
                    copy_attributes: true,
                },
                facts,
                reason: None,
            }
        }
    }
}

/// A short reason for a failed SQS call: the service's error code and message when it
/// answered, the whole error chain otherwise (timeouts, connection failures).
fn sdk_reason<E, R>(e: &aws_sdk_sqs::error::SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match (e.code(), e.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => aws_sdk_sqs::error::DisplayErrorContext(e).to_string(),
    }
}

fn string_attribute(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("data type is set")
}

/// The message attributes a moved message is sent with: `app_id`, `event_type`,
/// `event_id` and `subscription_id` when known, then (for messages that go back as
/// they are) the DLQ message's own attributes, up to the SQS limit of ten.
pub fn outgoing_attributes(
    facts: &Facts,
    copied: Option<&HashMap<String, MessageAttributeValue>>,
) -> HashMap<String, MessageAttributeValue> {
    let mut out: HashMap<String, MessageAttributeValue> = [
        ("app_id", &facts.app_id),
        ("event_type", &facts.event_type),
        ("event_id", &facts.event_id),
        ("subscription_id", &facts.subscription_id),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.as_deref().map(|v| (k.to_owned(), string_attribute(v))))
    .collect();
    if let Some(copied) = copied {
        let mut names: Vec<&String> = copied.keys().collect();
        names.sort();
        for name in names {
            if out.len() >= MAX_MESSAGE_ATTRIBUTES {
                break;
            }
            out.entry(name.clone())
                .or_insert_with(|| copied[name].clone());
        }
    }
    out
}

/// Bytes SQS counts for a message: body, attribute names, types and values.
fn message_size(body: &str, attributes: &HashMap<String, MessageAttributeValue>) -> usize {
    body.len()
        + attributes
            .iter()
            .map(|(name, v)| {
                name.len()
                    + v.data_type().len()
                    + v.string_value().map_or(0, str::len)
                    + v.binary_value().map_or(0, |b| b.as_ref().len())
            })
            .sum::<usize>()
}

/// One matching message of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportItem {
    /// Its SQS message id on the DLQ.
    pub message_id: String,
    /// What it is.
    pub kind: Kind,
    /// What happened to it.
    pub outcome: Outcome,
    /// The event's app, when known.
    pub app_id: Option<String>,
    /// The delivery's subscription, when known.
    pub subscription_id: Option<String>,
    /// The event's type, when known.
    pub event_type: Option<String>,
    /// Why it was parked, when known.
    pub reason: Option<String>,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RedriveReport {
    /// Messages received from the DLQ and looked at.
    pub examined: usize,
    /// Of those, messages the filter matched.
    pub matched: usize,
    /// Messages sent to the target queue (and deleted from the DLQ, except those in
    /// `delete_failed`). Always 0 in a dry run.
    pub moved: usize,
    /// Matching messages that cannot be moved, left on the DLQ: (message id, why).
    pub skipped_unmovable: Vec<(String, String)>,
    /// Matching messages whose send failed, left on the DLQ: (message id, why).
    pub send_failed: Vec<(String, String)>,
    /// Moved messages whose delete from the DLQ failed, so they are on both queues and
    /// will show up on the DLQ again: (message id, why).
    pub delete_failed: Vec<(String, String)>,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Every matching message, with what happened to it.
    pub items: Vec<ReportItem>,
}

impl RedriveReport {
    /// Whether every matching message that could move did (or, in a dry run, would).
    pub fn is_complete(&self) -> bool {
        self.send_failed.is_empty() && self.delete_failed.is_empty()
    }

    /// The summary: whether it was a dry run, and the counts.
    pub fn summary(&self) -> String {
        let unmovable = self.skipped_unmovable.len();
        if self.dry_run {
            let would = self
                .items
                .iter()
                .filter(|i| i.outcome == Outcome::WouldMove)
                .count();
            format!(
                "Dry run: nothing was moved or deleted.\nexamined {}, matched {}: would move {would}, unmovable {unmovable}\n",
                self.examined, self.matched
            )
        } else {
            format!(
                "examined {}, matched {}: moved {}, unmovable {unmovable}, send failed {}, delete failed {}\n",
                self.examined,
                self.matched,
                self.moved,
                self.send_failed.len(),
                self.delete_failed.len()
            )
        }
    }

    /// One line per matching message (at most `max`), and a note of how many more.
    pub fn item_lines(&self, max: usize) -> String {
        let mut out = String::new();
        for item in self.items.iter().take(max) {
            let kind = serde_json::to_value(item.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            out.push_str(&format!(
                "  {:<11}  {}  {kind:<13}  app={}  webhook={}  type={}",
                item.outcome.as_str(),
                item.message_id,
                item.app_id.as_deref().unwrap_or("?"),
                item.subscription_id.as_deref().unwrap_or("?"),
                item.event_type.as_deref().unwrap_or("?"),
            ));
            if let Some(reason) = &item.reason {
                out.push_str(&format!("  parked because: {reason}"));
            }
            out.push('\n');
        }
        if self.items.len() > max {
            out.push_str(&format!(
                "  … and {} more (--json lists them all)\n",
                self.items.len() - max
            ));
        }
        out
    }

    /// The messages left behind and why, one line each under a heading per cause
    /// (empty when nothing was left behind).
    pub fn leftovers(&self) -> String {
        let mut out = String::new();
        for (title, list) in [
            ("left on the DLQ, cannot be moved", &self.skipped_unmovable),
            ("left on the DLQ, send failed", &self.send_failed),
            (
                "sent but not deleted from the DLQ (will show up there again)",
                &self.delete_failed,
            ),
        ] {
            if !list.is_empty() {
                out.push_str(&format!("{title}:\n"));
                for (id, why) in list {
                    out.push_str(&format!("  {id}: {why}\n"));
                }
            }
        }
        out
    }
}

/// Sends at most `rate` messages per second, in batches of at most
/// [`Pacer::batch_size`] entries.
#[derive(Debug)]
struct Pacer {
    per_message: StdDuration,
    batch_size: usize,
    next: Option<Instant>,
}

impl Pacer {
    fn new(rate_per_sec: f64) -> Self {
        Self {
            per_message: StdDuration::from_secs_f64(1.0 / rate_per_sec),
            batch_size: batch_size(rate_per_sec),
            next: None,
        }
    }

    /// Waits until `n` messages may be sent.
    async fn wait(&mut self, n: usize) {
        let now = Instant::now();
        let start = match self.next {
            Some(next) if next > now => {
                tokio::time::sleep_until(next).await;
                next
            }
            _ => now,
        };
        self.next = Some(start + self.per_message * u32::try_from(n).unwrap_or(u32::MAX));
    }
}

/// Entries per send at a given rate: never more than one second's worth, so no second
/// sees more than the rate; at least one.
fn batch_size(rate_per_sec: f64) -> usize {
    (rate_per_sec.floor() as usize).clamp(1, MAX_BATCH_ENTRIES)
}

/// A matching message waiting to be sent.
struct Pending {
    message_id: String,
    receipt_handle: String,
    body: String,
    attributes: HashMap<String, MessageAttributeValue>,
    item: ReportItem,
}

/// Moves messages from a dead-letter queue to a target queue.
#[derive(Debug, Clone)]
pub struct Redriver {
    sqs: aws_sdk_sqs::Client,
    dlq_url: String,
    target_queue_url: String,
}

impl Redriver {
    /// A re-driver from `dlq_url` to `target_queue_url` (normally the events queue).
    pub fn new(
        sqs: aws_sdk_sqs::Client,
        dlq_url: impl Into<String>,
        target_queue_url: impl Into<String>,
    ) -> Self {
        Self {
            sqs,
            dlq_url: dlq_url.into(),
            target_queue_url: target_queue_url.into(),
        }
    }

    /// Runs one re-drive. See the crate documentation for what it guarantees.
    pub async fn run(&self, opts: &RedriveOptions) -> Result<RedriveReport, RedriveError> {
        opts.validate()?;
        let mut report = RedriveReport {
            dry_run: opts.dry_run,
            ..RedriveReport::default()
        };
        let mut pacer = Pacer::new(opts.rate_per_sec);
        let mut seen: HashSet<String> = HashSet::new();
        // Received messages to make visible again at the end: id -> latest receipt handle.
        let mut held: HashMap<String, String> = HashMap::new();
        let limit_reached =
            |report: &RedriveReport| opts.max_messages.is_some_and(|max| report.matched >= max);

        while !limit_reached(&report) {
            let received = self
                .sqs
                .receive_message()
                .queue_url(&self.dlq_url)
                .max_number_of_messages(MAX_BATCH_ENTRIES as i32)
                .wait_time_seconds(1)
                .visibility_timeout(opts.visibility_timeout_secs)
                .message_attribute_names("All")
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await;
            let messages = match received {
                Ok(out) => out.messages.unwrap_or_default(),
                Err(e) => {
                    let reason = sdk_reason(&e);
                    self.release(&held).await;
                    return Err(RedriveError::Receive {
                        moved: report.moved,
                        reason,
                    });
                }
            };
            if messages.is_empty() {
                break;
            }
            let mut fresh = Vec::with_capacity(messages.len());
            for m in messages {
                let (Some(id), Some(handle)) = (m.message_id.clone(), m.receipt_handle.clone())
                else {
                    continue;
                };
                if seen.contains(&id) {
                    // Its visibility ran out and it came back: keep the newest handle,
                    // which is the one SQS honours.
                    if let Some(h) = held.get_mut(&id) {
                        *h = handle;
                    }
                } else {
                    seen.insert(id.clone());
                    fresh.push((id, handle, m));
                }
            }
            if fresh.is_empty() {
                tracing::info!("the DLQ only returned messages already seen; stopping");
                break;
            }

            let now = Utc::now();
            let mut pending = Vec::new();
            for (id, handle, m) in fresh {
                if limit_reached(&report) {
                    held.insert(id, handle);
                    continue;
                }
                report.examined += 1;
                let Some(p) = self.examine(id, handle, &m, opts, now, &mut report, &mut held)
                else {
                    continue;
                };
                pending.push(p);
            }
            self.move_all(pending, &mut pacer, &mut report, &mut held)
                .await;
        }
        self.release(&held).await;
        tracing::info!(
            examined = report.examined,
            matched = report.matched,
            moved = report.moved,
            unmovable = report.skipped_unmovable.len(),
            send_failed = report.send_failed.len(),
            delete_failed = report.delete_failed.len(),
            dry_run = report.dry_run,
            "re-drive done"
        );
        Ok(report)
    }

    /// Classifies and filters one message; returns it when it is to be sent now,
    /// otherwise records it (in the report and/or as held).
    #[allow(clippy::too_many_arguments)]
    fn examine(
        &self,
        id: String,
        handle: String,
        m: &Message,
        opts: &RedriveOptions,
        now: DateTime<Utc>,
        report: &mut RedriveReport,
        held: &mut HashMap<String, String>,
    ) -> Option<Pending> {
        let empty = HashMap::new();
        let dlq_attributes = m.message_attributes.as_ref().unwrap_or(&empty);
        let classified = classify(m.body.as_deref().unwrap_or_default(), now);
        let mut facts = classified.facts;
        facts.fill_from_attributes(
            dlq_attributes,
            m.attributes
                .as_ref()
                .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
                .map(String::as_str),
        );
        if !opts.filter.matches(&facts, now) {
            held.insert(id, handle);
            return None;
        }
        report.matched += 1;
        let mut item = ReportItem {
            message_id: id.clone(),
            kind: classified.kind,
            outcome: Outcome::WouldMove,
            app_id: facts.app_id.clone(),
            subscription_id: facts.subscription_id.clone(),
            event_type: facts.event_type.clone(),
            reason: classified.reason.or_else(|| {
                dlq_attributes
                    .get("herald_reason")
                    .and_then(|v| v.string_value())
                    .map(str::to_owned)
            }),
        };
        match classified.plan {
            Plan::Unmovable { why } => {
                item.outcome = Outcome::Unmovable;
                report.skipped_unmovable.push((id.clone(), why));
                report.items.push(item);
                held.insert(id, handle);
                None
            }
            Plan::Move { .. } if opts.dry_run => {
                report.items.push(item);
                held.insert(id, handle);
                None
            }
            Plan::Move {
                body,
                copy_attributes,
            } => {
                let attributes =
                    outgoing_attributes(&facts, copy_attributes.then_some(dlq_attributes));
                Some(Pending {
                    message_id: id,
                    receipt_handle: handle,
                    body,
                    attributes,
                    item,
                })
            }
        }
    }

    /// Sends the pending messages in paced batches, then deletes from the DLQ those
    /// whose send succeeded.
    async fn move_all(
        &self,
        pending: Vec<Pending>,
        pacer: &mut Pacer,
        report: &mut RedriveReport,
        held: &mut HashMap<String, String>,
    ) {
        let mut batch: Vec<Pending> = Vec::new();
        let mut bytes = 0;
        for p in pending {
            let size = message_size(&p.body, &p.attributes);
            if !batch.is_empty()
                && (batch.len() == pacer.batch_size || bytes + size > MAX_BATCH_BYTES)
            {
                self.move_batch(std::mem::take(&mut batch), pacer, report, held)
                    .await;
                bytes = 0;
            }
            bytes += size;
            batch.push(p);
        }
        if !batch.is_empty() {
            self.move_batch(batch, pacer, report, held).await;
        }
    }

    async fn move_batch(
        &self,
        batch: Vec<Pending>,
        pacer: &mut Pacer,
        report: &mut RedriveReport,
        held: &mut HashMap<String, String>,
    ) {
        pacer.wait(batch.len()).await;
        let entries = batch
            .iter()
            .enumerate()
            .map(|(i, p)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(&p.body)
                    .set_message_attributes(
                        (!p.attributes.is_empty()).then(|| p.attributes.clone()),
                    )
                    .build()
                    .expect("id and body are set")
            })
            .collect::<Vec<_>>();
        let mut sent = vec![false; batch.len()];
        let mut failures: HashMap<usize, String> = HashMap::new();
        match self
            .sqs
            .send_message_batch()
            .queue_url(&self.target_queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Err(e) => {
                let why = sdk_reason(&e);
                tracing::warn!(error = %why, "SendMessageBatch to the target queue failed");
                failures.extend((0..batch.len()).map(|i| (i, why.clone())));
            }
            Ok(out) => {
                for ok in out.successful() {
                    if let Some(s) = ok.id().parse::<usize>().ok().and_then(|i| sent.get_mut(i)) {
                        *s = true;
                    }
                }
                for bad in out.failed() {
                    if let Ok(i) = bad.id().parse::<usize>() {
                        failures.insert(
                            i,
                            format!("{}: {}", bad.code(), bad.message().unwrap_or("no message")),
                        );
                    }
                }
            }
        }

        let mut to_delete = Vec::new();
        for (i, mut p) in batch.into_iter().enumerate() {
            if sent[i] {
                report.moved += 1;
                p.item.outcome = Outcome::Moved;
                report.items.push(p.item);
                to_delete.push((p.message_id, p.receipt_handle));
            } else {
                let why = failures
                    .remove(&i)
                    .unwrap_or_else(|| "SQS did not report this entry as sent".to_owned());
                tracing::warn!(message_id = %p.message_id, reason = %why, "send failed; the message stays on the DLQ");
                p.item.outcome = Outcome::SendFailed;
                report.items.push(p.item);
                report.send_failed.push((p.message_id.clone(), why));
                held.insert(p.message_id, p.receipt_handle);
            }
        }
        if !to_delete.is_empty() {
            self.delete(to_delete, report).await;
        }
    }

    /// Deletes sent messages from the DLQ (at most ten).
    async fn delete(&self, sent: Vec<(String, String)>, report: &mut RedriveReport) {
        let entries = sent
            .iter()
            .enumerate()
            .map(|(i, (_, handle))| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(handle)
                    .build()
                    .expect("id and receipt handle are set")
            })
            .collect::<Vec<_>>();
        let mut deleted = vec![false; sent.len()];
        let mut failures: HashMap<usize, String> = HashMap::new();
        match self
            .sqs
            .delete_message_batch()
            .queue_url(&self.dlq_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Err(e) => {
                let why = sdk_reason(&e);
                failures.extend((0..sent.len()).map(|i| (i, why.clone())));
            }
            Ok(out) => {
                for ok in out.successful() {
                    if let Some(d) = ok
                        .id()
                        .parse::<usize>()
                        .ok()
                        .and_then(|i| deleted.get_mut(i))
                    {
                        *d = true;
                    }
                }
                for bad in out.failed() {
                    if let Ok(i) = bad.id().parse::<usize>() {
                        failures.insert(
                            i,
                            format!("{}: {}", bad.code(), bad.message().unwrap_or("no message")),
                        );
                    }
                }
            }
        }
        for (i, (id, _)) in sent.into_iter().enumerate() {
            if !deleted[i] {
                let why = failures
                    .remove(&i)
                    .unwrap_or_else(|| "SQS did not report this entry as deleted".to_owned());
                tracing::warn!(message_id = %id, reason = %why, "sent, but not deleted from the DLQ: it will be there again (a duplicate)");
                report.delete_failed.push((id, why));
            }
        }
    }

    /// Makes held messages visible again at once (best effort: a message this fails
    /// for becomes visible when its visibility timeout runs out).
    async fn release(&self, held: &HashMap<String, String>) {
        let handles: Vec<&String> = held.values().collect();
        for chunk in handles.chunks(MAX_BATCH_ENTRIES) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, handle)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(handle.as_str())
                        .visibility_timeout(0)
                        .build()
                        .expect("id and receipt handle are set")
                })
                .collect::<Vec<_>>();
            match self
                .sqs
                .change_message_visibility_batch()
                .queue_url(&self.dlq_url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Err(e) => tracing::warn!(
                    error = %sdk_reason(&e),
                    "could not make held DLQ messages visible again; they will be when their visibility timeout runs out"
                ),
                Ok(out) => {
                    for bad in out.failed() {
                        tracing::warn!(
                            code = bad.code(),
                            message = bad.message().unwrap_or_default(),
                            "could not make a held DLQ message visible again"
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::{AppId, Event, EventType, ObjectType, SubscriptionId};

    fn event(app: &str, ty: &str) -> Event {
        Event::new(
            AppId::parse(app).unwrap(),
            EventType::parse(ty).unwrap(),
            ObjectType::parse("user").unwrap(),
            serde_json::json!({"id": "42"}),
        )
    }

    fn failed_letter(app: &str, sub: &str, parked_at: DateTime<Utc>) -> DeadLetter {
        let mut delivery = DeliveryTask::first(event(app, "update"), SubscriptionId::new(sub));
        delivery.attempt = 8;
        delivery.last_result = Some("HTTP 500".into());
        DeadLetter::Failed {
            reason: "all 8 attempts failed".into(),
            delivery,
            attempts: 8,
            last_status: Some(500),
            last_error: None,
            parked_at,
        }
    }

    fn facts(app: Option<&str>, sub: Option<&str>, ty: Option<&str>) -> Facts {
        Facts {
            app_id: app.map(Into::into),
            subscription_id: sub.map(Into::into),
            event_type: ty.map(Into::into),
            event_id: None,
            timestamp: None,
        }
    }

    #[test]
    fn a_failed_delivery_goes_back_as_a_fresh_first_attempt() {
        let parked = Utc::now() - chrono::Duration::hours(2);
        let letter = failed_letter("a", "sub_1", parked);
        let now = Utc::now();
        let c = classify(&letter.encode(), now);
        assert_eq!(c.kind, Kind::Failed);
        assert_eq!(c.reason.as_deref(), Some("all 8 attempts failed"));
        assert_eq!(c.facts.app_id.as_deref(), Some("a"));
        assert_eq!(c.facts.subscription_id.as_deref(), Some("sub_1"));
        assert_eq!(c.facts.event_type.as_deref(), Some("update"));
        assert!(c.facts.event_id.as_deref().unwrap().starts_with("evt_"));
        assert_eq!(c.facts.timestamp, Some(parked));
        let Plan::Move {
            body,
            copy_attributes,
        } = c.plan
        else {
            panic!("a failed delivery is movable")
        };
        assert!(!copy_attributes);
        let QueueMessage::Delivery { delivery } = QueueMessage::decode(&body).unwrap() else {
            panic!("a delivery message")
        };
        let DeadLetter::Failed { delivery: old, .. } = letter else {
            unreachable!()
        };
        assert_eq!(delivery.attempt, 1);
        assert_eq!(delivery.first_attempt_at, now);
        assert_eq!(delivery.not_before, now);
        assert_eq!(delivery.event, old.event);
        assert_eq!(delivery.subscription_id, old.subscription_id);
        assert_eq!(
            delivery.last_result.as_deref(),
            Some("re-driven from the DLQ after: all 8 attempts failed")
        );
    }

    #[test]
    fn an_undecodable_letter_goes_back_as_its_original_body_unless_it_was_cut() {
        let letter = DeadLetter::undecodable("not json", "expected value", Some("m1".into()));
        let c = classify(&letter.encode(), Utc::now());
        assert_eq!(c.kind, Kind::Undecodable);
        assert_eq!(c.reason.as_deref(), Some("expected value"));
        assert_eq!(
            c.plan,
            Plan::Move {
                body: "not json".into(),
                copy_attributes: false
            }
        );
        assert!(c.facts.timestamp.is_some());
        assert_eq!(c.facts.app_id, None);

        let huge = "x".repeat(herald_core::message::DEAD_LETTER_BODY_CAP + 1);
        let cut = DeadLetter::undecodable(&huge, "too big", None);
        let c = classify(&cut.encode(), Utc::now());
        assert_eq!(c.kind, Kind::Undecodable);
        let Plan::Unmovable { why } = c.plan else {
            panic!("a cut body cannot be restored")
        };
        assert!(why.contains("cut"), "{why}");
    }

    #[test]
    fn an_undecodable_letter_whose_body_decodes_tells_its_event() {
        let body = QueueMessage::Event {
            event: event("shop", "create"),
        }
        .encode();
        let c = classify(
            &DeadLetter::undecodable(&body, "old consumer", None).encode(),
            Utc::now(),
        );
        assert_eq!(c.facts.app_id.as_deref(), Some("shop"));
        assert_eq!(c.facts.event_type.as_deref(), Some("create"));
        assert_eq!(
            c.plan,
            Plan::Move {
                body,
                copy_attributes: false
            }
        );
    }

    #[test]
    fn raw_queue_messages_and_garbage_go_back_as_they_are_with_their_attributes() {
        let delivery = QueueMessage::Delivery {
            delivery: DeliveryTask::first(event("a", "invoice.paid"), SubscriptionId::new("s")),
        }
        .encode();
        let c = classify(&delivery, Utc::now());
        assert_eq!(c.kind, Kind::QueueMessage);
        assert_eq!(c.facts.subscription_id.as_deref(), Some("s"));
        assert_eq!(c.facts.event_type.as_deref(), Some("invoice.paid"));
        assert_eq!(c.facts.timestamp, None);
        assert_eq!(c.reason, None);
        assert_eq!(
            c.plan,
            Plan::Move {
                body: delivery,
                copy_attributes: true
            }
        );

        for garbage in ["", "not json", "{}", r#"{"kind":"failed"}"#, "☃"] {
            let c = classify(garbage, Utc::now());
            assert_eq!(c.kind, Kind::Unrecognized, "{garbage}");
            assert_eq!(c.facts, Facts::default());
            assert_eq!(
                c.plan,
                Plan::Move {
                    body: garbage.into(),
                    copy_attributes: true
                }
            );
        }
    }

    #[test]
    fn attributes_fill_only_what_the_body_did_not_tell() {
        let attrs: HashMap<String, MessageAttributeValue> = [
            ("app_id", "from-attr"),
            ("subscription_id", "sub_attr"),
            ("event_type", "delete"),
            ("event_id", "evt_attr"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), string_attribute(v)))
        .collect();
        let mut f = facts(Some("body-app"), None, None);
        f.fill_from_attributes(&attrs, Some("1700000000123"));
        assert_eq!(f.app_id.as_deref(), Some("body-app"));
        assert_eq!(f.subscription_id.as_deref(), Some("sub_attr"));
        assert_eq!(f.event_type.as_deref(), Some("delete"));
        assert_eq!(f.event_id.as_deref(), Some("evt_attr"));
        assert_eq!(
            f.timestamp,
            DateTime::from_timestamp_millis(1_700_000_000_123)
        );

        let parked = Utc::now();
        let mut f = Facts {
            timestamp: Some(parked),
            ..Facts::default()
        };
        f.fill_from_attributes(&HashMap::new(), Some("1700000000123"));
        assert_eq!(
            f.timestamp,
            Some(parked),
            "parked_at wins over SentTimestamp"
        );
        let mut f = Facts::default();
        f.fill_from_attributes(&HashMap::new(), Some("garbage"));
        assert_eq!(f, Facts::default());
    }

    #[test]
    fn filters_match_on_what_is_known_and_never_on_what_is_not() {
        let now = Utc::now();
        let known = facts(Some("a"), Some("sub_1"), Some("update"));
        let unknown = Facts::default();
        assert!(Filter::default().is_empty());
        assert!(Filter::default().matches(&known, now));
        assert!(Filter::default().matches(&unknown, now));

        let app = |a: &str| Filter {
            app_id: Some(a.into()),
            ..Filter::default()
        };
        assert!(!app("a").is_empty());
        assert!(app("a").matches(&known, now));
        assert!(!app("b").matches(&known, now));
        assert!(!app("a").matches(&unknown, now));

        let sub = Filter {
            subscription_id: Some("sub_1".into()),
            ..Filter::default()
        };
        assert!(sub.matches(&known, now));
        assert!(!sub.matches(&facts(Some("a"), Some("sub_2"), Some("update")), now));
        assert!(!sub.matches(&facts(Some("a"), None, Some("update")), now));

        let all = Filter {
            app_id: Some("a".into()),
            subscription_id: Some("sub_1".into()),
            event_type: Some("update".into()),
            ..Filter::default()
        };
        assert!(all.matches(&known, now));
        assert!(!all.matches(&facts(Some("a"), Some("sub_1"), Some("create")), now));
    }

    #[test]
    fn age_filters_use_the_timestamp_and_skip_messages_without_one() {
        let now = Utc::now();
        let aged = |mins: i64| Facts {
            timestamp: Some(now - chrono::Duration::minutes(mins)),
            ..Facts::default()
        };
        let older = Filter {
            older_than: Some(chrono::Duration::hours(1)),
            ..Filter::default()
        };
        assert!(older.matches(&aged(61), now));
        assert!(older.matches(&aged(60), now));
        assert!(!older.matches(&aged(59), now));
        assert!(!older.matches(&Facts::default(), now));

        let newer = Filter {
            newer_than: Some(chrono::Duration::minutes(30)),
            ..Filter::default()
        };
        assert!(newer.matches(&aged(29), now));
        assert!(!newer.matches(&aged(31), now));
        assert!(!newer.matches(&Facts::default(), now));

        let window = Filter {
            older_than: Some(chrono::Duration::hours(1)),
            newer_than: Some(chrono::Duration::hours(2)),
            ..Filter::default()
        };
        assert!(window.matches(&aged(90), now));
        assert!(!window.matches(&aged(30), now));
        assert!(!window.matches(&aged(150), now));
    }

    #[test]
    fn ages_parse_with_units() {
        assert_eq!(parse_age("45s").unwrap(), chrono::Duration::seconds(45));
        assert_eq!(parse_age("45").unwrap(), chrono::Duration::seconds(45));
        assert_eq!(parse_age("30m").unwrap(), chrono::Duration::minutes(30));
        assert_eq!(parse_age("1h").unwrap(), chrono::Duration::hours(1));
        assert_eq!(parse_age(" 2d ").unwrap(), chrono::Duration::days(2));
        for bad in ["", "h", "1w", "-1h", "1.5h", "1 h", "99999999999999999999d"] {
            let err = parse_age(bad).unwrap_err();
            assert!(matches!(err, RedriveError::BadDuration(_)), "{bad}");
        }
    }

    #[test]
    fn outgoing_attributes_put_the_known_facts_first_and_stay_within_ten() {
        let known = Facts {
            event_id: Some("evt_1".into()),
            ..facts(Some("a"), Some("sub_1"), Some("update"))
        };
        let out = outgoing_attributes(&known, None);
        assert_eq!(out.len(), 4);
        assert_eq!(out["app_id"].string_value(), Some("a"));
        assert_eq!(out["subscription_id"].string_value(), Some("sub_1"));
        assert_eq!(out["event_type"].string_value(), Some("update"));
        assert_eq!(out["event_id"].string_value(), Some("evt_1"));
        assert_eq!(out["app_id"].data_type(), "String");

        let copied: HashMap<String, MessageAttributeValue> = (0..10)
            .map(|i| (format!("custom_{i}"), string_attribute("v")))
            .chain([("app_id".to_owned(), string_attribute("stale"))])
            .collect();
        let out = outgoing_attributes(&known, Some(&copied));
        assert_eq!(out.len(), 10);
        assert_eq!(out["app_id"].string_value(), Some("a"), "known facts win");
        assert!(out.contains_key("custom_0"));

        let out = outgoing_attributes(&Facts::default(), Some(&copied));
        assert_eq!(out.len(), 10);
        assert_eq!(outgoing_attributes(&Facts::default(), None).len(), 0);
    }

    #[test]
    fn batches_never_hold_more_than_a_second_of_sends() {
        assert_eq!(batch_size(50.0), 10);
        assert_eq!(batch_size(10.0), 10);
        assert_eq!(batch_size(3.7), 3);
        assert_eq!(batch_size(0.2), 1);
    }

    #[tokio::test]
    async fn the_pacer_keeps_sends_under_the_rate() {
        let mut pacer = Pacer::new(20.0);
        let start = Instant::now();
        for _ in 0..3 {
            pacer.wait(5).await;
        }
        // 15 messages at 20/s: the 3rd batch of 5 may go after 0.5 s, not before.
        let elapsed = Instant::now() - start;
        assert!(elapsed >= StdDuration::from_millis(500), "{elapsed:?}");
        assert!(elapsed < StdDuration::from_millis(900), "{elapsed:?}");
    }

    #[test]
    fn options_are_validated() {
        assert!(RedriveOptions::default().validate().is_ok());
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let opts = RedriveOptions {
                rate_per_sec: rate,
                ..RedriveOptions::default()
            };
            assert!(opts.validate().is_err(), "{rate}");
        }
        for secs in [0, -1, 43_201] {
            let opts = RedriveOptions {
                visibility_timeout_secs: secs,
                ..RedriveOptions::default()
            };
            assert!(opts.validate().is_err(), "{secs}");
        }
    }

    #[test]
    fn reports_serialize_for_the_json_output() {
        let report = RedriveReport {
            examined: 2,
            matched: 1,
            skipped_unmovable: vec![("m1".into(), "cut".into())],
            items: vec![ReportItem {
                message_id: "m1".into(),
                kind: Kind::Undecodable,
                outcome: Outcome::Unmovable,
                app_id: None,
                subscription_id: None,
                event_type: None,
                reason: Some("too big".into()),
            }],
            ..RedriveReport::default()
        };
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["skipped_unmovable"][0][1], "cut");
        assert_eq!(json["items"][0]["kind"], "undecodable");
        assert_eq!(json["items"][0]["outcome"], "unmovable");
        assert!(report.is_complete());
    }
}
