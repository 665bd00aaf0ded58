//! Unit tests of the consumer's decisions, with in-memory fakes for its four adapters.
//! The real adapters (HTTP, SQS, DynamoDB) are exercised by the end-to-end tests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{DateTime, Utc};
use herald_core::{
    webhook_id, AppId, Attempt, AttemptOutcome, DeadLetter, DeliveryTask, Event, EventFilter,
    EventType, ObjectType, ObjectTypeFilter, QueueMessage, RetrySchedule, Subscription,
    SubscriptionId,
};
use herald_store::StoreError;

use super::{Adapters, Consumer, DeliveryPolicy};
use crate::delivery::{Deliverer, DeliveryError, DeliveryOutcome, DeliveryRequest};
use crate::history::History;
use crate::outbox::Outbox;
use crate::subscriptions::SubscriptionSource;

// ---------------------------------------------------------------------------------
// Fakes
// ---------------------------------------------------------------------------------

/// A write the consumer made to endpoint health.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HealthCall {
    RecordFailed(SubscriptionId),
    Reset(SubscriptionId),
    Disable(SubscriptionId, String),
}

#[derive(Default)]
struct FakeSubscriptions {
    /// What `for_app` returns (those of the asked app, unless `leak_other_apps`).
    subs: Vec<Subscription>,
    /// Visible to `get` only, as if the cached list were stale.
    fresh_only: Vec<Subscription>,
    /// `for_app` returns every subscription, whatever its app (a sloppy source).
    leak_other_apps: bool,
    fail_for_app: bool,
    fail_get: bool,
    /// `record_failed_delivery` returns true once a subscription's count reaches it
    /// (0: never).
    disable_after: u32,
    failed_counts: Mutex<HashMap<SubscriptionId, u32>>,
    health: Mutex<Vec<HealthCall>>,
    gets: Mutex<Vec<SubscriptionId>>,
    disabled_by_count: Mutex<Vec<SubscriptionId>>,
}

fn store_error() -> Arc<StoreError> {
    Arc::new(StoreError::Dynamo {
        operation: "Query",
        message: "throttled".into(),
    })
}

impl FakeSubscriptions {
    fn with(subs: Vec<Subscription>) -> Self {
        Self {
            subs,
            ..Self::default()
        }
    }

    fn health(&self) -> Vec<HealthCall> {
        self.health.lock().unwrap().clone()
    }
}

#[async_trait]
impl SubscriptionSource for FakeSubscriptions {
    async fn for_app(&self, app: &AppId) -> Result<Arc<Vec<Subscription>>, Arc<StoreError>> {
        if self.fail_for_app {
            return Err(store_error());
        }
        Ok(Arc::new(
            self.subs
                .iter()
                .filter(|s| self.leak_other_apps || &s.app_id == app)
                .cloned()
                .collect(),
        ))
    }

    async fn get(
        &self,
        app: &AppId,
        id: &SubscriptionId,
    ) -> Result<Option<Subscription>, Arc<StoreError>> {
        self.gets.lock().unwrap().push(id.clone());
        if self.fail_get {
            return Err(store_error());
        }
        Ok(self
            .subs
            .iter()
            .chain(&self.fresh_only)
            .find(|s| &s.app_id == app && &s.id == id)
            .cloned())
    }

    async fn record_failed_delivery(
        &self,
        _app: &AppId,
        id: &SubscriptionId,
    ) -> Result<bool, Arc<StoreError>> {
        self.health
            .lock()
            .unwrap()
            .push(HealthCall::RecordFailed(id.clone()));
        let mut counts = self.failed_counts.lock().unwrap();
        let count = counts.entry(id.clone()).or_insert(0);
        *count += 1;
        let disabled = self.disable_after > 0 && *count >= self.disable_after;
        if disabled {
            self.disabled_by_count.lock().unwrap().push(id.clone());
        }
        Ok(disabled)
    }

    async fn reset_failures(
        &self,
        _app: &AppId,
        id: &SubscriptionId,
    ) -> Result<(), Arc<StoreError>> {
        self.health
            .lock()
            .unwrap()
            .push(HealthCall::Reset(id.clone()));
        Ok(())
    }

    async fn disable(
        &self,
        _app: &AppId,
        id: &SubscriptionId,
        reason: &str,
    ) -> Result<(), Arc<StoreError>> {
        self.health
            .lock()
            .unwrap()
            .push(HealthCall::Disable(id.clone(), reason.to_owned()));
        Ok(())
    }
}

/// Answers each URL with its scripted outcomes in turn (the last one repeats); an
/// unscripted URL gets 200.
#[derive(Default)]
struct FakeDeliverer {
    script: Mutex<HashMap<String, Vec<DeliveryOutcome>>>,
    /// How long each delivery takes (real time: the handler uses `std::time::Instant`).
    sleep: Duration,
    requests: Mutex<Vec<DeliveryRequest>>,
}

impl FakeDeliverer {
    fn answering(pairs: &[(&str, DeliveryOutcome)]) -> Self {
        let mut script: HashMap<String, Vec<DeliveryOutcome>> = HashMap::new();
        for (url, outcome) in pairs {
            script
                .entry((*url).to_owned())
                .or_default()
                .push(outcome.clone());
        }
        Self {
            script: Mutex::new(script),
            ..Self::default()
        }
    }

    fn requests(&self) -> Vec<DeliveryRequest> {
        self.requests.lock().unwrap().clone()
    }

    fn urls(&self) -> Vec<String> {
        let mut urls: Vec<String> = self.requests().into_iter().map(|r| r.url).collect();
        urls.sort();
        urls
    }
}

