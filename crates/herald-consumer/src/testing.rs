//! In-memory fakes of the consumer's four adapters, for the handler's unit tests and
//! the bench's in-process runs (feature `testing`).
//!
//! Each fake records what the consumer asked of it and can be told to fail; none makes
//! a network call. The lookups the consumer makes on every batch (an app's
//! routes of an app's event type) cost what a warm cache costs: an `Arc` clone after
//! the first lookup of each (app, type).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_core::endpoint::disable_reason;
use herald_core::{
    AppId, Attempt, AttemptOutcome, DeadLetter, DeliveryOutcome, DeliveryTask, Event, EventType,
    RateLimit, Route, Subscription, SubscriptionId,
};
use herald_delivery::{Deliverer, DeliveryRequest, PreparedRoute};
use herald_queue::{Outbox, QueueError};
use herald_store::{BatchAttempt, BatchHistory, StoreError};

use crate::history::History;
use crate::subscriptions::{prepare, Routes, SubscriptionSource};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding a lock has failed already; keep reading.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The error a failing fake store returns.
pub fn store_error(operation: &'static str) -> StoreError {
    StoreError::Dynamo {
        operation,
        message: "throttled".into(),
    }
}

/// The error a failing fake queue returns.
pub fn queue_error() -> QueueError {
    QueueError {
        operation: "SendMessage",
        reason: "throttled".into(),
    }
}

// ---------------------------------------------------------------------------------
// Subscriptions
// ---------------------------------------------------------------------------------

/// A write the consumer made to endpoint health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthCall {
    /// `record_failed_delivery`.
    RecordFailed(SubscriptionId),
    /// `delivered` to an endpoint that may be failing: a reset of its count.
    Reset(SubscriptionId),
    /// `disable`, with its reason.
    Disable(SubscriptionId, String),
}

/// Subscriptions held in memory: what the DynamoDB store behind its cache returns.
/// Records the endpoint-health writes and the fresh reads made of it.
#[derive(Default)]
pub struct FakeSubscriptions {
    /// The routes of each app's subscriptions.
    by_app: HashMap<AppId, Vec<Route>>,
    /// Every subscription given, whatever its app.
    all: Vec<Subscription>,
    /// Visible to `get` only, as if the cached list were stale.
    fresh_only: Vec<Subscription>,
    /// `routes` returns every app's routes of the type (a sloppy source).
    leak_other_apps: bool,
    fail_for_app: bool,
    /// The routes handed out, by (app, type), built on first use.
    routes_of: Mutex<HashMap<(AppId, EventType), Routes>>,
    fail_get: bool,
    /// `record_failed_delivery` returns true once a subscription's count reaches it
    /// (0: never).
    disable_after: u32,
    failed_counts: Mutex<HashMap<SubscriptionId, u32>>,
    health: Mutex<Vec<HealthCall>>,
    gets: Mutex<Vec<SubscriptionId>>,
    disabled_by_count: Mutex<Vec<SubscriptionId>>,
    /// Each rate-limited webhook's schedule: the end of its reserved slots.
    schedules: Mutex<HashMap<SubscriptionId, DateTime<Utc>>>,
    /// The reservations made: the webhook and how many slots.
    reservations: Mutex<Vec<(SubscriptionId, u32)>>,
    fail_reserve: bool,
}

impl FakeSubscriptions {
    /// A source holding `subs` (of any apps).
    pub fn with(subs: Vec<Subscription>) -> Self {
        let mut by_app: HashMap<AppId, Vec<Route>> = HashMap::new();
        for s in &subs {
            by_app.entry(s.app_id.clone()).or_default().push(s.route());
        }
        Self {
            by_app,
            all: subs,
            ..Self::default()
        }
    }

    /// Also holds `subs`, visible to a fresh read (`get`) only.
    pub fn with_fresh_only(mut self, subs: Vec<Subscription>) -> Self {
        self.fresh_only = subs;
        self
    }

    /// `routes` returns the routes of every app's subscriptions of the type.
    pub fn leaking_other_apps(mut self) -> Self {
        self.leak_other_apps = true;
        self
    }

    /// `routes` fails.
    pub fn failing_lookups(mut self) -> Self {
        self.fail_for_app = true;
        self
    }

    /// `get` fails.
    pub fn failing_fresh_reads(mut self) -> Self {
        self.fail_get = true;
        self
    }

