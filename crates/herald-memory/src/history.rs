//! The delivery history in memory: what the consumer's batches recorded (the events
//! that matched a webhook and every attempt), read back as the DynamoDB store reads it:
//! newest first, filtered by [`AttemptFilter`] and [`EventQuery`], endpoint health
//! from hourly counts (`herald_core::health`), and recovery markers. Entries older
//! than the retention are hidden, as the DynamoDB store hides expired items.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use herald_consumer::history::History;
use herald_core::health::{hour_of, HourCounts, LOOKBACK_HOURS};
use herald_core::{AppId, Attempt, AttemptOutcome, Event, EventId, SubscriptionId, WebhookHealth};
use herald_store::{
    recovery_share, AttemptFilter, BatchHistory, DeliveryTrail, EventQuery, HistoryStorage,
    ListedEvent, ListingScope, Page, RecoveryPage, StoreError, StoredEvent, RECOVERY_PAGE,
};

use crate::lock;
use crate::page::page;

struct Kept {
    event: Event,
    sent_to: Vec<SubscriptionId>,
    not_sent: Vec<SubscriptionId>,
}

#[derive(Default)]
struct State {
    events: HashMap<(AppId, EventId), Kept>,
    /// Every attempt, in the order recorded.
    attempts: Vec<Attempt>,
    /// When a recovery last queued (event, webhook).
    markers: HashMap<(AppId, SubscriptionId, EventId), DateTime<Utc>>,
}

/// The delivery history in memory.
pub struct MemoryHistory {
    state: Mutex<State>,
    retention: Duration,
}

/// A sort key that orders newest first (ascending), unique by `seq`.
fn newest_first(at: DateTime<Utc>, seq: usize) -> String {
    let at = u64::try_from(at.timestamp_micros()).unwrap_or(0);
    format!("{:020}{:020}", u64::MAX - at, usize::MAX - seq)
}

impl MemoryHistory {
    /// An empty history hiding what is older than `retention`.
    pub fn new(retention: Duration) -> Self {
        Self {
            state: Mutex::default(),
            retention,
        }
    }

    fn oldest(&self) -> DateTime<Utc> {
        Utc::now() - TimeDelta::from_std(self.retention).unwrap_or(TimeDelta::MAX)
    }

    /// The attempts `keep` admits, newest first, keyed for [`page`].
    fn attempts(&self, keep: impl Fn(&Attempt) -> bool) -> Vec<(String, Attempt)> {
        let oldest = self.oldest();
        let mut found: Vec<(String, Attempt)> = lock(&self.state)
            .attempts
            .iter()
            .enumerate()
            .filter(|(_, a)| a.attempted_at > oldest && keep(a))
            .map(|(seq, a)| (newest_first(a.attempted_at, seq), a.clone()))
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found
    }

    fn listed(&self, app: &AppId, id: &EventId) -> Option<ListedEvent> {
        let state = lock(&self.state);
        let kept = state.events.get(&(app.clone(), id.clone()))?;
        (kept.event.timestamp > self.oldest()).then(|| ListedEvent {
            event: kept.event.clone(),
            sent_to: kept.sent_to.clone(),
            not_sent: kept.not_sent.clone(),
        })
    }

    /// What became of the delivery of `failed`'s event to `sub` after `failed`: its
    /// later attempts and when a recovery last queued it.
    fn trail(&self, app: &AppId, sub: &SubscriptionId, failed: &Attempt) -> DeliveryTrail {
        let later = self
            .attempts(|a| {
                &a.app_id == app
                    && &a.subscription_id == sub
                    && a.event_id == failed.event_id
                    && a.attempted_at > failed.attempted_at
            })
            .into_iter()
            .map(|(_, a)| a)
            .collect();
        let marker = lock(&self.state)
            .markers
            .get(&(app.clone(), sub.clone(), failed.event_id.clone()))
            .copied();
        DeliveryTrail { later, marker }
    }

    fn write(&self, batch: &BatchHistory) {
        let mut state = lock(&self.state);
        for event in &batch.events {
            state
                .events
                .entry((event.app_id.clone(), event.id.clone()))
                .or_insert_with(|| Kept {
                    event: event.clone(),
                    sent_to: Vec::new(),
                    not_sent: Vec::new(),
                });
        }
        for a in &batch.attempts {
            let attempt = &a.attempt;
            if a.first_fan_out {
                let key = (attempt.app_id.clone(), attempt.event_id.clone());
                if let Some(kept) = state.events.get_mut(&key) {
                    let list = if attempt.outcome == AttemptOutcome::NotSent {
                        &mut kept.not_sent
                    } else {
                        &mut kept.sent_to
                    };
                    if !list.contains(&attempt.subscription_id) {
                        list.push(attempt.subscription_id.clone());
                    }
                }
            }
            state.attempts.push(attempt.clone());
        }
    }
}

#[async_trait]
impl History for MemoryHistory {
    async fn record(&self, batch: &BatchHistory) -> Result<(), StoreError> {
        self.write(batch);
        Ok(())
    }
}

#[async_trait]
impl HistoryStorage for MemoryHistory {
    async fn record(&self, batch: &BatchHistory) -> Result<(), StoreError> {
        self.write(batch);
        Ok(())
    }

