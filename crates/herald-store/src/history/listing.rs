//! Attempts newest first, a webhook's or a whole app's: a lazy merge of shard
//! partitions (a webhook's records, or an app's batch index entries).

use std::collections::VecDeque;
use std::future::Future;

use chrono::Utc;
use futures::future::try_join_all;
use herald_core::{AppId, Attempt, SubscriptionId};

use super::cursor::{encode, RecordCursor};
use super::filter::{AttemptFilter, BATCH_SPAN};
use serde::de::DeserializeOwned;

use super::items::{unpack, Entry, IndexItem, RecordItem};
use super::keys::{
    index_partition, record_floor, record_partition, record_subscription, RECORD_CEILING, SHARDS,
};
use super::scope::ListingScope;
use super::HistoryStore;
use crate::{decode_items, Item, ItemKind, Page, PkSk, StoreError, MAX_PAGE_SIZE};

/// Records a shard's first query of a listing reads at most, and its later ones.
const FIRST_READ: i32 = 16;
const MAX_READ: i32 = 64;
/// Records one page examines at most: a filter that keeps little still answers in
/// bounded time, with fewer items (even none) and a cursor to go on.
const MAX_RECORDS_PER_PAGE: usize = 400;

/// What a newest-first listing merges: items of some shard partitions, ordered by
/// sort key, each expanding to attempts, with counts readable without expanding.
pub(super) trait Unit: DeserializeOwned {
    /// The kind of item, for errors.
    const KIND: ItemKind;
    /// The item's sort key (a record sort key: batch time first).
    fn sort_key(&self) -> &str;
    /// The attempts it holds, and those that are not successes.
    fn counts(&self) -> (usize, usize);
    /// Its attempts that `listing` can keep, newest first (the same list each time:
    /// a cursor is an offset into it).
    fn expand(
        self,
        store: &HistoryStore,
        listing: &Listing<'_>,
    ) -> impl Future<Output = Result<Vec<Attempt>, StoreError>> + Send;
}

/// What a listing lists: an app's attempts, or one webhook's.
pub(super) struct Listing<'a> {
    app: &'a AppId,
    subscription: Option<&'a SubscriptionId>,
    filter: &'a AttemptFilter,
}

impl Unit for RecordItem {
    const KIND: ItemKind = ItemKind::WebhookRecord;
    fn sort_key(&self) -> &str {
        &self.key.sk
    }
    fn counts(&self) -> (usize, usize) {
        (self.n, self.failed)
    }
    async fn expand(
        self,
        _: &HistoryStore,
        listing: &Listing<'_>,
    ) -> Result<Vec<Attempt>, StoreError> {
        let Some(sub) = listing.subscription else {
            return Ok(Vec::new());
        };
        let entries: Vec<Entry> = unpack(ItemKind::WebhookRecord, &self.z)?;
        Ok(entries
            .into_iter()
            .map(|e| e.into_attempt(listing.app, sub))
            .collect())
    }
}

impl Unit for IndexItem {
    const KIND: ItemKind = ItemKind::BatchIndex;
    fn sort_key(&self) -> &str {
        &self.key.sk
    }
    fn counts(&self) -> (usize, usize) {
        (self.n, self.failed)
    }
    /// The attempts of the records it names that can hold a kept attempt.
    async fn expand(
        self,
        store: &HistoryStore,
        listing: &Listing<'_>,
    ) -> Result<Vec<Attempt>, StoreError> {
        let app = listing.app;
        let keys = self
            .w
            .iter()
            .filter(|r| listing.filter.may_hold(r.n, r.f))
            .flat_map(|r| {
                (0..r.p).map(|part| PkSk::record_of_index(app, &r.s, self.ws, &self.key.sk, part))
            })
            .collect();
        let mut attempts = Vec::new();
        for record in store.get_records(keys).await? {
            let Some(sub) = record_subscription(app, &record.key.pk) else {
                continue;
            };
            let entries: Vec<Entry> = unpack(ItemKind::WebhookRecord, &record.z)?;
            attempts.extend(entries.into_iter().map(|e| e.into_attempt(app, &sub)));
        }
        attempts.sort_by(|a, b| {
            (b.attempted_at, &b.subscription_id, &b.event_id, b.attempt).cmp(&(
                a.attempted_at,
                &a.subscription_id,
                &a.event_id,
                a.attempt,
            ))
        });
        Ok(attempts)
    }
}

/// One shard partition of a listing, read lazily newest first.
struct ShardReader<T> {
    pk: String,
    buffer: VecDeque<T>,
    start: Option<Item>,
    done: bool,
    limit: i32,
}

