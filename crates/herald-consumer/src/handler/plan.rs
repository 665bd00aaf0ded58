//! Planning a record: decoding it and working out its deliveries, each sharing its
//! event, the event's serialized body in its webhook's format and its webhook's
//! prepared route.

use std::sync::Arc;
use std::time::Instant;

use aws_lambda_events::event::sqs::SqsMessage;
use chrono::{DateTime, TimeDelta, Utc};
use herald_core::rate::{self, MAX_SLOT_WAIT};
use herald_core::{
    operational, webhook_id, Attempt, Bodies, Body, DeadLetter, DeliveryTask, Event, EventView,
    QueueMessage, WebhookId,
};
use herald_delivery::PreparedRoute;
use herald_queue::RETRY_HEADROOM;
use herald_store::BatchAttempt;

use super::calls::{send_durably, within};
use super::{Consumer, Fate, DUE_TOLERANCE};

/// One delivery to attempt in this batch. Everything a delivery of an event shares
/// with the event's other deliveries (the event, its body, the route) is shared, not
/// copied; a [`DeliveryTask`] is built only when the delivery goes back on a queue.
pub(super) struct Work {
    /// The index of the record it came from.
    pub record: usize,
    pub event: Arc<Event>,
    /// The event's body in the route's format and content type, serialized once per
    /// (event, format, content type) and shared: the bytes the deliveries send.
    pub body: Body,
    pub route: Arc<PreparedRoute>,
    /// Computed once for the delivery: its header, its history record and its logs.
    pub webhook_id: WebhookId,
    /// The attempt this is (1 for the first).
    pub attempt: u32,
    pub first_attempt_at: DateTime<Utc>,
    pub not_before: DateTime<Utc>,
    pub last_result: Option<String>,
    /// Part of a fresh event's first fan-out (from an `Event` message), not a retry,
    /// re-send or re-drive (from a `Delivery` message).
    pub first_fan_out: bool,
    /// Its slot under its webhook's rate limit, once it has one (from the webhook's
    /// schedule, or carried by a deferred delivery).
    pub slot: Option<DateTime<Utc>>,
    /// An ordered delivery's message on the FIFO queue (its receipt handle): it is
    /// never queued again but held there (invisible) until its retry is due, keeping
    /// the deliveries behind it in its group waiting.
    pub held: Option<String>,
}

impl Work {
    /// `attempt`, made for this work, as the history records it.
    pub fn tagged(&self, attempt: Attempt) -> BatchAttempt {
        BatchAttempt {
            attempt,
            first_fan_out: self.first_fan_out,
        }
    }

    /// The delivery as it travels on the queue (a copy of the event).
    pub fn task(&self) -> DeliveryTask {
        DeliveryTask {
            event: Event::clone(&self.event),
            subscription_id: self.route.id.clone(),
            attempt: self.attempt,
            first_attempt_at: self.first_attempt_at,
            not_before: self.not_before,
            last_result: self.last_result.clone(),
            rate_slot: self.slot,
        }
    }
}

/// The FIFO queue's facts about a record received from it (a record with a message
/// group): how it is held, and how many times it was received.
pub(super) struct FifoRecord {
    pub receipt_handle: String,
    pub receive_count: u32,
}

impl FifoRecord {
    /// The facts of `record`, if it came from a FIFO queue.
    pub fn of(record: &SqsMessage) -> Option<Self> {
        record.attributes.get("MessageGroupId")?;
        Some(Self {
            receipt_handle: record.receipt_handle.clone().unwrap_or_default(),
            receive_count: record
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|n| n.parse().ok())
                .unwrap_or(1),
        })
    }
}

/// What planning a record produced.
pub(super) struct Plan {
    pub work: Vec<Work>,
    /// First deliveries to ordered webhooks, to put on the FIFO queue in this order.
    pub ordered: Vec<DeliveryTask>,
    pub not_sent: Vec<Attempt>,
    /// A freshly published event, to keep in the history store.
    pub event: Option<Arc<Event>>,
    /// Planned from an `Event` message: its attempts are the event's first fan-out.
    pub first_fan_out: bool,
    pub fate: Fate,
}

