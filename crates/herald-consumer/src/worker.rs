//! The local worker: long-polls the events queue and feeds each batch to the same
//! [`Consumer::handle`] that runs on Lambda, deleting what it reports as done.

use std::collections::HashMap;
use std::future::Future;

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use aws_sdk_sqs::Client;
use herald_queue::sqs::{entry_results, error_reason, to_sqs_event, EntryResult};

use crate::handler::Consumer;

/// Where and how to poll.
#[derive(Debug, Clone)]
pub struct PollSettings {
    pub queue_url: String,
    pub wait_seconds: i32,
    pub batch_size: i32,
}

/// Polls until `shutdown` completes. A batch being handled when shutdown arrives is
/// finished first. Records the handler reports as failures are left alone, so SQS
/// makes them visible again after the visibility timeout (and, past
/// `maxReceiveCount`, moves them to the DLQ); when the handler fails the whole batch,
/// none of it is deleted.
pub async fn run(
    client: &Client,
    consumer: &Consumer,
    settings: &PollSettings,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    tracing::info!(queue = %settings.queue_url, "worker polling");
    loop {
        let received = tokio::select! {
            _ = &mut shutdown => break,
            r = client
                .receive_message()
                .queue_url(&settings.queue_url)
                .max_number_of_messages(settings.batch_size)
                .wait_time_seconds(settings.wait_seconds)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send() => r,
        };
        let messages = match received {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(e) => {
                tracing::error!(error = %error_reason(&e), "ReceiveMessage failed; retrying in 1 s");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        let handles: HashMap<String, String> = messages
            .iter()
            .filter_map(|m| Some((m.message_id.clone()?, m.receipt_handle.clone()?)))
            .collect();
        let event = to_sqs_event(messages);
        let response = match consumer.handle(event).await {
            Ok(response) => response,
            Err(e) => {
                // As on Lambda, the whole batch comes back after the visibility timeout.
                tracing::error!(error = %e, "batch failed; none of its messages is deleted");
                continue;
            }
        };
        let failed: std::collections::HashSet<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        let done: Vec<_> = handles
            .iter()
            .filter(|(id, _)| !failed.contains(id.as_str()))
            .collect();
        delete(client, &settings.queue_url, &done).await;
    }
    tracing::info!("worker stopped");
}

async fn delete(client: &Client, queue_url: &str, done: &[(&String, &String)]) {
    if done.is_empty() {
        return;
    }
    let entries = done
        .iter()
        .enumerate()
        .map(|(i, (_, handle))| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(handle.as_str())
                .build()
                .expect("id and handle are set")
        })
        .collect::<Vec<_>>();
    match client
        .delete_message_batch()
        .queue_url(queue_url)
        .set_entries(Some(entries))
        .send()
        .await
    {
        Ok(out) => {
            for ((message_id, _), result) in done.iter().zip(entry_results(done.len(), &out)) {
                if let EntryResult::Failed { reason, .. } = result {
                    // The message will be received again; receivers dedupe on webhook-id.
                    tracing::warn!(%message_id, %reason, "DeleteMessageBatch entry failed; the message will be redelivered");
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %error_reason(&e), "DeleteMessageBatch failed; the messages will be redelivered");
        }
    }
}
