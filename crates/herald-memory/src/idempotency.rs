//! `Idempotency-Key` records in memory, with the DynamoDB store's rules: kept for
//! [`IDEMPOTENCY_WINDOW`], a claim leased to its request for [`CLAIM_LEASE`].

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_core::{AppId, EventId};
use herald_store::{
    Claim, IdempotencyStorage, PlannedEvent, StoreError, CLAIM_LEASE, IDEMPOTENCY_WINDOW,
};

use crate::lock;

struct Record {
    request_hash: String,
    expires_at: DateTime<Utc>,
    response: Option<serde_json::Value>,
    planned: Vec<PlannedEvent>,
    queued: Vec<EventId>,
    lease_until: DateTime<Utc>,
}

/// Idempotency keys in memory.
#[derive(Default)]
pub struct MemoryIdempotency {
    records: Mutex<HashMap<(AppId, String), Record>>,
}

fn span(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).expect("a short constant")
}

#[async_trait]
impl IdempotencyStorage for MemoryIdempotency {
    async fn claim(
        &self,
        app: &AppId,
        key: &str,
        request_hash: &str,
        planned: &[PlannedEvent],
    ) -> Result<Claim, StoreError> {
        let now = Utc::now();
        let mut records = lock(&self.records);
        let id = (app.clone(), key.to_owned());
        let Some(stored) = records.get_mut(&id).filter(|r| r.expires_at >= now) else {
            records.insert(
                id,
                Record {
                    request_hash: request_hash.to_owned(),
                    expires_at: now + span(IDEMPOTENCY_WINDOW),
                    response: None,
                    planned: planned.to_vec(),
                    queued: Vec::new(),
                    lease_until: now + span(CLAIM_LEASE),
                },
            );
            return Ok(Claim::New);
        };
        if stored.request_hash != request_hash {
            return Ok(Claim::Mismatch);
        }
        if let Some(response) = &stored.response {
            return Ok(Claim::Replay(response.clone()));
        }
        if stored.lease_until > now {
            return Ok(Claim::InProgress);
        }
        stored.lease_until = now + span(CLAIM_LEASE);
        Ok(Claim::Resume {
            planned: stored.planned.clone(),
            queued: stored.queued.clone(),
        })
    }

    async fn progress(&self, app: &AppId, key: &str, queued: &[EventId]) -> Result<(), StoreError> {
        if let Some(r) = lock(&self.records).get_mut(&(app.clone(), key.to_owned())) {
            r.queued = queued.to_vec();
            r.lease_until = DateTime::UNIX_EPOCH;
        }
        Ok(())
    }

    async fn complete(
        &self,
        app: &AppId,
        key: &str,
        response: &serde_json::Value,
    ) -> Result<(), StoreError> {
        if let Some(r) = lock(&self.records).get_mut(&(app.clone(), key.to_owned())) {
            r.response = Some(response.clone());
        }
        Ok(())
    }

    async fn release(&self, app: &AppId, key: &str) -> Result<(), StoreError> {
        lock(&self.records).remove(&(app.clone(), key.to_owned()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_is_new_then_in_progress_then_replayed_and_refuses_another_request() {
        let store = MemoryIdempotency::default();
        let app = AppId::parse("shop").unwrap();
        assert_eq!(store.claim(&app, "k", "h1", &[]).await.unwrap(), Claim::New);
        assert_eq!(
            store.claim(&app, "k", "h1", &[]).await.unwrap(),
            Claim::InProgress
        );
        assert_eq!(
            store.claim(&app, "k", "h2", &[]).await.unwrap(),
            Claim::Mismatch
        );
        store.progress(&app, "k", &[]).await.unwrap();
        assert!(matches!(
            store.claim(&app, "k", "h1", &[]).await.unwrap(),
            Claim::Resume { .. }
        ));
        let response = serde_json::json!({"ids": []});
        store.complete(&app, "k", &response).await.unwrap();
        assert_eq!(
            store.claim(&app, "k", "h1", &[]).await.unwrap(),
            Claim::Replay(response)
        );
        store.release(&app, "k").await.unwrap();
        assert_eq!(store.claim(&app, "k", "h1", &[]).await.unwrap(), Claim::New);
    }
}
