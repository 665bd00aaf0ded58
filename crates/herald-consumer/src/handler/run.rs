//! Running one delivery: a permit of the consumer's bound, the signed request, and
//! what follows a failure (a retry scheduled, a dead letter, the endpoint's health).
//!
//! A delivery that succeeds logs nothing at `info` (the batch logs one summary line);
//! each line about a failed one carries its `event_id`, `subscription_id`,
//! `webhook_id` and `attempt` as fields.

use std::time::{Duration, Instant};

use chrono::Utc;
use herald_core::attempt::truncate_to;
use herald_core::retry::next_step;
use herald_core::{
    is_callback, operational, Attempt, DeadLetter, DeliveryOutcome, DeliveryTask, Event, NextStep,
};

use super::calls::{send_durably, within};
use super::plan::Work;
use super::{Consumer, Fate, Made, Ran, LAST_RESULT_LIMIT};

/// Logs at `$level` about the delivery `$w`, with its ids as fields.
macro_rules! delivery_log {
    ($level:ident, $w:expr, $($rest:tt)+) => {
        tracing::$level!(
            event_id = %$w.event.id,
            subscription_id = %$w.route.id,
            webhook_id = %$w.webhook_id,
            attempt = $w.attempt,
            $($rest)+
        )
    };
}

impl Consumer {
    /// Attempts one delivery once its rate-limit slot has come (or defers it,
    /// [`Consumer::pace`]) and a permit of the consumer's bound is free (or hands it
    /// back if none is by `start_by`), and arranges what follows, by `by`.
    pub(super) async fn run(&self, mut w: Work, start_by: Instant, by: Instant) -> Ran {
        if Instant::now() >= start_by {
            return self.hand_back(w, by).await;
        }
        if let Some(deferred) = self.pace(&w, start_by, by).await {
            return deferred;
        }
        let permit = match tokio::time::timeout_at(start_by.into(), self.permits.acquire()).await {
            Ok(Ok(permit)) => permit,
            // Out of time (the semaphore is never closed).
            _ => return self.hand_back(w, by).await,
        };
        let attempted_at = Utc::now();
        let request = w
            .route
            .sign(w.webhook_id, std::mem::take(&mut w.body), attempted_at);
        let outcome = self.adapters.deliverer.deliver(request).await;
        drop(permit);
        let mut attempt = Attempt::of_outcome(
            &w.event,
            &w.route.id,
            w.webhook_id,
            w.attempt,
            attempted_at,
            &outcome,
        );

        let Some(failure) = outcome.failure() else {
            tracing::debug!(
                webhook_id = %w.webhook_id,
                status = outcome.status(),
                latency_ms = attempt.latency_ms,
                "delivered"
            );
            match within(by, self.adapters.subscriptions.delivered(&w.route)).await {
                Ok(true) if !w.event.event_type.is_operational() => {
                    let r = &w.route;
                    self.announce(
                        &w,
                        operational::delivery_recovered(&r.app_id, &r.id, &r.url),
                        by,
                    )
                    .await;
                }
                Ok(_) => {}
                Err(e) => {
                    delivery_log!(warn, w, error = %e, "could not reset the endpoint's failure count")
                }
            }
            return (w.record, Fate::Done, Made::Attempt(w.tagged(attempt)));
        };

        let step = next_step(
            &self.policy.schedule,
            w.attempt,
            &failure,
            self.policy.retry_after_cap,
            rand::random::<f64>(),
        );
        let fate = match step {
            NextStep::Retry(delay) => {
                let next = DeliveryTask {
                    attempt: w.attempt + 1,
                    not_before: Utc::now() + delay,
                    last_result: Some(truncate_to(&outcome.describe(), LAST_RESULT_LIMIT)),
                    // The retry reserves a slot of its own when it is due.
                    rate_slot: None,
                    ..w.task()
                };
                delivery_log!(warn, w, result = %outcome.describe(), retry_in_ms = delay.as_millis() as u64, "delivery failed; retry scheduled");
                if let Some(receipt) = &w.held {
                    // An ordered delivery stays where it is, blocking its group.
                    if self.hold(&w, receipt, delay, by).await {
                        attempt.next_attempt_at = Some(next.not_before);
                    }
                    return (w.record, Fate::Retry, Made::Attempt(w.tagged(attempt)));
                }
                match send_durably(by, || self.adapters.outbox.schedule(&next, delay)).await {
                    Ok(()) => {
                        attempt.next_attempt_at = Some(next.not_before);
                        Fate::Done
                    }
                    Err(e) => {
                        delivery_log!(error, w, error = %e, "could not schedule the retry; the record will come back");
                        Fate::Retry
                    }
                }
            }
            NextStep::Park { reason } => {
                let fate = self.park_failed(&w, reason.clone(), &outcome, by).await;
                // A callback URL is no endpoint: there is nothing to count or disable.
                if fate == Fate::Done && is_callback(&w.route.id) {
                    self.announce_exhausted(&w, &reason, &outcome, by).await;
                } else if fate == Fate::Done {
                    self.announce_exhausted(&w, &reason, &outcome, by).await;
                    match within(
                        by,
                        self.adapters
                            .subscriptions
                            .record_failed_delivery(&w.route.app_id, &w.route.id),
                    )
                    .await
                    {
                        Ok(true) => {
                            delivery_log!(
                                warn,
                                w,
                                "endpoint disabled after repeated failed deliveries"
                            );
                            let r = &w.route;
                            let disabled = operational::webhook_disabled(
                                &r.app_id,
                                &r.id,
                                &r.url,
                                "disabled automatically after repeated failed deliveries",
                            );
                            self.announce(&w, disabled, by).await;
                        }
                        Ok(false) => {}
                        Err(e) => {
                            delivery_log!(warn, w, error = %e, "could not count the failed delivery")
                        }
                    }
                }
                fate
            }
            NextStep::DisableAndPark { reason } => {
                // The delivery's hand-off first: a disable that cannot be written in
                // time must not cost the dead letter its place.
                let fate = self.park_failed(&w, reason.clone(), &outcome, by).await;
                if fate == Fate::Done {
                    self.announce_exhausted(&w, &reason, &outcome, by).await;
                }
                if is_callback(&w.route.id) {
                    return (w.record, fate, Made::Attempt(w.tagged(attempt)));
                }
                match within(
                    by,
                    self.adapters
                        .subscriptions
                        .disable(&w.route.app_id, &w.route.id, &reason),
                )
                .await
                {
                    Ok(()) => {
                        let r = &w.route;
                        let disabled =
                            operational::webhook_disabled(&r.app_id, &r.id, &r.url, &reason);
                        self.announce(&w, disabled, by).await;
                    }
                    Err(e) => {
                        delivery_log!(warn, w, error = %e, "could not disable the endpoint")
                    }
                }
                fate
            }
        };
        (w.record, fate, Made::Attempt(w.tagged(attempt)))
    }

