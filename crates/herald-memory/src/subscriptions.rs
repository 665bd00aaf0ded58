//! Webhooks (subscriptions) in memory: what the API manages
//! ([`SubscriptionStorage`]) and what the consumer reads and writes
//! ([`SubscriptionSource`]: routes, endpoint health, rate schedules), one map shared
//! by both, so a change is seen by the next batch. Secrets stay in process memory
//! (nothing is written anywhere, so there is nothing to seal).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_consumer::subscriptions::{prepare, Routes, SubscriptionSource};
use herald_core::endpoint::{disable_reason, routed_under};
use herald_core::rate::reserve;
use herald_core::{
    AppId, Event, EventType, RateLimit, Route, Secret, Subscription, SubscriptionId,
};
use herald_delivery::PreparedRoute;
use herald_store::{ItemKind, Page, StoreError, SubscriptionChanges, SubscriptionStorage};

use crate::lock;
use crate::page::page;

#[derive(Default)]
struct State {
    subs: BTreeMap<(AppId, SubscriptionId), Subscription>,
    /// Rate-limited webhooks' schedules: when the next delivery may start.
    schedules: HashMap<(AppId, SubscriptionId), DateTime<Utc>>,
}

/// Webhooks in memory.
#[derive(Default)]
pub struct MemorySubscriptions {
    state: Mutex<State>,
}

/// The consumer's view of [`MemorySubscriptions`], with its own setting of how many
/// failed-for-good deliveries in a row disable an endpoint (as the DynamoDB path's
/// `CachedSubscriptions` takes it from the consumer's configuration).
pub struct MemorySource {
    store: Arc<MemorySubscriptions>,
    /// `HERALD_DISABLE_AFTER_FAILED_DELIVERIES` (0: never).
    disable_after: u32,
}

impl MemorySource {
    /// The consumer's view of `store`.
    pub fn new(store: Arc<MemorySubscriptions>, disable_after: u32) -> Self {
        Self {
            store,
            disable_after,
        }
    }
}

impl MemorySubscriptions {
    /// Changes a stored webhook with `f` (which also stamps it); `NotFound` if gone.
    fn change<T>(
        &self,
        app: &AppId,
        id: &SubscriptionId,
        f: impl FnOnce(&mut Subscription) -> T,
    ) -> Result<(T, Subscription), StoreError> {
        let mut state = lock(&self.state);
        let sub = state
            .subs
            .get_mut(&(app.clone(), id.clone()))
            .ok_or_else(|| StoreError::not_found(ItemKind::Subscription, id))?;
        let out = f(sub);
        sub.version += 1;
        Ok((out, sub.clone()))
    }

    fn of_app(&self, app: &AppId) -> Vec<Subscription> {
        lock(&self.state)
            .subs
            .range((app.clone(), SubscriptionId::new(""))..)
            .take_while(|((a, _), _)| a == app)
            .map(|(_, s)| s.clone())
            .collect()
    }

    fn routes_of(&self, app: &AppId, event_type: &EventType) -> Vec<Route> {
        self.of_app(app)
            .into_iter()
            .filter(|s| routed_under(&s.events, event_type))
            .map(|s| s.route())
            .collect()
    }
}

#[async_trait]
impl SubscriptionStorage for MemorySubscriptions {
    async fn get(
        &self,
        app: &AppId,
        id: &SubscriptionId,
    ) -> Result<Option<Subscription>, StoreError> {
        Ok(lock(&self.state)
            .subs
            .get(&(app.clone(), id.clone()))
            .cloned())
    }

    async fn list(
        &self,
        app: &AppId,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<Subscription>, StoreError> {
        page(
            &format!("webhooks|{app}"),
            self.of_app(app)
                .into_iter()
                .map(|s| (s.id.as_str().to_owned(), s)),
            limit,
            cursor,
        )
    }

    async fn for_app(&self, app: &AppId) -> Result<Vec<Subscription>, StoreError> {
        Ok(self.of_app(app))
    }

    async fn count(&self, app: &AppId) -> Result<usize, StoreError> {
        Ok(self.of_app(app).len())
    }

    async fn matching(&self, event: &Event) -> Result<Vec<Route>, StoreError> {
        let mut routes = self.routes_of(&event.app_id, &event.event_type);
        routes.retain(|r| r.matches(event));
        Ok(routes)
    }

    async fn create(&self, sub: &Subscription) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        let key = (sub.app_id.clone(), sub.id.clone());
        if state.subs.contains_key(&key) {
            return Err(StoreError::already_exists(ItemKind::Subscription, &sub.id));
        }
        state.subs.insert(key, sub.clone());
        Ok(())
    }

