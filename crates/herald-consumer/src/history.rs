//! Where the consumer records attempts.

use async_trait::async_trait;
use herald_core::Attempt;
use herald_store::{AttemptStore, StoreError};

/// The delivery history.
#[async_trait]
pub trait History: Send + Sync {
    async fn record(&self, attempts: &[Attempt]) -> Result<(), StoreError>;
}

#[async_trait]
impl History for AttemptStore {
    async fn record(&self, attempts: &[Attempt]) -> Result<(), StoreError> {
        AttemptStore::record(self, attempts).await
    }
}
