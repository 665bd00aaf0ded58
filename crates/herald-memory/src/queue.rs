//! A queue in process with the semantics of an SQS standard queue that Herald relies
//! on: per-message delays, a visibility timeout after each receive, receive counts, a
//! redrive to a dead-letter queue once a message was received `max_receive_count`
//! times, long polls, and batch deletes that answer per entry (a stale or unknown
//! receipt handle fails that entry alone).
//!
//! Visibility and delays run on Tokio's clock (so tests can pause it); the timestamps
//! handed out with messages (`SentTimestamp`) are wall-clock milliseconds, as SQS's.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use herald_queue::sqs::{
    message_size, string_attributes, EntryResult, QueueCounts, QueueError, MAX_BATCH_ENTRIES,
    MAX_DELAY, MAX_MESSAGE_BYTES,
};
use herald_queue::MessageSource;
use tokio::sync::Notify;
use tokio::time::Instant;

/// How a queue treats received messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSettings {
    /// How long a received message stays invisible unless deleted.
    pub visibility_timeout: Duration,
    /// Receives after which the next receive moves a message to the dead-letter queue
    /// (SQS's `maxReceiveCount`); ignored without one.
    pub max_receive_count: u32,
}

/// One message held by the queue.
#[derive(Debug, Clone)]
struct Stored {
    id: String,
    body: String,
    attributes: Vec<(String, String)>,
    sent_at_ms: u128,
    first_received_ms: Option<u128>,
    /// Not handed out before this instant (its delay or its visibility timeout).
    visible_at: Instant,
    receive_count: u32,
    /// The handle of the latest receive: the only one that deletes it.
    receipt: Option<String>,
}

/// A queue in process; see the module documentation. Shared as `Arc<MemoryQueue>`.
#[derive(Debug)]
pub struct MemoryQueue {
    settings: QueueSettings,
    dead_letters: Option<Arc<MemoryQueue>>,
    messages: Mutex<VecDeque<Stored>>,
    arrived: Notify,
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

impl MemoryQueue {
    /// A queue with no dead-letter queue: messages come back for ever until deleted.
    pub fn new(settings: QueueSettings) -> Arc<Self> {
        Arc::new(Self {
            settings,
            dead_letters: None,
            messages: Mutex::default(),
            arrived: Notify::new(),
        })
    }

    /// A queue whose messages move to `dead_letters` on the receive after their
    /// `max_receive_count`th.
    pub fn with_dead_letters(settings: QueueSettings, dead_letters: Arc<MemoryQueue>) -> Arc<Self> {
        Arc::new(Self {
            settings,
            dead_letters: Some(dead_letters),
            messages: Mutex::default(),
            arrived: Notify::new(),
        })
    }

