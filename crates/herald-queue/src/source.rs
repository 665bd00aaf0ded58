//! The queue the local worker polls, behind a small trait: SQS ([`SqsSource`]) or an
//! in-process queue (`herald-memory`). Both hand out SQS messages, so the worker feeds
//! the consumer the same Lambda event either way.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};

use crate::sqs::{entry_results, queue_counts, EntryResult, QueueCounts, QueueError};

/// A queue messages are received from and deleted on, with SQS's semantics: a received
/// message is invisible for the visibility timeout and comes back unless deleted.
#[async_trait]
pub trait MessageSource: Send + Sync {
    /// Receives at most `max` (1 to 10) messages, waiting up to `wait` for the first.
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Message>, QueueError>;
    /// Deletes the messages of these receipt handles (at most 10), one result each, in
    /// order; `Err` when the whole call failed.
    async fn delete(&self, receipt_handles: &[&str]) -> Result<Vec<EntryResult>, QueueError>;
    /// What the queue holds, by state.
    async fn counts(&self) -> Result<QueueCounts, QueueError>;
}

/// An SQS queue, by URL.
#[derive(Clone)]
pub struct SqsSource {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsSource {
    /// The queue at `queue_url`.
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }

    /// The queue's URL.
    pub fn url(&self) -> &str {
        &self.queue_url
    }
}

#[async_trait]
impl MessageSource for SqsSource {
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Message>, QueueError> {
        self.client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max as i32)
            .wait_time_seconds(wait.as_secs() as i32)
            // The two system attributes the consumer reads (a FIFO queue's records:
            // their group, and the receive count that numbers their attempts); every
            // other attribute would cost SQS bytes and SDK parsing on every receive.
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map(|out| out.messages.unwrap_or_default())
            .map_err(|e| QueueError::sdk("ReceiveMessage", &e))
    }

    async fn delete(&self, receipt_handles: &[&str]) -> Result<Vec<EntryResult>, QueueError> {
        let entries = receipt_handles
            .iter()
            .enumerate()
            .map(|(i, handle)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(*handle)
                    .build()
                    .expect("id and handle are set")
            })
            .collect::<Vec<_>>();
        let out = self
            .client
            .delete_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| QueueError::sdk("DeleteMessageBatch", &e))?;
        Ok(entry_results(receipt_handles.len(), &out))
    }

    async fn counts(&self) -> Result<QueueCounts, QueueError> {
        queue_counts(&self.client, &self.queue_url).await
    }
}