    /// `record_failed_delivery` reports the endpoint disabled once its count reaches
    /// `n` (0: never).
    pub fn disabling_after(mut self, n: u32) -> Self {
        self.disable_after = n;
        self
    }

    /// `reserve_slots` fails.
    pub fn failing_reservations(mut self) -> Self {
        self.fail_reserve = true;
        self
    }

    /// The rate-limit reservations made, in order: the webhook and how many slots.
    pub fn reservations(&self) -> Vec<(SubscriptionId, u32)> {
        lock(&self.reservations).clone()
    }

    /// Moves webhook `id`'s schedule to end at `end`, as other instances' reservations
    /// would.
    pub fn schedule_ends(&self, id: &SubscriptionId, end: DateTime<Utc>) {
        lock(&self.schedules).insert(id.clone(), end);
    }

    /// The endpoint-health writes made, in order.
    pub fn health(&self) -> Vec<HealthCall> {
        lock(&self.health).clone()
    }

    /// The subscriptions read fresh (`get`), in order.
    pub fn fresh_reads(&self) -> Vec<SubscriptionId> {
        lock(&self.gets).clone()
    }

    /// The endpoints `record_failed_delivery` reported as disabled.
    pub fn disabled_by_count(&self) -> Vec<SubscriptionId> {
        lock(&self.disabled_by_count).clone()
    }
}

#[async_trait]
impl SubscriptionSource for FakeSubscriptions {
    async fn routes(&self, app: &AppId, event_type: &EventType) -> Result<Routes, StoreError> {
        if self.fail_for_app {
            return Err(store_error("Query"));
        }
        let mut built = lock(&self.routes_of);
        let routes = built
            .entry((app.clone(), event_type.clone()))
            .or_insert_with(|| {
                // What the store's route partitions of the type hold.
                let takes = |r: &&Route| r.events.matches(event_type);
                prepare(if self.leak_other_apps {
                    self.by_app
                        .values()
                        .flatten()
                        .filter(takes)
                        .cloned()
                        .collect()
                } else {
                    self.by_app
                        .get(app)
                        .map(|rs| rs.iter().filter(takes).cloned().collect())
                        .unwrap_or_default()
                })
            });
        Ok(Arc::clone(routes))
    }

    async fn get(
        &self,
        app: &AppId,
        id: &SubscriptionId,
    ) -> Result<Option<Arc<PreparedRoute>>, StoreError> {
        lock(&self.gets).push(id.clone());
        if self.fail_get {
            return Err(store_error("GetItem"));
        }
        Ok(self
            .all
            .iter()
            .chain(&self.fresh_only)
            .find(|s| &s.app_id == app && &s.id == id)
            .map(|s| Arc::new(PreparedRoute::new(s.route()))))
    }

    async fn record_failed_delivery(
        &self,
        _app: &AppId,
        id: &SubscriptionId,
    ) -> Result<bool, StoreError> {
        lock(&self.health).push(HealthCall::RecordFailed(id.clone()));
        let mut counts = lock(&self.failed_counts);
        let count = counts.entry(id.clone()).or_insert(0);
        *count += 1;
        let disabled = disable_reason(*count, self.disable_after).is_some();
        if disabled {
            lock(&self.disabled_by_count).push(id.clone());
        }
        Ok(disabled)
    }

    async fn delivered(&self, route: &Route) -> Result<bool, StoreError> {
        if route.failing {
            lock(&self.health).push(HealthCall::Reset(route.id.clone()));
        }
        Ok(route.failing)
    }

    async fn disable(
        &self,
        _app: &AppId,
        id: &SubscriptionId,
        reason: &str,
    ) -> Result<(), StoreError> {
        lock(&self.health).push(HealthCall::Disable(id.clone(), reason.to_owned()));
        Ok(())
    }