    /// The queue's settings.
    pub fn settings(&self) -> QueueSettings {
        self.settings
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Stored>> {
        // No code panics while holding the lock; a poisoned one still holds whole messages.
        self.messages.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends a message, invisible for `delay` (at most 15 minutes, as SQS); returns its
    /// id. Refuses, as SQS does, a message over 256 KiB (body and attributes).
    pub fn send(
        &self,
        body: &str,
        attributes: &[(&str, &str)],
        delay: Duration,
    ) -> Result<String, QueueError> {
        let size = message_size(body, &string_attributes(attributes.iter().copied()));
        if size > MAX_MESSAGE_BYTES {
            return Err(QueueError {
                operation: "SendMessage",
                reason: format!(
                    "InvalidParameterValue: the message is {size} bytes, over {MAX_MESSAGE_BYTES}"
                ),
            });
        }
        let id = uuid::Uuid::new_v4().to_string();
        self.push(Stored {
            id: id.clone(),
            body: body.to_owned(),
            attributes: attributes
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            sent_at_ms: now_ms(),
            first_received_ms: None,
            visible_at: Instant::now() + delay.min(MAX_DELAY),
            receive_count: 0,
            receipt: None,
        });
        Ok(id)
    }

    fn push(&self, message: Stored) {
        self.lock().push_back(message);
        self.arrived.notify_waiters();
    }

    /// Takes up to `max` visible messages, moving those received too often to the
    /// dead-letter queue; also returns when the next invisible message shows up.
    fn take(&self, max: usize) -> (Vec<Message>, Option<Instant>) {
        let now = Instant::now();
        let mut taken = Vec::new();
        let mut dead = Vec::new();
        let mut next_visible: Option<Instant> = None;
        {
            let mut messages = self.lock();
            let mut i = 0;
            while i < messages.len() && taken.len() < max {
                let m = &mut messages[i];
                if m.visible_at > now {
                    next_visible = Some(next_visible.map_or(m.visible_at, |t| t.min(m.visible_at)));
                    i += 1;
                    continue;
                }
                let redrive = self.dead_letters.is_some()
                    && self.settings.max_receive_count > 0
                    && m.receive_count >= self.settings.max_receive_count;
                if redrive {
                    dead.extend(messages.remove(i));
                    continue;
                }
                m.receive_count += 1;
                m.first_received_ms.get_or_insert_with(now_ms);
                let receipt = uuid::Uuid::new_v4().to_string();
                m.receipt = Some(receipt.clone());
                m.visible_at = now + self.settings.visibility_timeout;
                taken.push(to_message(m, receipt));
                i += 1;
            }
        }
        if let Some(dlq) = &self.dead_letters {
            for mut m in dead {
                // A fresh message on the DLQ, keeping its id, body, attributes and
                // enqueue time, as SQS's redrive does.
                m.receive_count = 0;
                m.receipt = None;
                m.first_received_ms = None;
                m.visible_at = now;
                dlq.push(m);
            }
        }
        (taken, next_visible)
    }

    /// Deletes by receipt handle, one result per handle in order: a handle that is not
    /// the latest receive's of a message still held fails that entry alone.
    pub fn delete_batch(&self, receipt_handles: &[&str]) -> Vec<EntryResult> {
        let mut messages = self.lock();
        receipt_handles
            .iter()
            .map(|handle| {
                match messages
                    .iter()
                    .position(|m| m.receipt.as_deref() == Some(*handle))
                {
                    Some(i) => {
                        messages.remove(i);
                        EntryResult::Succeeded
                    }
                    None => EntryResult::Failed {
                        reason: "ReceiptHandleIsInvalid: no message has this receipt handle"
                            .to_owned(),
                        sender_fault: true,
                    },
                }
            })
            .collect()
    }

    /// What the queue holds now, by state.
    pub fn counts(&self) -> QueueCounts {
        let now = Instant::now();
        let mut counts = QueueCounts::default();
        for m in self.lock().iter() {
            if m.visible_at <= now {
                counts.visible += 1;
            } else if m.receipt.is_some() {
                counts.in_flight += 1;
            } else {
                counts.delayed += 1;
            }
        }
        counts
    }

    /// Removes every message (SQS's `PurgeQueue`).
    pub fn purge(&self) {
        self.lock().clear();
    }
}

/// The message as `ReceiveMessage` returns it, with the system attributes Herald reads.
fn to_message(m: &Stored, receipt: String) -> Message {
    let system = HashMap::from([
        (
            MessageSystemAttributeName::ApproximateReceiveCount,
            m.receive_count.to_string(),
        ),
        (
            MessageSystemAttributeName::SentTimestamp,
            m.sent_at_ms.to_string(),
        ),
        (
            MessageSystemAttributeName::ApproximateFirstReceiveTimestamp,
            m.first_received_ms.unwrap_or(m.sent_at_ms).to_string(),
        ),
    ]);
    Message::builder()
        .message_id(&m.id)
        .receipt_handle(receipt)
        .body(&m.body)
        .set_attributes(Some(system))
        .set_message_attributes(Some(string_attributes(
            m.attributes.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        )))
        .build()
}

#[async_trait]
impl MessageSource for MemoryQueue {
    /// Long-polls as SQS does: returns as soon as a message is visible, or empty once
    /// `wait` has passed.
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Message>, QueueError> {
        let max = max.clamp(1, MAX_BATCH_ENTRIES);
        let deadline = Instant::now() + wait;
        loop {
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            // Registered before looking, so a send in between is not missed.
            arrived.as_mut().enable();
            let (taken, next_visible) = self.take(max);
            if !taken.is_empty() || Instant::now() >= deadline {
                return Ok(taken);
            }
            let until = next_visible.map_or(deadline, |t| t.min(deadline));
            tokio::select! {
                _ = arrived => {}
                _ = tokio::time::sleep_until(until) => {}
            }
        }
    }

    async fn delete(&self, receipt_handles: &[&str]) -> Result<Vec<EntryResult>, QueueError> {
        Ok(self.delete_batch(receipt_handles))
    }

    async fn counts(&self) -> Result<QueueCounts, QueueError> {
        Ok(MemoryQueue::counts(self))
    }
}

#[cfg(test)]
mod tests;
