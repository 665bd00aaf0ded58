//! SQS plumbing shared by the publisher, the outbox, the worker, the re-driver and the
//! CLI: one copy of each.

use std::collections::HashMap;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage, SqsMessageAttribute};
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::operation::change_message_visibility_batch::ChangeMessageVisibilityBatchOutput;
use aws_sdk_sqs::operation::delete_message_batch::DeleteMessageBatchOutput;
use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchOutput;
use aws_sdk_sqs::types::{BatchResultErrorEntry, MessageAttributeValue};
use herald_core::{DeliveryTask, Event};

/// SQS's classic limit on a message, and on the sum of the messages of one batch call,
/// in bytes (body plus attribute names, types and values). Queues may allow more; see
/// `Publisher::connect`.
pub const MAX_MESSAGE_BYTES: usize = 262_144;
/// Most entries of one batch call.
pub const MAX_BATCH_ENTRIES: usize = 10;
/// Most message attributes on one message.
pub const MAX_MESSAGE_ATTRIBUTES: usize = 10;
/// SQS's longest per-message delay.
pub const MAX_DELAY: Duration = Duration::from_secs(900);

/// A failed SQS call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SQS {operation} failed: {reason}")]
pub struct QueueError {
    /// The API operation, e.g. `SendMessage`.
    pub operation: &'static str,
    /// The service's code and message, or the whole error chain.
    pub reason: String,
}

impl QueueError {
    /// The error of an SDK call of `operation`.
    pub fn sdk<E, R>(operation: &'static str, e: &SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        Self {
            operation,
            reason: error_reason(e),
        }
    }
}

/// A short reason for a failed SQS call: the service's error code and message when it
/// answered, the whole error chain otherwise (timeouts, connection failures).
pub fn error_reason<E, R>(e: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match (e.code(), e.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => DisplayErrorContext(e).to_string(),
    }
}

/// What a queue holds, by state (the `ApproximateNumberOfMessages*` attributes:
/// approximate on AWS, exact on the emulator).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueCounts {
    /// Messages a receive could get now.
    pub visible: u64,
    /// Messages received and not yet deleted, within their visibility timeout.
    pub in_flight: u64,
    /// Messages sent with a delay that has not passed yet.
    pub delayed: u64,
}

impl QueueCounts {
    /// Every message, whatever its state.
    pub fn total(&self) -> u64 {
        self.visible + self.in_flight + self.delayed
    }
}

