//! The consumer: one function from an SQS batch to a partial batch response.
//!
//! Each (event, subscription) delivery succeeds or retries on its own. A fresh event
//! is fanned out and attempted at once (a delivery over its webhook's rate limit
//! waits for its slot, on the queue when it is not near: [`pace`]); a delivery that
//! fails goes back on the queue as its own `Delivery` message, delayed by the retry
//! schedule, so a failing endpoint never causes a second request to one that
//! succeeded. After the last attempt (or a
//! 410, or a refused address) the delivery is parked on the DLQ with its reason. The
//! record a delivery came from is reported as failed only when that hand-off could
//! not be made durable; then SQS redelivers the whole record (at-least-once). A record
//! that must come back but has no message id cannot be named in the response: then
//! the whole batch comes back ([`BatchError`]).

mod calls;
mod groups;
mod pace;
mod plan;
mod run;

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use futures::stream::{self, FuturesUnordered, StreamExt};
use herald_core::{AppId, RetrySchedule};
use herald_delivery::Deliverer;
use herald_queue::{Outbox, MAX_MESSAGE_BYTES, RETRY_HEADROOM};
use herald_store::{BatchAttempt, BatchHistory};
use tokio::sync::Semaphore;

use crate::history::History;
use crate::metrics::{BatchCounts, Metrics};
use crate::subscriptions::SubscriptionSource;
use calls::{send_durably, within};
use plan::Plan;

/// Allowance for the calls made after the last delivery of a batch ends (retry
/// scheduling, parking, history): they are abandoned when it runs out
/// ([`Consumer::handle_until`]).
pub const FOLLOW_UP_ALLOWANCE: Duration = Duration::from_secs(10);
/// The part of the allowance kept for the history write, the batch's last call.
pub const HISTORY_RESERVE: Duration = Duration::from_secs(3);
/// Longest error text carried on a queued retry or a dead letter (the room kept for
/// it is `herald_queue::RETRY_HEADROOM`).
const LAST_RESULT_LIMIT: usize = 1024;
/// A delivery task received this close to its due time is attempted, not re-delayed.
const DUE_TOLERANCE: chrono::TimeDelta = chrono::TimeDelta::milliseconds(200);

/// The delivery rules the consumer applies.
#[derive(Debug, Clone)]
pub struct DeliveryPolicy {
    /// Delays between attempts, and how many.
    pub schedule: RetrySchedule,
    /// The longest delay a `Retry-After` can ask for.
    pub retry_after_cap: Duration,
    /// Deliveries in flight at once across every batch one [`Consumer`] handles at a
    /// time (concurrent `handle` calls share the bound).
    pub concurrency: usize,
    /// Deliveries not started this long after their batch began (waiting for room
    /// under `concurrency` included) are handed back to the queue (attempt not
    /// counted), which bounds the time a batch can take.
    pub start_deadline: Duration,
    /// The total timeout of one HTTP attempt.
    pub attempt_timeout: Duration,
}

impl DeliveryPolicy {
    /// The longest a batch can take: deliveries start within `start_deadline`, each
    /// lasts at most `attempt_timeout`, then the follow-up calls. The queue's
    /// visibility timeout must exceed this, so no message is processed twice at once.
    pub fn worst_case_batch_time(&self) -> Duration {
        self.start_deadline + self.attempt_timeout + FOLLOW_UP_ALLOWANCE
    }
}

/// A batch that must come back whole: some record needs to be received again but has
/// no message id, so the partial batch response cannot name it, and reporting the
/// batch as handled would delete it. The Lambda invocation fails (SQS retries every
/// record of the batch) and the local worker deletes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{unnamed} of the batch's {records} records must come back but have no message id; \
     the whole batch must come back"
)]
pub struct BatchError {
    /// Records that must come back and have no message id.
    pub unnamed: usize,
    /// Records in the batch.
    pub records: usize,
}

/// The adapters the consumer drives.
pub struct Adapters {
    /// The webhooks' routes and the auto-disable failure counts (the "health writes"
    /// of the webhook items; the hourly endpoint health counters are the history's).
    pub subscriptions: Arc<dyn SubscriptionSource>,
    /// Makes the HTTP requests.
    pub deliverer: Arc<dyn Deliverer>,
    /// Retries and dead letters.
    pub outbox: Arc<dyn Outbox>,
    /// The delivery history.
    pub history: Arc<dyn History>,
}

