//! An app's events, newest first: its event groups read day by day (8 shard
//! partitions each), a minute at a time.
//!
//! A group holds events of one minute only and is keyed by its smallest id, and ids
//! sort by time, so once every shard's next group is of an earlier minute, the events
//! of the minute at hand are all known: they are sorted, deduplicated (an event fanned
//! out twice is in two groups) and listed before the next minute is read.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Days, NaiveDate, SecondsFormat, TimeDelta, Utc};
use futures::future::try_join_all;
use herald_core::{AppId, Event, EventType, ObjectType, SubscriptionId};

use super::cursor::{encode, BoundCursor};
use super::filter::fingerprint_of;
use super::items::{unpack, GroupEntry, GroupItem};
use super::keys::{floor_millis, group_partition, id_floor, id_millis, minute_start, SHARDS};
use super::scope::ListingScope;
use super::HistoryStore;
use crate::{decode_items, Item, ItemKind, Page, StoreError, MAX_PAGE_SIZE};

/// Groups a page reads at most: a filter that keeps little still answers in bounded
/// time, with fewer items (even none) and a cursor to go on.
const MAX_GROUPS_PER_PAGE: usize = 400;
/// Groups one shard query reads at a time.
const GROUP_READ: i32 = 32;
/// How far past the present an event listing without `until` looks, for clocks that
/// run ahead of this one.
const CLOCK_SKEW: TimeDelta = TimeDelta::minutes(5);
/// Above every event id (`evt_` then hex digits).
const ID_CEILING: &str = "evt_~";

/// The events a listing keeps; the default keeps every one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// Only events of this type.
    pub event_type: Option<EventType>,
    /// Only events about this object type.
    pub object_type: Option<ObjectType>,
    /// Only events published at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only events published before this time.
    pub until: Option<DateTime<Utc>>,
}

impl EventQuery {
    /// Whether `event` is kept (its publish time is the one its id carries).
    pub fn matches(&self, event: &Event) -> bool {
        let ms = id_millis(&event.id);
        self.event_type
            .as_ref()
            .is_none_or(|t| &event.event_type == t)
            && self
                .object_type
                .as_ref()
                .is_none_or(|t| &event.object_type == t)
            && self
                .since
                .is_none_or(|t| ms.is_some_and(|ms| ms >= t.timestamp_millis()))
            && self
                .until
                .is_none_or(|t| ms.is_some_and(|ms| ms < t.timestamp_millis()))
    }

    /// The cursor scope's suffix for this query.
    pub fn fingerprint(&self) -> String {
        if *self == Self::default() {
            return String::new();
        }
        let time = |t: Option<DateTime<Utc>>| {
            t.map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
                .unwrap_or_default()
        };
        fingerprint_of(&format!(
            "{}|{}|{}|{}",
            self.event_type.as_ref().map_or("", EventType::as_str),
            self.object_type.as_ref().map_or("", ObjectType::as_str),
            time(self.since),
            time(self.until)
        ))
    }
}

/// An event as an event listing shows it: as published, with the webhooks its
/// fan-out matched.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedEvent {
    /// The event, its data as published.
    pub event: Event,
    /// Webhooks it was sent to (its first attempts).
    pub sent_to: Vec<SubscriptionId>,
    /// Webhooks it matched but was not sent to (disabled then).
    pub not_sent: Vec<SubscriptionId>,
}

impl ListedEvent {
    /// The event of one or more group entries of it (an event fanned out twice, its
    /// message received twice, is in two groups): the union of their webhooks.
    pub(super) fn merged(entries: impl IntoIterator<Item = GroupEntry>) -> Option<Self> {
        let mut entries = entries.into_iter();
        let first = entries.next()?;
        let mut listed = Self {
            event: first.event,
            sent_to: first.to,
            not_sent: first.not_sent,
        };
        for entry in entries {
            listed.sent_to.extend(entry.to);
            listed.not_sent.extend(entry.not_sent);
        }
        for list in [&mut listed.sent_to, &mut listed.not_sent] {
            list.sort();
            list.dedup();
        }
        Some(listed)
    }
}

/// One shard partition of one day's groups, read lazily newest first.
struct GroupReader {
    pk: String,
    buffer: VecDeque<(i64, GroupItem)>,
    start: Option<Item>,
    done: bool,
}

impl GroupReader {
    /// The minute of the next group, if one is buffered.
    fn head_minute(&self) -> Option<i64> {
        self.buffer.front().map(|(m, _)| *m)
    }
}

