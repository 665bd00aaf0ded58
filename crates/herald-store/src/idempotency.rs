//! `Idempotency-Key` records: one item per (app, key), kept 24 hours.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use chrono::Utc;
use herald_core::AppId;
use serde::{Deserialize, Serialize};
use serde_with::json::JsonString;
use serde_with::serde_as;

use crate::{from_item, is_condition_failure, to_item, Item, ItemKind, StoreError};

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

const KIND: ItemKind = ItemKind::IdempotencyKey;

/// The partition key (`pk`) of an app's key: the only place it is spelled out.
fn partition(app: &AppId, key: &str) -> String {
    format!("{app}#{key}")
}

/// The table's key of an app's key, as the attribute map of a `GetItem` or update.
fn key(app: &AppId, key: &str) -> Item {
    HashMap::from([("pk".to_owned(), AttributeValue::S(partition(app, key)))])
}

/// Where a claimed request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum State {
    /// Claimed; the request is being handled.
    Pending,
    /// Handled; `response` holds what it returned.
    Done,
}

/// The item of one (app, key).
#[serde_as]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct IdempotencyItem {
    pk: String,
    request_hash: String,
    state: State,
    /// Unix seconds; the table's TTL attribute.
    expires_at: i64,
    /// The response, as JSON text (as [`IdempotencyStore::complete`] writes it).
    #[serde_as(as = "Option<JsonString>")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    response: Option<serde_json::Value>,
}

impl IdempotencyStore {
    /// A store on the idempotency table `table`.
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
        let claimed = IdempotencyItem {
            pk: partition(app, key),
            request_hash: request_hash.to_owned(),
            state: State::Pending,
            expires_at: now + IDEMPOTENCY_WINDOW.as_secs() as i64,
            response: None,
        };
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(KIND, &claimed)?))
            .condition_expression("attribute_not_exists(pk) OR expires_at < :now")
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .send()
            .await;
        match put {
            Ok(_) => return Ok(Claim::New),
            Err(e) if is_condition_failure(&e) => {}
            Err(e) => return Err(StoreError::dynamo("PutItem", e)),
        }
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(self::key(app, key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        let Some(item) = out.item else {
            // Released between our put and get: the caller may simply try again.
            return Ok(Claim::InProgress);
        };
        let stored: IdempotencyItem = from_item(KIND, item)?;
        if stored.request_hash != request_hash {
            return Ok(Claim::Mismatch);
        }
        match (stored.state, stored.response) {
            (State::Pending, _) => Ok(Claim::InProgress),
            (State::Done, Some(response)) => Ok(Claim::Replay(response)),
            (State::Done, None) => Err(StoreError::corrupt(KIND, "done without a response")),
        }
    }

    /// Stores the response of a claimed key.
    pub async fn complete(
        &self,
        app: &AppId,
        key: &str,
        response: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let done = serde_dynamo::to_attribute_value(State::Done)
            .map_err(|e| StoreError::unwritable(KIND, e))?;
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self::key(app, key)))
            .update_expression("SET #s = :done, #r = :response")
            .expression_attribute_names("#s", "state")
            .expression_attribute_names("#r", "response")
            .expression_attribute_values(":done", done)
            // JSON text, as `IdempotencyItem::response` is stored.
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
            .set_key(Some(self::key(app, key)))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("DeleteItem", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_keep_their_layout_and_round_trip() {
        let app = AppId::parse("shop").unwrap();
        let mut record = IdempotencyItem {
            pk: partition(&app, "k1"),
            request_hash: "abc".into(),
            state: State::Pending,
            expires_at: 1_700_000_000,
            response: None,
        };
        let item = to_item(KIND, &record).unwrap();
        assert_eq!(item["pk"], AttributeValue::S("shop#k1".into()));
        assert_eq!(item["state"], AttributeValue::S("pending".into()));
        assert_eq!(item["expires_at"], AttributeValue::N("1700000000".into()));
        assert!(!item.contains_key("response"));
        assert_eq!(from_item::<IdempotencyItem>(KIND, item).unwrap(), record);

        record.state = State::Done;
        record.response = Some(serde_json::json!({"ids": ["evt_1"]}));
        let item = to_item(KIND, &record).unwrap();
        assert_eq!(
            item["state"],
            serde_dynamo::to_attribute_value(State::Done).unwrap()
        );
        assert_eq!(
            item["response"],
            AttributeValue::S(serde_json::json!({"ids": ["evt_1"]}).to_string())
        );
        assert_eq!(from_item::<IdempotencyItem>(KIND, item).unwrap(), record);
    }
}
