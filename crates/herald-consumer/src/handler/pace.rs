//! Rate limits in a batch (docs/delivery.md, "Rate limits"): each delivery to a
//! rate-limited webhook gets a slot from the webhook's schedule, which every consumer
//! instance shares (one reservation per webhook per batch); a delivery whose slot is
//! near waits for it, one whose slot is further goes back on the queue as its own
//! `Delivery` message, delayed until just before it, carrying the slot. Deferring is
//! not an attempt: the attempt number does not move, nothing is recorded in the
//! history, nothing counts against the endpoint's health.
//!
//! Deliveries to unlimited webhooks cost a look at their route's `rate_limit` and
//! nothing more.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::future::join_all;
use herald_core::rate::{self, SlotStep, MAX_SLOT_WAIT};
use herald_core::{DeliveryTask, RateLimit};
use herald_delivery::PreparedRoute;

use super::calls::{send_durably, within};
use super::plan::Work;
use super::{Consumer, Fate, Made, Ran};

/// How long a delivery waits on the queue when its webhook's schedule could not be
/// reached (it reserves a slot when it comes back).
pub(super) const UNRESERVED_DELAY: Duration = Duration::from_secs(5);

/// The deliveries of a batch to one rate-limited webhook that need a slot.
struct Wanted {
    route: Arc<PreparedRoute>,
    limit: RateLimit,
    /// Their indices in the batch's work, in order.
    work: Vec<usize>,
}

impl Consumer {
    /// Gives each delivery to a rate-limited webhook that holds no slot one, with one
    /// reservation per webhook, made by `by`. A delivery whose reservation failed is
    /// left without a slot: [`Consumer::pace`] defers it.
    pub(super) async fn reserve_slots(&self, work: &mut [Work], by: Instant) {
        let mut wanted: Vec<Wanted> = Vec::new();
        for (i, w) in work.iter().enumerate() {
            let Some(limit) = w.route.rate_limit else {
                continue;
            };
            if w.slot.is_some() {
                continue;
            }
            match wanted.iter_mut().find(|x| x.route.id == w.route.id) {
                Some(x) => x.work.push(i),
                None => wanted.push(Wanted {
                    route: Arc::clone(&w.route),
                    limit,
                    work: vec![i],
                }),
            }
        }
        if wanted.is_empty() {
            return;
        }
        let now = Utc::now();
        let firsts = join_all(wanted.iter().map(|x| {
            let count = x.work.len() as u32;
            within(
                by,
                self.adapters
                    .subscriptions
                    .reserve_slots(&x.route, x.limit, count, now),
            )
        }))
        .await;
        for (x, first) in wanted.iter().zip(firsts) {
            match first {
                Ok(first) => {
                    for (slot, &i) in x.limit.slots(first, x.work.len()).zip(&x.work) {
                        work[i].slot = Some(slot);
                    }
                }
                Err(e) => {
                    tracing::warn!(subscription_id = %x.route.id, deliveries = x.work.len(), error = %e, "could not reserve rate-limit slots; the deliveries wait on the queue");
                }
            }
        }
    }

    /// Paces a delivery to a rate-limited webhook before it starts: `None` when it may
    /// start now (at once, or after waiting for its slot, no later than `start_by`),
    /// or what became of it when it went back on the queue.
    pub(super) async fn pace(&self, w: &Work, start_by: Instant, by: Instant) -> Option<Ran> {
        w.route.rate_limit?;
        let left = start_by.saturating_duration_since(Instant::now());
        let step = match w.slot {
            Some(slot) => rate::step(slot, Utc::now(), MAX_SLOT_WAIT.min(left)),
            // Its reservation failed.
            None => SlotStep::Queue(UNRESERVED_DELAY),
        };
        match step {
            SlotStep::Now => None,
            SlotStep::Wait(wait) => {
                tokio::time::sleep(wait).await;
                None
            }
            SlotStep::Queue(delay) => Some(self.defer(w, delay, by).await),
        }
    }

    /// Puts a delivery back on the queue for its slot (or, without one, for another
    /// try at reserving), its attempt not counted.
    async fn defer(&self, w: &Work, delay: Duration, by: Instant) -> Ran {
        if let Some(receipt) = &w.held {
            // An ordered delivery waits for its slot where it is (the receive counts
            // as an attempt: docs/delivery.md, "Ordered delivery").
            self.hold(w, receipt, delay, by).await;
            return (
                w.record,
                Fate::Retry,
                Made::Deferred(w.route.app_id.clone()),
            );
        }
        let task = DeliveryTask {
            not_before: w.slot.unwrap_or_else(|| Utc::now() + delay),
            ..w.task()
        };
        match send_durably(by, || self.adapters.outbox.schedule(&task, delay)).await {
            Ok(()) => {
                tracing::debug!(webhook_id = %w.webhook_id, slot = ?w.slot, delay_s = delay.as_secs(), "over the webhook's rate limit; delivery deferred");
                (w.record, Fate::Done, Made::Deferred(w.route.app_id.clone()))
            }
            Err(e) => {
                tracing::error!(event_id = %w.event.id, subscription_id = %w.route.id, webhook_id = %w.webhook_id, attempt = w.attempt, error = %e, "could not defer a rate-limited delivery; the record will come back");
                (w.record, Fate::Retry, Made::Nothing)
            }
        }
    }
}