#[async_trait]
impl Deliverer for FakeDeliverer {
    async fn deliver(&self, request: DeliveryRequest) -> DeliveryOutcome {
        self.requests.lock().unwrap().push(request.clone());
        if !self.sleep.is_zero() {
            tokio::time::sleep(self.sleep).await;
        }
        let mut script = self.script.lock().unwrap();
        match script.get_mut(&request.url) {
            Some(list) if list.len() > 1 => list.remove(0),
            Some(list) if !list.is_empty() => list[0].clone(),
            _ => status(200),
        }
    }
}

type TaskPredicate = fn(&DeliveryTask) -> bool;
type LetterPredicate = fn(&DeadLetter) -> bool;

#[derive(Default)]
struct FakeOutbox {
    scheduled: Mutex<Vec<(DeliveryTask, Duration)>>,
    parked: Mutex<Vec<DeadLetter>>,
    /// Schedules of the tasks it matches fail (and are not recorded).
    fail_schedule: Option<TaskPredicate>,
    /// Parks of the letters it matches fail (and are not recorded).
    fail_park: Option<LetterPredicate>,
}

impl FakeOutbox {
    fn scheduled(&self) -> Vec<(DeliveryTask, Duration)> {
        self.scheduled.lock().unwrap().clone()
    }

    fn parked(&self) -> Vec<DeadLetter> {
        self.parked.lock().unwrap().clone()
    }
}

#[async_trait]
impl Outbox for FakeOutbox {
    async fn schedule(&self, task: &DeliveryTask, delay: Duration) -> Result<(), String> {
        if self.fail_schedule.is_some_and(|f| f(task)) {
            return Err("SendMessage failed: throttled".into());
        }
        self.scheduled.lock().unwrap().push((task.clone(), delay));
        Ok(())
    }

    async fn park(&self, letter: &DeadLetter) -> Result<(), String> {
        if self.fail_park.is_some_and(|f| f(letter)) {
            return Err("SendMessage failed: throttled".into());
        }
        self.parked.lock().unwrap().push(letter.clone());
        Ok(())
    }
}

#[derive(Default)]
struct FakeHistory {
    attempts: Mutex<Vec<Attempt>>,
    fail: bool,
}

impl FakeHistory {
    fn attempts(&self) -> Vec<Attempt> {
        self.attempts.lock().unwrap().clone()
    }

    fn for_sub(&self, id: &str) -> Vec<Attempt> {
        self.attempts()
            .into_iter()
            .filter(|a| a.subscription_id.as_str() == id)
            .collect()
    }
}

#[async_trait]
impl History for FakeHistory {
    async fn record(&self, attempts: &[Attempt]) -> Result<(), StoreError> {
        if self.fail {
            return Err(StoreError::Dynamo {
                operation: "BatchWriteItem",
                message: "throttled".into(),
            });
        }
        self.attempts.lock().unwrap().extend_from_slice(attempts);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------
// Builders
// ---------------------------------------------------------------------------------

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
    DeliveryOutcome {
        status: Some(code),
        latency: Duration::from_millis(3),
        error: None,
        response_body: format!("body of {code}"),
        retry_after: None,
    }
}

fn status_retry_after(code: u16, secs: u64) -> DeliveryOutcome {
    DeliveryOutcome {
        retry_after: Some(Duration::from_secs(secs)),
        ..status(code)
    }
}

fn error(e: DeliveryError) -> DeliveryOutcome {
    DeliveryOutcome {
        status: None,
        latency: Duration::from_millis(3),
        error: Some(e),
        response_body: String::new(),
        retry_after: None,
    }
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

    async fn handle(&self, records: Vec<SqsMessage>) -> SqsBatchResponse {
        self.consumer.handle(batch(records)).await
    }
}

fn assert_near(actual: DateTime<Utc>, expected: DateTime<Utc>, what: &str) {
    let gap = (actual - expected).num_milliseconds().abs();
    assert!(gap < 2_000, "{what}: {actual} is {gap} ms from {expected}");
}

fn header<'a>(request: &'a DeliveryRequest, name: &str) -> Vec<&'a str> {
    request
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
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

// ---------------------------------------------------------------------------------
// Fan-out and isolation
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn a_fanned_out_event_retries_only_the_failing_endpoint() {
    let h = Harness::new(
        FakeSubscriptions::with(vec![sub("healthy", &["create"]), sub("broken", &["*"])]),
        FakeDeliverer::answering(&[
            (&url("healthy"), status(200)),
            (&url("broken"), status(500)),
        ]),
        FakeOutbox::default(),
    );
    let e = event("create");
    let before = Utc::now();

    let response = h.handle(vec![event_record("m1", &e)]).await;

    assert_eq!(failures(&response), Vec::<String>::new());
    assert_eq!(h.deliverer.urls(), vec![url("broken"), url("healthy")]);

    let scheduled = h.outbox.scheduled();
    assert_eq!(scheduled.len(), 1, "only the failing delivery is scheduled");
    let (next, delay) = &scheduled[0];
    assert_eq!(next.subscription_id.as_str(), "broken");
    assert_eq!(next.event, e);
    assert_eq!(next.attempt, 2);
    assert_eq!(*delay, Duration::from_secs(10), "the schedule's delay");
    assert_near(
        next.not_before,
        before + chrono::TimeDelta::seconds(10),
        "not_before",
    );
    assert_eq!(next.last_result.as_deref(), Some("HTTP 500"));
    assert!(next.first_attempt_at <= Utc::now() && next.first_attempt_at >= before);
    assert!(h.outbox.parked().is_empty());

    let attempts = h.history.attempts();
    assert_eq!(attempts.len(), 2);
    let ok = &h.history.for_sub("healthy")[0];
    assert_eq!(ok.outcome, AttemptOutcome::Succeeded);
    assert_eq!(ok.attempt, 1);
    assert_eq!(ok.status_code, Some(200));
    assert_eq!(ok.error_kind, None);
    assert_eq!(ok.next_attempt_at, None);
    assert_eq!(ok.response_body, "body of 200");
    assert_eq!(
        ok.webhook_id,
        webhook_id(&e.id, &SubscriptionId::new("healthy"))
    );
    let failed = &h.history.for_sub("broken")[0];
    assert_eq!(failed.outcome, AttemptOutcome::Failed);
    assert_eq!(failed.attempt, 1);
    assert_eq!(failed.status_code, Some(500));
    assert_eq!(failed.error_kind.as_deref(), Some("http_status"));
    assert_eq!(failed.next_attempt_at, Some(next.not_before));

    assert!(
        h.subs.health().is_empty(),
        "no health writes: no failures so far"
    );
}

