//! The consumer: one function from an SQS batch to a partial batch response.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use bytes::Bytes;
use futures::stream::{self, StreamExt};
use herald_core::signing::Signer;
use herald_core::{webhook_id, DeadLetter, Envelope, Event, QueueMessage, Subscription};
use tracing::{info_span, Instrument};

use crate::dead_letters::DeadLetterSink;
use crate::delivery::{Deliverer, DeliveryRequest};
use crate::subscriptions::SubscriptionSource;

/// Turns batches of queue messages into signed deliveries.
pub struct Consumer {
    subscriptions: Arc<dyn SubscriptionSource>,
    deliverer: Arc<dyn Deliverer>,
    dead_letters: Arc<dyn DeadLetterSink>,
    concurrency: usize,
}

/// What became of one record of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RecordFate {
    /// Done: every matching subscription got it (or none matched).
    Delivered,
    /// Undecodable, and now on the DLQ with its reason.
    Parked,
    /// Must come back from the queue.
    Retry,
}

struct PlannedDelivery {
    record: usize,
    request: DeliveryRequest,
    span: tracing::Span,
}

impl Consumer {
    /// `concurrency` bounds the deliveries in flight across the whole batch.
    pub fn new(
        subscriptions: Arc<dyn SubscriptionSource>,
        deliverer: Arc<dyn Deliverer>,
        dead_letters: Arc<dyn DeadLetterSink>,
        concurrency: usize,
    ) -> Self {
        Self {
            subscriptions,
            deliverer,
            dead_letters,
            concurrency: concurrency.max(1),
        }
    }

    /// Handles one batch. The response lists only the records that must come back:
    /// those with a failed delivery or a failed lookup. Undecodable records are parked
    /// on the DLQ with their reason (and come back only if parking failed); they never
    /// stop the other records of the batch.
    pub async fn handle(&self, batch: SqsEvent) -> SqsBatchResponse {
        let records = batch.records;
        let mut fates = vec![RecordFate::Delivered; records.len()];
        let mut planned = Vec::new();

        for (index, record) in records.iter().enumerate() {
            let message_id = record.message_id.clone().unwrap_or_default();
            let span =
                info_span!("message", message_id = %message_id, event_id = tracing::field::Empty);
            let plan = self
                .plan_record(index, record)
                .instrument(span.clone())
                .await;
            match plan {
                Ok(deliveries) => planned.extend(deliveries),
                Err(fate) => fates[index] = fate,
            }
        }

        let outcomes: Vec<(usize, bool)> = stream::iter(planned)
            .map(|p| {
                let deliverer = Arc::clone(&self.deliverer);
                async move {
                    let outcome = deliverer.deliver(p.request).instrument(p.span.clone()).await;
                    p.span.in_scope(|| {
                        if outcome.is_success() {
                            tracing::info!(status = outcome.status, latency_ms = outcome.latency.as_millis() as u64, "delivered");
                        } else {
                            tracing::warn!(result = %outcome.describe(), latency_ms = outcome.latency.as_millis() as u64, "delivery failed");
                        }
                    });
                    (p.record, outcome.is_success())
                }
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        for (record, ok) in outcomes {
            if !ok {
                fates[record] = RecordFate::Retry;
            }
        }

        let mut response = SqsBatchResponse::default();
        for (record, fate) in records.iter().zip(&fates) {
            if *fate == RecordFate::Retry {
                if let Some(id) = &record.message_id {
                    response.add_failure(id.clone());
                }
            }
        }
        let retried = response.batch_item_failures.len();
        let parked = fates.iter().filter(|f| **f == RecordFate::Parked).count();
        tracing::info!(records = records.len(), retried, parked, "batch handled");
        response
    }

    /// Decodes a record and works out its deliveries, or says what became of it.
    async fn plan_record(
        &self,
        index: usize,
        record: &SqsMessage,
    ) -> Result<Vec<PlannedDelivery>, RecordFate> {
        let body = record.body.as_deref().unwrap_or_default();
        let event = match QueueMessage::decode(body) {
            Ok(QueueMessage::Event { event }) => event,
            Err(e) => return Err(self.park(record, body, &e.reason).await),
        };
        tracing::Span::current().record("event_id", tracing::field::display(&event.id));
        let subscriptions = match self.subscriptions.matching(&event).await {
            Ok(subs) => subs,
            Err(e) => {
                tracing::error!(error = %e, "subscription lookup failed; the message will come back");
                return Err(RecordFate::Retry);
            }
        };
        tracing::debug!(matched = subscriptions.len(), "subscriptions matched");
        let body = Bytes::from(Envelope::of(&event).to_body());
        Ok(subscriptions
            .iter()
            .map(|sub| PlannedDelivery {
                record: index,
                request: signed_request(&event, sub, body.clone()),
                span: info_span!(
                    "delivery",
                    event_id = %event.id,
                    subscription_id = %sub.id,
                    webhook_id = %webhook_id(&event.id, &sub.id),
                ),
            })
            .collect())
    }

    async fn park(&self, record: &SqsMessage, body: &str, reason: &str) -> RecordFate {
        let letter = DeadLetter::undecodable(body, reason, record.message_id.clone());
        match self.dead_letters.park(&letter).await {
            Ok(()) => {
                tracing::warn!(reason, "undecodable message parked on the DLQ");
                RecordFate::Parked
            }
            Err(e) => {
                tracing::error!(reason, error = %e, "could not park an undecodable message; it will come back");
                RecordFate::Retry
            }
        }
    }
}

/// The signed POST of `event` to `subscription`. Custom headers go first; the
/// signature headers and content type cannot be overridden by them.
pub fn signed_request(event: &Event, subscription: &Subscription, body: Bytes) -> DeliveryRequest {
    let msg_id = webhook_id(&event.id, &subscription.id);
    let timestamp = chrono::Utc::now().timestamp();
    let signed = Signer::headers(&subscription.secrets, &msg_id, timestamp, &body);
    let mut headers: Vec<(String, String)> = subscription
        .headers
        .iter()
        .filter(|(name, _)| !is_reserved_header(name))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    headers.extend(signed.pairs().into_iter().map(|(k, v)| (k.to_owned(), v)));
    DeliveryRequest {
        url: subscription.url.clone(),
        headers,
        body,
    }
}

/// Headers Herald sets itself, which custom headers may not replace.
pub fn is_reserved_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name.starts_with("webhook-")
        || matches!(
            name.as_str(),
            "content-type"
                | "content-length"
                | "host"
                | "user-agent"
                | "transfer-encoding"
                | "connection"
        )
}
