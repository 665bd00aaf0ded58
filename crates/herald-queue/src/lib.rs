//! Herald on SQS.
//!
//! - [`publisher`]: events onto the events queue (`SendMessageBatch`, retries, never
//!   drops silently);
//! - [`outbox`]: what the consumer hands back to the queues (delayed retries, dead
//!   letters);
//! - [`sqs`]: the one copy of the SQS plumbing every queue user shares: message
//!   attributes, size limits, matching batch results to entries, error reasons, and
//!   turning received messages into the event Lambda passes;
//! - [`source`]: the queue the local worker polls, behind [`MessageSource`].

pub mod outbox;
pub mod publisher;
pub mod source;
pub mod sqs;

pub use outbox::{Outbox, SqsOutbox, MAX_HOLD};

pub use publisher::{BatchSink, PublishError, Publisher, RETRY_HEADROOM};
pub use source::{MessageSource, SqsSource};
pub use sqs::{EntryResult, QueueError, MAX_BATCH_ENTRIES, MAX_DELAY, MAX_MESSAGE_BYTES};

/// The queue settings every role shares, read through the one loader.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct QueueSettings {
    /// `HERALD_EVENTS_QUEUE_URL`: published events, retries and re-driven messages go
    /// onto it; the local worker polls it.
    #[serde(deserialize_with = "herald_core::settings::text")]
    pub events_queue_url: String,
    /// `HERALD_DLQ_URL`: where dead letters are parked.
    #[serde(deserialize_with = "herald_core::settings::text")]
    pub dlq_url: String,
    /// `HERALD_ORDERED_QUEUE_URL`: the SQS FIFO queue of ordered delivery
    /// (docs/delivery.md, "Ordered delivery"): events published with an
    /// `ordering_key`, and their deliveries to ordered webhooks. Unset: no ordered
    /// delivery (publishing an `ordering_key` is refused).
    #[serde(default, deserialize_with = "herald_core::settings::optional_text")]
    pub ordered_queue_url: Option<String>,
}