#[tokio::test]
async fn requests_are_signed_with_the_stable_webhook_id_and_keep_custom_headers_below_them() {
    let mut s = sub("a", &["*"]);
    s.headers.insert("x-team".into(), "billing".into());
    s.headers.insert("Webhook-Id".into(), "forged".into());
    s.headers.insert("content-type".into(), "text/plain".into());
    let h = Harness::new(
        FakeSubscriptions::with(vec![s]),
        FakeDeliverer::default(),
        FakeOutbox::default(),
    );
    let e = event("create");
    h.handle(vec![event_record("m1", &e)]).await;

    let requests = h.deliverer.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.url, url("a"));
    assert_eq!(
        header(r, "webhook-id"),
        vec![webhook_id(&e.id, &SubscriptionId::new("a")).as_str()]
    );
    assert_eq!(header(r, "webhook-timestamp").len(), 1);
    assert!(header(r, "webhook-signature")[0].starts_with("v1,"));
    assert_eq!(header(r, "x-team"), vec!["billing"]);
    assert!(
        header(r, "content-type").is_empty(),
        "reserved headers are dropped"
    );
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["id"], e.id.as_str());
    assert_eq!(body["type"], "create");
}

#[tokio::test]
async fn only_matching_active_subscriptions_are_sent_and_disabled_ones_are_recorded_as_not_sent() {
    let mut disabled = sub("disabled", &["create"]);
    disabled.active = false;
    disabled.disabled_reason = Some("5 deliveries in a row failed".into());
    let mut invoices_only = sub("invoices", &["create"]);
    invoices_only.object_types = ObjectTypeFilter::parse(&["invoice"]).unwrap();
    let mut foreign = sub("foreign", &["*"]);
    foreign.app_id = AppId::parse("other").unwrap();
    let subs = FakeSubscriptions {
        // Even a source that returns other apps' subscriptions must not leak events.
        leak_other_apps: true,
        ..FakeSubscriptions::with(vec![
            sub("match", &["create"]),
            sub("updates", &["update"]),
            invoices_only,
            foreign,
            disabled,
        ])
    };
    let h = Harness::new(subs, FakeDeliverer::default(), FakeOutbox::default());
    let e = event("create");

    let response = h.handle(vec![event_record("m1", &e)]).await;

    assert!(failures(&response).is_empty());
    assert_eq!(h.deliverer.urls(), vec![url("match")]);
    assert!(h.outbox.scheduled().is_empty());
    assert!(h.outbox.parked().is_empty());

    let mut recorded: Vec<String> = h
        .history
        .attempts()
        .iter()
        .map(|a| a.subscription_id.to_string())
        .collect();
    recorded.sort();
    assert_eq!(recorded, vec!["disabled", "match"]);
    let not_sent = &h.history.for_sub("disabled")[0];
    assert_eq!(not_sent.outcome, AttemptOutcome::NotSent);
    assert_eq!(not_sent.attempt, 0);
    assert_eq!(not_sent.error_kind.as_deref(), Some("endpoint_disabled"));
    assert_eq!(
        not_sent.error.as_deref(),
        Some("5 deliveries in a row failed")
    );
    assert_eq!(not_sent.status_code, None);
    assert_eq!(
        not_sent.webhook_id,
        webhook_id(&e.id, &SubscriptionId::new("disabled"))
    );
    assert_eq!(
        h.history.for_sub("match")[0].outcome,
        AttemptOutcome::Succeeded
    );
}

#[tokio::test]
async fn an_event_no_subscription_wants_is_simply_done() {
    let h = Harness::new(
        FakeSubscriptions::with(vec![sub("updates", &["update"])]),
        FakeDeliverer::default(),
        FakeOutbox::default(),
    );
    let response = h.handle(vec![event_record("m1", &event("create"))]).await;
    assert!(failures(&response).is_empty());
    assert!(h.deliverer.requests().is_empty());
    assert!(h.history.attempts().is_empty());
    assert!(h.outbox.scheduled().is_empty() && h.outbox.parked().is_empty());
}

// ---------------------------------------------------------------------------------
// Delivery messages: due times, vanished and disabled endpoints
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn a_delivery_not_yet_due_is_delayed_again_for_the_remaining_time_without_a_request() {
    let h = Harness::new(
        FakeSubscriptions::with(vec![sub("a", &["*"])]),
        FakeDeliverer::default(),
        FakeOutbox::default(),
    );
    let mut t = task(&event("create"), "a", 3);
    t.not_before = Utc::now() + chrono::TimeDelta::hours(1);

    let response = h.handle(vec![delivery_record("m1", &t)]).await;

    assert!(failures(&response).is_empty());
    assert!(h.deliverer.requests().is_empty());
    let scheduled = h.outbox.scheduled();
    assert_eq!(scheduled.len(), 1);
    let (again, delay) = &scheduled[0];
    assert_eq!(again, &t, "the same task, attempt and due time unchanged");
    assert!(
        *delay <= Duration::from_secs(3600) && *delay > Duration::from_secs(3595),
        "delay {delay:?} is the remaining time"
    );
    assert!(h.history.attempts().is_empty());
    assert!(h.subs.health().is_empty());
}

