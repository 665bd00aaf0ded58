//! The history table's typed items and their compressed bodies.

use std::io::Read as _;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use herald_core::attempt::truncate_to;
use herald_core::{
    webhook_id, AppId, Attempt, AttemptOutcome, Event, EventId, EventType, SubscriptionId,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{Item, ItemKind, PkSk, StoreError};

/// Longest response excerpt and error text kept of a failed or not-sent attempt.
pub const EXCERPT_BYTES: usize = 1024;
/// zstd level of the bodies (the library's default: fast, most of the gain).
const ZSTD_LEVEL: i32 = 3;
/// Most bytes a stored body may decompress to (a corrupt item cannot make a read
/// allocate more).
const MAX_UNPACKED: u64 = 8 << 20;

/// An event group: the events of one batch, app and minute that matched a webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct GroupItem {
    #[serde(flatten)]
    pub(super) key: PkSk,
    /// The smallest and largest event id of the group.
    pub(super) first: String,
    pub(super) last: String,
    /// The batch's time, id and shard: with them a target's record key is known.
    pub(super) at: DateTime<Utc>,
    pub(super) b: String,
    pub(super) ws: u8,
    /// Events in the group.
    pub(super) n: usize,
    /// Unix seconds; the table's TTL attribute.
    pub(super) expires_at: i64,
    /// zstd of the JSON list of [`GroupEntry`].
    #[serde(with = "serde_bytes")]
    pub(super) z: Vec<u8>,
}

/// One event of a group with the webhooks its first fan-out went to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct GroupEntry {
    pub(super) event: Event,
    /// Attempted in the first fan-out.
    pub(super) to: Vec<SubscriptionId>,
    /// Matched but not sent (endpoint disabled).
    pub(super) not_sent: Vec<SubscriptionId>,
}

/// What happened to one webhook in one batch (or one part of it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct RecordItem {
    #[serde(flatten)]
    pub(super) key: PkSk,
    /// Entries in `z`.
    pub(super) n: usize,
    /// Entries that are not successes.
    pub(super) failed: usize,
    /// Unix seconds; the table's TTL attribute.
    pub(super) expires_at: i64,
    /// zstd of the JSON list of [`Entry`], newest first.
    #[serde(with = "serde_bytes")]
    pub(super) z: Vec<u8>,
}

/// An app's index entry of one batch: the webhook records the batch wrote for it, so
/// the app-wide listing reads one partition family instead of every webhook's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct IndexItem {
    #[serde(flatten)]
    pub(super) key: PkSk,
    /// The batch's shard (its records' partitions end with it).
    pub(super) ws: u8,
    /// Entries in all the records.
    pub(super) n: usize,
    /// Entries that are not successes.
    pub(super) failed: usize,
    /// The records, one per webhook.
    pub(super) w: Vec<RecordRef>,
    /// Unix seconds; the table's TTL attribute.
    pub(super) expires_at: i64,
}

/// A webhook's record of a batch as an index entry names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct RecordRef {
    /// The webhook.
    pub(super) s: SubscriptionId,
    /// Parts of its record.
    pub(super) p: usize,
    /// Entries, and those that are not successes.
    pub(super) n: usize,
    pub(super) f: usize,
}

/// Points from an event to a webhook record holding attempts of it made outside its
/// first fan-out (retries, re-sends, re-drives).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct TrailItem {
    #[serde(flatten)]
    pub(super) key: PkSk,
    /// The webhook record's key.
    pub(super) r: PkSk,
    /// Unix seconds; the table's TTL attribute.
    pub(super) expires_at: i64,
}

/// One attempt in a webhook record. A success is compact (no response body, no
/// error); a failure or a delivery not sent keeps its detail, its response excerpt
/// and error text cut to [`EXCERPT_BYTES`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Entry {
    pub(super) event: EventId,
    #[serde(rename = "type")]
    pub(super) event_type: EventType,
    pub(super) attempt: u32,
    pub(super) at: DateTime<Utc>,
    pub(super) outcome: AttemptOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) status: Option<u16>,
    pub(super) latency_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) error_kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) error: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(super) response: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) next_at: Option<DateTime<Utc>>,
}