/// Turns batches of queue messages into signed deliveries. Share one consumer (an
/// `Arc`) between concurrent batches: the bound on deliveries in flight
/// ([`DeliveryPolicy::concurrency`]) is the consumer's, across all of them.
pub struct Consumer {
    adapters: Adapters,
    policy: DeliveryPolicy,
    /// One permit per delivery in flight, shared by every batch being handled.
    permits: Semaphore,
    /// The events queue's maximum message size, in bytes.
    max_message_bytes: usize,
    /// Where each batch's metrics go, if anywhere.
    metrics: Option<Metrics>,
}

/// What became of one record of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Done with: delivered, scheduled for retry, parked, or recorded as not sent.
    Done,
    /// Must come back from the queue.
    Retry,
}

/// What a delivery of a batch made.
#[allow(clippy::large_enum_variant)] // the attempt moves on into the history; boxing it would cost an allocation per delivery
enum Made {
    /// An attempt.
    Attempt(BatchAttempt),
    /// Nothing: handed back to the queue, or its record comes back.
    Nothing,
    /// Nothing yet: its webhook's rate limit put it back on the queue (of this app).
    Deferred(AppId),
}

/// What one delivery of a batch came to: its record's index, the record's fate as far
/// as this delivery goes, and what it made.
type Ran = (usize, Fate, Made);

impl Consumer {
    /// A consumer driving `adapters` by `policy`. It assumes the classic 256 KiB SQS
    /// message limit (as `herald_queue::Publisher::new` does);
    /// [`Consumer::with_max_message_bytes`] sets the events queue's own.
    pub fn new(adapters: Adapters, policy: DeliveryPolicy) -> Self {
        Self {
            permits: Semaphore::new(policy.concurrency.max(1)),
            adapters,
            policy,
            max_message_bytes: MAX_MESSAGE_BYTES,
            metrics: None,
        }
    }

    /// Writes each batch's metrics with `metrics` ([`crate::metrics`]).
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The events queue's maximum message size (its `MaximumMessageSize`). A record
    /// longer than this less `herald_queue::RETRY_HEADROOM` is parked at first sight:
    /// a retry of it would not fit on the queue (the publisher never sends one; only a
    /// message sent around it can be one).
    pub fn with_max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    /// The largest record this consumer takes on, in bytes: the events queue's limit
    /// less the room a retry adds around an event.
    pub fn max_record_bytes(&self) -> usize {
        self.max_message_bytes.saturating_sub(RETRY_HEADROOM)
    }

    /// The rules this consumer applies.
    pub fn policy(&self) -> &DeliveryPolicy {
        &self.policy
    }

    /// Handles one batch. The response lists only the records that must come back:
    /// a failed subscription lookup, or a follow-up (retry, dead letter) that could not
    /// be sent. Undecodable records are parked on the DLQ with their reason and never
    /// stop the other records of the batch. Batches may be handled concurrently; their
    /// deliveries share the consumer's bound.
    ///
    /// # Errors
    ///
    /// [`BatchError`] when a record that must come back has no message id: the
    /// response could not name it, so the whole batch must come back. The deliveries
    /// made stand and are recorded; receivers dedupe the repeats on `webhook-id`.
    pub async fn handle(&self, batch: SqsEvent) -> Result<SqsBatchResponse, BatchError> {
        let answer_by = Instant::now() + self.policy.worst_case_batch_time();
        self.handle_until(batch, answer_by).await
    }

    /// As [`Consumer::handle`], answering by `deadline` at the latest (on Lambda, the
    /// invocation's own deadline, if it comes before the worst-case batch time). Every
    /// call after the deliveries (a retry scheduled, a dead letter parked, an endpoint's
    /// failure counted or disabled) must end [`HISTORY_RESERVE`] before it, and the
    /// history write (the endpoint health counters are written beside it, in the same
    /// call) by it: a call that would run over is abandoned, and what it was
    /// for comes back from the queue (a retry or a dead letter not sent) or is logged
    /// (a failure not counted, a history gap) rather than letting the whole batch time
    /// out and be delivered again.
    ///
    /// # Errors
    ///
    /// As [`Consumer::handle`].
    pub async fn handle_until(
        &self,
        batch: SqsEvent,
        deadline: Instant,
    ) -> Result<SqsBatchResponse, BatchError> {
        if groups::is_fifo(&batch) {
            return self.handle_groups(batch, deadline).await;
        }
        let start_by = Instant::now() + self.policy.start_deadline;
        self.handle_by(batch, start_by, deadline).await
    }

