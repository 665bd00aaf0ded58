//! The one write path: a batch's event groups, webhook records, trail items and index
//! entries, built from a [`BatchHistory`] and written with `BatchWriteItem`, 25 items
//! per call, beside its health counters (`super::health`).

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::time::Duration;

use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use herald_core::{AppId, AttemptOutcome, EventId, SubscriptionId};

use super::batch::{BatchAttempt, BatchHistory};
use super::items::{
    compress, item_size, json, Entry, GroupEntry, GroupItem, IndexItem, RecordItem, RecordRef,
    TrailItem,
};
use super::keys::{event_minute, id_millis, record_owner};
use super::HistoryStore;
use crate::{to_item, Item, ItemKind, PkSk, StoreError};

/// Items per `BatchWriteItem` call (DynamoDB's limit).
const BATCH_WRITE_MAX: usize = 25;
/// Rounds of retrying unprocessed items before giving up.
const WRITE_ROUNDS: u32 = 6;
/// Most uncompressed JSON in one group or record: split beyond it, so every item stays
/// under DynamoDB's 400 KB whatever the compression achieves.
pub(super) const MAX_BODY_JSON: usize = 300_000;
/// DynamoDB's item size limit.
const MAX_ITEM_BYTES: usize = 400 * 1024;

impl HistoryStore {
    /// Writes what one batch did: its event groups, one record per webhook and the
    /// trail items of attempts outside a first fan-out, with `BatchWriteItem`, 25
    /// items per call, retrying unprocessed items with backoff; and, at the same time,
    /// adds its attempts to each webhook's hourly health counters (one `UpdateItem`
    /// per webhook). Fails only if some history items could not be written at all: a
    /// health counter that could not be written is logged, not returned.
    pub async fn record(&self, batch: &BatchHistory) -> Result<(), StoreError> {
        let expires_at = batch.at.timestamp() + self.retention.as_secs() as i64;
        let history = async { self.write_all(batch_items(batch, expires_at)?).await };
        let health = self.count_health(batch.attempts.iter().map(|a| &a.attempt));
        let (written, ()) = futures::join!(history, health);
        written
    }