    /// Announces that `w`'s delivery was parked (`herald.delivery.exhausted`), unless it
    /// was itself an operational event's: their failures announce nothing further.
    async fn announce_exhausted(
        &self,
        w: &Work,
        reason: &str,
        outcome: &DeliveryOutcome,
        by: Instant,
    ) {
        if w.event.event_type.is_operational() {
            return;
        }
        let message_id = w.webhook_id.to_string();
        let last_error = outcome.error().map(|e| e.to_string());
        let event = operational::delivery_exhausted(&operational::Exhausted {
            event: &w.event,
            webhook: &w.route.id,
            url: &w.route.url,
            webhook_message_id: &message_id,
            attempts: w.attempt,
            reason,
            last_status: outcome.status(),
            last_error: last_error.as_deref(),
        });
        self.announce(w, event, by).await;
    }

    /// Puts an operational event on the events queue, by `by`. Best effort: a failure
    /// is logged and changes nothing about the delivery that occasioned it.
    async fn announce(&self, w: &Work, event: Event, by: Instant) {
        match within(by, self.adapters.outbox.publish(&event)).await {
            Ok(()) => {
                delivery_log!(info, w, operational_event = %event.event_type, operational_event_id = %event.id, "operational event published")
            }
            Err(e) => {
                delivery_log!(warn, w, operational_event = %event.event_type, error = %e, "could not publish an operational event")
            }
        }
    }

    /// Hands a delivery that could not start in time back to the queue, due at once
    /// and with its attempt not counted (keeping its rate-limit slot, if it has one).
    async fn hand_back(&self, w: Work, by: Instant) -> Ran {
        if let Some(receipt) = &w.held {
            self.hold(&w, receipt, Duration::ZERO, by).await;
            return (w.record, Fate::Retry, Made::Nothing);
        }
        let task = w.task();
        let fate = match send_durably(by, || self.adapters.outbox.schedule(&task, Duration::ZERO))
            .await
        {
            Ok(()) => {
                delivery_log!(
                    info,
                    w,
                    "batch out of time; delivery handed back to the queue"
                );
                Fate::Done
            }
            Err(e) => {
                delivery_log!(error, w, error = %e, "could not hand a delivery back; the record will come back");
                Fate::Retry
            }
        };
        (w.record, fate, Made::Nothing)
    }

    /// Holds an ordered delivery's message invisible on the FIFO queue for `delay`
    /// (its record is then reported as failed, so it stays there). Whether it was
    /// held: if not, it comes back after the queue's visibility timeout.
    pub(super) async fn hold(&self, w: &Work, receipt: &str, delay: Duration, by: Instant) -> bool {
        match within(by, self.adapters.outbox.hold(receipt, delay)).await {
            Ok(()) => true,
            Err(e) => {
                delivery_log!(warn, w, error = %e, "could not hold an ordered delivery for its retry; it comes back after the visibility timeout");
                false
            }
        }
    }

    async fn park_failed(
        &self,
        w: &Work,
        reason: String,
        outcome: &DeliveryOutcome,
        by: Instant,
    ) -> Fate {
        delivery_log!(warn, w, result = %outcome.describe(), %reason, "delivery parked on the DLQ");
        let letter = DeadLetter::Failed {
            reason,
            delivery: w.task(),
            attempts: w.attempt,
            last_status: outcome.status(),
            last_error: outcome
                .error()
                .map(|e| truncate_to(&e.to_string(), LAST_RESULT_LIMIT)),
            parked_at: Utc::now(),
        };
        match send_durably(by, || self.adapters.outbox.park(&letter)).await {
            Ok(()) => Fate::Done,
            Err(e) => {
                delivery_log!(error, w, error = %e, "could not park the delivery; the record will come back");
                Fate::Retry
            }
        }
    }
}
