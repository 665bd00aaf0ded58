//! Where the consumer finds the subscriptions matching an event.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use herald_core::{AppId, Event, Subscription};
use herald_store::{StoreError, SubscriptionStore};

/// Finds the subscriptions that want an event.
#[async_trait]
pub trait SubscriptionSource: Send + Sync {
    async fn matching(&self, event: &Event) -> Result<Vec<Subscription>, Arc<StoreError>>;
}

/// The DynamoDB store behind a short-lived per-app cache: one `Query` per app per TTL,
/// shared by concurrent lookups of the same app. A TTL of zero disables the cache.
pub struct CachedSubscriptions {
    store: SubscriptionStore,
    cache: Option<moka::future::Cache<AppId, Arc<Vec<Subscription>>>>,
}

impl CachedSubscriptions {
    pub fn new(store: SubscriptionStore, ttl: Duration) -> Self {
        let cache = (!ttl.is_zero()).then(|| {
            moka::future::Cache::builder()
                .time_to_live(ttl)
                .max_capacity(10_000)
                .build()
        });
        Self { store, cache }
    }

    async fn for_app(&self, app: &AppId) -> Result<Arc<Vec<Subscription>>, Arc<StoreError>> {
        match &self.cache {
            None => self
                .store
                .for_app(app)
                .await
                .map(Arc::new)
                .map_err(Arc::new),
            Some(cache) => {
                cache
                    .try_get_with(app.clone(), async {
                        self.store.for_app(app).await.map(Arc::new)
                    })
                    .await
            }
        }
    }
}

#[async_trait]
impl SubscriptionSource for CachedSubscriptions {
    async fn matching(&self, event: &Event) -> Result<Vec<Subscription>, Arc<StoreError>> {
        let all = self.for_app(&event.app_id).await?;
        Ok(all.iter().filter(|s| s.matches(event)).cloned().collect())
    }
}