impl Plan {
    fn done() -> Self {
        Self {
            work: Vec::new(),
            ordered: Vec::new(),
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
    /// Decodes a record and works out its deliveries; its calls end by `by`.
    pub(super) async fn plan(&self, index: usize, record: &SqsMessage, by: Instant) -> Plan {
        let message_id = record.message_id.as_deref().unwrap_or_default();
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
                self.plan_event(index, message_id, event, by).await
            }
            Ok(QueueMessage::Delivery { delivery }) => match FifoRecord::of(record) {
                Some(fifo) => {
                    self.plan_ordered(index, message_id, delivery, fifo, by)
                        .await
                }
                None => self.plan_delivery(index, message_id, delivery, by).await,
            },
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
        let message_id = record.message_id.as_deref().unwrap_or_default();
        let letter = DeadLetter::undecodable(body, reason, record.message_id.clone());
        match send_durably(by, || self.adapters.outbox.park(&letter)).await {
            Ok(()) => {
                tracing::warn!(message_id, %reason, "undecodable message parked on the DLQ");
                Plan::done()
            }
            Err(err) => {
                tracing::error!(message_id, %reason, error = %err, "could not park an undecodable message; it will come back");
                Plan::retry()
            }
        }
    }

    async fn plan_event(&self, index: usize, message_id: &str, event: Event, by: Instant) -> Plan {
        let routes = match within(
            by,
            self.adapters
                .subscriptions
                .routes(&event.app_id, &event.event_type),
        )
        .await
        {
            Ok(routes) => routes,
            Err(e) => {
                tracing::error!(message_id, event_id = %event.id, error = %e, "subscription lookup failed; the message will come back");
                return Plan::retry();
            }
        };
        let mut plan = Plan {
            first_fan_out: true,
            ..Plan::done()
        };
        // An operational event never goes to the webhook it is about. The type
        // filters come first; a payload filter then reads the event's content, parsed
        // once (by the view) for every route whose filter needs it. A route whose
        // filter refuses the event is left out: not sent, and not recorded.
        let subject = operational::subject(&event);
        let view = EventView::new(&event);
        let mut admitted: Vec<&Arc<PreparedRoute>> = routes
            .iter()
            .filter(|r| subject.as_ref() != Some(&r.id) && r.admits_view(&view))
            .collect();
        drop(view);
        // The event's callback URL, if it has one, is one more route.
        let callback = match &event.callback_url {
            None => None,
            Some(url) => match within(
                by,
                self.adapters
                    .subscriptions
                    .callback_route(&event.app_id, url),
            )
            .await
            {
                Ok(route) => route,
                Err(e) => {
                    tracing::error!(message_id, event_id = %event.id, error = %e, "callback secret lookup failed; the message will come back");
                    return Plan::retry();
                }
            },
        };
        if event.callback_url.is_some() && callback.is_none() {
            plan.not_sent.push(Attempt::not_sent(
                &event,
                &herald_core::SubscriptionId::new(herald_core::CALLBACK_ID),
                "no_callback_secret",
                Some("the app has no callback secret"),
            ));
        }
        admitted.extend(callback.as_ref());
        if admitted.is_empty() {
            // An event nobody subscribed to costs no write.
            return plan;
        }
        let event = Arc::new(event);
        // One body for every delivery of the event in each format and content type,
        // made only if a delivery in it is sent.
        let mut bodies = Bodies::default();
        let now = Utc::now();
        // Deliveries to ordered webhooks of a keyed event go onto the FIFO queue, in
        // their (webhook, key) group, rather than being attempted here.
        let orders = event.ordering_key.is_some() && self.adapters.outbox.orders();
        for route in admitted {
            if route.active && route.ordered && orders {
                plan.ordered
                    .push(DeliveryTask::first(Event::clone(&event), route.id.clone()));
            } else if route.active {
                plan.work.push(Work {
                    record: index,
                    body: bodies.get(&event, route.format, route.content_type),
                    event: Arc::clone(&event),
                    route: Arc::clone(route),
                    webhook_id: webhook_id(&event.id, &route.id),
                    attempt: 1,
                    first_attempt_at: now,
                    not_before: now,
                    last_result: None,
                    first_fan_out: true,
                    slot: None,
                    held: None,
                });
            } else {
                plan.not_sent.push(Attempt::not_sent(
                    &event,
                    &route.id,
                    "endpoint_disabled",
                    route.disabled_reason.as_deref(),
                ));
            }
        }
        tracing::debug!(
            event_id = %event.id,
            deliveries = plan.work.len(),
            not_sent = plan.not_sent.len(),
            "event fanned out"
        );
        // Kept for re-sending, since some webhook wanted it (delivered to, or not sent
        // because disabled).
        plan.event = Some(event);
        plan
    }

    async fn plan_delivery(
        &self,
        index: usize,
        message_id: &str,
        task: DeliveryTask,
        by: Instant,
    ) -> Plan {
        let now = Utc::now();
        let webhook_id = webhook_id(&task.event.id, &task.subscription_id);
        // A deferred delivery comes back up to a second before its slot, and waits for
        // it in the batch.
        let early = match task.rate_slot {
            Some(_) => TimeDelta::from_std(MAX_SLOT_WAIT).unwrap_or(DUE_TOLERANCE),
            None => DUE_TOLERANCE,
        };
        if task.not_before > now + early {
            // Longer than SQS can delay at once: another hop.
            let remaining = match task.rate_slot {
                Some(slot) => rate::queue_delay(slot, now),
                None => (task.not_before - now).to_std().unwrap_or_default(),
            };
            return match send_durably(by, || self.adapters.outbox.schedule(&task, remaining)).await
            {
                Ok(()) => {
                    tracing::debug!(
                        %webhook_id,
                        remaining_s = remaining.as_secs(),
                        "not due yet; delayed again"
                    );
                    Plan::done()
                }
                Err(e) => {
                    tracing::error!(message_id, event_id = %task.event.id, subscription_id = %task.subscription_id, %webhook_id, error = %e, "could not re-delay a delivery; it will come back");
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
            Ok(routes) => routes
                .iter()
                .find(|r| r.id == task.subscription_id)
                .cloned(),
            Err(e) => {
                tracing::error!(message_id, event_id = %task.event.id, subscription_id = %task.subscription_id, error = %e, "subscription lookup failed; the message will come back");
                return Plan::retry();
            }
        };
        let route = match cached {
            Some(r) => Some(r),
            None if herald_core::is_callback(&task.subscription_id) => {
                let url = task.event.callback_url.as_deref().unwrap_or_default();
                match within(by, self.adapters.subscriptions.callback_route(app, url)).await {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(message_id, event_id = %task.event.id, error = %e, "callback secret lookup failed; the message will come back");
                        return Plan::retry();
                    }
                }
            }
            None => match within(
                by,
                self.adapters.subscriptions.get(app, &task.subscription_id),
            )
            .await
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(message_id, event_id = %task.event.id, subscription_id = %task.subscription_id, error = %e, "subscription lookup failed; the message will come back");
                    return Plan::retry();
                }
            },
        };
        let Some(route) = route else {
            tracing::info!(event_id = %task.event.id, subscription_id = %task.subscription_id, %webhook_id, "subscription deleted; delivery dropped and recorded as not sent");
            let mut plan = Plan::done();
            plan.not_sent.push(Attempt::not_sent(
                &task.event,
                &task.subscription_id,
                "subscription_deleted",
                None,
            ));
            return plan;
        };
        if !route.active {
            return self.park_disabled(task, &route, webhook_id, by).await;
        }
        let body = Body::of(&task.event, route.format, route.content_type);
        let slot = task.rate_slot.filter(|slot| {
            let kept = !rate::missed(*slot, now);
            if !kept {
                tracing::info!(%webhook_id, %slot, "deferred delivery came back long after its rate-limit slot; it reserves a new one");
            }
            kept
        });
        Plan {
            work: vec![Work {
                record: index,
                event: Arc::new(task.event),
                body,
                route,
                webhook_id,
                attempt: task.attempt,
                first_attempt_at: task.first_attempt_at,
                not_before: task.not_before,
                last_result: task.last_result,
                first_fan_out: false,
                slot,
                held: None,
            }],
            ..Plan::done()
        }
    }

