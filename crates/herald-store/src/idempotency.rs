//! `Idempotency-Key` records: one item per (app, key), kept 24 hours.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use chrono::Utc;
use herald_core::AppId;

use crate::StoreError;

/// How long a key is remembered.
pub const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// What claiming a key found.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// First use: go ahead, then `complete` (or `release` on failure).
    New,
    /// Used before with the same request: here is the response it got.
    Replay(serde_json::Value),
    /// Used before with the same request, which has not finished yet.
    InProgress,
    /// Used before with a different request.
    Mismatch,
}

/// Idempotency keys in DynamoDB (`pk = app#key`, TTL attribute `expires_at`; expired
/// records are treated as absent even before TTL deletes them).
#[derive(Clone, Debug)]
pub struct IdempotencyStore {
    client: Client,
    table: String,
}

fn pk(app: &AppId, key: &str) -> AttributeValue {
    AttributeValue::S(format!("{app}#{key}"))
}

impl IdempotencyStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Claims `key` for a request whose body hashes to `request_hash`.
    pub async fn claim(
        &self,
        app: &AppId,
        key: &str,
        request_hash: &str,
    ) -> Result<Claim, StoreError> {
        let now = Utc::now().timestamp();
        let expires = now + IDEMPOTENCY_WINDOW.as_secs() as i64;
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", pk(app, key))
            .item("request_hash", AttributeValue::S(request_hash.to_owned()))
            .item("state", AttributeValue::S("pending".into()))
            .item("expires_at", AttributeValue::N(expires.to_string()))
            .condition_expression("attribute_not_exists(pk) OR expires_at < :now")
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .send()
            .await;
        match put {
            Ok(_) => return Ok(Claim::New),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) => {}
            Err(e) => return Err(StoreError::dynamo("PutItem", e)),
        }
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", pk(app, key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        let Some(item) = out.item else {
            // Released between our put and get: the caller may simply try again.
            return Ok(Claim::InProgress);
        };
        let field = |k: &str| {
            item.get(k)
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default()
        };
        if field("request_hash") != request_hash {
            return Ok(Claim::Mismatch);
        }
        if field("state") != "done" {
            return Ok(Claim::InProgress);
        }
        serde_json::from_str(&field("response"))
            .map(Claim::Replay)
            .map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// Stores the response of a claimed key.
    pub async fn complete(
        &self,
        app: &AppId,
        key: &str,
        response: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", pk(app, key))
            .update_expression("SET #s = :done, #r = :response")
            .expression_attribute_names("#s", "state")
            .expression_attribute_names("#r", "response")
            .expression_attribute_values(":done", AttributeValue::S("done".into()))
            .expression_attribute_values(":response", AttributeValue::S(response.to_string()))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("UpdateItem", e))?;
        Ok(())
    }

    /// Forgets a claimed key after the request failed, so it can be retried.
    pub async fn release(&self, app: &AppId, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", pk(app, key))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("DeleteItem", e))?;
        Ok(())
    }
}