#[tokio::test]
async fn a_delivery_due_within_the_tolerance_is_attempted_now() {
    let h = Harness::new(
        FakeSubscriptions::with(vec![sub("a", &["*"])]),
        FakeDeliverer::default(),
        FakeOutbox::default(),
    );
    let mut t = task(&event("create"), "a", 2);
    t.not_before = Utc::now() + chrono::TimeDelta::milliseconds(50);

    let response = h.handle(vec![delivery_record("m1", &t)]).await;

    assert!(failures(&response).is_empty());
    assert_eq!(h.deliverer.urls(), vec![url("a")]);
    assert!(h.outbox.scheduled().is_empty());
    let a = &h.history.attempts()[0];
    assert_eq!(a.attempt, 2);
    assert_eq!(a.outcome, AttemptOutcome::Succeeded);
}

#[tokio::test]
async fn re_delaying_a_delivery_that_cannot_be_sent_brings_the_record_back() {
    let h = Harness::new(
        FakeSubscriptions::with(vec![sub("a", &["*"])]),
        FakeDeliverer::default(),
        FakeOutbox {
            fail_schedule: Some(|_| true),
            ..FakeOutbox::default()
        },
    );
    let mut t = task(&event("create"), "a", 2);
    t.not_before = Utc::now() + chrono::TimeDelta::hours(1);
    let response = h.handle(vec![delivery_record("m1", &t)]).await;
    assert_eq!(failures(&response), vec!["m1"]);
    assert!(h.deliverer.requests().is_empty());
}

#[tokio::test]
async fn a_delivery_for_a_deleted_subscription_is_recorded_as_not_sent() {
    let h = Harness::new(
        FakeSubscriptions::with(vec![sub("other", &["*"])]),
        FakeDeliverer::default(),
        FakeOutbox::default(),
    );
    let e = event("create");
    let t = task(&e, "gone", 2);

    let response = h.handle(vec![delivery_record("m1", &t)]).await;

    assert!(failures(&response).is_empty());
    assert!(h.deliverer.requests().is_empty());
    assert!(h.outbox.scheduled().is_empty() && h.outbox.parked().is_empty());
    assert_eq!(
        *h.subs.gets.lock().unwrap(),
        vec![SubscriptionId::new("gone")],
        "a subscription missing from the cached list is read fresh before giving up"
    );
    let attempts = h.history.attempts();
    assert_eq!(attempts.len(), 1);
    let a = &attempts[0];
    assert_eq!(a.subscription_id.as_str(), "gone");
    assert_eq!(a.outcome, AttemptOutcome::NotSent);
    assert_eq!(a.error_kind.as_deref(), Some("subscription_deleted"));
    assert_eq!(a.attempt, 0);
    assert_eq!(
        a.webhook_id,
        webhook_id(&e.id, &SubscriptionId::new("gone"))
    );
}

#[tokio::test]
async fn a_delivery_missing_from_a_stale_cache_is_found_by_a_fresh_read_and_attempted() {
    let subs = FakeSubscriptions {
        fresh_only: vec![sub("new", &["*"])],
        ..FakeSubscriptions::default()
    };
    let h = Harness::new(subs, FakeDeliverer::default(), FakeOutbox::default());
    let t = task(&event("create"), "new", 2);
    let response = h.handle(vec![delivery_record("m1", &t)]).await;
    assert!(failures(&response).is_empty());
    assert_eq!(h.deliverer.urls(), vec![url("new")]);
    assert_eq!(
        h.history.attempts()[0].outcome,
        AttemptOutcome::Succeeded,
        "delivered, not dropped as deleted"
    );
}

#[tokio::test]
async fn a_waiting_delivery_whose_endpoint_was_disabled_is_parked_with_the_reason() {
    let mut disabled = sub("disabled", &["*"]);
    disabled.active = false;
    disabled.disabled_reason = Some("endpoint answered 410 Gone; it was disabled".into());
    let mut paused = sub("paused", &["*"]);
    paused.active = false;
    let h = Harness::new(
        FakeSubscriptions::with(vec![disabled, paused]),
        FakeDeliverer::default(),
        FakeOutbox::default(),
    );
    let e = event("create");
    let t1 = task(&e, "disabled", 2);
    let t2 = task(&e, "paused", 3);

    let response = h
        .handle(vec![delivery_record("m1", &t1), delivery_record("m2", &t2)])
        .await;

    assert!(failures(&response).is_empty());
    assert!(h.deliverer.requests().is_empty());
    assert!(h.outbox.scheduled().is_empty());
    let parked = h.outbox.parked();
    assert_eq!(parked.len(), 2);
    let by_sub = |id: &str| {
        parked
            .iter()
            .find(|l| failed_letter(l).1.subscription_id.as_str() == id)
            .map(failed_letter)
            .unwrap()
    };
    let (reason, delivery, attempts, last_status, last_error) = by_sub("disabled");
    assert!(reason.starts_with("endpoint disabled"), "{reason}");
    assert_eq!(
        reason,
        "endpoint disabled: endpoint answered 410 Gone; it was disabled"
    );
    assert_eq!(delivery, &t1);
    assert_eq!(attempts, 1, "attempts made so far");
    assert_eq!(last_status, None);
    assert_eq!(last_error, Some("HTTP 500"));
    let (reason, _, attempts, _, _) = by_sub("paused");
    assert_eq!(reason, "endpoint disabled: disabled by its owner");
    assert_eq!(attempts, 2);

    for id in ["disabled", "paused"] {
        let a = &h.history.for_sub(id)[0];
        assert_eq!(a.outcome, AttemptOutcome::NotSent);
        assert_eq!(a.error_kind.as_deref(), Some("endpoint_disabled"));
    }
    assert!(h.subs.health().is_empty());
}

