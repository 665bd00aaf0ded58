//! The delivery history in DynamoDB.

mod items;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as CURSOR;
use base64::Engine as _;
use herald_core::{AppId, Attempt, Event, EventId, SubscriptionId};
use items::{event_partition, subscription_partition, AttemptItem, EventItem};

use crate::{
    decode_items, from_item, to_item, Item, ItemKind, Page, PkSk, StoreError, MAX_PAGE_SIZE,
};

/// Items per `BatchWriteItem` call (DynamoDB's limit).
const BATCH_WRITE_MAX: usize = 25;
/// Rounds of retrying unprocessed items before giving up.
const WRITE_ROUNDS: u32 = 6;
/// Largest event kept for re-sending (DynamoDB items hold at most 400 KB).
pub const MAX_STORED_EVENT_BYTES: usize = 350_000;
/// Name of the index listing an event's attempts.
pub const BY_EVENT_INDEX: &str = "by_event";

/// Attempt records, written in batches and listed newest first.
#[derive(Clone, Debug)]
pub struct AttemptStore {
    client: Client,
    table: String,
    retention: Duration,
}

/// Approximate size of an item of string and number attributes.
fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(k, v)| {
            k.len()
                + v.as_s()
                    .map(String::len)
                    .or_else(|_| v.as_n().map(String::len))
                    .unwrap_or(16)
        })
        .sum()
}

impl AttemptStore {
    /// `retention` sets each record's `expires_at` (the table's TTL attribute).
    pub fn new(client: Client, table: impl Into<String>, retention: Duration) -> Self {
        Self {
            client,
            table: table.into(),
            retention,
        }
    }

    /// Unix seconds at which a record made at `at` expires.
    fn expires_at(&self, at: chrono::DateTime<chrono::Utc>) -> i64 {
        at.timestamp() + self.retention.as_secs() as i64
    }

    /// The item of an attempt record.
    fn attempt_item(&self, a: &Attempt) -> Result<Item, StoreError> {
        let item = AttemptItem::new(a, self.expires_at(a.attempted_at));
        to_item(ItemKind::Attempt, &item)
    }

    /// The item of an event kept for re-sending.
    fn event_item(&self, e: &Event) -> Result<Item, StoreError> {
        let item = EventItem::new(e, self.expires_at(e.timestamp));
        to_item(ItemKind::Event, &item)
    }

    /// Writes attempts with `BatchWriteItem`, 25 per call, retrying unprocessed items
    /// with backoff. Fails only if some records could not be written at all.
    pub async fn record(&self, attempts: &[Attempt]) -> Result<(), StoreError> {
        self.record_with_events(attempts, &[]).await
    }

    /// Writes attempts and the events they belong to (kept for the same retention, so
    /// an event can be re-sent), in the same batched calls.
    pub async fn record_with_events(
        &self,
        attempts: &[Attempt],
        events: &[Event],
    ) -> Result<(), StoreError> {
        let items = attempts
            .iter()
            .map(|a| self.attempt_item(a))
            .chain(events.iter().filter_map(|e| match self.event_item(e) {
                Ok(item) if item_size(&item) > MAX_STORED_EVENT_BYTES => {
                    tracing::warn!(event_id = %e.id, "event too large to keep for re-sending; its deliveries are unaffected");
                    None
                }
                other => Some(other),
            }))
            .collect::<Result<Vec<_>, StoreError>>()?;
        for chunk in items.chunks(BATCH_WRITE_MAX) {
            let mut requests = chunk
                .iter()
                .map(|item| {
                    Ok(WriteRequest::builder()
                        .put_request(
                            PutRequest::builder()
                                .set_item(Some(item.clone()))
                                .build()
                                .map_err(|e| StoreError::unwritable(ItemKind::Attempt, e))?,
                        )
                        .build())
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            for round in 0..WRITE_ROUNDS {
                if round > 0 {
                    tokio::time::sleep(Duration::from_millis(25 << round)).await;
                }
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, requests.clone())
                    .send()
                    .await
                    .map_err(|e| StoreError::dynamo("BatchWriteItem", e))?;
                requests = out
                    .unprocessed_items
                    .and_then(|mut m| m.remove(&self.table))
                    .unwrap_or_default();
                if requests.is_empty() {
                    break;
                }
            }
            if !requests.is_empty() {
                return Err(StoreError::Dynamo {
                    operation: "BatchWriteItem",
                    message: format!("{} attempt records left unprocessed", requests.len()),
                });
            }
        }
        Ok(())
    }

    /// A stored event of an app (unexpired), for re-sending.
    pub async fn get_event(&self, app: &AppId, id: &EventId) -> Result<Option<Event>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(PkSk::event(app, id).into_item()))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let item: EventItem = from_item(ItemKind::Event, item)?;
        // TTL deletion lags: an expired event is gone for callers already.
        Ok((item.expires_at > chrono::Utc::now().timestamp()).then_some(item.event))
    }

    /// A subscription's attempts, newest first.
    pub async fn for_subscription(
        &self,
        app: &AppId,
        subscription: &SubscriptionId,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<Attempt>, StoreError> {
        self.query(
            None,
            "pk",
            subscription_partition(app, subscription),
            limit,
            cursor,
        )
        .await
    }

    /// An event's attempts across its subscriptions, newest first.
    pub async fn for_event(
        &self,
        app: &AppId,
        event: &EventId,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<Attempt>, StoreError> {
        self.query(
            Some(BY_EVENT_INDEX),
            "event_pk",
            event_partition(app, event),
            limit,
            cursor,
        )
        .await
    }

    /// A page of the attempts whose `partition_key` attribute is `partition`, in
    /// the table or one of its indexes, newest first.
    async fn query(
        &self,
        index: Option<&str>,
        partition_key: &str,
        partition: String,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<Attempt>, StoreError> {
        let start = cursor
            .map(|c| decode_key(c, index.is_some(), &partition))
            .transpose()?;
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .set_index_name(index.map(str::to_owned))
            .key_condition_expression("#k = :v")
            .expression_attribute_names("#k", partition_key)
            .expression_attribute_values(":v", AttributeValue::S(partition))
            // TTL deletion lags (up to days on AWS, never on some emulators): expired
            // records are hidden at read time too.
            .filter_expression("expires_at > :now")
            .expression_attribute_values(
                ":now",
                AttributeValue::N(chrono::Utc::now().timestamp().to_string()),
            )
            .scan_index_forward(false)
            .limit(limit.clamp(1, MAX_PAGE_SIZE))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("Query", e))?;
        let items = decode_items::<AttemptItem>(ItemKind::Attempt, out.items)?
            .into_iter()
            .map(|item| item.attempt)
            .collect();
        let next_cursor = out
            .last_evaluated_key
            .filter(|k| !k.is_empty())
            .map(|k| encode_key(&k));
        Ok(Page { items, next_cursor })
    }
}

/// Cursors carry the last evaluated key's string attributes, base64-encoded JSON.
fn encode_key(key: &Item) -> String {
    let strings: HashMap<&str, &str> = key
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.as_s().ok()?.as_str())))
        .collect();
    CURSOR.encode(serde_json::to_vec(&strings).unwrap_or_default())
}

