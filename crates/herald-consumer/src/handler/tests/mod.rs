//! Unit tests of the consumer's decisions, with the in-memory fakes of its four
//! adapters (`crate::testing`). The real adapters (HTTP, SQS, DynamoDB) are exercised
//! by the end-to-end tests. One file per concern; the builders and the harness are here.

mod batches;
mod deadlines;
mod delivery_messages;
mod failures;
mod fan_out;
mod health;
mod metrics;
mod operational;
mod ordered;
mod parking;
mod rate_limits;
mod retries;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{DateTime, Utc};
use herald_core::{
    webhook_id, AppId, AttemptOutcome, DeadLetter, DeliveryError, DeliveryOutcome, DeliveryTask,
    Event, EventFilter, EventType, ObjectType, ObjectTypeFilter, QueueMessage, RetrySchedule,
    Subscription, SubscriptionId,
};

use herald_delivery::DeliveryRequest;

use super::{Adapters, BatchError, Consumer, DeliveryPolicy};
use crate::metrics::{Metrics, MetricsMode, MetricsSettings, Sink};
use crate::testing::{
    answered, FakeDeliverer, FakeHistory, FakeOutbox, FakeSubscriptions, HealthCall,
};

const APP: &str = "shop";

fn app() -> AppId {
    AppId::parse(APP).unwrap()
}

fn event_in(app: &str, event_type: &str, object_type: &str) -> Event {
    Event::new(
        AppId::parse(app).unwrap(),
        EventType::parse(event_type).unwrap(),
        ObjectType::parse(object_type).unwrap(),
        serde_json::json!({"id": 42}),
    )
}

fn event(event_type: &str) -> Event {
    event_in(APP, event_type, "user")
}

fn url(id: &str) -> String {
    format!("https://{id}.example.com/hook")
}

/// An active subscription of `shop` with id `id`, posting to `url(id)`.
fn sub(id: &str, events: &[&str]) -> Subscription {
    let mut s = Subscription::new(
        app(),
        url(id),
        EventFilter::parse(events).unwrap(),
        ObjectTypeFilter::All,
    );
    s.id = SubscriptionId::new(id);
    s
}

fn status(code: u16) -> DeliveryOutcome {
    answered(code)
}

fn status_retry_after(code: u16, secs: u64) -> DeliveryOutcome {
    DeliveryOutcome::answered(
        code,
        format!("body of {code}"),
        Some(Duration::from_secs(secs)),
        Duration::from_millis(3),
    )
}

fn error(e: DeliveryError) -> DeliveryOutcome {
    DeliveryOutcome::failed(e, Duration::from_millis(3))
}

fn record(message_id: &str, body: impl Into<String>) -> SqsMessage {
    let mut m = SqsMessage::default();
    m.message_id = Some(message_id.to_owned());
    m.body = Some(body.into());
    m
}

fn event_record(message_id: &str, event: &Event) -> SqsMessage {
    record(
        message_id,
        QueueMessage::Event {
            event: event.clone(),
        }
        .encode(),
    )
}

fn delivery_record(message_id: &str, task: &DeliveryTask) -> SqsMessage {
    record(
        message_id,
        QueueMessage::Delivery {
            delivery: task.clone(),
        }
        .encode(),
    )
}

/// A due delivery task for attempt `attempt`, after a failed previous one.
fn task(event: &Event, sub_id: &str, attempt: u32) -> DeliveryTask {
    let mut t = DeliveryTask::first(event.clone(), SubscriptionId::new(sub_id));
    t.attempt = attempt;
    if attempt > 1 {
        t.last_result = Some("HTTP 500".into());
    }
    t
}

fn batch(records: Vec<SqsMessage>) -> SqsEvent {
    let mut b = SqsEvent::default();
    b.records = records;
    b
}

fn failures(response: &SqsBatchResponse) -> Vec<String> {
    let mut ids: Vec<String> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    ids.sort();
    ids
}

/// Three attempts, 10 s then 20 s apart, no jitter: every delay is exact.
fn policy() -> DeliveryPolicy {
    DeliveryPolicy {
        schedule: RetrySchedule::parse("0s,10s,20s", 0.0).unwrap(),
        retry_after_cap: Duration::from_secs(3600),
        concurrency: 8,
        start_deadline: Duration::from_secs(30),
        attempt_timeout: Duration::from_secs(5),
    }
}

struct Harness {
    subs: Arc<FakeSubscriptions>,
    deliverer: Arc<FakeDeliverer>,
    outbox: Arc<FakeOutbox>,
    history: Arc<FakeHistory>,
    consumer: Consumer,
}

impl Harness {
    fn new(subs: FakeSubscriptions, deliverer: FakeDeliverer, outbox: FakeOutbox) -> Self {
        Self::with_policy(subs, deliverer, outbox, FakeHistory::default(), policy())
    }

    fn with_policy(
        subs: FakeSubscriptions,
        deliverer: FakeDeliverer,
        outbox: FakeOutbox,
        history: FakeHistory,
        policy: DeliveryPolicy,
    ) -> Self {
        let subs = Arc::new(subs);
        let deliverer = Arc::new(deliverer);
        let outbox = Arc::new(outbox);
        let history = Arc::new(history);
        let consumer = Consumer::new(
            Adapters {
                subscriptions: subs.clone(),
                deliverer: deliverer.clone(),
                outbox: outbox.clone(),
                history: history.clone(),
            },
            policy,
        );
        Self {
            subs,
            deliverer,
            outbox,
            history,
            consumer,
        }
    }

    /// Handles a batch that the consumer answers record by record.
    async fn handle(&self, records: Vec<SqsMessage>) -> SqsBatchResponse {
        self.try_handle(records)
            .await
            .expect("the batch is answered record by record")
    }

    async fn try_handle(&self, records: Vec<SqsMessage>) -> Result<SqsBatchResponse, BatchError> {
        self.consumer.handle(batch(records)).await
    }
}

/// A metrics writer (EMF) whose lines go into the list returned beside it.
fn emf_lines() -> (Metrics, Arc<Mutex<Vec<String>>>) {
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let kept = Arc::clone(&lines);
    let sink: Sink = Arc::new(move |l: &str| kept.lock().unwrap().push(l.to_owned()));
    let settings = MetricsSettings {
        metrics: MetricsMode::Emf,
        ..MetricsSettings::default()
    };
    (Metrics::new(&settings, sink).unwrap(), lines)
}

fn assert_near(actual: DateTime<Utc>, expected: DateTime<Utc>, what: &str) {
    let gap = (actual - expected).num_milliseconds().abs();
    assert!(gap < 2_000, "{what}: {actual} is {gap} ms from {expected}");
}

/// The values of header `name` of `request`, as sent.
fn header(request: &DeliveryRequest, name: &str) -> Vec<String> {
    request
        .headers()
        .expect("a request that can be sent")
        .get_all(name)
        .iter()
        .map(|v| v.to_str().expect("text").to_owned())
        .collect()
}

fn failed_letter(letter: &DeadLetter) -> (&str, &DeliveryTask, u32, Option<u16>, Option<&str>) {
    match letter {
        DeadLetter::Failed {
            reason,
            delivery,
            attempts,
            last_status,
            last_error,
            ..
        } => (
            reason,
            delivery,
            *attempts,
            *last_status,
            last_error.as_deref(),
        ),
        other => panic!("expected a failed delivery, got {other:?}"),
    }
}
