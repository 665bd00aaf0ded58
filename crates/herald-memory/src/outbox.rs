//! The publisher's sink and the consumer's outbox onto in-memory queues, with the
//! bodies and attributes the SQS ones send (`herald_queue::SqsOutbox`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use herald_core::{DeadLetter, DeliveryTask, Event, QueueMessage};
use herald_queue::sqs::{event_attributes, task_attributes, EntryResult, QueueError};
use herald_queue::{BatchSink, Outbox};

use crate::MemoryQueue;

/// Where published events go: the in-memory events queue.
pub struct MemorySink {
    events: Arc<MemoryQueue>,
}

impl MemorySink {
    /// A sink onto `events`.
    pub fn new(events: Arc<MemoryQueue>) -> Self {
        Self { events }
    }
}

#[async_trait]
impl BatchSink for MemorySink {
    async fn send(
        &self,
        entries: &[(usize, &Event, &str)],
    ) -> Result<Vec<(usize, EntryResult)>, QueueError> {
        Ok(entries
            .iter()
            .map(|(i, event, body)| {
                let result = match self
                    .events
                    .send(body, &event_attributes(event), Duration::ZERO)
                {
                    Ok(_) => EntryResult::Succeeded,
                    Err(e) => EntryResult::Failed {
                        reason: e.reason,
                        sender_fault: true,
                    },
                };
                (*i, result)
            })
            .collect())
    }
}

/// The consumer's outbox onto the in-memory events queue and DLQ.
pub struct MemoryOutbox {
    events: Arc<MemoryQueue>,
    dlq: Arc<MemoryQueue>,
}

impl MemoryOutbox {
    /// An outbox onto `events` and `dlq`.
    pub fn new(events: Arc<MemoryQueue>, dlq: Arc<MemoryQueue>) -> Self {
        Self { events, dlq }
    }
}

#[async_trait]
impl Outbox for MemoryOutbox {
    async fn schedule(&self, task: &DeliveryTask, delay: Duration) -> Result<(), QueueError> {
        let body = QueueMessage::Delivery {
            delivery: task.clone(),
        }
        .encode();
        self.events
            .send(&body, &task_attributes(task), delay)
            .map(|_| ())
    }

    async fn park(&self, letter: &DeadLetter) -> Result<(), QueueError> {
        let mut reason = letter.reason().to_owned();
        reason.truncate(reason.floor_char_boundary(1024));
        let mut attributes: Vec<(&str, &str)> = match letter {
            DeadLetter::Failed { delivery, .. } => task_attributes(delivery).to_vec(),
            _ => Vec::new(),
        };
        attributes.push(("herald_reason", &reason));
        self.dlq
            .send(&letter.encode(), &attributes, Duration::ZERO)
            .map(|_| ())
    }

    async fn publish(&self, event: &Event) -> Result<(), QueueError> {
        let body = QueueMessage::Event {
            event: event.clone(),
        }
        .encode();
        self.events
            .send(&body, &event_attributes(event), Duration::ZERO)
            .map(|_| ())
    }
}
