//! Publishes events onto Herald's SQS events queue.
//!
//! Events go out with `SendMessageBatch`, up to 10 entries and the queue's size limit
//! per call. Entries that a call reports as failed are retried with backoff; any entry
//! that still fails comes back to the caller in [`PublishError::Failed`], so no event
//! is ever dropped silently. An event larger than the queue accepts is refused up front
//! with [`PublishError::TooLarge`], naming the limit.
//!
//! An event with an `ordering_key` goes to the ordered (FIFO) queue instead, when the
//! publisher has one ([`Publisher::with_ordered_queue`]), in the message group of its
//! (app, key) and in the order given (docs/delivery.md, "Ordered delivery").

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};
use aws_sdk_sqs::Client;
use herald_core::{ordering, Event, EventId, QueueMessage};

pub use crate::sqs::EntryResult;
use crate::sqs::{
    entry_results, event_attributes, message_size, string_attributes, QueueError,
    MAX_BATCH_ENTRIES, MAX_MESSAGE_BYTES,
};
/// Bytes kept free under the queue's limit for what a retry or a dead letter adds
/// around an event (subscription id, attempt, times, last result), so that every
/// event accepted here can also travel as a retry or be parked.
pub const RETRY_HEADROOM: usize = 4096;
/// Attempts per entry (the first send plus retries) before it is reported as failed.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// Why publishing failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(
        "event {event_id} is {size} bytes on the queue, over the limit of {limit} bytes for an event (the queue's maximum message size less {RETRY_HEADROOM} bytes kept for retry metadata)"
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
    QueueAttributes(QueueError),
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
    sink: std::sync::Arc<dyn BatchSink>,
    /// Where events with an `ordering_key` go, if anywhere but `sink`.
    ordered: Option<std::sync::Arc<dyn BatchSink>>,
    max_message_bytes: usize,
    max_attempts: u32,
}

