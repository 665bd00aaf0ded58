//! What a source received: the request log (newest first, expiring with the history)
//! and the sender delivery ids seen in the last [`SEEN_WINDOW`].

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use herald_core::inbound::SourceId;
use herald_core::AppId;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::SourceStore;
use crate::{
    decode_cursor, encode_cursor, from_item, is_condition_failure, to_item, ItemKind, Page,
    StoreError,
};

/// How long a sender's delivery id is remembered: a repeat within it is not
/// published again.
pub const SEEN_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// Largest page of a request log.
pub const MAX_REQUEST_PAGE: i32 = 100;

/// One request a source received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceRequest {
    /// When it arrived.
    pub received_at: DateTime<Utc>,
    /// `accepted`, `duplicate` or `rejected`.
    pub outcome: String,
    /// The HTTP status it was answered with.
    pub status: u16,
    /// Why it was rejected (never a credential).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Bytes of its body.
    pub size: u64,
    /// Its `Content-Type`, cut at 128 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// The sender's delivery id, if its scheme has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_id: Option<String>,
    /// The event it became (or, for a duplicate, the event of the first request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct RequestItem {
    pk: String,
    sk: String,
    expires_at: i64,
    #[serde(flatten)]
    request: SourceRequest,
}

#[derive(Serialize, Deserialize)]
struct SeenItem {
    pk: String,
    event_id: String,
    /// Unix seconds; the table's TTL attribute.
    expires_at: i64,
    /// Unix seconds until which the claim belongs to the request under way: a request
    /// that crashed between claim and queue leaves the id to the sender's retry after
    /// this. A queued event's item holds `expires_at` here.
    lease_until: i64,
    /// Whether the event reached the queue.
    #[serde(default = "queued_by_default")]
    queued: bool,
}

fn queued_by_default() -> bool {
    true
}

/// What claiming a sender's delivery id found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryClaim {
    /// First seen (or its earlier claim lapsed): publish, then [`SourceStore::queued`].
    New,
    /// Seen in the last 24 h and queued as this event: answer, publish nothing.
    Duplicate(String),
    /// Claimed by a request still under way: the sender should retry shortly.
    InProgress,
}

fn log_partition(app: &AppId, id: &SourceId) -> String {
    format!("I#{app}#{id}")
}

fn seen_key(id: &SourceId, delivery: &str) -> String {
    format!("#in#{id}#{delivery}")
}

impl SourceStore {
    /// Adds `request` to the log of `app`'s source `id`, expiring after the history
    /// retention.
    pub async fn record(
        &self,
        app: &AppId,
        id: &SourceId,
        request: &SourceRequest,
    ) -> Result<(), StoreError> {
        let mut nonce = [0u8; 4];
        rand::thread_rng().fill_bytes(&mut nonce);
        let item = RequestItem {
            pk: log_partition(app, id),
            sk: format!(
                "{}#{}",
                request.received_at.format("%Y-%m-%dT%H:%M:%S%.6fZ"),
                hex::encode(nonce)
            ),
            expires_at: request.received_at.timestamp() + self.retention.as_secs() as i64,
            request: request.clone(),
        };
        self.client
            .put_item()
            .table_name(&self.history_table)
            .set_item(Some(to_item(ItemKind::SourceRequest, &item)?))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("PutItem", e))?;
        Ok(())
    }

    /// A page of the log of `app`'s source `id`, newest first; `limit` is clamped to
    /// 1..=[`MAX_REQUEST_PAGE`]. Expired entries are left out.
    pub async fn requests(
        &self,
        app: &AppId,
        id: &SourceId,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<SourceRequest>, StoreError> {
        let pk = log_partition(app, id);
        let start = cursor
            .map(|c| {
                let sk = decode_cursor(c)?;
                Ok::<_, StoreError>(HashMap::from([
                    ("pk".to_owned(), AttributeValue::S(pk.clone())),
                    ("sk".to_owned(), AttributeValue::S(sk)),
                ]))
            })
            .transpose()?;
        let out = self
            .client
            .query()
            .table_name(&self.history_table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
            .scan_index_forward(false)
            .limit(limit.clamp(1, MAX_REQUEST_PAGE))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("Query", e))?;
        let now = Utc::now().timestamp();
        let mut items = Vec::new();
        for item in out.items.unwrap_or_default() {
            let stored: RequestItem = from_item(ItemKind::SourceRequest, item)?;
            if stored.expires_at > now {
                items.push(stored.request);
            }
        }
        let next_cursor = out.last_evaluated_key.and_then(|key| match key.get("sk") {
            Some(AttributeValue::S(sk)) => Some(encode_cursor(sk)),
            _ => None,
        });
        Ok(Page { items, next_cursor })
    }

    /// Claims the sender's delivery id `delivery` of source `id` for event `event_id`:
    /// a conditional put that succeeds when the id is new, expired, or its claim's
    /// lease ([`crate::CLAIM_LEASE`]) ran out without the event being queued.
    pub async fn claim_delivery(
        &self,
        id: &SourceId,
        delivery: &str,
        event_id: &str,
    ) -> Result<DeliveryClaim, StoreError> {
        let now = Utc::now().timestamp();
        let item = SeenItem {
            pk: seen_key(id, delivery),
            event_id: event_id.to_owned(),
            expires_at: now + SEEN_WINDOW.as_secs() as i64,
            lease_until: now + crate::CLAIM_LEASE.as_secs() as i64,
            queued: false,
        };
        let put = self
            .client
            .put_item()
            .table_name(&self.seen_table)
            .set_item(Some(to_item(ItemKind::InboundDelivery, &item)?))
            .condition_expression("attribute_not_exists(pk) OR lease_until < :now")
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            )
            .send()
            .await;
        let e = match put {
            Ok(_) => return Ok(DeliveryClaim::New),
            Err(e) if is_condition_failure(&e) => e,
            Err(e) => return Err(StoreError::dynamo("PutItem", e)),
        };
        use aws_sdk_dynamodb::operation::put_item::PutItemError;
        let old = match e.into_service_error() {
            PutItemError::ConditionalCheckFailedException(c) => c.item,
            _ => None,
        };
        let old: SeenItem = match old {
            Some(item) => from_item(ItemKind::InboundDelivery, item)?,
            None => return Ok(DeliveryClaim::InProgress),
        };
        Ok(if old.queued {
            DeliveryClaim::Duplicate(old.event_id)
        } else {
            DeliveryClaim::InProgress
        })
    }

    /// Marks a claimed delivery id's event as queued: from now on the id is a
    /// duplicate until it expires.
    pub async fn queued(&self, id: &SourceId, delivery: &str) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.seen_table)
            .key("pk", AttributeValue::S(seen_key(id, delivery)))
            .update_expression("SET queued = :t, lease_until = expires_at")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("UpdateItem", e))?;
        Ok(())
    }

    /// Forgets a claimed delivery id (its event did not reach the queue), so the
    /// sender's retry is not taken for a duplicate.
    pub async fn release_delivery(&self, id: &SourceId, delivery: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.seen_table)
            .key("pk", AttributeValue::S(seen_key(id, delivery)))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("DeleteItem", e))?;
        Ok(())
    }
}
