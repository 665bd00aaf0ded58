//! The consumer's view of subscriptions and endpoint health.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use herald_core::{AppId, Subscription, SubscriptionId};
use herald_store::{StoreError, SubscriptionStore};

/// Subscriptions as the consumer needs them, and the endpoint-health writes.
#[async_trait]
pub trait SubscriptionSource: Send + Sync {
    /// Every subscription of an app, active or not (possibly a few seconds old).
    async fn for_app(&self, app: &AppId) -> Result<Arc<Vec<Subscription>>, StoreError>;
    /// One subscription, read fresh (used when the cached list lacks it).
    async fn get(
        &self,
        app: &AppId,
        id: &SubscriptionId,
    ) -> Result<Option<Subscription>, StoreError>;
    /// Counts a delivery that failed for good; returns true if that disabled the endpoint.
    async fn record_failed_delivery(
        &self,
        app: &AppId,
        id: &SubscriptionId,
    ) -> Result<bool, StoreError>;
    /// Resets the failure count after a success.
    async fn reset_failures(&self, app: &AppId, id: &SubscriptionId) -> Result<(), StoreError>;
    /// Disables an endpoint now, with a reason.
    async fn disable(
        &self,
        app: &AppId,
        id: &SubscriptionId,
        reason: &str,
    ) -> Result<(), StoreError>;
}

/// The DynamoDB store behind a short-lived per-app cache: one `Query` per app per TTL,
/// shared by concurrent lookups of the same app. A TTL of zero disables the cache.
/// Writes that change an endpoint's state drop the app from the cache.
pub struct CachedSubscriptions {
    store: SubscriptionStore,
    cache: Option<moka::future::Cache<AppId, Arc<Vec<Subscription>>>>,
    disable_after: u32,
}

impl CachedSubscriptions {
    /// `disable_after`: failed deliveries in a row that disable an endpoint (0: never).
    pub fn new(store: SubscriptionStore, ttl: Duration, disable_after: u32) -> Self {
        let cache = (!ttl.is_zero()).then(|| {
            moka::future::Cache::builder()
                .time_to_live(ttl)
                .max_capacity(10_000)
                .build()
        });
        Self {
            store,
            cache,
            disable_after,
        }
    }

    async fn invalidate(&self, app: &AppId) {
        if let Some(cache) = &self.cache {
            cache.invalidate(app).await;
        }
    }
}

#[async_trait]
impl SubscriptionSource for CachedSubscriptions {
    async fn for_app(&self, app: &AppId) -> Result<Arc<Vec<Subscription>>, StoreError> {
        match &self.cache {
            None => self.store.for_app(app).await.map(Arc::new),
            Some(cache) => {
                cache
                    .try_get_with(app.clone(), async {
                        self.store.for_app(app).await.map(Arc::new)
                    })
                    .await
                    // moka shares one failed lookup among its waiters.
                    .map_err(|e| (*e).clone())
            }
        }
    }

    async fn get(
        &self,
        app: &AppId,
        id: &SubscriptionId,
    ) -> Result<Option<Subscription>, StoreError> {
        self.store.get(app, id).await
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
        self.invalidate(app).await;
        Ok(disabled)
    }

    async fn reset_failures(&self, app: &AppId, id: &SubscriptionId) -> Result<(), StoreError> {
        self.store.reset_failures(app, id).await?;
        self.invalidate(app).await;
        Ok(())
    }

    async fn disable(
        &self,
        app: &AppId,
        id: &SubscriptionId,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.store.disable(app, id, reason).await?;
        self.invalidate(app).await;
        Ok(())
    }
}