    async fn for_subscription(
        &self,
        app: &AppId,
        subscription: &SubscriptionId,
        filter: &AttemptFilter,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<Attempt>, StoreError> {
        let found = self.attempts(|a| {
            &a.app_id == app && &a.subscription_id == subscription && filter.matches(a)
        });
        let scope = ListingScope::Webhook(app, subscription).of_attempts(filter);
        page(&scope, found, limit, cursor)
    }

    async fn for_app(
        &self,
        app: &AppId,
        filter: &AttemptFilter,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<Attempt>, StoreError> {
        page(
            &ListingScope::App(app).of_attempts(filter),
            self.attempts(|a| &a.app_id == app && filter.matches(a)),
            limit,
            cursor,
        )
    }

    async fn for_event(
        &self,
        app: &AppId,
        event: &EventId,
        filter: &AttemptFilter,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<Attempt>, StoreError> {
        page(
            &ListingScope::Event(app, event).of_attempts(filter),
            self.attempts(|a| &a.app_id == app && &a.event_id == event && filter.matches(a)),
            limit,
            cursor,
        )
    }

    async fn get_event(&self, app: &AppId, id: &EventId) -> Result<Option<Event>, StoreError> {
        Ok(self.listed(app, id).map(|l| l.event))
    }

    async fn stored_event(
        &self,
        app: &AppId,
        id: &EventId,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let Some(listed) = self.listed(app, id) else {
            return Ok(None);
        };
        let attempts = self
            .attempts(|a| &a.app_id == app && &a.event_id == id)
            .into_iter()
            .map(|(_, a)| a)
            .collect();
        Ok(Some(StoredEvent {
            event: listed.event,
            sent_to: listed.sent_to,
            not_sent: listed.not_sent,
            attempts,
        }))
    }

    async fn list_events(
        &self,
        app: &AppId,
        query: &EventQuery,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<ListedEvent>, StoreError> {
        let oldest = self.oldest();
        let mut found: Vec<(String, ListedEvent)> = {
            let state = lock(&self.state);
            state
                .events
                .iter()
                .filter(|((a, _), k)| {
                    a == app && k.event.timestamp > oldest && query.matches(&k.event)
                })
                .map(|(_, k)| {
                    let at = u64::try_from(k.event.timestamp.timestamp_micros()).unwrap_or(0);
                    (
                        format!("{:020}{}", u64::MAX - at, k.event.id),
                        ListedEvent {
                            event: k.event.clone(),
                            sent_to: k.sent_to.clone(),
                            not_sent: k.not_sent.clone(),
                        },
                    )
                })
                .collect()
        };
        found.sort_by(|a, b| a.0.cmp(&b.0));
        page(
            &ListingScope::Events(app).of_events(query),
            found,
            limit,
            cursor,
        )
    }

    async fn health(
        &self,
        app: &AppId,
        subscription: &SubscriptionId,
    ) -> Result<WebhookHealth, StoreError> {
        let now = Utc::now();
        let since = hour_of(now) - TimeDelta::hours(LOOKBACK_HOURS);
        let mut by_hour: BTreeMap<DateTime<Utc>, Vec<Attempt>> = BTreeMap::new();
        for (_, a) in self.attempts(|a| {
            &a.app_id == app && &a.subscription_id == subscription && a.attempted_at >= since
        }) {
            by_hour.entry(hour_of(a.attempted_at)).or_default().push(a);
        }
        let hours: Vec<(DateTime<Utc>, HourCounts)> = by_hour
            .into_iter()
            .rev()
            .map(|(hour, attempts)| (hour, HourCounts::of(&attempts)))
            .collect();
        Ok(WebhookHealth::of(now, hours))
    }

    async fn health_of(
        &self,
        app: &AppId,
        subscriptions: &[SubscriptionId],
    ) -> Result<Vec<WebhookHealth>, StoreError> {
        let mut all = Vec::with_capacity(subscriptions.len());
        for sub in subscriptions {
            all.push(self.health(app, sub).await?);
        }
        Ok(all)
    }

    async fn recovery_page(
        &self,
        app: &AppId,
        sub: &SubscriptionId,
        since: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
        cursor: Option<&str>,
    ) -> Result<RecoveryPage, StoreError> {
        let window = AttemptFilter::recovery_window(since, until);
        let page = self
            .for_subscription(app, sub, &window, RECOVERY_PAGE, cursor)
            .await?;
        recovery_share(page, &window, |failed| async move {
            Ok(self.trail(app, sub, &failed))
        })
        .await
    }

    async fn claim_recovery(
        &self,
        app: &AppId,
        sub: &SubscriptionId,
        event: &EventId,
        newest_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut state = lock(&self.state);
        let key = (app.clone(), sub.clone(), event.clone());
        if state.markers.get(&key).is_some_and(|q| *q >= newest_at) {
            return Ok(false);
        }
        let q = Utc::now().max(newest_at + TimeDelta::milliseconds(1));
        state.markers.insert(key, q);
        Ok(true)
    }

    async fn release_recovery(
        &self,
        app: &AppId,
        sub: &SubscriptionId,
        event: &EventId,
    ) -> Result<(), StoreError> {
        lock(&self.state)
            .markers
            .remove(&(app.clone(), sub.clone(), event.clone()));
        Ok(())
    }
}

#[cfg(test)]
mod tests;
