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

use aws_sdk_sqs::types::Message;
use herald_queue::sqs::{to_sqs_event, EntryResult};
use herald_queue::MessageSource;
use tokio::task::{JoinError, JoinSet};

use crate::handler::Consumer;

/// How to poll.
#[derive(Debug, Clone)]
pub struct PollSettings {
    /// Long-poll wait of the first receive of a batch.
    pub wait: Duration,
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

impl PollSettings {
    /// The worker's settings of `config` (`HERALD_WORKER_*`), with as many batches in
    /// flight as [`batches_in_flight`] says for its delivery concurrency.
    pub fn of(config: &crate::ConsumerConfig) -> Self {
        Self {
            wait: config.worker_wait,
            batch_size: config.worker_batch_size,
            batch_window: config.worker_batch_window,
            batches_in_flight: batches_in_flight(
                config.delivery.concurrency,
                config.worker_batch_size,
            ),
        }
    }
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
    queue: &Arc<dyn MessageSource>,
    consumer: &Arc<Consumer>,
    settings: &PollSettings,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let bound = settings.batches_in_flight.max(1);
    tracing::info!(batches_in_flight = bound, "worker polling");
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
            r = next_batch(queue.as_ref(), settings) => r,
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
        let (queue, consumer) = (Arc::clone(queue), Arc::clone(consumer));
        in_flight.spawn(async move { handle(queue.as_ref(), &consumer, messages).await });
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
async fn handle(queue: &dyn MessageSource, consumer: &Consumer, messages: Vec<Message>) {
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
    delete(queue, &done).await;
}

/// The next batch: a long poll of up to `wait_seconds`, then, once messages arrived,
/// what [`gather`] adds to them (up to the batch size). Empty when the poll ended with
/// nothing.
pub async fn next_batch(
    queue: &dyn MessageSource,
    settings: &PollSettings,
) -> Result<Vec<Message>, String> {
    let first = settings.batch_size.min(RECEIVE_MAX);
    let mut messages = receive(queue, first, settings.wait).await?;
    if !messages.is_empty() {
        gather(queue, settings, &mut messages).await;
    }
    Ok(messages)
}

/// One receive of at most `max` messages, waiting up to `wait`.
async fn receive(
    queue: &dyn MessageSource,
    max: usize,
    wait: Duration,
) -> Result<Vec<Message>, String> {
    queue.receive(max, wait).await.map_err(|e| e.reason)
}

/// Fills a batch whose first messages arrived, as Lambda's event source mapping does
/// with a batching window: it takes what is waiting at once, and when the queue runs
/// dry it waits for the window to close and takes what gathered meanwhile, until the
/// batch is full. Waiting out the window and then draining costs a few receives per
/// batch, where long polls inside the window would return each new message on its own.
/// Without a window it only takes what is waiting: it receives again (without waiting)
/// while receives come back full, so a backlog is handled in full batches and a
/// trickle costs no extra receive.
async fn gather(queue: &dyn MessageSource, settings: &PollSettings, messages: &mut Vec<Message>) {
    if settings.batch_window.is_zero() {
        let mut full = messages.len() == RECEIVE_MAX;
        while full && messages.len() < settings.batch_size {
            let max = (settings.batch_size - messages.len()).min(RECEIVE_MAX);
            match receive(queue, max, Duration::ZERO).await {
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
        let more = match receive(queue, max, Duration::ZERO).await {
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

/// Deletes the handled messages, 10 per batch call (SQS's limit).
async fn delete(queue: &dyn MessageSource, done: &[(&String, &String)]) {
    for chunk in done.chunks(RECEIVE_MAX) {
        let handles: Vec<&str> = chunk.iter().map(|(_, h)| h.as_str()).collect();
        match queue.delete(&handles).await {
            Ok(results) => {
                for ((message_id, _), result) in chunk.iter().zip(results) {
                    if let EntryResult::Failed { reason, .. } = result {
                        // The message will be received again; receivers dedupe on webhook-id.
                        tracing::warn!(%message_id, %reason, "DeleteMessageBatch entry failed; the message will be redelivered");
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e.reason, "DeleteMessageBatch failed; the messages will be redelivered");
            }
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