    /// As [`Consumer::handle_until`], the batch's deliveries starting by `start_by`.
    async fn handle_by(
        &self,
        batch: SqsEvent,
        start_by: Instant,
        deadline: Instant,
    ) -> Result<SqsBatchResponse, BatchError> {
        let started = Instant::now();
        let follow_ups_by = deadline
            .checked_sub(HISTORY_RESERVE)
            .unwrap_or(deadline)
            .max(started);
        let records = batch.records;
        // The futures are made up front rather than by a closure mapped over a stream of
        // borrowed records: that keeps the whole future `Send` where it is spawned (the
        // worker runs each batch in a tokio task), which rustc cannot prove for such a map.
        // A batch of one record (latency-first batching, a trickle of events) skips the
        // streams' bookkeeping: a task allocated per future and their wakers.
        let plans: Vec<Plan> = if let [record] = records.as_slice() {
            vec![self.plan(0, record, follow_ups_by).await]
        } else {
            let planned: Vec<_> = records
                .iter()
                .enumerate()
                .map(|(index, record)| self.plan(index, record, follow_ups_by))
                .collect();
            stream::iter(planned)
                .buffered(records.len().max(1))
                .collect()
                .await
        };

        let mut history = BatchHistory::start();
        let mut fates: Vec<Fate> = plans.iter().map(|p| p.fate).collect();
        // Deliveries to ordered webhooks onto the FIFO queue, record by record in the
        // batch's order. A record whose deliveries could not be queued comes back whole
        // and is fanned out again then (the queue drops the repeats it already holds).
        for (index, plan) in plans.iter().enumerate() {
            if plan.ordered.is_empty() {
                continue;
            }
            if let Err(e) =
                send_durably(follow_ups_by, || self.adapters.outbox.order(&plan.ordered)).await
            {
                tracing::error!(error = %e, deliveries = plan.ordered.len(), "could not queue ordered deliveries; the record will come back");
                fates[index] = Fate::Retry;
            }
        }
        let mut work = Vec::new();
        let mut events = Vec::new();
        for (index, plan) in plans.into_iter().enumerate() {
            if !plan.ordered.is_empty() && fates[index] == Fate::Retry {
                continue;
            }
            for attempt in plan.not_sent {
                history.attempted(attempt, plan.first_fan_out);
            }
            work.extend(plan.work);
            events.extend(plan.event);
        }

        // Deliveries to rate-limited webhooks get their slots (nothing happens here
        // for the others).
        self.reserve_slots(&mut work, follow_ups_by).await;
        // Every delivery of the batch waits for a permit of the consumer's bound; those
        // that get none by the start deadline are handed back.
        let results: Vec<Ran> = if work.len() == 1 {
            let w = work.pop().expect("one delivery");
            vec![self.run(w, start_by, follow_ups_by).await]
        } else {
            work.into_iter()
                .map(|w| self.run(w, start_by, follow_ups_by))
                .collect::<FuturesUnordered<_>>()
                .collect()
                .await
        };
        let mut deferred = Vec::new();
        for (record, fate, made) in results {
            if fate == Fate::Retry {
                fates[record] = Fate::Retry;
            }
            match made {
                Made::Attempt(attempt) => history.attempts.push(attempt),
                Made::Deferred(app) => deferred.push(app),
                Made::Nothing => {}
            }
        }
        // The deliveries are over and their shares of each event dropped: the events
        // move into the history without a copy.
        for event in events {
            history.fanned_out(Arc::unwrap_or_clone(event));
        }
        let attempts = history.attempts.len();

        if !history.is_empty() {
            if let Err(e) = within(deadline, self.adapters.history.record(&history)).await {
                // Failing the records would repeat deliveries that succeeded; the
                // deliveries stand and the gap in the history is logged.
                tracing::error!(error = %e, records = attempts, "could not write the delivery history");
            }
        }

        let mut response = SqsBatchResponse::default();
        let mut unnamed = 0;
        for (record, fate) in records.iter().zip(&fates) {
            if *fate == Fate::Retry {
                match record.message_id.as_deref().filter(|id| !id.is_empty()) {
                    Some(id) => response.add_failure(id.to_owned()),
                    None => unnamed += 1,
                }
            }
        }
        if unnamed > 0 {
            let error = BatchError {
                unnamed,
                records: records.len(),
            };
            tracing::error!(
                error = %error,
                attempts,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "batch failed"
            );
            return Err(error);
        }
        let elapsed_ms = started.elapsed().as_millis() as u64;
        tracing::info!(
            records = records.len(),
            attempts,
            deferred = deferred.len(),
            returned = response.batch_item_failures.len(),
            elapsed_ms,
            "batch handled"
        );
        if let Some(metrics) = &self.metrics {
            let made = history.attempts.iter().map(|a| &a.attempt);
            let counts = BatchCounts::of(
                records.len(),
                elapsed_ms,
                made,
                &deferred,
                metrics.per_app(),
            );
            metrics.batch(&counts, chrono::Utc::now().timestamp_millis());
        }
        Ok(response)
    }
}

#[cfg(test)]
mod tests;