impl Entry {
    /// The entry of `a`, compacted.
    pub(super) fn of(a: &Attempt) -> Self {
        let success = a.outcome == AttemptOutcome::Succeeded;
        let excerpt = |s: &str| truncate_to(s, EXCERPT_BYTES);
        Self {
            event: a.event_id.clone(),
            event_type: a.event_type.clone(),
            attempt: a.attempt,
            at: a.attempted_at,
            outcome: a.outcome,
            status: a.status_code,
            latency_ms: a.latency_ms,
            error_kind: (!success).then(|| a.error_kind.clone()).flatten(),
            error: (!success)
                .then(|| a.error.as_deref().map(excerpt))
                .flatten(),
            response: if success {
                String::new()
            } else {
                excerpt(&a.response_body)
            },
            next_at: (!success).then_some(a.next_attempt_at).flatten(),
        }
    }

    /// Whether the entry is not a success.
    pub(super) fn is_failure(&self) -> bool {
        self.outcome != AttemptOutcome::Succeeded
    }

    /// The attempt record of this entry of webhook `sub` of `app`.
    pub(super) fn into_attempt(self, app: &AppId, sub: &SubscriptionId) -> Attempt {
        Attempt {
            app_id: app.clone(),
            webhook_id: webhook_id(&self.event, sub),
            event_id: self.event,
            event_type: self.event_type,
            subscription_id: sub.clone(),
            attempt: self.attempt,
            attempted_at: self.at,
            outcome: self.outcome,
            status_code: self.status,
            latency_ms: self.latency_ms,
            error_kind: self.error_kind,
            error: self.error,
            response_body: self.response,
            next_attempt_at: self.next_at,
        }
    }
}

/// The JSON of `value`, the body of a group or record before compression.
pub(super) fn json<T: Serialize>(kind: ItemKind, value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::unwritable(kind, e))
}

/// zstd of `json`.
pub(super) fn compress(kind: ItemKind, json: &[u8]) -> Result<Vec<u8>, StoreError> {
    zstd::bulk::compress(json, ZSTD_LEVEL).map_err(|e| StoreError::unwritable(kind, e))
}

/// The value a compressed body `z` holds.
pub(super) fn unpack<T: DeserializeOwned>(kind: ItemKind, z: &[u8]) -> Result<T, StoreError> {
    let mut json = Vec::new();
    zstd::stream::read::Decoder::new(z)
        .and_then(|d| d.take(MAX_UNPACKED + 1).read_to_end(&mut json))
        .map_err(|e| StoreError::corrupt(kind, e))?;
    if json.len() as u64 > MAX_UNPACKED {
        return Err(StoreError::corrupt(kind, "body decompresses past 8 MiB"));
    }
    serde_json::from_slice(&json).map_err(|e| StoreError::corrupt(kind, e))
}

/// An item's size as DynamoDB counts it for capacity units and its 400 KB limit:
/// attribute names plus values (strings and binaries by length, numbers about one
/// byte per two digits, maps and lists 3 bytes plus their elements).
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => n.trim_start_matches('-').len().div_ceil(2) + 1,
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, v)| k.len() + value_size(v) + 1)
                .sum::<usize>()
        }
        AttributeValue::L(l) => 3 + l.iter().map(|v| value_size(v) + 1).sum::<usize>(),
        AttributeValue::Ss(l) => l.iter().map(String::len).sum(),
        AttributeValue::Ns(l) => l.iter().map(|n| n.len().div_ceil(2) + 1).sum(),
        AttributeValue::Bs(l) => l.iter().map(|b| b.as_ref().len()).sum(),
        _ => 1,
    }
}