#[tokio::test]
async fn a_delivery_for_a_disabled_endpoint_that_cannot_be_parked_comes_back() {
    let mut disabled = sub("disabled", &["*"]);
    disabled.active = false;
    let h = Harness::new(
        FakeSubscriptions::with(vec![disabled, sub("ok", &["*"])]),
        FakeDeliverer::default(),
        FakeOutbox {
            fail_park: Some(|_| true),
            ..FakeOutbox::default()
        },
    );
    let e = event("create");
    let response = h
        .handle(vec![
            delivery_record("m1", &task(&e, "disabled", 2)),
            delivery_record("m2", &task(&e, "ok", 2)),
        ])
        .await;
    assert_eq!(failures(&response), vec!["m1"]);
    assert_eq!(h.deliverer.urls(), vec![url("ok")]);
    assert!(
        h.history.for_sub("disabled").is_empty(),
        "nothing recorded for a delivery that will come back"
    );
}

// ---------------------------------------------------------------------------------
// After a failed attempt
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn the_last_failed_attempt_parks_the_delivery_and_counts_against_the_endpoint() {
    let subs = FakeSubscriptions {
        disable_after: 1,
        ..FakeSubscriptions::with(vec![sub("a", &["*"])])
    };
    let h = Harness::new(
        subs,
        FakeDeliverer::answering(&[(&url("a"), status(500))]),
        FakeOutbox::default(),
    );
    let t = task(&event("create"), "a", 3);

    let response = h.handle(vec![delivery_record("m1", &t)]).await;

    assert!(failures(&response).is_empty());
    assert_eq!(h.deliverer.urls(), vec![url("a")]);
    assert!(h.outbox.scheduled().is_empty(), "no fourth attempt");
    let parked = h.outbox.parked();
    assert_eq!(parked.len(), 1);
    let (reason, delivery, attempts, last_status, last_error) = failed_letter(&parked[0]);
    assert_eq!(reason, "all 3 attempts failed");
    assert_eq!(delivery, &t);
    assert_eq!(attempts, 3);
    assert_eq!(last_status, Some(500));
    assert_eq!(last_error, None);
    assert_eq!(
        h.subs.health(),
        vec![HealthCall::RecordFailed(SubscriptionId::new("a"))]
    );
    assert_eq!(
        *h.subs.disabled_by_count.lock().unwrap(),
        vec![SubscriptionId::new("a")],
        "the threshold was reached"
    );
    let a = &h.history.attempts()[0];
    assert_eq!(a.attempt, 3);
    assert_eq!(a.outcome, AttemptOutcome::Failed);
    assert_eq!(a.next_attempt_at, None);
}

#[tokio::test]
async fn a_last_attempt_that_times_out_is_parked_with_the_error() {
    let h = Harness::new(
        FakeSubscriptions::with(vec![sub("a", &["*"])]),
        FakeDeliverer::answering(&[(&url("a"), error(DeliveryError::Timeout))]),
        FakeOutbox::default(),
    );
    let t = task(&event("create"), "a", 3);
    let response = h.handle(vec![delivery_record("m1", &t)]).await;
    assert!(failures(&response).is_empty());
    let parked = h.outbox.parked();
    let (reason, _, attempts, last_status, last_error) = failed_letter(&parked[0]);
    assert_eq!(reason, "all 3 attempts failed");
    assert_eq!(attempts, 3);
    assert_eq!(last_status, None);
    assert_eq!(last_error, Some("timed out"));
    assert_eq!(
        h.history.attempts()[0].error_kind.as_deref(),
        Some("timeout")
    );
    assert_eq!(
        h.subs.health(),
        vec![HealthCall::RecordFailed(SubscriptionId::new("a"))]
    );
}

#[tokio::test]
async fn a_transport_failure_before_the_last_attempt_is_retried_on_schedule() {
    let h = Harness::new(
        FakeSubscriptions::with(vec![sub("a", &["*"])]),
        FakeDeliverer::answering(&[(&url("a"), error(DeliveryError::Connect("refused".into())))]),
        FakeOutbox::default(),
    );
    let t = task(&event("create"), "a", 2);
    h.handle(vec![delivery_record("m1", &t)]).await;
    let scheduled = h.outbox.scheduled();
    assert_eq!(scheduled.len(), 1);
    assert_eq!(scheduled[0].0.attempt, 3);
    assert_eq!(scheduled[0].1, Duration::from_secs(20));
    assert_eq!(
        scheduled[0].0.last_result.as_deref(),
        Some("could not connect: refused")
    );
    assert_eq!(scheduled[0].0.first_attempt_at, t.first_attempt_at);
    assert!(h.outbox.parked().is_empty());
    assert!(h.subs.health().is_empty());
}

#[tokio::test]
async fn gone_disables_the_endpoint_and_parks_without_a_retry() {
    let h = Harness::new(
        FakeSubscriptions::with(vec![sub("a", &["*"])]),
        FakeDeliverer::answering(&[(&url("a"), status(410))]),
        FakeOutbox::default(),
    );
    let e = event("create");
    let response = h.handle(vec![event_record("m1", &e)]).await;

    assert!(failures(&response).is_empty());
    assert!(h.outbox.scheduled().is_empty());
    let parked = h.outbox.parked();
    assert_eq!(parked.len(), 1);
    let (reason, delivery, attempts, last_status, _) = failed_letter(&parked[0]);
    assert_eq!(reason, "endpoint answered 410 Gone; it was disabled");
    assert_eq!(delivery.attempt, 1);
    assert_eq!(attempts, 1);
    assert_eq!(last_status, Some(410));
    assert_eq!(
        h.subs.health(),
        vec![HealthCall::Disable(
            SubscriptionId::new("a"),
            "endpoint answered 410 Gone; it was disabled".into()
        )]
    );
    let a = &h.history.attempts()[0];
    assert_eq!(a.status_code, Some(410));
    assert_eq!(a.next_attempt_at, None);
}

