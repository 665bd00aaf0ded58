//! A webhook's attempts newest first: a lazy merge of its shard partitions.

use std::collections::VecDeque;

use chrono::Utc;
use futures::future::try_join_all;
use herald_core::{AppId, Attempt, SubscriptionId};

use super::cursor::{encode, RecordCursor};
use super::filter::{AttemptFilter, BATCH_SPAN};
use super::items::{unpack, Entry, RecordItem};
use super::keys::{record_floor, record_partition, RECORD_CEILING, SHARDS};
use super::HistoryStore;
use crate::{decode_items, Item, ItemKind, Page, StoreError, MAX_PAGE_SIZE};

/// Records a shard's first query of a listing reads at most, and its later ones.
const FIRST_READ: i32 = 16;
const MAX_READ: i32 = 64;
/// Records one page examines at most: a filter that keeps little still answers in
/// bounded time, with fewer items (even none) and a cursor to go on.
const MAX_RECORDS_PER_PAGE: usize = 400;

/// One shard partition of a webhook's records, read lazily newest first.
struct ShardReader {
    pk: String,
    buffer: VecDeque<RecordItem>,
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
        let scope = format!("{app}#{subscription}{}", filter.fingerprint());
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
        let mut shards: Vec<ShardReader> = (0..SHARDS)
            .map(|s| ShardReader {
                pk: record_partition(app, subscription, s),
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
                .max_by(|a, b| a.buffer[0].key.sk.cmp(&b.buffer[0].key.sk))
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
            let record = next.buffer.pop_front().expect("not empty");
            examined += 1;
            if !filter.may_hold(record.n, record.failed) {
                last = Some((record.key.sk, record.n));
                continue;
            }
            let skip = match &resume {
                Some(c) if c.k == record.key.sk => c.o,
                _ => 0,
            };
            let entries: Vec<Entry> = unpack(ItemKind::WebhookRecord, &record.z)?;
            let mut taken = skip;
            for entry in entries.into_iter().skip(skip) {
                if items.len() == limit {
                    break;
                }
                let attempt = entry.into_attempt(app, subscription);
                if filter.matches(&attempt) {
                    items.push(attempt);
                }
                taken += 1;
            }
            last = Some((record.key.sk, taken));
            if items.len() == limit && taken < record.n {
                let (k, o) = last.unwrap_or_default();
                return Ok(Page {
                    items,
                    next_cursor: Some(encode(&RecordCursor { s: scope, k, o })),
                });
            }
        }
    }

    /// Reads the next records of one shard, newest first, between `floor` and
    /// `ceiling` (inclusive), unexpired.
    async fn read_shard(
        &self,
        shard: &mut ShardReader,
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
        shard.buffer.extend(decode_items::<RecordItem>(
            ItemKind::WebhookRecord,
            out.items,
        )?);
        shard.start = out.last_evaluated_key.filter(|k| !k.is_empty());
        shard.done = shard.start.is_none();
        shard.limit = (shard.limit * 2).min(MAX_READ);
        Ok(())
    }
}
