//! The consumer's view of webhooks (their routes) and the endpoint-health writes.

use std::collections::HashSet;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_core::{AppId, EventType, RateLimit, Route, SubscriptionId};
use herald_delivery::PreparedRoute;
use herald_store::{StoreError, SubscriptionStore};
use moka::future::Cache;

/// The routes of one (app, event type), each prepared for delivery
/// ([`PreparedRoute`]: URL parsed, headers built, secrets keyed) once per load and
/// shared by every delivery until the routes are loaded again.
pub type Routes = Arc<Vec<Arc<PreparedRoute>>>;

/// Prepares the routes the store gave.
pub fn prepare(routes: Vec<Route>) -> Routes {
    Arc::new(
        routes
            .into_iter()
            .map(|r| Arc::new(PreparedRoute::new(r)))
            .collect(),
    )
}

/// How long cached routes are used at most, however often their app's routing version
/// confirmed them: a bound on what a missed or reordered version read can cost.
pub const MAX_ROUTE_AGE: Duration = Duration::from_secs(60);

/// Webhooks as the consumer needs them, and the endpoint-health writes.
#[async_trait]
pub trait SubscriptionSource: Send + Sync {
    /// The routes of the app's webhooks that take `event_type` (by listing it or by
    /// taking every type), active or not, whatever their object-type filter; possibly
    /// a few seconds old; prepared for delivery.
    async fn routes(&self, app: &AppId, event_type: &EventType) -> Result<Routes, StoreError>;
    /// One webhook's route, read fresh (used when the cached routes lack it) and
    /// prepared for delivery.
    async fn get(
        &self,
        app: &AppId,
        id: &SubscriptionId,
    ) -> Result<Option<Arc<PreparedRoute>>, StoreError>;
    /// Counts a delivery that failed for good; returns true if that disabled the endpoint.
    async fn record_failed_delivery(
        &self,
        app: &AppId,
        id: &SubscriptionId,
    ) -> Result<bool, StoreError>;
    /// A delivery to `route` succeeded: resets the endpoint's failure count if it may
    /// be above zero (and writes nothing otherwise). True when it reset one: deliveries
    /// to the endpoint had failed for good, and it has recovered.
    async fn delivered(&self, route: &Route) -> Result<bool, StoreError>;
    /// Disables an endpoint now, with a reason.
    async fn disable(
        &self,
        app: &AppId,
        id: &SubscriptionId,
        reason: &str,
    ) -> Result<(), StoreError>;
    /// Reserves `count` consecutive delivery slots of `route`'s webhook under `limit`
    /// at `now`, from the schedule every consumer instance shares
    /// (`herald_core::rate`); returns the first slot.
    async fn reserve_slots(
        &self,
        route: &Route,
        limit: RateLimit,
        count: u32,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, StoreError>;
    /// The route of an event's callback delivery to `url`, signed with the app's
    /// callback secrets (`herald_core::callback`), read fresh; `None` when the app has
    /// none.
    async fn callback_route(
        &self,
        app: &AppId,
        url: &str,
    ) -> Result<Option<Arc<PreparedRoute>>, StoreError> {
        let _ = (app, url);
        Ok(None)
    }
}

/// The routes of one (app, event type), as loaded at one routing version of the app.
type RouteKey = (AppId, EventType, u64);

/// The DynamoDB store behind a cache of routes per (app, event type), prepared for
/// delivery when they are loaded.
///
/// **Routing.** A lookup first needs the app's routing version: kept for the TTL,
/// then read again with one eventually consistent `GetItem` (0.5 read units), shared
/// by every event type of the app and by concurrent lookups. Routes are cached under
/// (app, type, version): when the version read confirms the one they were loaded at,
/// they are used as they are; a new version (some routing change of the app) loads
/// them again (two strongly consistent `Query`s of the type's and the all-types
/// route partitions, read after the version, so routes are never older than the
/// version they are filed under). Whatever the version says, routes are loaded again
/// after [`MAX_ROUTE_AGE`]. A TTL of zero disables the cache. This instance's own
/// routing changes (disabling an endpoint) drop the app's cached routes at once.
///
/// **Refresh ahead.** A version past half its TTL, or routes past half of
/// [`MAX_ROUTE_AGE`], are still used, and read again in the background (one read per
/// entry at a time), so that a busy app's lookups do not wait on the store: only a
/// lookup after a quiet spell longer than the TTL, or after a routing change, does.
/// What a lookup uses is never older than before: an entry is used only within its
/// TTL of being read.
///
/// **Health.** Failure counts are health writes: they move no routing version, so
/// they never make a consumer reload. A success must still reset an endpoint's count,
/// without a write per success. Two sources tell whether a count may be above zero:
/// - the route's `failing` flag, which the store sets when the count goes from 0 to 1
///   and clears when it goes back to 0 (no version bump: an instance sees the flag at
///   its next load, within [`MAX_ROUTE_AGE`]);
/// - this instance's own knowledge, kept for [`MAX_ROUTE_AGE`]: an endpoint it
///   counted a failure for is failing, one it reset is not, whatever its cached
///   routes say. So each instance resets at most once per transition, and the
///   instance that parked a delivery resets at its endpoint's next success.
///
/// The cost of that bound: a success on another instance within a minute of an
/// endpoint's first counted failure may leave the count standing (the next failure
/// then counts 2 instead of 1). Counts move only when a delivery is parked, after its
/// whole retry schedule, so that window is small beside the time between them.
pub struct CachedSubscriptions {
    store: SubscriptionStore,
    cache: Option<RouteCache>,
    disable_after: u32,
    /// Whether this instance last saw each endpoint's count above zero.
    failing: Cache<SubscriptionId, bool>,
}

struct RouteCache {
    /// How long a version read is trusted.
    ttl: Duration,
    /// The app's routing version, as last read.
    versions: Cache<AppId, Stamped<u64>>,
    /// Routes by (app, type, the version they were loaded at).
    routes: Cache<RouteKey, Stamped<Routes>>,
    /// Entries being read again in the background.
    refreshing: Arc<Mutex<HashSet<Refresh>>>,
    stats: Arc<CacheStats>,
}

/// A cached value and when it was read.
#[derive(Clone)]
struct Stamped<T> {
    value: T,
    read_at: Instant,
}

impl<T> Stamped<T> {
    fn now(value: T) -> Self {
        Self {
            value,
            read_at: Instant::now(),
        }
    }