    /// Plans an ordered delivery received from the FIFO queue: due as soon as it is
    /// received (a retry's wait was spent invisible on the queue), its attempt number
    /// from the receive count ([`herald_core::ordering::attempt_of`]).
    async fn plan_ordered(
        &self,
        index: usize,
        message_id: &str,
        mut task: DeliveryTask,
        fifo: FifoRecord,
        by: Instant,
    ) -> Plan {
        task.attempt = herald_core::ordering::attempt_of(task.attempt, fifo.receive_count);
        task.not_before = Utc::now();
        task.rate_slot = None;
        let mut plan = self.plan_delivery(index, message_id, task, by).await;
        for w in &mut plan.work {
            w.held = Some(fifo.receipt_handle.clone());
        }
        plan
    }

    /// Parks a delivery already under way when its endpoint was disabled, so it can be
    /// re-driven once the endpoint is enabled again.
    async fn park_disabled(
        &self,
        task: DeliveryTask,
        route: &PreparedRoute,
        webhook_id: WebhookId,
        by: Instant,
    ) -> Plan {
        let reason = format!(
            "endpoint disabled: {}",
            route
                .disabled_reason
                .as_deref()
                .unwrap_or("disabled by its owner")
        );
        let attempts_made = task.attempt.saturating_sub(1);
        let not_sent = Attempt::not_sent(
            &task.event,
            &route.id,
            "endpoint_disabled",
            route.disabled_reason.as_deref(),
        );
        let event_id = task.event.id.clone();
        let last_error = task.last_result.clone();
        let letter = DeadLetter::Failed {
            reason,
            delivery: task,
            attempts: attempts_made,
            last_status: None,
            last_error,
            parked_at: Utc::now(),
        };
        match send_durably(by, || self.adapters.outbox.park(&letter)).await {
            Ok(()) => {
                tracing::info!(event_id = %event_id, subscription_id = %route.id, %webhook_id, "endpoint disabled; delivery parked on the DLQ");
                let mut plan = Plan::done();
                plan.not_sent.push(not_sent);
                plan
            }
            Err(e) => {
                tracing::error!(event_id = %event_id, subscription_id = %route.id, %webhook_id, error = %e, "could not park a delivery for a disabled endpoint");
                Plan::retry()
            }
        }
    }
}