impl HistoryStore {
    /// An app's events that `query` keeps, newest first (by id, which is by publish
    /// time), with the webhooks each matched. Only events that matched a webhook are
    /// kept in the history, for its retention. A page reads at most
    /// [`MAX_GROUPS_PER_PAGE`] groups, so a narrow query may answer fewer items than
    /// `limit` (or none) with a cursor to go on; the listing ends when there is no
    /// cursor.
    pub async fn list_events(
        &self,
        app: &AppId,
        query: &EventQuery,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<ListedEvent>, StoreError> {
        let scope = ListingScope::Events(app).of_events(query);
        let resume = cursor.map(|c| BoundCursor::decode(c, &scope)).transpose()?;
        let limit = limit.clamp(1, MAX_PAGE_SIZE) as usize;
        let now = Utc::now();
        let floor_at = query
            .since
            .map_or(now - self.retention, |s| s.max(now - self.retention));
        let mut top_ms = query.until.unwrap_or(now + CLOCK_SKEW).timestamp_millis();
        let mut bound = query
            .until
            .map_or(ID_CEILING.to_owned(), |u| id_floor(u.timestamp_millis()));
        if let Some((c, ms)) = resume {
            top_ms = top_ms.min(ms);
            bound = bound.min(c.k);
        }
        let floor_ms = minute_start(floor_at.timestamp_millis());
        let lo = id_floor(floor_ms);
        let mut items = Vec::new();
        let mut examined = 0;
        let (Some(top_day), Some(floor_day)) = (day_of(top_ms), day_of(floor_ms)) else {
            return Ok(Page {
                items,
                next_cursor: None,
            });
        };
        let mut day = top_day;
        while day >= floor_day && lo < bound {
            let mut shards: Vec<GroupReader> = (0..SHARDS)
                .map(|s| GroupReader {
                    pk: group_partition(app, day, s),
                    buffer: VecDeque::new(),
                    start: None,
                    done: false,
                })
                .collect();
            loop {
                self.fill(&mut shards, &lo, &bound, None).await?;
                let Some(minute) = shards.iter().filter_map(GroupReader::head_minute).max() else {
                    break;
                };
                // Every group of this minute, from every shard.
                self.fill(&mut shards, &lo, &bound, Some(minute)).await?;
                let mut entries: BTreeMap<String, Vec<GroupEntry>> = BTreeMap::new();
                for shard in &mut shards {
                    while shard.head_minute() == Some(minute) {
                        let (_, group) = shard.buffer.pop_front().expect("a head");
                        examined += 1;
                        for entry in unpack::<Vec<GroupEntry>>(ItemKind::EventGroup, &group.z)? {
                            if entry.event.id.as_str() < bound.as_str()
                                && query.matches(&entry.event)
                            {
                                entries
                                    .entry(entry.event.id.to_string())
                                    .or_default()
                                    .push(entry);
                            }
                        }
                    }
                }
                for (id, same) in entries.into_iter().rev() {
                    items.extend(ListedEvent::merged(same));
                    if items.len() == limit {
                        return Ok(Page {
                            items,
                            next_cursor: Some(encode(&BoundCursor { s: scope, k: id })),
                        });
                    }
                }
                bound = id_floor(minute);
                if examined >= MAX_GROUPS_PER_PAGE {
                    return Ok(Page {
                        items,
                        next_cursor: Some(encode(&BoundCursor { s: scope, k: bound })),
                    });
                }
            }
            let Some(earlier) = day.checked_sub_days(Days::new(1)) else {
                break;
            };
            day = earlier;
        }
        Ok(Page {
            items,
            next_cursor: None,
        })
    }

    /// Reads on until each shard has a group buffered or is done; with `minute`, until
    /// each shard's buffer also reaches past that minute (or the shard is done), so
    /// every group of the minute is buffered.
    async fn fill(
        &self,
        shards: &mut [GroupReader],
        lo: &str,
        bound: &str,
        minute: Option<i64>,
    ) -> Result<(), StoreError> {
        let wants = |s: &GroupReader| {
            !s.done
                && match (minute, s.buffer.back()) {
                    (_, None) => true,
                    (Some(m), Some((last, _))) => *last == m,
                    (None, Some(_)) => false,
                }
        };
        while shards.iter().any(wants) {
            try_join_all(
                shards
                    .iter_mut()
                    .filter(|s| wants(s))
                    .map(|s| self.read_groups(s, lo, bound)),
            )
            .await?;
        }
        Ok(())
    }

    /// Reads the next groups of one shard, newest first, whose smallest id is in
    /// `lo..bound`, unexpired; groups whose smallest id is not a Herald-made id (no
    /// minute in it) are not listed.
    async fn read_groups(
        &self,
        shard: &mut GroupReader,
        lo: &str,
        bound: &str,
    ) -> Result<(), StoreError> {
        let out = self
            .query(&shard.pk, Some((lo, bound)), "")
            .scan_index_forward(false)
            .limit(GROUP_READ)
            .set_exclusive_start_key(shard.start.take())
            .send()
            .await
            .map_err(|e| StoreError::dynamo("Query", e))?;
        for group in decode_items::<GroupItem>(ItemKind::EventGroup, out.items)? {
            if group.first.as_str() >= bound {
                continue;
            }
            if let Some(ms) = floor_millis(&group.first) {
                shard.buffer.push_back((minute_start(ms), group));
            }
        }
        shard.start = out.last_evaluated_key.filter(|k| !k.is_empty());
        shard.done = shard.start.is_none();
        Ok(())
    }
}

/// The UTC day of Unix millisecond `ms`.
fn day_of(ms: i64) -> Option<NaiveDate> {
    DateTime::from_timestamp_millis(ms).map(|t| t.date_naive())
}

#[cfg(test)]
mod tests {
    use herald_core::testing;

