//! Publishes events onto Herald's SQS events queue.
//!
//! Events go out with `SendMessageBatch`, up to 10 entries and the queue's size limit
//! per call. Entries that a call reports as failed are retried with backoff; any entry
//! that still fails comes back to the caller in [`PublishError::Failed`], so no event
//! is ever dropped silently. An event larger than the queue accepts is refused up front
//! with [`PublishError::TooLarge`], naming the limit.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName, SendMessageBatchRequestEntry};
use aws_sdk_sqs::Client;
use herald_core::{Event, EventId, QueueMessage};

/// Most entries SQS takes in one `SendMessageBatch` call.
pub const MAX_BATCH_ENTRIES: usize = 10;
/// The SQS message size limit assumed when the queue does not report its own.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 262_144;
/// Attempts per entry (the first send plus retries) before it is reported as failed.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// Why publishing failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(
        "event {event_id} is {size} bytes on the queue, over the queue's limit of {limit} bytes"
    )]
    TooLarge {
        event_id: EventId,
        size: usize,
        limit: usize,
    },
    #[error("{} of {} events were not published: {}", failed.len(), failed.len() + published.len(), summary(failed))]
    Failed {
        /// Events that reached the queue.
        published: Vec<EventId>,
        /// Events that did not, with the last reason SQS gave.
        failed: Vec<(EventId, String)>,
    },
    #[error("could not read the events queue's attributes: {0}")]
    QueueAttributes(String),
}