    async fn apply(
        &self,
        app: &AppId,
        id: &SubscriptionId,
        changes: &SubscriptionChanges,
    ) -> Result<Subscription, StoreError> {
        Ok(self.change(app, id, |sub| changes.apply_to(sub))?.1)
    }

    async fn rotate_secret(
        &self,
        app: &AppId,
        id: &SubscriptionId,
        now: DateTime<Utc>,
        window: chrono::Duration,
    ) -> Result<(Secret, Subscription), StoreError> {
        self.change(app, id, |sub| sub.rotate_secret(now, window))
    }

    async fn delete(&self, app: &AppId, id: &SubscriptionId) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        let key = (app.clone(), id.clone());
        state.schedules.remove(&key);
        state
            .subs
            .remove(&key)
            .map(|_| ())
            .ok_or_else(|| StoreError::not_found(ItemKind::Subscription, id))
    }

    async fn disable(
        &self,
        app: &AppId,
        id: &SubscriptionId,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.change(app, id, |sub| sub.disable(reason))?;
        Ok(())
    }

    async fn enable(&self, app: &AppId, id: &SubscriptionId) -> Result<(), StoreError> {
        let changes = SubscriptionChanges {
            active: Some(true),
            ..SubscriptionChanges::default()
        };
        self.apply(app, id, &changes).await.map(|_| ())
    }
}

#[async_trait]
impl SubscriptionSource for MemorySource {
    async fn routes(&self, app: &AppId, event_type: &EventType) -> Result<Routes, StoreError> {
        Ok(prepare(self.store.routes_of(app, event_type)))
    }

    async fn get(
        &self,
        app: &AppId,
        id: &SubscriptionId,
    ) -> Result<Option<Arc<PreparedRoute>>, StoreError> {
        let sub = SubscriptionStorage::get(self.store.as_ref(), app, id).await?;
        Ok(sub.map(|s| Arc::new(PreparedRoute::new(s.route()))))
    }

    async fn record_failed_delivery(
        &self,
        app: &AppId,
        id: &SubscriptionId,
    ) -> Result<bool, StoreError> {
        let (count, _) = self
            .store
            .change(app, id, Subscription::count_failed_delivery)?;
        let Some(reason) = disable_reason(count, self.disable_after) else {
            return Ok(false);
        };
        SubscriptionStorage::disable(self.store.as_ref(), app, id, &reason).await?;
        Ok(true)
    }

    async fn delivered(&self, route: &Route) -> Result<bool, StoreError> {
        let mut state = lock(&self.store.state);
        let key = (route.app_id.clone(), route.id.clone());
        Ok(state.subs.get_mut(&key).is_some_and(|sub| {
            let reset = sub.reset_failures();
            if reset {
                sub.version += 1;
            }
            reset
        }))
    }

    async fn disable(
        &self,
        app: &AppId,
        id: &SubscriptionId,
        reason: &str,
    ) -> Result<(), StoreError> {
        SubscriptionStorage::disable(self.store.as_ref(), app, id, reason).await
    }

    /// The schedule arithmetic of the DynamoDB store's (`herald_core::rate::reserve`),
    /// under one lock.
    async fn reserve_slots(
        &self,
        route: &Route,
        limit: RateLimit,
        count: u32,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, StoreError> {
        let mut state = lock(&self.store.state);
        let key = (route.app_id.clone(), route.id.clone());
        let (first, end) = reserve(state.schedules.get(&key).copied(), now, limit.span(count));
        state.schedules.insert(key, end);
        Ok(first)
    }
}

#[cfg(test)]
mod tests;