impl Publisher {
    /// A publisher that assumes the classic 256 KiB SQS limit.
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self::with_sink(std::sync::Arc::new(SqsSink {
            client,
            queue_url: queue_url.into(),
            fifo: false,
        }))
    }

    /// Sends events with an `ordering_key` to the FIFO queue `queue_url`.
    pub fn with_ordered_queue(self, client: Client, queue_url: impl Into<String>) -> Self {
        self.with_ordered_sink(std::sync::Arc::new(SqsSink {
            client,
            queue_url: queue_url.into(),
            fifo: true,
        }))
    }

    /// Sends events with an `ordering_key` to `sink` (a fake one in unit tests).
    pub fn with_ordered_sink(mut self, sink: std::sync::Arc<dyn BatchSink>) -> Self {
        self.ordered = Some(sink);
        self
    }

    /// Whether events with an `ordering_key` go to an ordered queue.
    pub fn orders(&self) -> bool {
        self.ordered.is_some()
    }

    /// A publisher over any batch sink (a fake one in unit tests).
    pub fn with_sink(sink: std::sync::Arc<dyn BatchSink>) -> Self {
        Self {
            sink,
            ordered: None,
            max_message_bytes: MAX_MESSAGE_BYTES,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }

    /// A publisher that reads the queue's own `MaximumMessageSize` (up to 1 MiB on AWS).
    pub async fn connect(
        client: Client,
        queue_url: impl Into<String>,
    ) -> Result<Self, PublishError> {
        let queue_url = queue_url.into();
        let attrs = client
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(QueueAttributeName::MaximumMessageSize)
            .send()
            .await
            .map_err(|e| {
                PublishError::QueueAttributes(QueueError::sdk("GetQueueAttributes", &e))
            })?;
        let limit = attrs
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::MaximumMessageSize))
            .and_then(|s| s.parse().ok());
        Ok(Self::new(client, queue_url).with_max_message_bytes(limit.unwrap_or(MAX_MESSAGE_BYTES)))
    }

    pub fn with_max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The queue's message size limit, in bytes.
    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    /// The largest event this publisher accepts, in bytes on the queue: the queue's
    /// limit less [`RETRY_HEADROOM`].
    pub fn max_event_bytes(&self) -> usize {
        self.max_message_bytes.saturating_sub(RETRY_HEADROOM)
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
            if size > self.max_event_bytes() {
                return Err(PublishError::TooLarge {
                    event_id: event.id.clone(),
                    size,
                    limit: self.max_event_bytes(),
                });
            }
            encoded.push((event, body, size));
        }

        let mut published = Vec::with_capacity(events.len());
        let mut failed = Vec::new();
        // Ordered events keep their order: their batches go one after the other.
        let (keyed, plain): (Vec<_>, Vec<_>) = encoded
            .into_iter()
            .partition(|(e, _, _)| self.ordered.is_some() && e.ordering_key.is_some());
        for (sink, encoded) in [
            (&self.sink, plain),
            (self.ordered.as_ref().unwrap_or(&self.sink), keyed),
        ] {
            for batch in self.batches(&encoded) {
                let (ok, bad) = self.send_batch(sink.as_ref(), batch).await;
                published.extend(ok);
                failed.extend(bad);
            }
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
        sink: &dyn BatchSink,
        batch: &[(&Event, String, usize)],
    ) -> (Vec<EventId>, Vec<(EventId, String)>) {
        // Index in `batch` -> last failure reason, for the entries still pending.
        let mut pending: BTreeMap<usize, String> = (0..batch.len())
            .map(|i| (i, "no result".to_owned()))
            .collect();
        let mut published = Vec::new();
        let mut final_failures = Vec::new();
        for attempt in 1..=self.max_attempts {
            if attempt > 1 {
                tokio::time::sleep(backoff(attempt)).await;
            }
            let entries: Vec<(usize, &Event, &str)> = pending
                .keys()
                .map(|&i| (i, batch[i].0, batch[i].1.as_str()))
                .collect();
            match sink.send(&entries).await {
                Err(why) => {
                    tracing::warn!(attempt, error = %why, "SendMessageBatch call failed");
                    for reason in pending.values_mut() {
                        reason.clone_from(&why.reason);
                    }
                }
                Ok(results) => {
                    for (i, result) in results {
                        if !pending.contains_key(&i) {
                            continue;
                        }
                        match result {
                            EntryResult::Succeeded => {
                                pending.remove(&i);
                                published.push(batch[i].0.id.clone());
                            }
                            EntryResult::Failed {
                                reason,
                                sender_fault,
                            } => {
                                tracing::warn!(attempt, event_id = %batch[i].0.id, %reason, "SQS refused a batch entry");
                                if sender_fault {
                                    pending.remove(&i);
                                    final_failures.push((batch[i].0.id.clone(), reason));
                                } else {
                                    pending.insert(i, reason);
                                }
                            }
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

/// Where batches go: the SQS events queue ([`SqsSink`]), or a fake in unit tests.
#[async_trait::async_trait]
pub trait BatchSink: Send + Sync {
    /// Sends `(entry index, event, body)` entries in one call. `Err` means the whole
    /// call failed; otherwise the results of the entries, by index (an entry with no
    /// result counts as not sent).
    async fn send(
        &self,
        entries: &[(usize, &Event, &str)],
    ) -> Result<Vec<(usize, EntryResult)>, QueueError>;
}

/// The SQS events queue (or the ordered FIFO queue), through `SendMessageBatch`.
pub struct SqsSink {
    client: Client,
    queue_url: String,
    /// A FIFO queue: each entry names its message group and deduplication id.
    fifo: bool,
}

#[async_trait::async_trait]
impl BatchSink for SqsSink {
    async fn send(
        &self,
        entries: &[(usize, &Event, &str)],
    ) -> Result<Vec<(usize, EntryResult)>, QueueError> {
        let request = entries
            .iter()
            .enumerate()
            .map(|(slot, (_, event, body))| {
                let key = event.ordering_key.as_ref().filter(|_| self.fifo);
                SendMessageBatchRequestEntry::builder()
                    .id(slot.to_string())
                    .message_body(*body)
                    .set_message_attributes(Some(string_attributes(event_attributes(event))))
                    .set_message_group_id(key.map(|k| ordering::event_group(&event.app_id, k)))
                    .set_message_deduplication_id(key.map(|_| ordering::event_dedup(&event.id)))
                    .build()
                    .expect("id and body are set")
            })
            .collect::<Vec<_>>();
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(request))
            .send()
            .await
            .map_err(|e| QueueError::sdk("SendMessageBatch", &e))?;
        Ok(entries
            .iter()
            .map(|(i, _, _)| *i)
            .zip(entry_results(entries.len(), &out))
            .collect())
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(50u64 << attempt.min(6))
}

/// SQS counts attribute names, types and values towards the message size.
fn attributes_size(event: &Event) -> usize {
    message_size("", &string_attributes(event_attributes(event)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::{AppId, EventType, ObjectType};
    use std::sync::{Arc, Mutex};

    fn event(n: usize, size: usize) -> Event {
        Event::new(
            AppId::parse("app").unwrap(),
            EventType::parse("create").unwrap(),
            ObjectType::parse("user").unwrap(),
            serde_json::json!({ "n": n, "pad": "x".repeat(size) }),
        )
    }

    /// Fails chosen events a number of times (transiently or for good), and records
    /// the size of every call.
    #[derive(Default)]
    struct FakeSink {
        transient_failures: Mutex<std::collections::HashMap<u64, u32>>,
        rejected: Vec<u64>,
        calls_failing: Mutex<u32>,
        calls: Mutex<Vec<usize>>,
        sent: Mutex<Vec<EventId>>,
    }

    fn n_of(event: &Event) -> u64 {
        event.data.to_value()["n"].as_u64().unwrap()
    }

    #[async_trait::async_trait]
    impl BatchSink for FakeSink {
        async fn send(
            &self,
            entries: &[(usize, &Event, &str)],
        ) -> Result<Vec<(usize, EntryResult)>, QueueError> {
            self.calls.lock().unwrap().push(entries.len());
            {
                let mut failing = self.calls_failing.lock().unwrap();
                if *failing > 0 {
                    *failing -= 1;
                    return Err(QueueError {
                        operation: "SendMessageBatch",
                        reason: "connection reset".into(),
                    });
                }
            }
            let mut out = Vec::new();
            for (i, event, _) in entries {
                let n = n_of(event);
                let mut transient = self.transient_failures.lock().unwrap();
                if self.rejected.contains(&n) {
                    out.push((
                        *i,
                        EntryResult::Failed {
                            reason: "InvalidMessageContents: bad".into(),
                            sender_fault: true,
                        },
                    ));
                } else if let Some(left) = transient.get_mut(&n).filter(|l| **l > 0) {
                    *left -= 1;
                    out.push((
                        *i,
                        EntryResult::Failed {
                            reason: "InternalError: try again".into(),
                            sender_fault: false,
                        },
                    ));
                } else {
                    self.sent.lock().unwrap().push(event.id.clone());
                    out.push((*i, EntryResult::Succeeded));
                }
            }
            Ok(out)
        }
    }

    #[tokio::test]
    async fn batches_hold_at_most_ten_entries_and_stay_under_the_size_limit() {
        let sink = Arc::new(FakeSink::default());
        let publisher = Publisher::with_sink(sink.clone()).with_max_message_bytes(10_000);
        let small: Vec<Event> = (0..25).map(|n| event(n, 10)).collect();
        publisher.publish_all(&small).await.unwrap();
        assert_eq!(*sink.calls.lock().unwrap(), vec![10, 10, 5]);

        let sink = Arc::new(FakeSink::default());
        let publisher = Publisher::with_sink(sink.clone()).with_max_message_bytes(10_000);
        let big: Vec<Event> = (0..6).map(|n| event(n, 3_000)).collect();
        publisher.publish_all(&big).await.unwrap();
        assert_eq!(
            *sink.calls.lock().unwrap(),
            vec![3, 3],
            "three 3 KB events per 10 KB batch"
        );
    }

    #[tokio::test]
    async fn transient_entry_failures_and_failed_calls_are_retried_until_sent() {
        let sink = Arc::new(FakeSink {
            transient_failures: Mutex::new([(3, 2), (7, 1)].into()),
            calls_failing: Mutex::new(1),
            ..FakeSink::default()
        });
        let publisher = Publisher::with_sink(sink.clone());
        let events: Vec<Event> = (0..10).map(|n| event(n, 10)).collect();
        let ids = publisher.publish_all(&events).await.unwrap();
        assert_eq!(ids, events.iter().map(|e| e.id.clone()).collect::<Vec<_>>());
        let mut sent = sink.sent.lock().unwrap().clone();
        sent.sort();
        let mut expected = ids.clone();
        expected.sort();
        assert_eq!(sent, expected, "each event sent exactly once");
        assert_eq!(
            *sink.calls.lock().unwrap(),
            vec![10, 10, 2, 1],
            "only failed entries are resent"
        );
    }

    #[tokio::test]
    async fn entries_that_finally_fail_are_reported_never_dropped() {
        let sink = Arc::new(FakeSink {
            rejected: vec![2],
            transient_failures: Mutex::new([(5, 100)].into()),
            ..FakeSink::default()
        });
        let publisher = Publisher::with_sink(sink.clone()).with_max_attempts(3);
        let events: Vec<Event> = (0..8).map(|n| event(n, 10)).collect();
        let err = publisher.publish_all(&events).await.unwrap_err();
        let PublishError::Failed { published, failed } = &err else {
            panic!("{err}")
        };
        assert_eq!(published.len(), 6);
        let failed_ids: Vec<&EventId> = failed.iter().map(|(id, _)| id).collect();
        assert_eq!(failed_ids, vec![&events[2].id, &events[5].id]);
        assert!(failed[0].1.contains("InvalidMessageContents"));
        assert!(failed[1].1.contains("InternalError"));
        assert!(
            err.to_string()
                .starts_with("2 of 8 events were not published"),
            "{err}"
        );
        assert_eq!(
            sink.calls.lock().unwrap().len(),
            3,
            "the sender-fault entry is not retried; the other is, up to the limit"
        );
    }

    #[tokio::test]
    async fn an_event_over_the_limit_is_refused_naming_the_limit() {
        let sink = Arc::new(FakeSink::default());
        let publisher = Publisher::with_sink(sink.clone()).with_max_message_bytes(5_000);
        let err = publisher
            .publish_all(&[event(0, 10), event(1, 2_000)])
            .await
            .unwrap_err();
        assert!(matches!(err, PublishError::TooLarge { limit: 904, .. }));
        assert!(
            err.to_string()
                .contains("over the limit of 904 bytes for an event"),
            "{err}"
        );
        assert!(
            sink.calls.lock().unwrap().is_empty(),
            "nothing is sent when one event is too large"
        );
    }
}
