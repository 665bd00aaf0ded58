//! The consumer: one function from an SQS batch to a partial batch response.
//!
//! Each (event, subscription) delivery succeeds or retries on its own. A fresh event
//! is fanned out and attempted at once; a delivery that fails goes back on the queue
//! as its own `Delivery` message, delayed by the retry schedule, so a failing endpoint
//! never causes a second request to one that succeeded. After the last attempt (or a
//! 410, or a refused address) the delivery is parked on the DLQ with its reason. The
//! record a delivery came from is reported as failed only when that hand-off could
//! not be made durable; then SQS redelivers the whole record (at-least-once). A record
//! that must come back but has no message id cannot be named in the response: then
//! the whole batch comes back ([`BatchError`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use bytes::Bytes;
use chrono::Utc;
use futures::stream::{self, StreamExt};
use herald_core::attempt::truncate_to;
use herald_core::retry::next_step;
use herald_core::{
    signed_request, webhook_id, Attempt, DeadLetter, DeliveryOutcome, DeliveryTask, Envelope,
    Event, NextStep, QueueMessage, RetrySchedule, Route,
};
use herald_delivery::Deliverer;
use herald_queue::{Outbox, MAX_MESSAGE_BYTES, RETRY_HEADROOM};
use herald_store::{BatchAttempt, BatchHistory};
use tracing::{info_span, Instrument};

use crate::history::History;
use crate::subscriptions::SubscriptionSource;

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
    pub schedule: RetrySchedule,
    pub retry_after_cap: Duration,
    /// Deliveries in flight at once across the batch.
    pub concurrency: usize,
    /// Deliveries not started this long after the batch began are handed back to the
    /// queue (attempt not counted), which bounds the time a batch can take.
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
    pub subscriptions: Arc<dyn SubscriptionSource>,
    pub deliverer: Arc<dyn Deliverer>,
    pub outbox: Arc<dyn Outbox>,
    pub history: Arc<dyn History>,
}

/// Turns batches of queue messages into signed deliveries.
pub struct Consumer {
    adapters: Adapters,
    policy: DeliveryPolicy,
    /// The events queue's maximum message size, in bytes.
    max_message_bytes: usize,
}

/// What became of one record of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Done with: delivered, scheduled for retry, parked, or recorded as not sent.
    Done,
    /// Must come back from the queue.
    Retry,
}

/// One delivery to attempt in this batch.
struct Work {
    record: usize,
    task: DeliveryTask,
    subscription: Route,
    /// Part of a fresh event's first fan-out (from an `Event` message), not a retry,
    /// re-send or re-drive (from a `Delivery` message).
    first_fan_out: bool,
}

impl Work {
    /// `attempt`, made for this work, as the history records it.
    fn tagged(&self, attempt: Attempt) -> BatchAttempt {
        BatchAttempt {
            attempt,
            first_fan_out: self.first_fan_out,
        }
    }
}

/// What planning a record produced.
struct Plan {
    work: Vec<Work>,
    not_sent: Vec<Attempt>,
    /// A freshly published event, to keep in the history store.
    event: Option<Event>,
    /// Planned from an `Event` message: its attempts are the event's first fan-out.
    first_fan_out: bool,
    fate: Fate,
}

impl Plan {
    fn done() -> Self {
        Self {
            work: Vec::new(),
            not_sent: Vec::new(),
            event: None,
            first_fan_out: false,
            fate: Fate::Done,
        }
    }

    fn retry() -> Self {
        Self {
            fate: Fate::Retry,
            ..Self::done()
        }
    }
}

