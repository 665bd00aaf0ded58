//! Parking messages on the dead-letter queue, with their reason.

use async_trait::async_trait;
use aws_sdk_sqs::types::MessageAttributeValue;
use herald_core::DeadLetter;

/// Puts a dead letter on the DLQ. An error means it was not parked, so the caller
/// must keep the original message.
#[async_trait]
pub trait DeadLetterSink: Send + Sync {
    async fn park(&self, letter: &DeadLetter) -> Result<(), String>;
}

/// The SQS dead-letter queue. Each letter carries its reason as the `herald_reason`
/// message attribute too, so operators can see it without decoding the body.
pub struct SqsDeadLetters {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsDeadLetters {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
}

fn string_attribute(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("data type is set")
}

#[async_trait]
impl DeadLetterSink for SqsDeadLetters {
    async fn park(&self, letter: &DeadLetter) -> Result<(), String> {
        let mut reason = letter.reason().to_owned();
        reason.truncate(reason.floor_char_boundary(1024));
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(letter.encode())
            .message_attributes("herald_reason", string_attribute(&reason))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(e).to_string())
    }
}