/// Write units of an item: one per started KiB.
pub fn write_units(item: &Item) -> usize {
    item_size(item).div_ceil(1024).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{from_item, to_item};
    use herald_core::delivery::RESPONSE_BODY_CAP;
    use herald_core::ObjectType;

    fn attempt(outcome: AttemptOutcome) -> Attempt {
        let e = Event::new(
            AppId::parse("shop").unwrap(),
            EventType::parse("update").unwrap(),
            ObjectType::parse("user").unwrap(),
            serde_json::json!({}),
        );
        let sub = SubscriptionId::new("sub_1");
        Attempt {
            outcome,
            status_code: Some(if outcome == AttemptOutcome::Succeeded {
                200
            } else {
                503
            }),
            latency_ms: 40,
            error_kind: (outcome != AttemptOutcome::Succeeded).then(|| "http_status".into()),
            error: (outcome != AttemptOutcome::Succeeded).then(|| "é".repeat(2_000)),
            response_body: "ü".repeat(RESPONSE_BODY_CAP / 2),
            next_attempt_at: Some(e.timestamp),
            ..Attempt::not_sent(&e, &sub, "", None)
        }
    }

    #[test]
    fn successes_keep_no_body_and_failures_keep_a_one_kib_excerpt() {
        let ok = attempt(AttemptOutcome::Succeeded);
        let entry = Entry::of(&ok);
        assert!(entry.response.is_empty() && entry.error.is_none() && entry.next_at.is_none());
        assert!(!entry.is_failure());
        let json = String::from_utf8(json(ItemKind::WebhookRecord, &entry).unwrap()).unwrap();
        assert!(
            !json.contains("response") && !json.contains("error"),
            "{json}"
        );
        let back = entry.into_attempt(&ok.app_id, &ok.subscription_id);
        assert_eq!(
            back,
            Attempt {
                response_body: String::new(),
                next_attempt_at: None,
                ..ok
            }
        );

        let bad = attempt(AttemptOutcome::Failed);
        let entry = Entry::of(&bad);
        assert!(entry.is_failure());
        assert!(entry.response.len() <= EXCERPT_BYTES && entry.response.len() >= EXCERPT_BYTES - 1);
        assert!(bad.response_body.starts_with(&entry.response));
        assert!(entry.error.as_ref().unwrap().len() <= EXCERPT_BYTES);
        let back = entry
            .clone()
            .into_attempt(&bad.app_id, &bad.subscription_id);
        assert_eq!(back.webhook_id, bad.webhook_id);
        assert_eq!(
            (
                back.status_code,
                back.error_kind,
                back.next_attempt_at,
                back.latency_ms
            ),
            (
                Some(503),
                Some("http_status".into()),
                bad.next_attempt_at,
                40
            )
        );
    }

    #[test]
    fn bodies_round_trip_through_zstd_in_a_binary_attribute() {
        let entries = vec![Entry::of(&attempt(AttemptOutcome::Failed))];
        let raw = json(ItemKind::WebhookRecord, &entries).unwrap();
        let z = compress(ItemKind::WebhookRecord, &raw).unwrap();
        assert!(z.len() < raw.len());
        let item = RecordItem {
            key: PkSk {
                pk: "W#shop#sub_1#0".into(),
                sk: "t#b_1".into(),
            },
            n: 1,
            failed: 1,
            expires_at: 9,
            z,
        };
        let stored = to_item(ItemKind::WebhookRecord, &item).unwrap();
        assert!(matches!(stored["z"], AttributeValue::B(_)));
        assert_eq!(stored["n"], AttributeValue::N("1".into()));
        let back: RecordItem = from_item(ItemKind::WebhookRecord, stored).unwrap();
        assert_eq!(back, item);
        let unpacked: Vec<Entry> = unpack(ItemKind::WebhookRecord, &back.z).unwrap();
        assert_eq!(unpacked, entries);
        assert!(matches!(
            unpack::<Vec<Entry>>(ItemKind::WebhookRecord, b"not zstd"),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
