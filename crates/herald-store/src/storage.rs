//! The storage seam the API uses: one trait per store, implemented by the DynamoDB
//! stores of this crate (each method is the inherent one of the same name) and by the
//! in-memory stores of `herald-memory` (`herald dev --in-memory`). The consumer has its
//! own, narrower traits (`herald_consumer::{SubscriptionSource, History}`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_core::callback::CallbackSecrets;
use herald_core::{
    AppId, Attempt, Event, EventId, EventType, Route, Secret, Subscription, SubscriptionId,
    WebhookHealth,
};

use crate::{
    ApiKey, App, AppStore, AttemptFilter, BatchHistory, Claim, EventQuery, EventTypeChanges,
    EventTypeEntry, HistoryStore, IdempotencyStore, ListedEvent, NewKey, Page, PlannedEvent,
    RecoveryPage, StoreError, StoredEvent, SubscriptionChanges, SubscriptionStore,
};

/// Apps (tenants) and their API keys; see [`AppStore`] for each method's contract.
#[async_trait]
pub trait AppStorage: Send + Sync {
    /// Creates an app; `AlreadyExists` if the id is or was ever taken.
    async fn create_app(&self, id: &AppId, name: &str) -> Result<App, StoreError>;
    /// A live app (not a deleted one).
    async fn get_app(&self, id: &AppId) -> Result<Option<App>, StoreError>;
    /// A page of live apps, by id.
    async fn list_apps(&self, limit: i32, cursor: Option<&str>) -> Result<Page<App>, StoreError>;
    /// Deletes an app and its keys, leaving a tombstone (its id is never reused).
    async fn delete_app(&self, id: &AppId) -> Result<(), StoreError>;
    /// Creates a key of a live app; the secret is returned once.
    async fn create_key(&self, app: &AppId) -> Result<NewKey, StoreError>;
    /// A page of an app's keys (metadata only).
    async fn list_keys(
        &self,
        app: &AppId,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<ApiKey>, StoreError>;
    /// Revokes a key; `false` if the app has no such key.
    async fn delete_key(&self, app: &AppId, key_id: &str) -> Result<bool, StoreError>;
    /// The key a presented secret belongs to, while its app is live.
    async fn authenticate(&self, secret: &str) -> Result<Option<ApiKey>, StoreError>;
    /// Whether the app is live and still has the key.
    async fn key_is_live(&self, app: &AppId, key_id: &str) -> Result<bool, StoreError>;
}

/// `Idempotency-Key` records; see [`IdempotencyStore`].
#[async_trait]
pub trait IdempotencyStorage: Send + Sync {
    /// Claims `key` for a request hashing to `request_hash` that plans `planned`.
    async fn claim(
        &self,
        app: &AppId,
        key: &str,
        request_hash: &str,
        planned: &[PlannedEvent],
    ) -> Result<Claim, StoreError>;
    /// Records the planned events on the queue and ends the try's lease.
    async fn progress(&self, app: &AppId, key: &str, queued: &[EventId]) -> Result<(), StoreError>;
    /// Stores the response of a claimed key.
    async fn complete(
        &self,
        app: &AppId,
        key: &str,
        response: &serde_json::Value,
    ) -> Result<(), StoreError>;
    /// Forgets a claimed key so the request can be retried.
    async fn release(&self, app: &AppId, key: &str) -> Result<(), StoreError>;
}

/// Webhooks (subscriptions) as the API manages them; see [`SubscriptionStore`].
#[async_trait]
pub trait SubscriptionStorage: Send + Sync {
    /// One webhook of an app.
    async fn get(
        &self,
        app: &AppId,
        id: &SubscriptionId,
    ) -> Result<Option<Subscription>, StoreError>;
    /// A page of an app's webhooks, by id.
    async fn list(
        &self,
        app: &AppId,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<Subscription>, StoreError>;
    /// Every webhook of an app.
    async fn for_app(&self, app: &AppId) -> Result<Vec<Subscription>, StoreError>;
    /// How many webhooks an app has.
    async fn count(&self, app: &AppId) -> Result<usize, StoreError>;
    /// The routes of the app's webhooks an event would go to (active or not, whatever
    /// their object-type filter).
    async fn matching(&self, event: &Event) -> Result<Vec<Route>, StoreError>;
    /// Creates a webhook; `AlreadyExists` if its id is taken.
    async fn create(&self, sub: &Subscription) -> Result<(), StoreError>;
    /// Applies changes to a webhook; returns it as stored.
    async fn apply(
        &self,
        app: &AppId,
        id: &SubscriptionId,
        changes: &SubscriptionChanges,
    ) -> Result<Subscription, StoreError>;
    /// Rotates a webhook's signing secret; the old one keeps signing for `window`.
    async fn rotate_secret(
        &self,
        app: &AppId,
        id: &SubscriptionId,
        now: DateTime<Utc>,
        window: chrono::Duration,
    ) -> Result<(Secret, Subscription), StoreError>;
    /// Deletes a webhook; `NotFound` if there is none.
    async fn delete(&self, app: &AppId, id: &SubscriptionId) -> Result<(), StoreError>;
    /// Disables a webhook with a reason.
    async fn disable(
        &self,
        app: &AppId,
        id: &SubscriptionId,
        reason: &str,
    ) -> Result<(), StoreError>;
    /// Enables a webhook (clearing its failure count and disabled reason).
    async fn enable(&self, app: &AppId, id: &SubscriptionId) -> Result<(), StoreError>;

    // The event-type catalog and the callback secret. Memory mode keeps neither: it
    // reads as an app without a catalog or a callback secret, and refuses writes
    // (`Unsupported`), which these defaults do.

    /// Adds a type to its app's catalog (at most `max`).
    async fn create_event_type(&self, entry: &EventTypeEntry, max: u64) -> Result<(), StoreError> {
        let _ = (entry, max);
        Err(StoreError::Unsupported {
            what: "the event-type catalog",
        })
    }
    /// One type of an app's catalog (`consistent`: a strongly consistent read).
    async fn get_event_type(
        &self,
        app: &AppId,
        name: &EventType,
        consistent: bool,
    ) -> Result<Option<EventTypeEntry>, StoreError> {
        let _ = (app, name, consistent);
        Ok(None)
    }
    /// A page of an app's catalog, by name.
    async fn list_event_types(
        &self,
        app: &AppId,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<EventTypeEntry>, StoreError> {
        let _ = (app, limit, cursor);
        Ok(Page {
            items: Vec::new(),
            next_cursor: None,
        })
    }
    /// Changes a type of an app's catalog.
    async fn update_event_type(
        &self,
        app: &AppId,
        name: &EventType,
        changes: &EventTypeChanges,
    ) -> Result<EventTypeEntry, StoreError> {
        let _ = (app, name, changes);
        Err(StoreError::Unsupported {
            what: "the event-type catalog",
        })
    }
    /// Removes a type from an app's catalog.
    async fn delete_event_type(&self, app: &AppId, name: &EventType) -> Result<(), StoreError> {
        let _ = (app, name);
        Err(StoreError::Unsupported {
            what: "the event-type catalog",
        })
    }
    /// Removes an app's whole catalog.
    async fn delete_event_types(&self, app: &AppId) -> Result<(), StoreError> {
        let _ = app;
        Ok(())
    }
    /// Whether the app has a catalog, and which of `types` it lacks.
    async fn missing_event_types(
        &self,
        app: &AppId,
        types: &[&EventType],
    ) -> Result<(bool, Vec<EventType>), StoreError> {
        let _ = (app, types);
        Ok((false, Vec::new()))
    }
    /// The app's callback secrets, if it has made one.
    async fn callback_secrets(&self, app: &AppId) -> Result<Option<CallbackSecrets>, StoreError> {
        let _ = app;
        Ok(None)
    }
    /// Creates or rotates the app's callback secret.
    async fn rotate_callback_secret(
        &self,
        app: &AppId,
        now: DateTime<Utc>,
        window: chrono::Duration,
    ) -> Result<(Secret, CallbackSecrets), StoreError> {
        let _ = (app, now, window);
        Err(StoreError::Unsupported {
            what: "callback secrets",
        })
    }
}

/// The delivery history as the API reads it; see [`HistoryStore`].
#[async_trait]
pub trait HistoryStorage: Send + Sync {
    /// Records what one batch did (the API's test pings).
    async fn record(&self, batch: &BatchHistory) -> Result<(), StoreError>;
    /// A page of one webhook's attempts, newest first.
    async fn for_subscription(
        &self,
        app: &AppId,
        subscription: &SubscriptionId,
        filter: &AttemptFilter,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<Attempt>, StoreError>;
    /// A page of an app's attempts, newest first.
    async fn for_app(
        &self,
        app: &AppId,
        filter: &AttemptFilter,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<Attempt>, StoreError>;
    /// A page of one event's attempts, newest first.
    async fn for_event(
        &self,
        app: &AppId,
        event: &EventId,
        filter: &AttemptFilter,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<Attempt>, StoreError>;
    /// An event the history kept.
    async fn get_event(&self, app: &AppId, id: &EventId) -> Result<Option<Event>, StoreError>;
    /// An event with the webhooks it went to.
    async fn stored_event(
        &self,
        app: &AppId,
        id: &EventId,
    ) -> Result<Option<StoredEvent>, StoreError>;
    /// A page of an app's events, newest first.
    async fn list_events(
        &self,
        app: &AppId,
        query: &EventQuery,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<ListedEvent>, StoreError>;
    /// One webhook's endpoint health.
    async fn health(
        &self,
        app: &AppId,
        subscription: &SubscriptionId,
    ) -> Result<WebhookHealth, StoreError>;
    /// Several webhooks' endpoint health, in order.
    async fn health_of(
        &self,
        app: &AppId,
        subscriptions: &[SubscriptionId],
    ) -> Result<Vec<WebhookHealth>, StoreError>;
    /// One page of a webhook's events that may need recovering.
    async fn recovery_page(
        &self,
        app: &AppId,
        sub: &SubscriptionId,
        since: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
        cursor: Option<&str>,
    ) -> Result<RecoveryPage, StoreError>;
    /// Claims the recovery of one event to one webhook; `false` if already claimed.
    async fn claim_recovery(
        &self,
        app: &AppId,
        sub: &SubscriptionId,
        event: &EventId,
        newest_at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Releases a recovery claim whose re-send failed.
    async fn release_recovery(
        &self,
        app: &AppId,
        sub: &SubscriptionId,
        event: &EventId,
    ) -> Result<(), StoreError>;
}

/// Implements a storage trait for a DynamoDB store by calling its inherent methods.
macro_rules! delegate {
    ($trait:ident for $store:ty { $(fn $name:ident($($arg:ident: $ty:ty),*) -> $out:ty;)* }) => {
        #[async_trait]
        impl $trait for $store {
            $(async fn $name(&self, $($arg: $ty),*) -> Result<$out, StoreError> {
                <$store>::$name(self, $($arg),*).await
            })*
        }
    };
}

delegate!(AppStorage for AppStore {
    fn create_app(id: &AppId, name: &str) -> App;
    fn get_app(id: &AppId) -> Option<App>;
    fn list_apps(limit: i32, cursor: Option<&str>) -> Page<App>;
    fn delete_app(id: &AppId) -> ();
    fn create_key(app: &AppId) -> NewKey;
    fn list_keys(app: &AppId, limit: i32, cursor: Option<&str>) -> Page<ApiKey>;
    fn delete_key(app: &AppId, key_id: &str) -> bool;
    fn authenticate(secret: &str) -> Option<ApiKey>;
    fn key_is_live(app: &AppId, key_id: &str) -> bool;
});

delegate!(IdempotencyStorage for IdempotencyStore {
    fn claim(app: &AppId, key: &str, request_hash: &str, planned: &[PlannedEvent]) -> Claim;
    fn progress(app: &AppId, key: &str, queued: &[EventId]) -> ();
    fn complete(app: &AppId, key: &str, response: &serde_json::Value) -> ();
    fn release(app: &AppId, key: &str) -> ();
});

delegate!(SubscriptionStorage for SubscriptionStore {
    fn get(app: &AppId, id: &SubscriptionId) -> Option<Subscription>;
    fn list(app: &AppId, limit: i32, cursor: Option<&str>) -> Page<Subscription>;
    fn for_app(app: &AppId) -> Vec<Subscription>;
    fn count(app: &AppId) -> usize;
    fn matching(event: &Event) -> Vec<Route>;
    fn create(sub: &Subscription) -> ();
    fn apply(app: &AppId, id: &SubscriptionId, changes: &SubscriptionChanges) -> Subscription;
    fn rotate_secret(
        app: &AppId,
        id: &SubscriptionId,
        now: DateTime<Utc>,
        window: chrono::Duration
    ) -> (Secret, Subscription);
    fn delete(app: &AppId, id: &SubscriptionId) -> ();
    fn disable(app: &AppId, id: &SubscriptionId, reason: &str) -> ();
    fn enable(app: &AppId, id: &SubscriptionId) -> ();
    fn create_event_type(entry: &EventTypeEntry, max: u64) -> ();
    fn get_event_type(app: &AppId, name: &EventType, consistent: bool) -> Option<EventTypeEntry>;
    fn list_event_types(app: &AppId, limit: i32, cursor: Option<&str>) -> Page<EventTypeEntry>;
    fn update_event_type(
        app: &AppId,
        name: &EventType,
        changes: &EventTypeChanges
    ) -> EventTypeEntry;
    fn delete_event_type(app: &AppId, name: &EventType) -> ();
    fn delete_event_types(app: &AppId) -> ();
    fn missing_event_types(app: &AppId, types: &[&EventType]) -> (bool, Vec<EventType>);
    fn callback_secrets(app: &AppId) -> Option<CallbackSecrets>;
    fn rotate_callback_secret(
        app: &AppId,
        now: DateTime<Utc>,
        window: chrono::Duration
    ) -> (Secret, CallbackSecrets);
});

delegate!(HistoryStorage for HistoryStore {
    fn record(batch: &BatchHistory) -> ();
    fn for_subscription(
        app: &AppId,
        subscription: &SubscriptionId,
        filter: &AttemptFilter,
        limit: i32,
        cursor: Option<&str>
    ) -> Page<Attempt>;
    fn for_app(app: &AppId, filter: &AttemptFilter, limit: i32, cursor: Option<&str>) -> Page<Attempt>;
    fn for_event(
        app: &AppId,
        event: &EventId,
        filter: &AttemptFilter,
        limit: i32,
        cursor: Option<&str>
    ) -> Page<Attempt>;
    fn get_event(app: &AppId, id: &EventId) -> Option<Event>;
    fn stored_event(app: &AppId, id: &EventId) -> Option<StoredEvent>;
    fn list_events(app: &AppId, query: &EventQuery, limit: i32, cursor: Option<&str>) -> Page<ListedEvent>;
    fn health(app: &AppId, subscription: &SubscriptionId) -> WebhookHealth;
    fn health_of(app: &AppId, subscriptions: &[SubscriptionId]) -> Vec<WebhookHealth>;
    fn recovery_page(
        app: &AppId,
        sub: &SubscriptionId,
        since: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
        cursor: Option<&str>
    ) -> RecoveryPage;
    fn claim_recovery(app: &AppId, sub: &SubscriptionId, event: &EventId, newest_at: DateTime<Utc>) -> bool;
    fn release_recovery(app: &AppId, sub: &SubscriptionId, event: &EventId) -> ();
});