    async fn write_all(&self, items: Vec<Item>) -> Result<(), StoreError> {
        for chunk in items.chunks(BATCH_WRITE_MAX) {
            let mut requests = chunk
                .iter()
                .map(|item| {
                    Ok(WriteRequest::builder()
                        .put_request(
                            PutRequest::builder()
                                .set_item(Some(item.clone()))
                                .build()
                                .map_err(|e| StoreError::unwritable(ItemKind::WebhookRecord, e))?,
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
                    message: format!("{} history items left unprocessed", requests.len()),
                });
            }
        }
        Ok(())
    }
}

/// The items that record `batch`, each expiring at `expires_at` (Unix seconds):
/// event groups first, then webhook records, then trail items. An item that would
/// still exceed DynamoDB's limit (a single enormous event) is left out and logged.
pub(super) fn batch_items(batch: &BatchHistory, expires_at: i64) -> Result<Vec<Item>, StoreError> {
    let mut items = Vec::new();
    let mut push = |kind: ItemKind, item: Item| {
        if item_size(&item) > MAX_ITEM_BYTES {
            tracing::warn!(%kind, "history item too large to store; the deliveries are unaffected");
        } else {
            items.push(item);
        }
    };
    let (groups, kept) = group_items(batch, expires_at)?;
    for g in groups {
        push(ItemKind::EventGroup, to_item(ItemKind::EventGroup, &g)?);
    }
    let (records, trails) = record_items(batch, &kept, expires_at)?;
    let index = index_items(batch, &records, expires_at);
    for r in records {
        push(
            ItemKind::WebhookRecord,
            to_item(ItemKind::WebhookRecord, &r)?,
        );
    }
    for t in trails {
        push(ItemKind::Trail, to_item(ItemKind::Trail, &t)?);
    }
    for i in index {
        push(ItemKind::BatchIndex, to_item(ItemKind::BatchIndex, &i)?);
    }
    Ok(items)
}

/// The index entries of a batch: per app, the webhook records it wrote.
pub(super) fn index_items(
    batch: &BatchHistory,
    records: &[RecordItem],
    expires_at: i64,
) -> Vec<IndexItem> {
    let mut by_app: BTreeMap<AppId, BTreeMap<SubscriptionId, RecordRef>> = BTreeMap::new();
    for r in records {
        let Some((app, sub)) = record_owner(&r.key.pk) else {
            continue;
        };
        let entry = by_app
            .entry(app)
            .or_default()
            .entry(sub.clone())
            .or_insert(RecordRef {
                s: sub,
                p: 0,
                n: 0,
                f: 0,
            });
        entry.p += 1;
        entry.n += r.n;
        entry.f += r.failed;
    }
    by_app
        .into_iter()
        .map(|(app, refs)| {
            let w: Vec<RecordRef> = refs.into_values().collect();
            IndexItem {
                key: PkSk::index(&app, batch.shard, batch.at, &batch.id),
                ws: batch.shard,
                n: w.iter().map(|r| r.n).sum(),
                failed: w.iter().map(|r| r.f).sum(),
                w,
                expires_at,
            }
        })
        .collect()
}

/// An event of an app.
pub(super) type EventKey = (AppId, EventId);

/// The event groups of a batch, and the events they hold. Each event appears once
/// (duplicates in a batch are dropped), with the webhooks its first-fan-out attempts
/// went to; groups hold one app's events of one UTC minute, sorted by id, split so
/// their JSON stays under [`MAX_BODY_JSON`]. Events whose id is not a UUIDv7 are
/// grouped apart (their smallest id would hide the others' from lookups).
pub(super) fn group_items(
    batch: &BatchHistory,
    expires_at: i64,
) -> Result<(Vec<GroupItem>, HashSet<EventKey>), StoreError> {
    let mut entries: BTreeMap<EventKey, GroupEntry> = BTreeMap::new();
    for event in &batch.events {
        entries
            .entry((event.app_id.clone(), event.id.clone()))
            .or_insert_with(|| GroupEntry {
                event: event.clone(),
                to: Vec::new(),
                not_sent: Vec::new(),
            });
    }
    for a in batch.attempts.iter().filter(|a| a.first_fan_out) {
        let a = &a.attempt;
        if let Some(entry) = entries.get_mut(&(a.app_id.clone(), a.event_id.clone())) {
            let list = if a.outcome == AttemptOutcome::NotSent {
                &mut entry.not_sent
            } else {
                &mut entry.to
            };
            if !list.contains(&a.subscription_id) {
                list.push(a.subscription_id.clone());
            }
        }
    }
    let kept = entries.keys().cloned().collect();
    let mut buckets: BTreeMap<_, Vec<GroupEntry>> = BTreeMap::new();
    for ((app, id), entry) in entries {
        let minute = event_minute(&entry.event);
        buckets
            .entry((app, minute, id_millis(&id).is_some()))
            .or_default()
            .push(entry);
    }
    let mut groups = Vec::new();
    for ((app, minute, _), bucket) in buckets {
        let elements = bucket
            .iter()
            .map(|e| json(ItemKind::EventGroup, e))
            .collect::<Result<Vec<_>, _>>()?;
        for (range, body) in split_json(&elements, MAX_BODY_JSON) {
            let part = &bucket[range];
            let (first, last) = (&part[0].event.id, &part[part.len() - 1].event.id);
            groups.push(GroupItem {
                key: PkSk::group(&app, minute, batch.shard, first, &batch.id),
                first: first.to_string(),
                last: last.to_string(),
                at: batch.at,
                b: batch.id.clone(),
                ws: batch.shard,
                n: part.len(),
                expires_at,
                z: compress(ItemKind::EventGroup, &body)?,
            });
        }
    }
    Ok((groups, kept))
}

/// The webhook records of a batch (one per webhook, split in parts past
/// [`MAX_BODY_JSON`]: part 0 holds the oldest entries, each part newest first) and the trail items of the
/// attempts a lookup through the event's group would not find: those outside a first
/// fan-out, those of events not in `grouped`, and those in parts after the first.
pub(super) fn record_items(
    batch: &BatchHistory,
    grouped: &HashSet<EventKey>,
    expires_at: i64,
) -> Result<(Vec<RecordItem>, Vec<TrailItem>), StoreError> {
    let mut by_webhook: BTreeMap<(AppId, SubscriptionId), Vec<&BatchAttempt>> = BTreeMap::new();
    for a in &batch.attempts {
        by_webhook
            .entry((a.attempt.app_id.clone(), a.attempt.subscription_id.clone()))
            .or_default()
            .push(a);
    }
    let mut records = Vec::new();
    let mut trails = Vec::new();
    let mut trailed = HashSet::new();
    for ((app, sub), mut attempts) in by_webhook {
        // Newest first; split, the oldest run is part 0 and the newest the highest
        // part, whose key sorts first in a newest-first listing.
        attempts.sort_by(|x, y| {
            let (x, y) = (&x.attempt, &y.attempt);
            (y.attempted_at, &y.event_id, y.attempt).cmp(&(x.attempted_at, &x.event_id, x.attempt))
        });
        let entries: Vec<Entry> = attempts.iter().map(|a| Entry::of(&a.attempt)).collect();
        let elements = entries
            .iter()
            .map(|e| json(ItemKind::WebhookRecord, e))
            .collect::<Result<Vec<_>, _>>()?;
        let runs = split_json(&elements, MAX_BODY_JSON);
        let parts = runs.len();
        for (i, (range, body)) in runs.into_iter().enumerate() {
            let part = parts - 1 - i;
            let key = PkSk::record(&app, &sub, batch.shard, batch.at, &batch.id, part);
            for a in &attempts[range.clone()] {
                let found_by_group = a.first_fan_out
                    && part == 0
                    && grouped.contains(&(app.clone(), a.attempt.event_id.clone()));
                if found_by_group {
                    continue;
                }
                let trail = PkSk::trail(
                    &app,
                    &a.attempt.event_id,
                    &sub,
                    a.attempt.attempt,
                    &batch.id,
                    part,
                );
                if trailed.insert(trail.clone()) {
                    trails.push(TrailItem {
                        key: trail,
                        r: key.clone(),
                        expires_at,
                    });
                }
            }
            let entries = &entries[range];
            records.push(RecordItem {
                n: entries.len(),
                failed: entries.iter().filter(|e| e.is_failure()).count(),
                expires_at,
                z: compress(ItemKind::WebhookRecord, &body)?,
                key,
            });
        }
    }
    Ok((records, trails))
}

/// Splits JSON values into consecutive runs whose JSON array stays within `max` bytes
/// (a value larger than that alone makes a run of one), each with its array's bytes.
pub(super) fn split_json(elements: &[Vec<u8>], max: usize) -> Vec<(Range<usize>, Vec<u8>)> {
    let mut runs = Vec::new();
    let mut start = 0;
    let mut body = vec![b'['];
    for (i, element) in elements.iter().enumerate() {
        if i > start && body.len() + 1 + element.len() + 1 > max {
            body.push(b']');
            runs.push((start..i, std::mem::replace(&mut body, vec![b'['])));
            start = i;
        }
        if i > start {
            body.push(b',');
        }
        body.extend_from_slice(element);
    }
    if start < elements.len() {
        body.push(b']');
        runs.push((start..elements.len(), body));
    }
    runs
}

#[cfg(test)]
mod tests;
