//! The local worker: long-polls the events queue and feeds each batch to the same
//! [`Consumer::handle`] that runs on Lambda, deleting what it reports as done.
//!
//! Batches overlap, as Lambda's pollers make them: each batch is handled in its own
//! task, and the next one is received while earlier ones are still delivering, so the
//! deliveries in flight do not drop to zero at every batch's end. The consumer bounds
//! the deliveries in flight across all of them; the worker bounds the batches in hand
//! ([`batches_in_flight`]) and stops receiving while it holds that many.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message};
use aws_sdk_sqs::Client;
use herald_queue::sqs::{entry_results, error_reason, to_sqs_event, EntryResult};
use tokio::task::{JoinError, JoinSet};

use crate::handler::Consumer;

/// Where and how to poll.
#[derive(Debug, Clone)]
pub struct PollSettings {
    /// The events queue.
    pub queue_url: String,
    /// Long-poll wait of the first receive of a batch.
    pub wait_seconds: i32,
    /// Most messages handed to the consumer at once (the event source mapping's
    /// `BatchSize`).
    pub batch_size: usize,
    /// How long a batch may gather messages after its first one arrived (the event
    /// source mapping's `MaximumBatchingWindowInSeconds`); zero hands over whatever one
    /// receive returned.
    pub batch_window: Duration,
    /// Most batches handled at once ([`batches_in_flight`]).
    pub batches_in_flight: usize,
}

/// How many batches the worker handles at once: enough to keep `concurrency`
/// deliveries in flight with batches of `batch_size` (at one delivery per message),
/// plus two, so the next batches are in hand while others write their history and are
/// deleted. More would only make deliveries wait for room under the consumer's bound,
/// and a delivery that waits past the start deadline is handed back to the queue.
pub fn batches_in_flight(concurrency: usize, batch_size: usize) -> usize {
    concurrency.max(1).div_ceil(batch_size.max(1)) + 2
}

/// Messages one `ReceiveMessage` returns at most (SQS's limit).
const RECEIVE_MAX: usize = 10;