impl HistoryStore {
    /// A webhook's attempts that `filter` keeps, newest first: its records (one per
    /// batch) of all shards, merged by sort key (batch time), each expanded newest
    /// first. A page examines at most [`MAX_RECORDS_PER_PAGE`] records, so a narrow
    /// filter may answer fewer items than `limit` (or none) with a cursor to go on; the
    /// listing ends when there is no cursor.
    pub async fn for_subscription(
        &self,
        app: &AppId,
        subscription: &SubscriptionId,
        filter: &AttemptFilter,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<Attempt>, StoreError> {
        let scope = ListingScope::Webhook(app, subscription).of_attempts(filter);
        let partitions = (0..SHARDS)
            .map(|s| record_partition(app, subscription, s))
            .collect();
        let listing = Listing {
            app,
            subscription: Some(subscription),
            filter,
        };
        self.merged::<RecordItem>(scope, partitions, &listing, limit, cursor)
            .await
    }

    /// Every attempt of an app's webhooks that `filter` keeps, newest first: its
    /// batch index entries of all shards merged by batch time, each expanded into the
    /// records it names (those that can hold a kept attempt), newest first. Bounded
    /// like [`HistoryStore::for_subscription`].
    pub async fn for_app(
        &self,
        app: &AppId,
        filter: &AttemptFilter,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<Attempt>, StoreError> {
        let scope = ListingScope::App(app).of_attempts(filter);
        let partitions = (0..SHARDS).map(|s| index_partition(app, s)).collect();
        let listing = Listing {
            app,
            subscription: None,
            filter,
        };
        self.merged::<IndexItem>(scope, partitions, &listing, limit, cursor)
            .await
    }

    /// The attempts the listing's filter keeps of the units of `partitions`, merged
    /// newest first by sort key, each unit expanded ([`Unit::expand`]).
    async fn merged<T: Unit>(
        &self,
        scope: String,
        partitions: Vec<String>,
        listing: &Listing<'_>,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<Attempt>, StoreError> {
        let filter = listing.filter;
        let resume = cursor
            .map(|c| RecordCursor::decode(c, &scope))
            .transpose()?;
        let limit = limit.clamp(1, MAX_PAGE_SIZE) as usize;
        // Records older than the retention are expired, whether or not TTL has run.
        let mut floor = record_floor(Utc::now() - self.retention);
        if let Some(since) = filter.since {
            // A batch's attempts come after its start, by BATCH_SPAN at most.
            floor = floor.max(record_floor(since - BATCH_SPAN));
        }
        let mut ceiling = resume
            .as_ref()
            .map_or(RECORD_CEILING.to_owned(), |c| c.k.clone());
        if let Some(until) = filter.until {
            // Batches that began at or after `until` made no attempt before it.
            ceiling = ceiling.min(record_floor(until));
        }
        let mut items = Vec::new();
        if ceiling < floor {
            return Ok(Page {
                items,
                next_cursor: None,
            });
        }
        let first = ((limit / usize::from(SHARDS)) as i32 + 1).min(FIRST_READ);
        let mut shards: Vec<ShardReader<T>> = partitions
            .into_iter()
            .map(|pk| ShardReader {
                pk,
                buffer: VecDeque::new(),
                start: None,
                done: false,
                limit: first,
            })
            .collect();
        let mut last: Option<(String, usize)> = None;
        let mut examined = 0;
        loop {
            while shards.iter().any(|s| s.buffer.is_empty() && !s.done) {
                try_join_all(
                    shards
                        .iter_mut()
                        .filter(|s| s.buffer.is_empty() && !s.done)
                        .map(|s| self.read_shard(s, &floor, &ceiling)),
                )
                .await?;
            }
            let Some(next) = shards
                .iter_mut()
                .filter(|s| !s.buffer.is_empty())
                .max_by(|a, b| a.buffer[0].sort_key().cmp(b.buffer[0].sort_key()))
            else {
                return Ok(Page {
                    items,
                    next_cursor: None,
                });
            };
            if items.len() == limit || examined == MAX_RECORDS_PER_PAGE {
                let (k, o) = last.unwrap_or_default();
                return Ok(Page {
                    items,
                    next_cursor: Some(encode(&RecordCursor { s: scope, k, o })),
                });
            }
            let unit = next.buffer.pop_front().expect("not empty");
            examined += 1;
            let key = unit.sort_key().to_owned();
            let (n, failed) = unit.counts();
            if !filter.may_hold(n, failed) {
                last = Some((key, n));
                continue;
            }
            let skip = match &resume {
                Some(c) if c.k == key => c.o,
                _ => 0,
            };
            let attempts = unit.expand(self, listing).await?;
            let total = attempts.len();
            let mut taken = skip;
            for attempt in attempts.into_iter().skip(skip) {
                if items.len() == limit {
                    break;
                }
                if filter.matches(&attempt) {
                    items.push(attempt);
                }
                taken += 1;
            }
            last = Some((key, taken));
            if items.len() == limit && taken < total {
                let (k, o) = last.unwrap_or_default();
                return Ok(Page {
                    items,
                    next_cursor: Some(encode(&RecordCursor { s: scope, k, o })),
                });
            }
        }
    }

    /// Reads the next units of one shard, newest first, between `floor` and
    /// `ceiling` (inclusive), unexpired.
    async fn read_shard<T: Unit>(
        &self,
        shard: &mut ShardReader<T>,
        floor: &str,
        ceiling: &str,
    ) -> Result<(), StoreError> {
        let out = self
            .query(&shard.pk, Some((floor, ceiling)), "")
            .scan_index_forward(false)
            .limit(shard.limit)
            .set_exclusive_start_key(shard.start.take())
            .send()
            .await
            .map_err(|e| StoreError::dynamo("Query", e))?;
        shard.buffer.extend(decode_items::<T>(T::KIND, out.items)?);
        shard.start = out.last_evaluated_key.filter(|k| !k.is_empty());
        shard.done = shard.start.is_none();
        shard.limit = (shard.limit * 2).min(MAX_READ);
        Ok(())
    }
}
