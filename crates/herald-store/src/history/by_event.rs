//! An event's attempts (its group's targets and its trail) and a stored event by id.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use chrono::Utc;
use futures::future::try_join_all;
use herald_core::{AppId, Attempt, Event, EventId, SubscriptionId};

use super::cursor::{encode, OffsetCursor};
use super::event_listing::ListedEvent;
use super::filter::AttemptFilter;
use super::items::{unpack, Entry, GroupEntry, GroupItem, RecordItem, TrailItem};
use super::keys::{group_lookup, record_subscription, trail_partition};
use super::recovery::is_marker;
use super::scope::ListingScope;
use super::HistoryStore;

/// An event as the history keeps it, with the webhooks its fan-out matched.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// The event, its data as published.
    pub event: Event,
    /// Webhooks it was sent to (its first attempts).
    pub sent_to: Vec<SubscriptionId>,
    /// Webhooks it matched but was not sent to (disabled then).
    pub not_sent: Vec<SubscriptionId>,
    /// Every attempt of it, newest first (re-sends included).
    pub attempts: Vec<Attempt>,
}
use crate::{decode_items, from_item, Item, ItemKind, Page, PkSk, StoreError, MAX_PAGE_SIZE};

/// Groups one lookup query reads at a time (the containing one is normally first).
const GROUP_READ: i32 = 2;
/// Keys per `BatchGetItem` call (DynamoDB's limit).
const BATCH_GET_MAX: usize = 100;
/// Rounds of retrying unprocessed keys.
const READ_ROUNDS: u32 = 6;

impl HistoryStore {
    /// An event's attempts, newest first: those of its first fan-out (the records its
    /// group's targets lead to) and those its trail items point at.
    pub async fn for_event(
        &self,
        app: &AppId,
        event: &EventId,
        filter: &AttemptFilter,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<Attempt>, StoreError> {
        let scope = ListingScope::Event(app, event).of_attempts(filter);
        let offset = cursor
            .map(|c| OffsetCursor::decode(c, &scope))
            .transpose()?
            .map_or(0, |c| c.o);
        let limit = limit.clamp(1, MAX_PAGE_SIZE) as usize;
        let groups = self.groups_with(app, event, false).await?;
        let mut attempts = self.attempts_of(app, event, &groups).await?;
        attempts.retain(|a| filter.matches(a));
        let more = attempts.len() > offset + limit;
        Ok(Page {
            items: attempts.into_iter().skip(offset).take(limit).collect(),
            next_cursor: more.then(|| {
                encode(&OffsetCursor {
                    s: scope,
                    o: offset + limit,
                })
            }),
        })
    }

    /// A stored event of an app (unexpired), for re-sending; `None` for one that
    /// matched no webhook, has expired, or whose id is not a UUIDv7.
    pub async fn get_event(&self, app: &AppId, id: &EventId) -> Result<Option<Event>, StoreError> {
        Ok(self
            .groups_with(app, id, true)
            .await?
            .into_iter()
            .next()
            .map(|(_, entry)| entry.event))
    }

    /// Every attempt of `event` (newest first): those of the records its groups'
    /// targets lead to, and those its trail items point at.
    async fn attempts_of(
        &self,
        app: &AppId,
        event: &EventId,
        groups: &[(GroupItem, GroupEntry)],
    ) -> Result<Vec<Attempt>, StoreError> {
        let mut keys = BTreeSet::new();
        for (group, entry) in groups {
            for sub in entry.to.iter().chain(&entry.not_sent) {
                keys.insert(PkSk::record(app, sub, group.ws, group.at, &group.b, 0));
            }
        }
        keys.extend(self.trail(app, event).await?);
        let mut attempts = Vec::new();
        for record in self.get_records(keys.into_iter().collect()).await? {
            let Some(sub) = record_subscription(app, &record.key.pk) else {
                continue;
            };
            let entries: Vec<Entry> = unpack(ItemKind::WebhookRecord, &record.z)?;
            attempts.extend(
                entries
                    .into_iter()
                    .filter(|e| &e.event == event)
                    .map(|e| e.into_attempt(app, &sub)),
            );
        }
        attempts.sort_by(|a, b| {
            (b.attempted_at, &b.subscription_id, b.attempt).cmp(&(
                a.attempted_at,
                &a.subscription_id,
                a.attempt,
            ))
        });
        Ok(attempts)
    }

    /// A stored event of an app (unexpired) with the webhooks its fan-out matched
    /// (those it was sent to and those it was not sent to: disabled) and every attempt
    /// of it, read once; `None` as for [`HistoryStore::get_event`]. An event fanned out
    /// twice (its message received twice) lists the union.
    pub async fn stored_event(
        &self,
        app: &AppId,
        id: &EventId,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let groups = self.groups_with(app, id, false).await?;
        let attempts = self.attempts_of(app, id, &groups).await?;
        let Some(listed) = ListedEvent::merged(groups.into_iter().map(|(_, entry)| entry)) else {
            return Ok(None);
        };
        Ok(Some(StoredEvent {
            event: listed.event,
            sent_to: listed.sent_to,
            not_sent: listed.not_sent,
            attempts,
        }))
    }

    /// The groups holding event `id` (at most one per shard; with `first_only`, the
    /// first found), with its entry.
    async fn groups_with(
        &self,
        app: &AppId,
        id: &EventId,
        first_only: bool,
    ) -> Result<Vec<(GroupItem, GroupEntry)>, StoreError> {
        let Some(lookup) = group_lookup(app, id) else {
            return Ok(Vec::new());
        };
        let found = try_join_all(
            lookup
                .partitions
                .iter()
                .map(|pk| self.group_in(pk, &lookup.lo, &lookup.hi, id)),
        )
        .await?;
        let mut found: Vec<_> = found.into_iter().flatten().collect();
        if first_only {
            found.truncate(1);
        }
        Ok(found)
    }

    /// The newest group of partition `pk` in `lo..=hi` holding event `id`.
    async fn group_in(
        &self,
        pk: &str,
        lo: &str,
        hi: &str,
        id: &EventId,
    ) -> Result<Option<(GroupItem, GroupEntry)>, StoreError> {
        let mut start = None;
        loop {
            let out = self
                .query(pk, Some((lo, hi)), "#last >= :id")
                .expression_attribute_names("#last", "last")
                .expression_attribute_values(":id", AttributeValue::S(id.to_string()))
                .scan_index_forward(false)
                .limit(GROUP_READ)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StoreError::dynamo("Query", e))?;
            for group in decode_items::<GroupItem>(ItemKind::EventGroup, out.items)? {
                let entries: Vec<GroupEntry> = unpack(ItemKind::EventGroup, &group.z)?;
                if let Some(entry) = entries.into_iter().find(|e| &e.event.id == id) {
                    return Ok(Some((group, entry)));
                }
            }
            start = out.last_evaluated_key.filter(|k| !k.is_empty());
            if start.is_none() {
                return Ok(None);
            }
        }
    }