    use super::*;

    #[test]
    fn a_query_narrows_by_type_object_type_and_publish_time() {
        let e = testing::event("shop", "invoice.paid");
        let ms = id_millis(&e.id).unwrap();
        let at = |ms: i64| DateTime::from_timestamp_millis(ms).unwrap();
        assert!(EventQuery::default().matches(&e));
        let q = |q: EventQuery| q.matches(&e);
        assert!(q(EventQuery {
            event_type: Some(e.event_type.clone()),
            object_type: Some(e.object_type.clone()),
            since: Some(at(ms)),
            until: Some(at(ms + 1)),
        }));
        assert!(!q(EventQuery {
            event_type: Some(EventType::parse("invoice.sent").unwrap()),
            ..Default::default()
        }));
        assert!(!q(EventQuery {
            object_type: Some(ObjectType::parse("nothing").unwrap()),
            ..Default::default()
        }));
        assert!(!q(EventQuery {
            until: Some(at(ms)),
            ..Default::default()
        }));
        assert!(!q(EventQuery {
            since: Some(at(ms + 1)),
            ..Default::default()
        }));
        assert_eq!(EventQuery::default().fingerprint(), "");
        let typed = EventQuery {
            event_type: Some(e.event_type.clone()),
            ..Default::default()
        };
        assert_ne!(typed.fingerprint(), "");
        assert_ne!(
            typed.fingerprint(),
            EventQuery {
                object_type: Some(ObjectType::parse("invoice").unwrap()),
                ..Default::default()
            }
            .fingerprint()
        );
    }

    #[test]
    fn an_event_in_two_groups_is_listed_once_with_the_union_of_its_webhooks() {
        let e = testing::event("shop", "invoice.paid");
        let sub = |s: &str| SubscriptionId::new(s);
        let entry = |to: &[&str], not_sent: &[&str]| GroupEntry {
            event: e.clone(),
            to: to.iter().map(|s| sub(s)).collect(),
            not_sent: not_sent.iter().map(|s| sub(s)).collect(),
        };
        let listed = ListedEvent::merged([
            entry(&["sub_b", "sub_a"], &[]),
            entry(&["sub_a"], &["sub_c"]),
        ])
        .unwrap();
        assert_eq!(listed.event, e);
        assert_eq!(listed.sent_to, vec![sub("sub_a"), sub("sub_b")]);
        assert_eq!(listed.not_sent, vec![sub("sub_c")]);
        assert_eq!(ListedEvent::merged([]), None);
    }

    #[test]
    fn ids_sort_below_the_floor_of_any_later_millisecond() {
        let e = testing::event("shop", "invoice.paid");
        let ms = id_millis(&e.id).unwrap();
        assert!(e.id.as_str() < id_floor(ms + 1).as_str());
        assert!(e.id.as_str() >= id_floor(ms).as_str());
        assert!(id_floor(ms).as_str() < ID_CEILING);
        assert_eq!(floor_millis(&id_floor(ms)), Some(ms));
        assert_eq!(floor_millis(e.id.as_str()), Some(ms));
    }
}