#[tokio::test]
async fn too_many_requests_with_retry_after_is_retried_after_it_within_bounds() {
    let h = Harness::new(
        FakeSubscriptions::with(vec![
            sub("within", &["*"]),
            sub("beyond", &["*"]),
            sub("sooner", &["*"]),
            sub("plain500", &["*"]),
        ]),
        FakeDeliverer::answering(&[
            (&url("within"), status_retry_after(429, 15)),
            (&url("beyond"), status_retry_after(429, 600)),
            (&url("sooner"), status_retry_after(503, 1)),
            (&url("plain500"), status_retry_after(500, 15)),
        ]),
        FakeOutbox::default(),
    );
    let before = Utc::now();
    let response = h.handle(vec![event_record("m1", &event("create"))]).await;
    assert!(failures(&response).is_empty());

    let scheduled = h.outbox.scheduled();
    let delay_of = |id: &str| {
        scheduled
            .iter()
            .find(|(t, _)| t.subscription_id.as_str() == id)
            .map(|(t, d)| {
                assert_eq!(t.attempt, 2);
                *d
            })
            .unwrap()
    };
    assert_eq!(delay_of("within"), Duration::from_secs(15), "as asked");
    assert_eq!(
        delay_of("beyond"),
        Duration::from_secs(20),
        "at most twice the schedule"
    );
    assert_eq!(
        delay_of("sooner"),
        Duration::from_secs(10),
        "never sooner than the schedule"
    );
    assert_eq!(
        delay_of("plain500"),
        Duration::from_secs(10),
        "only 429 and 503"
    );
    let within = &h.history.for_sub("within")[0];
    assert_near(
        within.next_attempt_at.unwrap(),
        before + chrono::TimeDelta::seconds(15),
        "next_attempt_at",
    );
    assert!(h.outbox.parked().is_empty());
}