/// What the queue at `url` holds, by state (one `GetQueueAttributes` call).
pub async fn queue_counts(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<QueueCounts, QueueError> {
    use aws_sdk_sqs::types::QueueAttributeName as Name;
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(Name::ApproximateNumberOfMessages)
        .attribute_names(Name::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(Name::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .map_err(|e| QueueError::sdk("GetQueueAttributes", &e))?;
    let attrs = out.attributes.unwrap_or_default();
    let count = |name: Name| {
        attrs
            .get(&name)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok(QueueCounts {
        visible: count(Name::ApproximateNumberOfMessages),
        in_flight: count(Name::ApproximateNumberOfMessagesNotVisible),
        delayed: count(Name::ApproximateNumberOfMessagesDelayed),
    })
}

/// A `String` message attribute.
pub fn string_attribute(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("data type is set")
}

/// `String` message attributes from (name, value) pairs.
pub fn string_attributes<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> HashMap<String, MessageAttributeValue> {
    pairs
        .into_iter()
        .map(|(name, value)| (name.to_owned(), string_attribute(value)))
        .collect()
}

/// The string value of the attribute `name`, if there is one.
pub fn string_attribute_value<'a>(
    attributes: &'a HashMap<String, MessageAttributeValue>,
    name: &str,
) -> Option<&'a str> {
    attributes.get(name).and_then(|v| v.string_value())
}

/// The attributes an event's messages carry, so operators and the re-driver can
/// filter without decoding bodies: `app_id`, `event_type`, `event_id`.
pub fn event_attributes(event: &Event) -> [(&'static str, &str); 3] {
    [
        ("app_id", event.app_id.as_str()),
        ("event_type", event.event_type.as_str()),
        ("event_id", event.id.as_str()),
    ]
}

/// The attributes of a delivery task's messages: the event's and `subscription_id`.
pub fn task_attributes(task: &DeliveryTask) -> [(&'static str, &str); 4] {
    let [app, kind, id] = event_attributes(&task.event);
    [
        app,
        kind,
        id,
        ("subscription_id", task.subscription_id.as_str()),
    ]
}

/// Bytes SQS counts for a message: the body plus attribute names, types and values.
pub fn message_size(body: &str, attributes: &HashMap<String, MessageAttributeValue>) -> usize {
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

/// What became of one entry of a batch call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryResult {
    /// SQS reported the entry as done.
    Succeeded,
    /// SQS reported the entry as failed, or did not report it at all.
    Failed {
        /// The code and message SQS gave.
        reason: String,
        /// True when SQS blames the request (retrying the same entry cannot help).
        sender_fault: bool,
    },
}

impl EntryResult {
    /// `Ok` when the entry succeeded, else the reason.
    pub fn into_result(self) -> Result<(), String> {
        match self {
            Self::Succeeded => Ok(()),
            Self::Failed { reason, .. } => Err(reason),
        }
    }
}

/// The output of a batch call, as [`entry_results`] reads it.
pub trait BatchOutput {
    /// The ids of the entries reported as done.
    fn succeeded_ids(&self) -> Vec<&str>;
    /// The entries reported as failed.
    fn failed_entries(&self) -> &[BatchResultErrorEntry];
}

impl BatchOutput for SendMessageBatchOutput {
    fn succeeded_ids(&self) -> Vec<&str> {
        self.successful().iter().map(|e| e.id()).collect()
    }
    fn failed_entries(&self) -> &[BatchResultErrorEntry] {
        self.failed()
    }
}

impl BatchOutput for DeleteMessageBatchOutput {
    fn succeeded_ids(&self) -> Vec<&str> {
        self.successful().iter().map(|e| e.id()).collect()
    }
    fn failed_entries(&self) -> &[BatchResultErrorEntry] {
        self.failed()
    }
}

impl BatchOutput for ChangeMessageVisibilityBatchOutput {
    fn succeeded_ids(&self) -> Vec<&str> {
        self.successful().iter().map(|e| e.id()).collect()
    }
    fn failed_entries(&self) -> &[BatchResultErrorEntry] {
        self.failed()
    }
}

/// The result of each of `count` entries of a batch call whose entry ids were their
/// indexes (`"0"`, `"1"`, …), in entry order. An entry SQS did not mention counts as
/// failed; one it reports both ways counts as done.
pub fn entry_results(count: usize, out: &impl BatchOutput) -> Vec<EntryResult> {
    let mut results = vec![
        EntryResult::Failed {
            reason: "SQS did not report this entry".to_owned(),
            sender_fault: false,
        };
        count
    ];
    for bad in out.failed_entries() {
        if let Some(slot) = bad
            .id()
            .parse::<usize>()
            .ok()
            .and_then(|i| results.get_mut(i))
        {
            *slot = EntryResult::Failed {
                reason: format!("{}: {}", bad.code(), bad.message().unwrap_or("no message")),
                sender_fault: bad.sender_fault(),
            };
        }
    }
    for id in out.succeeded_ids() {
        if let Some(slot) = id.parse::<usize>().ok().and_then(|i| results.get_mut(i)) {
            *slot = EntryResult::Succeeded;
        }
    }
    results
}

/// Converts received messages into the event Lambda's SQS integration would pass, so
/// the local worker feeds the consumer exactly what Lambda does.
pub fn to_sqs_event(messages: Vec<aws_sdk_sqs::types::Message>) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages
        .into_iter()
        .map(|m| {
            let mut record = SqsMessage::default();
            record.attributes = m
                .attributes
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k.as_str().to_owned(), v))
                .collect();
            record.message_attributes = m
                .message_attributes
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| {
                    let mut attr = SqsMessageAttribute::default();
                    attr.data_type = Some(v.data_type);
                    attr.string_value = v.string_value;
                    (k, attr)
                })
                .collect();
            record.message_id = m.message_id;
            record.receipt_handle = m.receipt_handle;
            record.body = m.body;
            record.md5_of_body = m.md5_of_body;
            record.event_source = Some("aws:sqs".to_owned());
            record
        })
        .collect();
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sqs::types::SendMessageBatchResultEntry;

    #[test]
    fn batch_results_are_matched_to_entries_and_silence_is_a_failure() {
        let out = SendMessageBatchOutput::builder()
            .successful(
                SendMessageBatchResultEntry::builder()
                    .id("0")
                    .message_id("m0")
                    .md5_of_message_body("x")
                    .build()
                    .unwrap(),
            )
            .failed(
                BatchResultErrorEntry::builder()
                    .id("2")
                    .code("InvalidMessageContents")
                    .sender_fault(true)
                    .message("bad")
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let results = entry_results(3, &out);
        assert_eq!(results[0], EntryResult::Succeeded);
        assert!(
            matches!(&results[1], EntryResult::Failed { reason, sender_fault: false } if reason.contains("did not report"))
        );
        assert_eq!(
            results[2],
            EntryResult::Failed {
                reason: "InvalidMessageContents: bad".into(),
                sender_fault: true
            }
        );
    }

    #[test]
    fn sizes_count_attribute_names_types_and_values() {
        let attrs = string_attributes([("app_id", "shop")]);
        assert_eq!(message_size("body", &attrs), 4 + 6 + 6 + 4);
    }
}
