//! What the consumer sends onward: delivery tasks back onto the events queue (with a
//! delay), dead letters onto the DLQ, and its own operational events
//! (`herald_core::operational`) onto the events queue.

use std::time::Duration;

use async_trait::async_trait;
use herald_core::{DeadLetter, DeliveryTask, Event, QueueMessage};

use crate::sqs::{
    event_attributes, string_attribute, string_attributes, task_attributes, QueueError, MAX_DELAY,
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
}

/// The SQS events queue and DLQ. Messages carry `app_id`, `event_type`, `event_id`,
/// `subscription_id` and (on the DLQ) `herald_reason` attributes, so operators and the
/// re-driver can filter without decoding bodies.
pub struct SqsOutbox {
    client: aws_sdk_sqs::Client,
    events_queue_url: String,
    dlq_url: String,
    max_delay: Duration,
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
        }
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
}