    /// Whether it is past half of `ttl`, and due to be read again ahead of expiry.
    fn due(&self, ttl: Duration) -> bool {
        self.read_at.elapsed() >= ttl / 2
    }
}

/// An entry being read again in the background.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Refresh {
    Version(AppId),
    Routes(RouteKey),
}

/// How the route cache's store reads went: those a lookup waited for, and those made
/// ahead of expiry in the background.
#[derive(Debug, Default)]
pub struct CacheStats {
    waited: AtomicU64,
    ahead: AtomicU64,
}

impl CacheStats {
    /// Store reads (routing versions and routes) a lookup waited for.
    pub fn waited(&self) -> u64 {
        self.waited.load(Ordering::Relaxed)
    }

    /// Store reads made ahead of expiry, in the background.
    pub fn ahead(&self) -> u64 {
        self.ahead.load(Ordering::Relaxed)
    }
}

impl RouteCache {
    /// Reads entry `key` of `cache` again in the background with `read` and files it
    /// there, unless that read (`what`) is already under way. A failed read is
    /// dropped: the entry expires, and the lookup after that reads it and meets the
    /// failure itself.
    fn refresh<K, V>(
        &self,
        what: Refresh,
        cache: &Cache<K, Stamped<V>>,
        key: K,
        read: impl Future<Output = Result<V, StoreError>> + Send + 'static,
    ) where
        K: Hash + Eq + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
    {
        if !self
            .refreshing
            .lock()
            .expect("not poisoned")
            .insert(what.clone())
        {
            return;
        }
        let (refreshing, stats) = (Arc::clone(&self.refreshing), Arc::clone(&self.stats));
        let cache = cache.clone();
        tokio::spawn(async move {
            match read.await {
                Ok(value) => {
                    stats.ahead.fetch_add(1, Ordering::Relaxed);
                    cache.insert(key, Stamped::now(value)).await;
                }
                Err(e) => tracing::debug!(error = %e, "a read ahead of expiry failed"),
            }
            refreshing.lock().expect("not poisoned").remove(&what);
        });
    }
}

impl CachedSubscriptions {
    /// `ttl`: how long a routing version read is trusted (zero: no cache);
    /// `disable_after`: failed deliveries in a row that disable an endpoint (0: never).
    pub fn new(store: SubscriptionStore, ttl: Duration, disable_after: u32) -> Self {
        let cache = (!ttl.is_zero()).then(|| RouteCache {
            ttl,
            refreshing: Arc::default(),
            stats: Arc::default(),
            versions: Cache::builder()
                .time_to_live(ttl)
                .max_capacity(10_000)
                .build(),
            routes: Cache::builder()
                .time_to_live(ttl.max(MAX_ROUTE_AGE))
                .max_capacity(10_000)
                .support_invalidation_closures()
                .build(),
        });
        Self {
            store,
            cache,
            disable_after,
            failing: Cache::builder()
                .time_to_live(MAX_ROUTE_AGE)
                .max_capacity(100_000)
                .build(),
        }
    }

