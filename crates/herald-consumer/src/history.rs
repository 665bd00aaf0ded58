//! Where the consumer records what a batch did.

use async_trait::async_trait;
use herald_store::{BatchHistory, HistoryStore, StoreError};

/// The delivery history.
#[async_trait]
pub trait History: Send + Sync {
    /// Records what one batch did: the freshly fanned-out events that matched a
    /// webhook (kept so an event can be re-sent) and every attempt, each tagged as
    /// part of its event's first fan-out or not, in one go.
    async fn record(&self, batch: &BatchHistory) -> Result<(), StoreError>;
}

#[async_trait]
impl History for HistoryStore {
    async fn record(&self, batch: &BatchHistory) -> Result<(), StoreError> {
        HistoryStore::record(self, batch).await
    }
}