/// Polls until `shutdown` completes, then stops receiving and waits for the batches in
/// hand to finish (delivered, recorded and deleted). Each batch is handled in its own
/// task while the next is received, up to [`PollSettings::batches_in_flight`] at once;
/// at that bound the worker receives nothing until one finishes. Each batch deletes its
/// own messages when it is done. Records the handler reports as failures are left
/// alone, so SQS makes them visible again after the visibility timeout (and, past
/// `maxReceiveCount`, moves them to the DLQ); when the handler fails the whole batch,
/// none of it is deleted.
pub async fn run(
    client: &Client,
    consumer: &Arc<Consumer>,
    settings: &PollSettings,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let bound = settings.batches_in_flight.max(1);
    tracing::info!(queue = %settings.queue_url, batches_in_flight = bound, "worker polling");
    let mut in_flight: JoinSet<()> = JoinSet::new();
    loop {
        while let Some(done) = in_flight.try_join_next() {
            finished(done);
        }
        if in_flight.len() >= bound {
            // Backpressure: nothing more is received until a batch is done.
            tokio::select! {
                _ = &mut shutdown => break,
                Some(done) = in_flight.join_next() => finished(done),
            }
            continue;
        }
        let received = tokio::select! {
            _ = &mut shutdown => break,
            r = next_batch(client, settings) => r,
        };
        let messages = match received {
            Ok(messages) => messages,
            Err(reason) => {
                tracing::error!(error = %reason, "ReceiveMessage failed; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        let (client, consumer) = (client.clone(), Arc::clone(consumer));
        let queue_url = settings.queue_url.clone();
        in_flight.spawn(async move { handle(&client, &consumer, &queue_url, messages).await });
    }
    if !in_flight.is_empty() {
        tracing::info!(
            batches = in_flight.len(),
            "worker stopping; finishing the batches in hand"
        );
    }
    while let Some(done) = in_flight.join_next().await {
        finished(done);
    }
    tracing::info!("worker stopped");
}

/// Logs a batch task that did not end normally (a panic: its messages come back after
/// the visibility timeout).
fn finished(done: Result<(), JoinError>) {
    if let Err(e) = done {
        tracing::error!(error = %e, "a batch task failed; its messages will be redelivered");
    }
}

/// Handles one batch and deletes the messages it is done with.
async fn handle(client: &Client, consumer: &Consumer, queue_url: &str, messages: Vec<Message>) {
    let handles: HashMap<String, String> = messages
        .iter()
        .filter_map(|m| Some((m.message_id.clone()?, m.receipt_handle.clone()?)))
        .collect();
    let response = match consumer.handle(to_sqs_event(messages)).await {
        Ok(response) => response,
        Err(e) => {
            // As on Lambda, the whole batch comes back after the visibility timeout.
            tracing::error!(error = %e, "batch failed; none of its messages is deleted");
            return;
        }
    };
    let failed: HashSet<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    let done: Vec<_> = handles
        .iter()
        .filter(|(id, _)| !failed.contains(id.as_str()))
        .collect();
    delete(client, queue_url, &done).await;
}

/// The next batch: a long poll of up to `wait_seconds`, then, once messages arrived,
/// what [`gather`] adds to them (up to the batch size). Empty when the poll ended with
/// nothing.
pub async fn next_batch(client: &Client, settings: &PollSettings) -> Result<Vec<Message>, String> {
    let first = settings.batch_size.min(RECEIVE_MAX);
    let mut messages = receive(client, settings, first, settings.wait_seconds).await?;
    if !messages.is_empty() {
        gather(client, settings, &mut messages).await;
    }
    Ok(messages)
}

/// One `ReceiveMessage` of at most `max` messages, waiting up to `wait_seconds`. It
/// asks for no attributes: the consumer reads only each message's id, receipt handle
/// and body, and every attribute costs SQS bytes and the SDK parsing on every receive.
async fn receive(
    client: &Client,
    settings: &PollSettings,
    max: usize,
    wait_seconds: i32,
) -> Result<Vec<Message>, String> {
    client
        .receive_message()
        .queue_url(&settings.queue_url)
        .max_number_of_messages(max as i32)
        .wait_time_seconds(wait_seconds)
        .send()
        .await
        .map(|out| out.messages.unwrap_or_default())
        .map_err(|e| error_reason(&e))
}

/// Fills a batch whose first messages arrived, as Lambda's event source mapping does
/// with a batching window: it takes what is waiting at once, and when the queue runs
/// dry it waits for the window to close and takes what gathered meanwhile, until the
/// batch is full. Waiting out the window and then draining costs a few receives per
/// batch, where long polls inside the window would return each new message on its own.
/// Without a window it only takes what is waiting: it receives again (without waiting)
/// while receives come back full, so a backlog is handled in full batches and a
/// trickle costs no extra receive.
async fn gather(client: &Client, settings: &PollSettings, messages: &mut Vec<Message>) {
    if settings.batch_window.is_zero() {
        let mut full = messages.len() == RECEIVE_MAX;
        while full && messages.len() < settings.batch_size {
            let max = (settings.batch_size - messages.len()).min(RECEIVE_MAX);
            match receive(client, settings, max, 0).await {
                Ok(more) => {
                    full = more.len() == max;
                    messages.extend(more);
                }
                Err(reason) => {
                    tracing::warn!(error = %reason, "ReceiveMessage failed while gathering a batch; handling what arrived");
                    break;
                }
            }
        }
        return;
    }
    let closes = tokio::time::Instant::now() + settings.batch_window;
    let mut closed = false;
    while messages.len() < settings.batch_size {
        let max = (settings.batch_size - messages.len()).min(RECEIVE_MAX);
        let more = match receive(client, settings, max, 0).await {
            Ok(more) => more,
            Err(reason) => {
                tracing::warn!(error = %reason, "ReceiveMessage failed while gathering a batch; handling what arrived");
                break;
            }
        };
        let dry = more.is_empty();
        messages.extend(more);
        let now = tokio::time::Instant::now();
        closed |= now >= closes;
        if dry {
            if closed {
                break;
            }
            tokio::time::sleep_until(closes).await;
            closed = true;
        } else if closed && now >= closes + settings.batch_window {
            // A queue that never runs dry while draining: hand over what there is.
            break;
        }
    }
}

/// Deletes the handled messages, 10 per `DeleteMessageBatch` (SQS's limit).
async fn delete(client: &Client, queue_url: &str, done: &[(&String, &String)]) {
    for chunk in done.chunks(RECEIVE_MAX) {
        delete_chunk(client, queue_url, chunk).await;
    }
}

async fn delete_chunk(client: &Client, queue_url: &str, done: &[(&String, &String)]) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enough_batches_are_in_hand_to_fill_the_bound_and_two_more() {
        assert_eq!(batches_in_flight(64, 10), 9);
        assert_eq!(batches_in_flight(64, 100), 3);
        assert_eq!(batches_in_flight(1, 10), 3);
        assert_eq!(batches_in_flight(0, 0), 3);
    }
}