#[tokio::test]
async fn a_refused_destination_is_parked_at_once() {
    let subs = FakeSubscriptions {
        disable_after: 5,
        ..FakeSubscriptions::with(vec![sub("private", &["*"])])
    };
    let h = Harness::new(
        subs,
        FakeDeliverer::answering(&[(
            &url("private"),
            error(DeliveryError::Refused("10.0.0.1 is private".into())),
        )]),
        FakeOutbox::default(),
    );
    let response = h.handle(vec![event_record("m1", &event("create"))]).await;

    assert!(failures(&response).is_empty());
    assert!(
        h.outbox.scheduled().is_empty(),
        "not retried on the first attempt"
    );
    let parked = h.outbox.parked();
    assert_eq!(parked.len(), 1);
    let (reason, delivery, attempts, last_status, last_error) = failed_letter(&parked[0]);
    assert_eq!(reason, "destination refused by the address policy");
    assert_eq!(delivery.attempt, 1);
    assert_eq!(attempts, 1);
    assert_eq!(last_status, None);
    assert_eq!(last_error, Some("destination refused: 10.0.0.1 is private"));
    assert_eq!(
        h.history.attempts()[0].error_kind.as_deref(),
        Some("refused_address")
    );
    assert_eq!(
        h.subs.health(),
        vec![HealthCall::RecordFailed(SubscriptionId::new("private"))],
        "a refused address counts towards auto-disable"
    );
    assert!(h.subs.disabled_by_count.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_invalid_url_is_parked_at_once_too() {
    let h = Harness::new(
        FakeSubscriptions::with(vec![sub("ftp", &["*"])]),
        FakeDeliverer::answering(&[(
            &url("ftp"),
            error(DeliveryError::Invalid("scheme ftp is not http(s)".into())),
        )]),
        FakeOutbox::default(),
    );
    h.handle(vec![event_record("m1", &event("create"))]).await;
    assert!(h.outbox.scheduled().is_empty());
    assert_eq!(h.outbox.parked().len(), 1);
}

#[tokio::test]
async fn a_last_attempt_that_cannot_be_parked_comes_back_and_is_not_counted() {
    let h = Harness::new(
        FakeSubscriptions::with(vec![sub("a", &["*"])]),
        FakeDeliverer::answering(&[(&url("a"), status(500))]),
        FakeOutbox {
            fail_park: Some(|_| true),
            ..FakeOutbox::default()
        },
    );
    let response = h
        .handle(vec![delivery_record("m1", &task(&event("create"), "a", 3))])
        .await;
    assert_eq!(failures(&response), vec!["m1"]);
    assert!(
        h.subs.health().is_empty(),
        "counted only once it is durably parked"
    );
}

// ---------------------------------------------------------------------------------
// Undecodable records and partial batch responses
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn an_undecodable_record_is_parked_and_does_not_disturb_the_batch() {
    let h = Harness::new(
        FakeSubscriptions::with(vec![sub("a", &["*"])]),
        FakeDeliverer::default(),
        FakeOutbox::default(),
    );
    let response = h
        .handle(vec![
            record("bad", "not json"),
            event_record("good", &event("create")),
        ])
        .await;

    assert!(failures(&response).is_empty());
    assert_eq!(h.deliverer.urls(), vec![url("a")]);
    let parked = h.outbox.parked();
    assert_eq!(parked.len(), 1);
    match &parked[0] {
        DeadLetter::Undecodable {
            reason,
            body,
            body_truncated,
            original_message_id,
            ..
        } => {
            assert!(!reason.is_empty());
            assert_eq!(body, "not json");
            assert!(!body_truncated);
            assert_eq!(original_message_id.as_deref(), Some("bad"));
        }
        other => panic!("expected an undecodable letter, got {other:?}"),
    }
}

#[tokio::test]
async fn records_without_a_body_or_with_an_unknown_kind_are_parked_as_undecodable() {
    let h = Harness::new(
        FakeSubscriptions::default(),
        FakeDeliverer::default(),
        FakeOutbox::default(),
    );
    let mut no_body = SqsMessage::default();
    no_body.message_id = Some("empty".into());
    let response = h
        .handle(vec![no_body, record("odd", r#"{"kind":"nope"}"#)])
        .await;
    assert!(failures(&response).is_empty());
    let parked = h.outbox.parked();
    assert_eq!(parked.len(), 2);
    assert!(parked
        .iter()
        .all(|l| matches!(l, DeadLetter::Undecodable { .. })));
}

#[tokio::test]
async fn an_undecodable_record_that_cannot_be_parked_comes_back_alone() {
    let h = Harness::new(
        FakeSubscriptions::with(vec![sub("a", &["*"]), sub("b", &["*"])]),
        FakeDeliverer::answering(&[(&url("b"), status(500))]),
        FakeOutbox {
            fail_park: Some(|l| matches!(l, DeadLetter::Undecodable { .. })),
            ..FakeOutbox::default()
        },
    );
    let response = h
        .handle(vec![
            record("bad", "{\"kind\":\"event\"}"),
            event_record("good", &event("create")),
        ])
        .await;

    assert_eq!(failures(&response), vec!["bad"]);
    assert_eq!(h.deliverer.urls(), vec![url("a"), url("b")]);
    assert_eq!(h.outbox.scheduled().len(), 1, "b's retry is scheduled");
    assert_eq!(h.history.attempts().len(), 2);
}

#[tokio::test]
async fn a_retry_that_cannot_be_scheduled_brings_back_only_its_record() {
    let h = Harness::new(
        FakeSubscriptions::with(vec![
            sub("creates", &["create"]),
            sub("updates", &["update"]),
        ]),
        FakeDeliverer::answering(&[
            (&url("creates"), status(500)),
            (&url("updates"), status(200)),
        ]),
        FakeOutbox {
            fail_schedule: Some(|_| true),
            ..FakeOutbox::default()
        },
    );
    let response = h
        .handle(vec![
            event_record("failing", &event("create")),
            event_record("fine", &event("update")),
        ])
        .await;

    assert_eq!(failures(&response), vec!["failing"]);
    assert_eq!(h.deliverer.urls(), vec![url("creates"), url("updates")]);
    assert!(h.outbox.scheduled().is_empty());
    assert!(h.outbox.parked().is_empty());
    assert_eq!(
        h.history.attempts().len(),
        2,
        "both attempts were made and are recorded"
    );
}

#[tokio::test]
async fn a_record_whose_message_id_is_missing_cannot_be_reported_but_does_not_panic() {
    let h = Harness::new(
        FakeSubscriptions {
            fail_for_app: true,
            ..FakeSubscriptions::default()
        },
        FakeDeliverer::default(),
        FakeOutbox::default(),
    );
    let mut r = event_record("x", &event("create"));
    r.message_id = None;
    let response = h.handle(vec![r]).await;
    assert!(failures(&response).is_empty());
}

#[tokio::test]
async fn an_empty_batch_is_handled() {
    let h = Harness::new(
        FakeSubscriptions::default(),
        FakeDeliverer::default(),
        FakeOutbox::default(),
    );
    let response = h.handle(Vec::new()).await;
    assert!(failures(&response).is_empty());
    assert!(h.history.attempts().is_empty());
}

// ---------------------------------------------------------------------------------
// Lookup failures and history failures
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn a_failed_subscription_lookup_brings_the_record_back() {
    let h = Harness::new(
        FakeSubscriptions {
            fail_for_app: true,
            ..FakeSubscriptions::with(vec![sub("a", &["*"])])
        },
        FakeDeliverer::default(),
        FakeOutbox::default(),
    );
    let e = event("create");
    let response = h
        .handle(vec![
            event_record("event", &e),
            delivery_record("delivery", &task(&e, "a", 2)),
            record("garbage", "not json"),
        ])
        .await;
    assert_eq!(failures(&response), vec!["delivery", "event"]);
    assert!(h.deliverer.requests().is_empty());
    assert!(h.history.attempts().is_empty());
    assert_eq!(h.outbox.parked().len(), 1, "the garbage is still parked");
}

#[tokio::test]
async fn a_failed_fresh_read_of_a_missing_subscription_brings_the_record_back() {
    let h = Harness::new(
        FakeSubscriptions {
            fail_get: true,
            ..FakeSubscriptions::default()
        },
        FakeDeliverer::default(),
        FakeOutbox::default(),
    );
    let response = h
        .handle(vec![delivery_record(
            "m1",
            &task(&event("create"), "maybe", 2),
        )])
        .await;
    assert_eq!(failures(&response), vec!["m1"]);
    assert!(
        h.history.attempts().is_empty(),
        "not recorded as deleted on a failed read"
    );
}

#[tokio::test]
async fn a_history_write_failure_does_not_fail_deliveries_that_were_made() {
    let h = Harness::with_policy(
        FakeSubscriptions::with(vec![sub("a", &["*"]), sub("b", &["*"])]),
        FakeDeliverer::answering(&[(&url("b"), status(500))]),
        FakeOutbox::default(),
        FakeHistory {
            fail: true,
            ..FakeHistory::default()
        },
        policy(),
    );
    let response = h.handle(vec![event_record("m1", &event("create"))]).await;
    assert!(failures(&response).is_empty());
    assert_eq!(h.outbox.scheduled().len(), 1);
}

// ---------------------------------------------------------------------------------
// Endpoint health
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn a_success_resets_the_failure_count_only_when_there_is_one() {
    let mut recovering = sub("recovering", &["*"]);
    recovering.consecutive_failures = 3;
    let h = Harness::new(
        FakeSubscriptions::with(vec![recovering, sub("healthy", &["*"])]),
        FakeDeliverer::default(),
        FakeOutbox::default(),
    );
    let response = h.handle(vec![event_record("m1", &event("create"))]).await;
    assert!(failures(&response).is_empty());
    assert_eq!(h.deliverer.urls(), vec![url("healthy"), url("recovering")]);
    assert_eq!(
        h.subs.health(),
        vec![HealthCall::Reset(SubscriptionId::new("recovering"))]
    );
}

#[tokio::test]
async fn a_failed_attempt_does_not_reset_the_failure_count() {
    let mut recovering = sub("recovering", &["*"]);
    recovering.consecutive_failures = 3;
    let h = Harness::new(
        FakeSubscriptions::with(vec![recovering]),
        FakeDeliverer::answering(&[(&url("recovering"), status(502))]),
        FakeOutbox::default(),
    );
    h.handle(vec![event_record("m1", &event("create"))]).await;
    assert!(h.subs.health().is_empty());
    assert_eq!(h.outbox.scheduled().len(), 1);
}

// ---------------------------------------------------------------------------------
// The start deadline
// ---------------------------------------------------------------------------------

fn slow_policy() -> DeliveryPolicy {
    DeliveryPolicy {
        concurrency: 1,
        start_deadline: Duration::from_millis(50),
        ..policy()
    }
}

fn slow_deliverer() -> FakeDeliverer {
    FakeDeliverer {
        sleep: Duration::from_millis(100),
        ..FakeDeliverer::default()
    }
}

#[tokio::test]
async fn deliveries_not_started_by_the_deadline_are_handed_back_with_the_same_attempt() {
    let h = Harness::with_policy(
        FakeSubscriptions::with(vec![sub("a", &["*"]), sub("b", &["*"]), sub("c", &["*"])]),
        slow_deliverer(),
        FakeOutbox::default(),
        FakeHistory::default(),
        slow_policy(),
    );
    let e = event("create");

    let response = h.handle(vec![event_record("m1", &e)]).await;

    assert!(failures(&response).is_empty());
    let requests = h.deliverer.requests();
    assert_eq!(requests.len(), 1, "only the first delivery started in time");
    let first = requests[0].url.clone();
    let scheduled = h.outbox.scheduled();
    assert_eq!(scheduled.len(), 2);
    for (t, delay) in &scheduled {
        assert_eq!(*delay, Duration::ZERO, "handed back for at once");
        assert_eq!(t.attempt, 1, "the attempt is not counted");
        assert_eq!(t.event, e);
        assert_eq!(t.last_result, None);
        assert_ne!(url(t.subscription_id.as_str()), first);
    }
    let mut handed_back: Vec<&str> = scheduled
        .iter()
        .map(|(t, _)| t.subscription_id.as_str())
        .collect();
    handed_back.sort();
    handed_back.dedup();
    assert_eq!(handed_back.len(), 2);
    let attempts = h.history.attempts();
    assert_eq!(
        attempts.len(),
        1,
        "no attempt recorded for those handed back"
    );
    assert_eq!(attempts[0].outcome, AttemptOutcome::Succeeded);
}

#[tokio::test]
async fn retries_not_started_by_the_deadline_keep_their_attempt_number_and_due_time() {
    let h = Harness::with_policy(
        FakeSubscriptions::with(vec![sub("a", &["*"]), sub("b", &["*"])]),
        slow_deliverer(),
        FakeOutbox::default(),
        FakeHistory::default(),
        slow_policy(),
    );
    let e = event("create");
    let (ta, tb) = (task(&e, "a", 2), task(&e, "b", 2));

    let response = h
        .handle(vec![delivery_record("m1", &ta), delivery_record("m2", &tb)])
        .await;

    assert!(failures(&response).is_empty());
    assert_eq!(h.deliverer.requests().len(), 1);
    let scheduled = h.outbox.scheduled();
    assert_eq!(scheduled.len(), 1);
    let (back, delay) = &scheduled[0];
    assert_eq!(*delay, Duration::ZERO);
    let original = if back.subscription_id.as_str() == "a" {
        &ta
    } else {
        &tb
    };
    assert_eq!(back, original, "handed back unchanged");
}

#[tokio::test]
async fn a_hand_back_that_cannot_be_sent_brings_its_record_back() {
    let h = Harness::with_policy(
        FakeSubscriptions::with(vec![sub("a", &["*"]), sub("b", &["*"])]),
        slow_deliverer(),
        FakeOutbox {
            fail_schedule: Some(|_| true),
            ..FakeOutbox::default()
        },
        FakeHistory::default(),
        slow_policy(),
    );
    let e = event("create");
    let response = h
        .handle(vec![
            delivery_record("m1", &task(&e, "a", 2)),
            delivery_record("m2", &task(&e, "b", 2)),
        ])
        .await;
    // Exactly one was delivered (and succeeded); the other could not be handed back.
    assert_eq!(h.deliverer.requests().len(), 1);
    let delivered = h.deliverer.requests()[0].url.clone();
    let expected = if delivered == url("a") { "m2" } else { "m1" };
    assert_eq!(failures(&response), vec![expected]);
}