    /// How the route cache's store reads went (none without a cache).
    pub fn stats(&self) -> Option<&CacheStats> {
        self.cache.as_ref().map(|c| &*c.stats)
    }

    /// Drops the app's cached version and routes after this instance changed its
    /// routing.
    async fn forget(&self, app: &AppId) {
        if let Some(cache) = &self.cache {
            cache.versions.invalidate(app).await;
            let app = app.clone();
            // Only fails when closures are not supported, and they are.
            let _ = cache
                .routes
                .invalidate_entries_if(move |(a, _, _), _| *a == app);
        }
    }
}

#[async_trait]
impl SubscriptionSource for CachedSubscriptions {
    async fn routes(&self, app: &AppId, event_type: &EventType) -> Result<Routes, StoreError> {
        let Some(cache) = &self.cache else {
            return self.store.routes(app, event_type).await.map(prepare);
        };
        // moka shares one failed lookup among its waiters.
        let version = cache
            .versions
            .try_get_with(app.clone(), async {
                cache.stats.waited.fetch_add(1, Ordering::Relaxed);
                self.store.routing_version(app).await.map(Stamped::now)
            })
            .await
            .map_err(|e| (*e).clone())?;
        if version.due(cache.ttl) {
            let (store, read_app) = (self.store.clone(), app.clone());
            cache.refresh(
                Refresh::Version(app.clone()),
                &cache.versions,
                app.clone(),
                async move { store.routing_version(&read_app).await },
            );
        }
        let key = (app.clone(), event_type.clone(), version.value);
        let routes = cache
            .routes
            .try_get_with(key.clone(), async {
                cache.stats.waited.fetch_add(1, Ordering::Relaxed);
                let routes = self.store.routes(app, event_type).await?;
                Ok::<_, StoreError>(Stamped::now(prepare(routes)))
            })
            .await
            .map_err(|e| (*e).clone())?;
        if routes.due(MAX_ROUTE_AGE.max(cache.ttl)) {
            let (store, app, event_type) = (self.store.clone(), app.clone(), event_type.clone());
            cache.refresh(
                Refresh::Routes(key.clone()),
                &cache.routes,
                key,
                async move { store.routes(&app, &event_type).await.map(prepare) },
            );
        }
        Ok(routes.value)
    }

    async fn get(
        &self,
        app: &AppId,
        id: &SubscriptionId,
    ) -> Result<Option<Arc<PreparedRoute>>, StoreError> {
        let subscription = self.store.get(app, id).await?;
        Ok(subscription.map(|s| Arc::new(PreparedRoute::new(s.route()))))
    }

    async fn callback_route(
        &self,
        app: &AppId,
        url: &str,
    ) -> Result<Option<Arc<PreparedRoute>>, StoreError> {
        let secrets = self.store.callback_secrets(app).await?;
        Ok(secrets.map(|s| Arc::new(PreparedRoute::new(s.route(url)))))
    }

    async fn record_failed_delivery(
        &self,
        app: &AppId,
        id: &SubscriptionId,
    ) -> Result<bool, StoreError> {
        let (_, disabled) = self
            .store
            .record_failed_delivery(app, id, self.disable_after)
            .await?;
        self.failing.insert(id.clone(), true).await;
        if disabled {
            self.forget(app).await;
        }
        Ok(disabled)
    }

    async fn delivered(&self, route: &Route) -> Result<bool, StoreError> {
        let failing = self.failing.get(&route.id).await.unwrap_or(route.failing);
        if failing {
            self.store.reset_failures(&route.app_id, &route.id).await?;
            self.failing.insert(route.id.clone(), false).await;
        }
        Ok(failing)
    }

    async fn disable(
        &self,
        app: &AppId,
        id: &SubscriptionId,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.store.disable(app, id, reason).await?;
        self.forget(app).await;
        Ok(())
    }

    async fn reserve_slots(
        &self,
        route: &Route,
        limit: RateLimit,
        count: u32,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, StoreError> {
        self.store
            .reserve_slots(&route.app_id, &route.id, limit, count, now)
            .await
    }
}