    async fn reserve_slots(
        &self,
        route: &Route,
        limit: RateLimit,
        count: u32,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, StoreError> {
        lock(&self.reservations).push((route.id.clone(), count));
        if self.fail_reserve {
            return Err(store_error("UpdateItem"));
        }
        let mut schedules = lock(&self.schedules);
        let end = schedules.get(&route.id).copied();
        let (first, end) = herald_core::rate::reserve(end, now, limit.span(count));
        schedules.insert(route.id.clone(), end);
        Ok(first)
    }
}

// ---------------------------------------------------------------------------------
// Deliverer
// ---------------------------------------------------------------------------------

/// The receiver answered `code`, with body `body of {code}`, in 3 ms.
pub fn answered(code: u16) -> DeliveryOutcome {
    DeliveryOutcome::answered(
        code,
        format!("body of {code}"),
        None,
        Duration::from_millis(3),
    )
}

/// Answers each URL with its scripted outcomes in turn (the last one repeats); an
/// unscripted URL gets [`answered`]`(200)`. Records every request.
#[derive(Default)]
pub struct FakeDeliverer {
    script: Mutex<HashMap<String, Vec<DeliveryOutcome>>>,
    /// How long each delivery takes (real time: the handler uses `std::time::Instant`).
    sleep: Duration,
    requests: Mutex<Vec<DeliveryRequest>>,
}

impl FakeDeliverer {
    /// Answers each URL of `pairs` with its outcomes, in the order given.
    pub fn answering(pairs: &[(&str, DeliveryOutcome)]) -> Self {
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

    /// Each delivery takes `sleep` before it answers.
    pub fn taking(mut self, sleep: Duration) -> Self {
        self.sleep = sleep;
        self
    }

    /// The requests made, in order.
    pub fn requests(&self) -> Vec<DeliveryRequest> {
        lock(&self.requests).clone()
    }

    /// The URLs requested, sorted.
    pub fn urls(&self) -> Vec<String> {
        let mut urls: Vec<String> = self.requests().iter().map(|r| r.url().to_owned()).collect();
        urls.sort();
        urls
    }
}

#[async_trait]
impl Deliverer for FakeDeliverer {
    async fn deliver(&self, request: DeliveryRequest) -> DeliveryOutcome {
        lock(&self.requests).push(request.clone());
        if !self.sleep.is_zero() {
            tokio::time::sleep(self.sleep).await;
        }
        let mut script = lock(&self.script);
        match script.get_mut(request.url()) {
            Some(list) if list.len() > 1 => list.remove(0),
            Some(list) if !list.is_empty() => list[0].clone(),
            _ => answered(200),
        }
    }
}

// ---------------------------------------------------------------------------------
// Outbox
// ---------------------------------------------------------------------------------

/// Which delivery tasks a [`FakeOutbox`] fails to schedule.
pub type TaskPredicate = Box<dyn Fn(&DeliveryTask) -> bool + Send + Sync>;
/// Which dead letters a [`FakeOutbox`] fails to park.
pub type LetterPredicate = Box<dyn Fn(&DeadLetter) -> bool + Send + Sync>;

/// Keeps what the consumer schedules and parks; can be told to fail some of it.
#[derive(Default)]
pub struct FakeOutbox {
    scheduled: Mutex<Vec<(DeliveryTask, Duration)>>,
    parked: Mutex<Vec<DeadLetter>>,
    published: Mutex<Vec<Event>>,
    fail_schedule: Option<TaskPredicate>,
    fail_park: Option<LetterPredicate>,
    /// Whether it has an ordered (FIFO) queue.
    ordering: bool,
    ordered: Mutex<Vec<DeliveryTask>>,
    held: Mutex<Vec<(String, Duration)>>,
}

impl FakeOutbox {
    /// Schedules of the tasks `f` matches fail (and are not kept).
    pub fn failing_schedules(
        mut self,
        f: impl Fn(&DeliveryTask) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.fail_schedule = Some(Box::new(f));
        self
    }

    /// Parks of the letters `f` matches fail (and are not kept).
    pub fn failing_parks(
        mut self,
        f: impl Fn(&DeadLetter) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.fail_park = Some(Box::new(f));
        self
    }

    /// With an ordered (FIFO) queue: `order` and `hold` succeed and are kept.
    pub fn ordering(mut self) -> Self {
        self.ordering = true;
        self
    }

    /// The deliveries put on the ordered queue, in order.
    pub fn ordered(&self) -> Vec<DeliveryTask> {
        lock(&self.ordered).clone()
    }

    /// The receipt handles held invisible, with how long, in order.
    pub fn held(&self) -> Vec<(String, Duration)> {
        lock(&self.held).clone()
    }

    /// The tasks scheduled and their delays, in order.
    pub fn scheduled(&self) -> Vec<(DeliveryTask, Duration)> {
        lock(&self.scheduled).clone()
    }

    /// The letters parked, in order.
    pub fn parked(&self) -> Vec<DeadLetter> {
        lock(&self.parked).clone()
    }

    /// The events published (operational events), in order.
    pub fn published(&self) -> Vec<Event> {
        lock(&self.published).clone()
    }