fn summary(failed: &[(EventId, String)]) -> String {
    failed
        .iter()
        .take(3)
        .map(|(id, why)| format!("{id}: {why}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Sends events to the events queue.
#[derive(Clone)]
pub struct Publisher {
    client: Client,
    queue_url: String,
    max_message_bytes: usize,
    max_attempts: u32,
}

impl Publisher {
    /// A publisher that assumes the classic 256 KiB SQS limit.
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }

    /// A publisher that reads the queue's own `MaximumMessageSize` (up to 1 MiB on AWS).
    pub async fn connect(
        client: Client,
        queue_url: impl Into<String>,
    ) -> Result<Self, PublishError> {
        let mut publisher = Self::new(client, queue_url);
        let attrs = publisher
            .client
            .get_queue_attributes()
            .queue_url(&publisher.queue_url)
            .attribute_names(QueueAttributeName::MaximumMessageSize)
            .send()
            .await
            .map_err(|e| {
                PublishError::QueueAttributes(
                    aws_sdk_sqs::error::DisplayErrorContext(e).to_string(),
                )
            })?;
        if let Some(size) = attrs
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::MaximumMessageSize))
            .and_then(|s| s.parse().ok())
        {
            publisher.max_message_bytes = size;
        }
        Ok(publisher)
    }

    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The largest queue message this publisher accepts, in bytes.
    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    /// Publishes one event.
    pub async fn publish(&self, event: &Event) -> Result<EventId, PublishError> {
        self.publish_all(std::slice::from_ref(event))
            .await
            .map(|mut ids| ids.remove(0))
    }

    /// Publishes events and returns their ids in order. Either every event reached the
    /// queue, or the error lists exactly which did and which did not.
    pub async fn publish_all(&self, events: &[Event]) -> Result<Vec<EventId>, PublishError> {
        let mut encoded = Vec::with_capacity(events.len());
        for event in events {
            let body = QueueMessage::Event {
                event: event.clone(),
            }
            .encode();
            let size = body.len() + attributes_size(event);
            if size > self.max_message_bytes {
                return Err(PublishError::TooLarge {
                    event_id: event.id.clone(),
                    size,
                    limit: self.max_message_bytes,
                });
            }
            encoded.push((event, body, size));
        }

        let mut published = Vec::with_capacity(events.len());
        let mut failed = Vec::new();
        for batch in self.batches(&encoded) {
            let (ok, bad) = self.send_batch(batch).await;
            published.extend(ok);
            failed.extend(bad);
        }
        if failed.is_empty() {
            Ok(events.iter().map(|e| e.id.clone()).collect())
        } else {
            Err(PublishError::Failed { published, failed })
        }
    }

    /// Groups entries into batches of at most 10 whose total size stays within the limit.
    fn batches<'a>(
        &self,
        encoded: &'a [(&'a Event, String, usize)],
    ) -> Vec<&'a [(&'a Event, String, usize)]> {
        let mut out = Vec::new();
        let mut start = 0;
        let mut bytes = 0;
        for (i, (_, _, size)) in encoded.iter().enumerate() {
            if i - start == MAX_BATCH_ENTRIES || bytes + size > self.max_message_bytes {
                out.push(&encoded[start..i]);
                start = i;
                bytes = 0;
            }
            bytes += size;
        }
        if start < encoded.len() {
            out.push(&encoded[start..]);
        }
        out
    }

    /// Sends one batch, retrying the entries SQS reports as failed (unless SQS blames
    /// the sender, where a retry cannot help). Returns (published, failed).
    async fn send_batch(
        &self,
        batch: &[(&Event, String, usize)],
    ) -> (Vec<EventId>, Vec<(EventId, String)>) {
        // Entry id (index in `batch`) -> last failure reason, for those still pending.
        let mut pending: BTreeMap<usize, String> =
            (0..batch.len()).map(|i| (i, String::new())).collect();
        let mut published = Vec::new();
        let mut final_failures = Vec::new();
        for attempt in 1..=self.max_attempts {
            if attempt > 1 {
                tokio::time::sleep(backoff(attempt)).await;
            }
            let entries = pending
                .keys()
                .map(|&i| {
                    let (event, body, _) = &batch[i];
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .set_message_attributes(Some(attributes(event)))
                        .build()
                        .expect("id and body are set")
                })
                .collect::<Vec<_>>();
            let result = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await;
            match result {
                Err(e) => {
                    let why = aws_sdk_sqs::error::DisplayErrorContext(e).to_string();
                    tracing::warn!(attempt, error = %why, "SendMessageBatch call failed");
                    for reason in pending.values_mut() {
                        reason.clone_from(&why);
                    }
                }
                Ok(out) => {
                    for ok in out.successful() {
                        if let Some(i) = ok
                            .id()
                            .parse::<usize>()
                            .ok()
                            .filter(|i| pending.contains_key(i))
                        {
                            pending.remove(&i);
                            published.push(batch[i].0.id.clone());
                        }
                    }
                    for bad in out.failed() {
                        let Some(i) = bad
                            .id()
                            .parse::<usize>()
                            .ok()
                            .filter(|i| pending.contains_key(i))
                        else {
                            continue;
                        };
                        let why =
                            format!("{}: {}", bad.code(), bad.message().unwrap_or("no message"));
                        tracing::warn!(attempt, event_id = %batch[i].0.id, reason = %why, "SQS refused a batch entry");
                        if bad.sender_fault() {
                            pending.remove(&i);
                            final_failures.push((batch[i].0.id.clone(), why));
                        } else {
                            pending.insert(i, why);
                        }
                    }
                }
            }
            if pending.is_empty() {
                break;
            }
        }
        final_failures.extend(
            pending
                .into_iter()
                .map(|(i, why)| (batch[i].0.id.clone(), why)),
        );
        (published, final_failures)
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(50u64 << attempt.min(6))
}

/// Message attributes carried beside the body, so operators and the re-driver can
/// filter without decoding bodies.
fn attributes(event: &Event) -> std::collections::HashMap<String, MessageAttributeValue> {
    [
        ("app_id", event.app_id.as_str()),
        ("event_type", event.event_type.as_str()),
        ("event_id", event.id.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| {
        (
            k.to_owned(),
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(v)
                .build()
                .expect("data type is set"),
        )
    })
    .collect()
}

/// SQS counts attribute names, types and values towards the message size.
fn attributes_size(event: &Event) -> usize {
    let strings = "app_id".len() + "event_type".len() + "event_id".len() + 3 * "String".len();
    strings
        + event.app_id.as_str().len()
        + event.event_type.as_str().len()
        + event.id.as_str().len()
}