/// Longest cursor accepted: a last evaluated key is a few hundred bytes.
const MAX_CURSOR_LEN: usize = 2048;

/// The last evaluated key a cursor from [`encode_key`] carries, checked against the
/// listing it is used for: exactly the key attributes of the table (`pk`, `sk`) or of
/// the `by_event` index (and `event_pk`), with the listing's own partition. A cursor
/// that is tampered with, oversized, or taken from another listing (another webhook's,
/// another event's, another app's) is [`StoreError::BadCursor`], never a query
/// DynamoDB would refuse.
fn decode_key(cursor: &str, by_event: bool, partition: &str) -> Result<Item, StoreError> {
    if cursor.len() > MAX_CURSOR_LEN {
        return Err(StoreError::BadCursor);
    }
    let bytes = CURSOR.decode(cursor).map_err(|_| StoreError::BadCursor)?;
    let strings: HashMap<String, String> =
        serde_json::from_slice(&bytes).map_err(|_| StoreError::BadCursor)?;
    let expected: &[&str] = if by_event {
        &["event_pk", "pk", "sk"]
    } else {
        &["pk", "sk"]
    };
    let mut names: Vec<&str> = strings.keys().map(String::as_str).collect();
    names.sort_unstable();
    if names != expected || strings.values().any(|v| v.is_empty()) {
        return Err(StoreError::BadCursor);
    }
    // The app is the partition's first segment; an attempt's `pk` is `app#subscription`.
    let app_prefix = partition.split('#').next().map(|app| format!("{app}#"));
    let in_scope = if by_event {
        strings["event_pk"] == partition
            && app_prefix.is_some_and(|prefix| strings["pk"].starts_with(&prefix))
    } else {
        strings["pk"] == partition
    };
    if !in_scope {
        return Err(StoreError::BadCursor);
    }
    Ok(strings
        .into_iter()
        .map(|(k, v)| (k, AttributeValue::S(v)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(pairs: &[(&str, &str)]) -> Item {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), AttributeValue::S((*v).to_owned())))
            .collect()
    }

    #[test]
    fn cursors_round_trip_within_their_listing() {
        let by_webhook = key(&[("pk", "a#sub_1"), ("sk", "t#e#0001")]);
        assert_eq!(
            decode_key(&encode_key(&by_webhook), false, "a#sub_1").unwrap(),
            by_webhook
        );
        let by_event = key(&[
            ("pk", "a#sub_1"),
            ("sk", "t#e#0001"),
            ("event_pk", "a#evt_1"),
        ]);
        assert_eq!(
            decode_key(&encode_key(&by_event), true, "a#evt_1").unwrap(),
            by_event
        );
    }

    #[test]
    fn tampered_foreign_and_oversized_cursors_are_refused() {
        let bad = |cursor: &str, by_event: bool, partition: &str| {
            matches!(
                decode_key(cursor, by_event, partition),
                Err(StoreError::BadCursor)
            )
        };
        let mine = encode_key(&key(&[("pk", "a#sub_1"), ("sk", "t#e#0001")]));
        assert!(bad("%%", false, "a#sub_1"), "not base64");
        assert!(bad(&CURSOR.encode(b"[1]"), false, "a#sub_1"), "not a key");
        assert!(bad(
            &CURSOR.encode(br#"{"app_id":"other"}"#),
            false,
            "a#sub_1"
        ));
        assert!(bad(&mine, false, "a#sub_2"), "another webhook's listing");
        assert!(bad(&mine, false, "b#sub_1"), "another app's listing");
        assert!(bad(&mine, true, "a#evt_1"), "a table cursor on the index");
        let other_app = key(&[("pk", "b#sub_9"), ("sk", "t"), ("event_pk", "a#evt_1")]);
        assert!(bad(&encode_key(&other_app), true, "a#evt_1"));
        let extra = key(&[("pk", "a#sub_1"), ("sk", "t"), ("expires_at", "1")]);
        assert!(bad(&encode_key(&extra), false, "a#sub_1"));
        let empty = key(&[("pk", "a#sub_1"), ("sk", "")]);
        assert!(bad(&encode_key(&empty), false, "a#sub_1"));
        assert!(bad(&"A".repeat(MAX_CURSOR_LEN + 1), false, "a#sub_1"));
    }
}
