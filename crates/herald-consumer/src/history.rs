//! Where the consumer records attempts.

use async_trait::async_trait;
use herald_core::{Attempt, Event};
use herald_store::{AttemptStore, StoreError};

/// The delivery history.
#[async_trait]
pub trait History: Send + Sync {
    async fn record(&self, attempts: &[Attempt]) -> Result<(), StoreError>;

    /// Records attempts and the freshly fanned-out events they belong to (kept so an
    /// event can be re-sent); stores that keep no events record the attempts only.
    async fn record_all(&self, attempts: &[Attempt], _events: &[Event]) -> Result<(), StoreError> {
        self.record(attempts).await
    }
}

#[async_trait]
impl History for AttemptStore {
    async fn record(&self, attempts: &[Attempt]) -> Result<(), StoreError> {
        AttemptStore::record(self, attempts).await
    }

    async fn record_all(&self, attempts: &[Attempt], events: &[Event]) -> Result<(), StoreError> {
        self.record_with_events(attempts, events).await
    }
}
