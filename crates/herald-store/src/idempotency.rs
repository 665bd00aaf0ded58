//! `Idempotency-Key` records: one item per (app, key), kept 24 hours.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use herald_core::{AppId, EventId};
use serde::{Deserialize, Serialize};
use serde_with::json::JsonString;
use serde_with::serde_as;

use crate::{from_item, is_condition_failure, to_item, Item, ItemKind, StoreError};

/// How long a key is remembered.
pub const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// How long a claim belongs to the request that made it: a request that crashed or
/// failed part-way leaves its key to the next try after this long at most.
pub const CLAIM_LEASE: Duration = Duration::from_secs(60);

/// The events a request under a key publishes: their ids and times are fixed at the
/// first try and kept with the claim, so every retry publishes the same events under
/// the same ids (receivers dedupe on the `webhook-id` derived from them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedEvent {
    /// The event's id.
    pub id: EventId,
    /// The event's timestamp.
    pub timestamp: DateTime<Utc>,
}

/// What claiming a key found.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// First use: go ahead, then `complete`, record `progress`, or `release`.
    New,
    /// A try of the same request that did not finish (it failed part-way, or its lease
    /// ran out): the claim is now this request's; publish the planned events that are
    /// not `queued` yet, under the planned ids.
    Resume {
        /// The events of the first try.
        planned: Vec<PlannedEvent>,
        /// Those known to have reached the queue.
        queued: Vec<EventId>,
    },
    /// Used before with the same request: here is the response it got.
    Replay(serde_json::Value),
    /// Used before with the same request, which is still under way.
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
    /// The events the request publishes (ids and times fixed at the first try).
    #[serde(default)]
    planned: Vec<PlannedEvent>,
    /// Planned events known to be on the queue.
    #[serde(default)]
    queued: Vec<EventId>,
    /// Unix seconds until which the claim belongs to the request under way.
    #[serde(default)]
    lease_until: i64,
}

impl IdempotencyStore {
    /// A store on the idempotency table `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Claims `key` for a request whose body hashes to `request_hash` and that plans
    /// to publish `planned` (kept only if the claim is new).
    pub async fn claim(
        &self,
        app: &AppId,
        key: &str,
        request_hash: &str,
        planned: &[PlannedEvent],
    ) -> Result<Claim, StoreError> {
        let now = Utc::now().timestamp();
        let claimed = IdempotencyItem {
            pk: partition(app, key),
            request_hash: request_hash.to_owned(),
            state: State::Pending,
            expires_at: now + IDEMPOTENCY_WINDOW.as_secs() as i64,
            response: None,
            planned: planned.to_vec(),
            queued: Vec::new(),
            lease_until: now + CLAIM_LEASE.as_secs() as i64,
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
        match stored.state {
            State::Done => stored
                .response
                .map(Claim::Replay)
                .ok_or_else(|| StoreError::corrupt(KIND, "done without a response")),
            State::Pending if stored.lease_until > now => Ok(Claim::InProgress),
            State::Pending => self.take_over(app, key, stored, now).await,
        }
    }

    /// Takes over a pending claim whose lease ran out, unless another request took it
    /// first (then it is in progress).
    async fn take_over(
        &self,
        app: &AppId,
        key: &str,
        stored: IdempotencyItem,
        now: i64,
    ) -> Result<Claim, StoreError> {
        let taken = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self::key(app, key)))
            .update_expression("SET lease_until = :until")
            .condition_expression("#s = :pending AND lease_until = :seen")
            .expression_attribute_names("#s", "state")
            .expression_attribute_values(
                ":pending",
                serde_dynamo::to_attribute_value(State::Pending)
                    .map_err(|e| StoreError::unwritable(KIND, e))?,
            )
            .expression_attribute_values(":seen", AttributeValue::N(stored.lease_until.to_string()))
            .expression_attribute_values(
                ":until",
                AttributeValue::N((now + CLAIM_LEASE.as_secs() as i64).to_string()),
            )
            .send()
            .await;
        match taken {
            Ok(_) => Ok(Claim::Resume {
                planned: stored.planned,
                queued: stored.queued,
            }),
            Err(e) if is_condition_failure(&e) => Ok(Claim::InProgress),
            Err(e) => Err(StoreError::dynamo("UpdateItem", e)),
        }
    }

    /// Records which planned events are on the queue after a try that did not publish
    /// them all, and ends the try's lease so the next try can resume at once.
    pub async fn progress(
        &self,
        app: &AppId,
        key: &str,
        queued: &[EventId],
    ) -> Result<(), StoreError> {
        let queued = serde_dynamo::to_attribute_value(queued)
            .map_err(|e| StoreError::unwritable(KIND, e))?;
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self::key(app, key)))
            .update_expression("SET queued = :queued, lease_until = :zero")
            .expression_attribute_values(":queued", queued)
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("UpdateItem", e))?;
        Ok(())
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
            planned: vec![PlannedEvent {
                id: EventId::parse("evt_1").unwrap(),
                timestamp: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            }],
            queued: Vec::new(),
            lease_until: 1_700_000_060,
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