impl Consumer {
    /// A consumer that assumes the classic 256 KiB SQS message limit (as
    /// `herald_queue::Publisher::new` does); [`Consumer::with_max_message_bytes`] sets
    /// the events queue's own.
    pub fn new(adapters: Adapters, policy: DeliveryPolicy) -> Self {
        Self {
            adapters,
            policy,
            max_message_bytes: MAX_MESSAGE_BYTES,
        }
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

    pub fn policy(&self) -> &DeliveryPolicy {
        &self.policy
    }

    /// Handles one batch. The response lists only the records that must come back:
    /// a failed subscription lookup, or a follow-up (retry, dead letter) that could not
    /// be sent. Undecodable records are parked on the DLQ with their reason and never
    /// stop the other records of the batch.
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
    /// history write by it: a call that would run over is abandoned, and what it was
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
        let started = Instant::now();
        let follow_ups_by = deadline
            .checked_sub(HISTORY_RESERVE)
            .unwrap_or(deadline)
            .max(started);
        let mut history = BatchHistory::start();
        let records = batch.records;
        // The futures are made up front rather than by a closure mapped over a stream of
        // borrowed records: that keeps the whole future `Send` where it is spawned (the
        // tests run the worker in a tokio task), which rustc cannot prove for such a map.
        let planned: Vec<_> = records
            .iter()
            .enumerate()
            .map(|(index, record)| {
                let span = info_span!(
                    "message",
                    message_id = record.message_id.as_deref().unwrap_or_default(),
                    event_id = tracing::field::Empty
                );
                self.plan(index, record, follow_ups_by).instrument(span)
            })
            .collect();
        let plans: Vec<Plan> = stream::iter(planned)
            .buffered(records.len().max(1))
            .collect()
            .await;

        let mut fates: Vec<Fate> = plans.iter().map(|p| p.fate).collect();
        let mut work = Vec::new();
        for plan in plans {
            for attempt in plan.not_sent {
                history.attempted(attempt, plan.first_fan_out);
            }
            work.extend(plan.work);
            if let Some(event) = plan.event {
                history.fanned_out(event);
            }
        }

        let start_by = started + self.policy.start_deadline;
        let results: Vec<(usize, Fate, Option<BatchAttempt>)> = stream::iter(work)
            .map(|w| {
                let span = info_span!(
                    "delivery",
                    event_id = %w.task.event.id,
                    subscription_id = %w.subscription.id,
                    webhook_id = %webhook_id(&w.task.event.id, &w.subscription.id),
                    attempt = w.task.attempt,
                );
                self.run(w, start_by, follow_ups_by).instrument(span)
            })
            .buffer_unordered(self.policy.concurrency.max(1))
            .collect()
            .await;
        for (record, fate, attempt) in results {
            if fate == Fate::Retry {
                fates[record] = Fate::Retry;
            }
            history.attempts.extend(attempt);
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
        tracing::info!(
            records = records.len(),
            attempts,
            returned = response.batch_item_failures.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "batch handled"
        );
        Ok(response)
    }

    /// Decodes a record and works out its deliveries; its calls end by `by`.
    async fn plan(&self, index: usize, record: &SqsMessage, by: Instant) -> Plan {
        let body = record.body.as_deref().unwrap_or_default();
        if body.len() > self.max_record_bytes() {
            // Delivered, it could neither be retried nor parked whole: it would come
            // back again and again, fanned out each time, until the queue moved it to
            // the DLQ itself, without a reason.
            let reason = format!(
                "message of {} bytes is over the limit of {} bytes for an event on this \
                 queue (its maximum message size, {} bytes, less {RETRY_HEADROOM} kept \
                 for retry metadata): it could not be retried or parked whole",
                body.len(),
                self.max_record_bytes(),
                self.max_message_bytes
            );
            return self.park_undecodable(body, &reason, record, by).await;
        }
        match QueueMessage::decode(body) {
            Err(e) => self.park_undecodable(body, &e.reason, record, by).await,
            Ok(QueueMessage::Event { event }) => {
                tracing::Span::current().record("event_id", tracing::field::display(&event.id));
                self.plan_event(index, event, by).await
            }
            Ok(QueueMessage::Delivery { delivery }) => {
                tracing::Span::current()
                    .record("event_id", tracing::field::display(&delivery.event.id));
                self.plan_delivery(index, delivery, by).await
            }
        }
    }

    /// Parks a record that is not taken on as it is, with `reason`.
    async fn park_undecodable(
        &self,
        body: &str,
        reason: &str,
        record: &SqsMessage,
        by: Instant,
    ) -> Plan {
        let letter = DeadLetter::undecodable(body, reason, record.message_id.clone());
        match send_durably(by, || self.adapters.outbox.park(&letter)).await {
            Ok(()) => {
                tracing::warn!(%reason, "undecodable message parked on the DLQ");
                Plan::done()
            }
            Err(err) => {
                tracing::error!(%reason, error = %err, "could not park an undecodable message; it will come back");
                Plan::retry()
            }
        }
    }

    async fn plan_event(&self, index: usize, event: Event, by: Instant) -> Plan {
        let subs = match within(
            by,
            self.adapters
                .subscriptions
                .routes(&event.app_id, &event.event_type),
        )
        .await
        {
            Ok(subs) => subs,
            Err(e) => {
                tracing::error!(error = %e, "subscription lookup failed; the message will come back");
                return Plan::retry();
            }
        };
        let mut plan = Plan {
            first_fan_out: true,
            ..Plan::done()
        };
        for sub in subs.iter().filter(|s| s.filters_admit(&event)) {
            if sub.active {
                plan.work.push(Work {
                    record: index,
                    task: DeliveryTask::first(event.clone(), sub.id.clone()),
                    subscription: sub.clone(),
                    first_fan_out: true,
                });
            } else {
                plan.not_sent.push(Attempt::not_sent(
                    &event,
                    &sub.id,
                    "endpoint_disabled",
                    sub.disabled_reason.as_deref(),
                ));
            }
        }
        tracing::debug!(
            deliveries = plan.work.len(),
            not_sent = plan.not_sent.len(),
            "event fanned out"
        );
        // Kept for re-sending only when some webhook wanted it (delivered to, or not
        // sent because disabled): an event nobody subscribed to costs no write.
        if !plan.work.is_empty() || !plan.not_sent.is_empty() {
            plan.event = Some(event);
        }
        plan
    }

    async fn plan_delivery(&self, index: usize, task: DeliveryTask, by: Instant) -> Plan {
        let now = Utc::now();
        if task.not_before > now + DUE_TOLERANCE {
            // Longer than SQS can delay at once: another hop.
            let remaining = (task.not_before - now).to_std().unwrap_or_default();
            return match send_durably(by, || self.adapters.outbox.schedule(&task, remaining)).await
            {
                Ok(()) => {
                    tracing::debug!(
                        remaining_s = remaining.as_secs(),
                        "not due yet; delayed again"
                    );
                    Plan::done()
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not re-delay a delivery; it will come back");
                    Plan::retry()
                }
            };
        }
        let app = &task.event.app_id;
        let cached = match within(
            by,
            self.adapters
                .subscriptions
                .routes(app, &task.event.event_type),
        )
        .await
        {
            Ok(subs) => subs.iter().find(|s| s.id == task.subscription_id).cloned(),
            Err(e) => {
                tracing::error!(error = %e, "subscription lookup failed; the message will come back");
                return Plan::retry();
            }
        };
        let subscription = match cached {
            Some(s) => Some(s),
            None => match within(
                by,
                self.adapters.subscriptions.get(app, &task.subscription_id),
            )
            .await
            {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "subscription lookup failed; the message will come back");
                    return Plan::retry();
                }
            },
        };
        let Some(subscription) = subscription else {
            tracing::info!("subscription deleted; delivery dropped and recorded as not sent");
            let mut plan = Plan::done();
            plan.not_sent.push(Attempt::not_sent(
                &task.event,
                &task.subscription_id,
                "subscription_deleted",
                None,
            ));
            return plan;
        };
        if !subscription.active {
            // A delivery already under way when its endpoint was disabled: park it,
            // so it can be re-driven once the endpoint is enabled again.
            let reason = format!(
                "endpoint disabled: {}",
                subscription
                    .disabled_reason
                    .as_deref()
                    .unwrap_or("disabled by its owner")
            );
            let attempts_made = task.attempt.saturating_sub(1);
            let letter = DeadLetter::Failed {
                reason,
                delivery: task.clone(),
                attempts: attempts_made,
                last_status: None,
                last_error: task.last_result.clone(),
                parked_at: Utc::now(),
            };
            let mut plan = match send_durably(by, || self.adapters.outbox.park(&letter)).await {
                Ok(()) => Plan::done(),
                Err(e) => {
                    tracing::error!(error = %e, "could not park a delivery for a disabled endpoint");
                    return Plan::retry();
                }
            };
            plan.not_sent.push(Attempt::not_sent(
                &task.event,
                &subscription.id,
                "endpoint_disabled",
                subscription.disabled_reason.as_deref(),
            ));
            return plan;
        }
        Plan {
            work: vec![Work {
                record: index,
                task,
                subscription,
                first_fan_out: false,
            }],
            ..Plan::done()
        }
    }

    /// Attempts one delivery (or hands it back if it cannot start by `start_by`) and
    /// arranges what follows, by `by`. Returns the record's fate and the attempt made.
    async fn run(
        &self,
        w: Work,
        start_by: Instant,
        by: Instant,
    ) -> (usize, Fate, Option<BatchAttempt>) {
        if Instant::now() >= start_by {
            let fate = match send_durably(by, || {
                self.adapters.outbox.schedule(&w.task, Duration::ZERO)
            })
            .await
            {
                Ok(()) => {
                    tracing::info!("batch out of time; delivery handed back to the queue");
                    Fate::Done
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not hand a delivery back; the record will come back");
                    Fate::Retry
                }
            };
            return (w.record, fate, None);
        }

        let body = Bytes::from(Envelope::of(&w.task.event).to_body());
        let request = signed_request(&w.task.event, &w.subscription, body);
        let attempted_at = Utc::now();
        let outcome = self.adapters.deliverer.deliver(request).await;
        let mut attempt = Attempt::of_outcome(
            &w.task.event,
            &w.subscription.id,
            w.task.attempt,
            attempted_at,
            &outcome,
        );

        let Some(failure) = outcome.failure() else {
            // One summary line per batch; a line per delivery only at debug.
            tracing::debug!(
                status = outcome.status(),
                latency_ms = attempt.latency_ms,
                "delivered"
            );
            if let Err(e) = within(by, self.adapters.subscriptions.delivered(&w.subscription)).await
            {
                tracing::warn!(error = %e, "could not reset the endpoint's failure count");
            }
            return (w.record, Fate::Done, Some(w.tagged(attempt)));
        };

        let step = next_step(
            &self.policy.schedule,
            w.task.attempt,
            &failure,
            self.policy.retry_after_cap,
            rand::random::<f64>(),
        );
        let fate = match step {
            NextStep::Retry(delay) => {
                let next = DeliveryTask {
                    attempt: w.task.attempt + 1,
                    not_before: Utc::now() + delay,
                    last_result: Some(truncate_to(&outcome.describe(), LAST_RESULT_LIMIT)),
                    ..w.task.clone()
                };
                tracing::warn!(result = %outcome.describe(), retry_in_ms = delay.as_millis() as u64, "delivery failed; retry scheduled");
                match send_durably(by, || self.adapters.outbox.schedule(&next, delay)).await {
                    Ok(()) => {
                        attempt.next_attempt_at = Some(next.not_before);
                        Fate::Done
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "could not schedule the retry; the record will come back");
                        Fate::Retry
                    }
                }
            }
            NextStep::Park { reason } => {
                let fate = self.park_failed(&w, reason, &outcome, by).await;
                if fate == Fate::Done {
                    match within(
                        by,
                        self.adapters
                            .subscriptions
                            .record_failed_delivery(&w.subscription.app_id, &w.subscription.id),
                    )
                    .await
                    {
                        Ok(true) => {
                            tracing::warn!("endpoint disabled after repeated failed deliveries")
                        }
                        Ok(false) => {}
                        Err(e) => tracing::warn!(error = %e, "could not count the failed delivery"),
                    }
                }
                fate
            }
            NextStep::DisableAndPark { reason } => {
                // The delivery's hand-off first: a disable that cannot be written in
                // time must not cost the dead letter its place.
                let fate = self.park_failed(&w, reason.clone(), &outcome, by).await;
                if let Err(e) = within(
                    by,
                    self.adapters.subscriptions.disable(
                        &w.subscription.app_id,
                        &w.subscription.id,
                        &reason,
                    ),
                )
                .await
                {
                    tracing::warn!(error = %e, "could not disable the endpoint");
                }
                fate
            }
        };
        (w.record, fate, Some(w.tagged(attempt)))
    }

    async fn park_failed(
        &self,
        w: &Work,
        reason: String,
        outcome: &DeliveryOutcome,
        by: Instant,
    ) -> Fate {
        tracing::warn!(result = %outcome.describe(), %reason, "delivery parked on the DLQ");
        let letter = DeadLetter::Failed {
            reason,
            delivery: w.task.clone(),
            attempts: w.task.attempt,
            last_status: outcome.status(),
            last_error: outcome
                .error()
                .map(|e| truncate_to(&e.to_string(), LAST_RESULT_LIMIT)),
            parked_at: Utc::now(),
        };
        match send_durably(by, || self.adapters.outbox.park(&letter)).await {
            Ok(()) => Fate::Done,
            Err(e) => {
                tracing::error!(error = %e, "could not park the delivery; the record will come back");
                Fate::Retry
            }
        }
    }
}

/// Sends to the outbox, trying again (after 100 ms, then 400 ms) while `by` allows. A
/// send that fails for good makes its whole record come back, and an `Event` record
/// that comes back is fanned out again to every webhook of the event, so a passing SQS
/// error is worth a retry here.
async fn send_durably<F, Fut, E>(by: Instant, mut send: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut backoff = Duration::from_millis(100);
    loop {
        let error = match within(by, send()).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if Instant::now() + backoff >= by || backoff > Duration::from_millis(400) {
            return Err(error);
        }
        tracing::warn!(error = %error, "an outbox send failed; trying again");
        tokio::time::sleep(backoff).await;
        backoff *= 4;
    }
}

/// Awaits `call` unless `by` comes first; either way an error is its text.
async fn within<T, E: std::fmt::Display>(
    by: Instant,
    call: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout_at(tokio::time::Instant::from_std(by), call).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err("abandoned: the batch's deadline came first".to_owned()),
    }
}

#[cfg(test)]
mod tests;
