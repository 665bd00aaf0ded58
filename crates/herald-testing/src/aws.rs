//! AWS clients' configuration and the SQS queries the tests make.

use anyhow::Result;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message};

/// AWS configuration from the environment `make test` sets (`AWS_ENDPOINT_URL`,
/// dummy credentials, region).
pub async fn aws() -> aws_config::SdkConfig {
    herald_runtime::aws_loader().load().await
}

/// AWS configuration from the environment, but calling `endpoint` (a proxy in front
/// of the emulator, say).
pub async fn aws_at(endpoint: &str) -> aws_config::SdkConfig {
    herald_runtime::aws_loader()
        .endpoint_url(endpoint)
        .load()
        .await
}

pub use herald_queue::sqs::QueueCounts;

/// What a queue holds, by state.
pub async fn queue_counts(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<QueueCounts> {
    Ok(herald_queue::sqs::queue_counts(sqs, url).await?)
}

/// Messages in a queue: visible, in flight and delayed.
pub async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<u64> {
    Ok(queue_counts(sqs, url).await?.total())
}

/// Receives (and deletes) everything currently visible on a queue.
pub async fn drain(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<Vec<Message>> {
    let mut all = Vec::new();
    loop {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .send()
            .await?;
        let msgs = out.messages.unwrap_or_default();
        if msgs.is_empty() {
            return Ok(all);
        }
        let entries = msgs
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle.as_deref()?)
                    .build()
                    .ok()
            })
            .collect::<Vec<_>>();
        let out = sqs
            .delete_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await?;
        if let Some(failed) = out.failed.first() {
            anyhow::bail!("could not delete a drained message: {failed:?}");
        }
        all.extend(msgs);
    }
}