    /// The record keys an event's trail items point at (unexpired).
    async fn trail(&self, app: &AppId, event: &EventId) -> Result<Vec<PkSk>, StoreError> {
        let mut keys = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .query(&trail_partition(app, event), None, "")
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StoreError::dynamo("Query", e))?;
            let trails = out
                .items
                .map(|items| items.into_iter().filter(|i| !is_marker(i)).collect());
            keys.extend(
                decode_items::<TrailItem>(ItemKind::Trail, trails)?
                    .into_iter()
                    .map(|t| t.r),
            );
            start = out.last_evaluated_key.filter(|k| !k.is_empty());
            if start.is_none() {
                return Ok(keys);
            }
        }
    }

    /// The unexpired records of `keys`, with `BatchGetItem` (100 keys per call,
    /// unprocessed keys retried with backoff).
    pub(super) async fn get_records(&self, keys: Vec<PkSk>) -> Result<Vec<RecordItem>, StoreError> {
        let now = Utc::now().timestamp();
        let mut records = Vec::new();
        for chunk in keys.chunks(BATCH_GET_MAX) {
            let mut pending: Vec<Item> = chunk.iter().cloned().map(PkSk::into_item).collect();
            for round in 0..READ_ROUNDS {
                if pending.is_empty() {
                    break;
                }
                if round > 0 {
                    tokio::time::sleep(Duration::from_millis(25 << round)).await;
                }
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(pending))
                    .build()
                    .map_err(|e| StoreError::unwritable(ItemKind::WebhookRecord, e))?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| StoreError::dynamo("BatchGetItem", e))?;
                let mut responses: HashMap<String, Vec<Item>> = out.responses.unwrap_or_default();
                for item in responses.remove(&self.table).unwrap_or_default() {
                    let record: RecordItem = from_item(ItemKind::WebhookRecord, item)?;
                    if record.expires_at > now {
                        records.push(record);
                    }
                }
                pending = out
                    .unprocessed_keys
                    .and_then(|mut m| m.remove(&self.table))
                    .map(|k| k.keys)
                    .unwrap_or_default();
            }
            if !pending.is_empty() {
                return Err(StoreError::Dynamo {
                    operation: "BatchGetItem",
                    message: format!("{} history records left unread", pending.len()),
                });
            }
        }
        Ok(records)
    }
}
