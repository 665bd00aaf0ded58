//! Where the consumer records attempts.

use async_trait::async_trait;
use herald_core::{Attempt, Event};
use herald_store::{AttemptStore, StoreError};

/// The delivery history.
#[async_trait]
pub trait History: Send + Sync {
    /// Records the attempts of a batch and the freshly fanned-out events they belong
    /// to (kept so an event can be re-sent), in one go.
    async fn record(&self, attempts: &[Attempt], events: &[Event]) -> Result<(), StoreError>;
}

#[async_trait]
impl History for AttemptStore {
    async fn record(&self, attempts: &[Attempt], events: &[Event]) -> Result<(), StoreError> {
        self.record_with_events(attempts, events).await
    }
}
