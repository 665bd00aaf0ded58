//! The delivery history in DynamoDB.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as CURSOR;
use base64::Engine as _;
use herald_core::{AppId, Attempt, Event, EventId, SubscriptionId};

use crate::{decode_items, Page, StoreError, MAX_PAGE_SIZE};

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
fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
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

fn sk(a: &Attempt) -> String {
    format!(
        "{}#{}#{:04}",
        a.attempted_at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        a.event_id,
        a.attempt
    )
}

fn subscription_pk(app: &AppId, sub: &SubscriptionId) -> String {
    format!("{app}#{sub}")
}

fn stored_event_pk(app: &AppId, event: &EventId) -> String {
    format!("event#{app}#{event}")
}

fn event_pk(app: &AppId, event: &EventId) -> String {
    format!("{app}#{event}")
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

    fn item(&self, a: &Attempt) -> Result<HashMap<String, AttributeValue>, StoreError> {
        let mut item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(a).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let expires = a.attempted_at.timestamp() + self.retention.as_secs() as i64;
        item.insert(
            "pk".into(),
            AttributeValue::S(subscription_pk(&a.app_id, &a.subscription_id)),
        );
        item.insert("sk".into(), AttributeValue::S(sk(a)));
        item.insert(
            "event_pk".into(),
            AttributeValue::S(event_pk(&a.app_id, &a.event_id)),
        );
        item.insert("expires_at".into(), AttributeValue::N(expires.to_string()));
        Ok(item)
    }

    fn event_item(&self, e: &Event) -> Result<HashMap<String, AttributeValue>, StoreError> {
        let json = serde_json::to_string(e).map_err(|err| StoreError::Corrupt(err.to_string()))?;
        let expires = e.timestamp.timestamp() + self.retention.as_secs() as i64;
        Ok(HashMap::from([
            (
                "pk".to_owned(),
                AttributeValue::S(stored_event_pk(&e.app_id, &e.id)),
            ),
            ("sk".to_owned(), AttributeValue::S("event".into())),
            ("event".to_owned(), AttributeValue::S(json)),
            (
                "expires_at".to_owned(),
                AttributeValue::N(expires.to_string()),
            ),
        ]))
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
            .map(|a| self.item(a))
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
                                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
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
            .key("pk", AttributeValue::S(stored_event_pk(app, id)))
            .key("sk", AttributeValue::S("event".into()))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let expired = item
            .get("expires_at")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<i64>().ok())
            .is_some_and(|at| at <= chrono::Utc::now().timestamp());
        if expired {
            return Ok(None);
        }
        let json = item
            .get("event")
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| StoreError::Corrupt("stored event without body".into()))?;
        serde_json::from_str(json)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(e.to_string()))
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
            subscription_pk(app, subscription),
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
            event_pk(app, event),
            limit,
            cursor,
        )
        .await
    }

    async fn query(
        &self,
        index: Option<&str>,
        key: &str,
        value: String,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<Attempt>, StoreError> {
        let start = cursor.map(decode_key).transpose()?;
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .set_index_name(index.map(str::to_owned))
            .key_condition_expression("#k = :v")
            .expression_attribute_names("#k", key)
            .expression_attribute_values(":v", AttributeValue::S(value))
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
        let items = decode_items::<Attempt>(out.items)?;
        let next_cursor = out
            .last_evaluated_key
            .filter(|k| !k.is_empty())
            .map(|k| encode_key(&k));
        Ok(Page { items, next_cursor })
    }
}

/// Cursors carry the last evaluated key's string attributes, base64-encoded JSON.
fn encode_key(key: &HashMap<String, AttributeValue>) -> String {
    let strings: HashMap<&str, &str> = key
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.as_s().ok()?.as_str())))
        .collect();
    CURSOR.encode(serde_json::to_vec(&strings).unwrap_or_default())
}

fn decode_key(cursor: &str) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let bytes = CURSOR.decode(cursor).map_err(|_| StoreError::BadCursor)?;
    let strings: HashMap<String, String> =
        serde_json::from_slice(&bytes).map_err(|_| StoreError::BadCursor)?;
    let allowed = ["pk", "sk", "event_pk"];
    if strings.is_empty() || strings.keys().any(|k| !allowed.contains(&k.as_str())) {
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

    #[test]
    fn cursors_round_trip_and_reject_foreign_keys() {
        let key: HashMap<String, AttributeValue> = [
            ("pk".to_owned(), AttributeValue::S("a#s".into())),
            ("sk".to_owned(), AttributeValue::S("t#e#0001".into())),
        ]
        .into();
        assert_eq!(decode_key(&encode_key(&key)).unwrap(), key);
        assert!(decode_key("%%").is_err());
        let forged = CURSOR.encode(br#"{"app_id":"other"}"#);
        assert!(decode_key(&forged).is_err());
    }
}
