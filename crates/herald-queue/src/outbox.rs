//! What the consumer sends onward: delivery tasks back onto the events queue (with a
//! delay), dead letters onto the DLQ, and its own operational events
//! (`herald_core::operational`) onto the events queue; and, for ordered delivery
//! (docs/delivery.md, "Ordered delivery"), first deliveries onto the FIFO queue and
//! retries that hold their message there.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use herald_core::{ordering, DeadLetter, DeliveryTask, Event, QueueMessage};

use crate::sqs::{
    entry_results, event_attributes, string_attribute, string_attributes, task_attributes,
    QueueError, MAX_BATCH_ENTRIES, MAX_DELAY,
};

/// Durable hand-off of work the consumer cannot finish now. An error means nothing
/// was sent, so the caller must keep the message it came from.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Puts a delivery task on the events queue, invisible for `delay` (at most 15
    /// minutes; the task's `not_before` carries any longer wait).
    async fn schedule(&self, task: &DeliveryTask, delay: Duration) -> Result<(), QueueError>;
    /// Puts a dead letter on the DLQ.
    async fn park(&self, letter: &DeadLetter) -> Result<(), QueueError>;
    /// Puts a fresh event (an operational one) on the events queue, to be fanned out.
    async fn publish(&self, event: &Event) -> Result<(), QueueError>;
    /// Whether there is an ordered (FIFO) queue for [`Outbox::order`] and
    /// [`Outbox::hold`].
    fn orders(&self) -> bool {
        false
    }
    /// Puts deliveries of ordered events on the FIFO queue, in the order given, each
    /// in the message group of its (webhook, ordering key) and deduplicated on its
    /// (event, webhook). Tasks without an ordering key are refused.
    async fn order(&self, tasks: &[DeliveryTask]) -> Result<(), QueueError> {
        let _ = tasks;
        Err(no_ordered_queue("SendMessageBatch"))
    }
    /// Leaves a received message of the FIFO queue invisible for `delay` (at most
    /// [`MAX_HOLD`]) and so its group blocked: an ordered delivery's retry.
    async fn hold(&self, receipt_handle: &str, delay: Duration) -> Result<(), QueueError> {
        let _ = (receipt_handle, delay);
        Err(no_ordered_queue("ChangeMessageVisibility"))
    }
}

/// The longest a message can be held invisible: SQS's 12 hours from its receive,
/// less a minute for the batch that received it.
pub const MAX_HOLD: Duration = Duration::from_secs(12 * 3600 - 60);

fn no_ordered_queue(operation: &'static str) -> QueueError {
    QueueError {
        operation,
        reason: "no ordered queue is configured (HERALD_ORDERED_QUEUE_URL)".to_owned(),
    }
}

/// The SQS events queue and DLQ. Messages carry `app_id`, `event_type`, `event_id`,
/// `subscription_id` and (on the DLQ) `herald_reason` attributes, so operators and the
/// re-driver can filter without decoding bodies.
pub struct SqsOutbox {
    client: aws_sdk_sqs::Client,
    events_queue_url: String,
    dlq_url: String,
    max_delay: Duration,
    /// The FIFO queue of ordered delivery, if there is one.
    ordered_queue_url: Option<String>,
}

impl SqsOutbox {
    /// `max_delay` is the longest delay put on one message (SQS allows 15 minutes);
    /// longer waits take several hops.
    pub fn new(
        client: aws_sdk_sqs::Client,
        events_queue_url: impl Into<String>,
        dlq_url: impl Into<String>,
        max_delay: Duration,
    ) -> Self {
        Self {
            client,
            events_queue_url: events_queue_url.into(),
            dlq_url: dlq_url.into(),
            max_delay: max_delay.min(MAX_DELAY),
            ordered_queue_url: None,
        }
    }

    /// With the FIFO queue of ordered delivery (`None`: none).
    pub fn with_ordered_queue(mut self, url: Option<String>) -> Self {
        self.ordered_queue_url = url;
        self
    }
}

#[async_trait]
impl Outbox for SqsOutbox {
    async fn schedule(&self, task: &DeliveryTask, delay: Duration) -> Result<(), QueueError> {
        // Whole seconds, rounded up, so a task never arrives before it is due.
        let delay = delay.min(self.max_delay);
        let delay = (delay.as_secs() + u64::from(delay.subsec_nanos() > 0)) as i32;
        let body = QueueMessage::Delivery {
            delivery: task.clone(),
        }
        .encode();
        self.client
            .send_message()
            .queue_url(&self.events_queue_url)
            .message_body(body)
            .delay_seconds(delay)
            .set_message_attributes(Some(string_attributes(task_attributes(task))))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| QueueError::sdk("SendMessage", &e))
    }

    async fn park(&self, letter: &DeadLetter) -> Result<(), QueueError> {
        let mut reason = letter.reason().to_owned();
        reason.truncate(reason.floor_char_boundary(1024));
        let mut attributes = match letter {
            DeadLetter::Failed { delivery, .. } => string_attributes(task_attributes(delivery)),
            _ => Default::default(),
        };
        attributes.insert("herald_reason".to_owned(), string_attribute(&reason));
        self.client
            .send_message()
            .queue_url(&self.dlq_url)
            .message_body(letter.encode())
            .set_message_attributes(Some(attributes))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| QueueError::sdk("SendMessage", &e))
    }

    async fn publish(&self, event: &Event) -> Result<(), QueueError> {
        let body = QueueMessage::Event {
            event: event.clone(),
        }
        .encode();
        self.client
            .send_message()
            .queue_url(&self.events_queue_url)
            .message_body(body)
            .set_message_attributes(Some(string_attributes(event_attributes(event))))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| QueueError::sdk("SendMessage", &e))
    }

    fn orders(&self) -> bool {
        self.ordered_queue_url.is_some()
    }

    async fn order(&self, tasks: &[DeliveryTask]) -> Result<(), QueueError> {
        let Some(url) = &self.ordered_queue_url else {
            return Err(no_ordered_queue("SendMessageBatch"));
        };
        for chunk in tasks.chunks(MAX_BATCH_ENTRIES) {
            let mut entries = Vec::with_capacity(chunk.len());
            for (i, task) in chunk.iter().enumerate() {
                let Some(key) = &task.event.ordering_key else {
                    return Err(QueueError {
                        operation: "SendMessageBatch",
                        reason: format!("event {} has no ordering key", task.event.id),
                    });
                };
                let body = QueueMessage::Delivery {
                    delivery: task.clone(),
                }
                .encode();
                entries.push(
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .message_group_id(ordering::delivery_group(&task.subscription_id, key))
                        .message_deduplication_id(ordering::delivery_dedup(
                            &task.event.id,
                            &task.subscription_id,
                        ))
                        .set_message_attributes(Some(string_attributes(task_attributes(task))))
                        .build()
                        .expect("id and body are set"),
                );
            }
            let out = self
                .client
                .send_message_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| QueueError::sdk("SendMessageBatch", &e))?;
            for result in entry_results(chunk.len(), &out) {
                result.into_result().map_err(|reason| QueueError {
                    operation: "SendMessageBatch",
                    reason,
                })?;
            }
        }
        Ok(())
    }

    async fn hold(&self, receipt_handle: &str, delay: Duration) -> Result<(), QueueError> {
        let Some(url) = &self.ordered_queue_url else {
            return Err(no_ordered_queue("ChangeMessageVisibility"));
        };
        let delay = delay.min(MAX_HOLD);
        let seconds = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
        self.client
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(seconds as i32)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| QueueError::sdk("ChangeMessageVisibility", &e))
    }
}