    /// How many messages were sent (scheduled and parked).
    pub fn sent(&self) -> usize {
        lock(&self.scheduled).len() + lock(&self.parked).len()
    }
}

#[async_trait]
impl Outbox for FakeOutbox {
    async fn schedule(&self, task: &DeliveryTask, delay: Duration) -> Result<(), QueueError> {
        if self.fail_schedule.as_ref().is_some_and(|f| f(task)) {
            return Err(queue_error());
        }
        lock(&self.scheduled).push((task.clone(), delay));
        Ok(())
    }

    async fn park(&self, letter: &DeadLetter) -> Result<(), QueueError> {
        if self.fail_park.as_ref().is_some_and(|f| f(letter)) {
            return Err(queue_error());
        }
        lock(&self.parked).push(letter.clone());
        Ok(())
    }

    async fn publish(&self, event: &Event) -> Result<(), QueueError> {
        lock(&self.published).push(event.clone());
        Ok(())
    }

    fn orders(&self) -> bool {
        self.ordering
    }

    async fn order(&self, tasks: &[DeliveryTask]) -> Result<(), QueueError> {
        if !self.ordering {
            return Err(queue_error());
        }
        lock(&self.ordered).extend(tasks.iter().cloned());
        Ok(())
    }

    async fn hold(&self, receipt_handle: &str, delay: Duration) -> Result<(), QueueError> {
        if !self.ordering {
            return Err(queue_error());
        }
        lock(&self.held).push((receipt_handle.to_owned(), delay));
        Ok(())
    }
}

// ---------------------------------------------------------------------------------
// History
// ---------------------------------------------------------------------------------

/// The delivery history in memory. Counts attempts by outcome; unless made with
/// [`FakeHistory::counting`], also keeps every batch recorded.
pub struct FakeHistory {
    keep: bool,
    fail: bool,
    batches: Mutex<Vec<BatchHistory>>,
    succeeded: AtomicU64,
    other: AtomicU64,
}

impl Default for FakeHistory {
    fn default() -> Self {
        Self {
            keep: true,
            fail: false,
            batches: Mutex::default(),
            succeeded: AtomicU64::new(0),
            other: AtomicU64::new(0),
        }
    }
}

impl FakeHistory {
    /// Only counts attempts by outcome, keeping nothing (for long benchmark runs).
    pub fn counting() -> Self {
        Self {
            keep: false,
            ..Self::default()
        }
    }

    /// Every write fails (and nothing is kept or counted).
    pub fn failing(mut self) -> Self {
        self.fail = true;
        self
    }

    /// The batches recorded, in order.
    pub fn batches(&self) -> Vec<BatchHistory> {
        lock(&self.batches).clone()
    }

    /// The attempts recorded, in order, each with whether it was part of its event's
    /// first fan-out.
    pub fn tagged_attempts(&self) -> Vec<BatchAttempt> {
        lock(&self.batches)
            .iter()
            .flat_map(|b| b.attempts.iter().cloned())
            .collect()
    }

    /// The attempts recorded, in order.
    pub fn attempts(&self) -> Vec<Attempt> {
        self.tagged_attempts()
            .into_iter()
            .map(|a| a.attempt)
            .collect()
    }

    /// The attempts recorded for subscription `id`.
    pub fn for_sub(&self, id: &str) -> Vec<Attempt> {
        self.attempts()
            .into_iter()
            .filter(|a| a.subscription_id.as_str() == id)
            .collect()
    }

    /// The fanned-out events recorded beside the attempts, in order.
    pub fn events(&self) -> Vec<Event> {
        lock(&self.batches)
            .iter()
            .flat_map(|b| b.events.iter().cloned())
            .collect()
    }

    /// Attempts recorded that succeeded.
    pub fn succeeded(&self) -> u64 {
        self.succeeded.load(Ordering::Relaxed)
    }

    /// Attempts recorded that did not succeed (failed, or not sent).
    pub fn not_succeeded(&self) -> u64 {
        self.other.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl History for FakeHistory {
    async fn record(&self, batch: &BatchHistory) -> Result<(), StoreError> {
        if self.fail {
            return Err(store_error("BatchWriteItem"));
        }
        for a in &batch.attempts {
            let counter = if a.attempt.outcome == AttemptOutcome::Succeeded {
                &self.succeeded
            } else {
                &self.other
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        if self.keep {
            lock(&self.batches).push(batch.clone());
        }
        Ok(())
    }
}
