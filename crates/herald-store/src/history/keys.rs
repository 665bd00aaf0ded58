//! The history table's keys: the only place each kind of item's key is spelled out.
//!
//! - event group: `pk = E#{app}#{YYYY-MM-DD}#{shard}`, `sk = {first event id}#{batch}`
//! - webhook record: `pk = W#{app}#{sub}#{shard}`, `sk = {batch time, µs, Z}#{batch}[#{part:03}]`
//! - trail item: `pk = T#{app}#{event}`, `sk = {sub}#{attempt:04}#{batch}[#{part:03}]`
//! - index entry: `pk = D#{app}#{shard}`, `sk = {batch time, µs, Z}#{batch}`
//! - health counters: `pk = H#{app}#{sub}`, `sk = {UTC hour, YYYY-MM-DDTHH}`

use chrono::{DateTime, NaiveDate, SecondsFormat, TimeZone, Utc};
use herald_core::{AppId, Event, EventId, SubscriptionId};

use crate::PkSk;

/// Partitions each batch's writes are spread over (a batch picks one at random).
pub const SHARDS: u8 = 8;
/// Prefix of batch ids.
pub(super) const BATCH_PREFIX: &str = "b_";
/// Milliseconds in a minute.
const MINUTE_MS: i64 = 60_000;
/// How a health counter item's sort key spells its UTC hour.
const HOUR_FORMAT: &str = "%Y-%m-%dT%H";

impl PkSk {
    /// An event group: the events of one batch, app and minute, sorted by id.
    pub(super) fn group(
        app: &AppId,
        minute: DateTime<Utc>,
        shard: u8,
        first: &EventId,
        batch: &str,
    ) -> Self {
        Self {
            pk: group_partition(app, minute.date_naive(), shard),
            sk: format!("{first}#{batch}"),
        }
    }

    /// Part `part` of what happened to one webhook in one batch.
    pub(super) fn record(
        app: &AppId,
        sub: &SubscriptionId,
        shard: u8,
        at: DateTime<Utc>,
        batch: &str,
        part: usize,
    ) -> Self {
        let time = at.to_rfc3339_opts(SecondsFormat::Micros, true);
        Self {
            pk: record_partition(app, sub, shard),
            sk: if part == 0 {
                format!("{time}#{batch}")
            } else {
                format!("{time}#{batch}#{part:03}")
            },
        }
    }

    /// The trail item pointing at a webhook record (part `part` of a batch's record)
    /// that holds attempts of `event` its group does not lead to.
    pub(super) fn trail(
        app: &AppId,
        event: &EventId,
        sub: &SubscriptionId,
        attempt: u32,
        batch: &str,
        part: usize,
    ) -> Self {
        let sk = format!("{sub}#{attempt:04}#{batch}");
        Self {
            pk: trail_partition(app, event),
            sk: if part == 0 {
                sk
            } else {
                format!("{sk}#{part:03}")
            },
        }
    }

    /// The health counters of one webhook in one UTC hour (`hour` is its start).
    pub(super) fn health(app: &AppId, sub: &SubscriptionId, hour: DateTime<Utc>) -> Self {
        Self {
            pk: health_partition(app, sub),
            sk: health_hour(hour),
        }
    }
}

/// The partition of a webhook's health counters, one item per UTC hour.
pub(super) fn health_partition(app: &AppId, sub: &SubscriptionId) -> String {
    format!("H#{app}#{sub}")
}

/// The sort key of the health counters of the UTC hour starting at `hour`.
pub(super) fn health_hour(hour: DateTime<Utc>) -> String {
    hour.format(HOUR_FORMAT).to_string()
}

/// The start of the UTC hour a health counter sort key names.
pub(super) fn parse_health_hour(sk: &str) -> Option<DateTime<Utc>> {
    if sk.len() != 13 {
        return None;
    }
    chrono::NaiveDateTime::parse_from_str(&format!("{sk}:00"), &format!("{HOUR_FORMAT}:%M"))
        .ok()
        .map(|t| t.and_utc())
}

impl PkSk {
    /// An app's index entry of one batch: which of its webhooks' records the batch wrote.
    pub(super) fn index(app: &AppId, shard: u8, at: DateTime<Utc>, batch: &str) -> Self {
        Self {
            pk: index_partition(app, shard),
            sk: format!("{}#{batch}", record_floor(at)),
        }
    }

    /// Part `part` of webhook `sub`'s record of the batch indexed at `index`
    /// (an index entry's sort key is its batch's record key).
    pub(super) fn record_of_index(
        app: &AppId,
        sub: &SubscriptionId,
        shard: u8,
        index: &str,
        part: usize,
    ) -> Self {
        Self {
            pk: record_partition(app, sub, shard),
            sk: if part == 0 {
                index.to_owned()
            } else {
                format!("{index}#{part:03}")
            },
        }
    }
}

/// The partition of an app's batch index entries in one shard.
pub(super) fn index_partition(app: &AppId, shard: u8) -> String {
    format!("D#{app}#{shard}")
}

/// The app and webhook a record partition key names.
pub(super) fn record_owner(pk: &str) -> Option<(AppId, SubscriptionId)> {
    let (app, _) = pk.strip_prefix("W#")?.split_once('#')?;
    let app = AppId::parse(app).ok()?;
    Some((app.clone(), record_subscription(&app, pk)?))
}

/// The partition of an app's event groups of one day in one shard.
pub(super) fn group_partition(app: &AppId, day: NaiveDate, shard: u8) -> String {
    format!("E#{app}#{}#{shard}", day.format("%Y-%m-%d"))
}

/// The partition of a webhook's records in one shard.
pub(super) fn record_partition(app: &AppId, sub: &SubscriptionId, shard: u8) -> String {
    format!("W#{app}#{sub}#{shard}")
}

/// The webhook a record partition belongs to, if `pk` is one of `app`'s.
pub(super) fn record_subscription(app: &AppId, pk: &str) -> Option<SubscriptionId> {
    let rest = pk.strip_prefix("W#")?.strip_prefix(app.as_str())?;
    let (sub, shard) = rest.strip_prefix('#')?.rsplit_once('#')?;
    (shard.parse::<u8>().is_ok_and(|s| s < SHARDS) && !sub.is_empty())
        .then(|| SubscriptionId::new(sub))
}

/// The partition of an event's trail items.
pub(super) fn trail_partition(app: &AppId, event: &EventId) -> String {
    format!("T#{app}#{event}")
}

/// The smallest record sort key of a record made at or after `at`.
pub(super) fn record_floor(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Above every record sort key.
pub(super) const RECORD_CEILING: &str = "~";

/// Whether `sk` has the shape of a record sort key: a UTC time to the microsecond, a
/// batch id, and optionally a three-digit part number.
pub(super) fn is_record_sort_key(sk: &str) -> bool {
    let mut parts = sk.split('#');
    let (Some(time), Some(batch)) = (parts.next(), parts.next()) else {
        return false;
    };
    let part_ok = match parts.next() {
        None => true,
        Some(p) => p.len() == 3 && p.bytes().all(|b| b.is_ascii_digit()),
    };
    time.len() == 27
        && time.ends_with('Z')
        && DateTime::parse_from_rfc3339(time).is_ok()
        && batch
            .strip_prefix(BATCH_PREFIX)
            .is_some_and(|hex| !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_alphanumeric()))
        && part_ok
        && parts.next().is_none()
}

/// The Unix milliseconds of a UUIDv7 event id (`evt_` and 32 lowercase hex digits);
/// `None` for any other id.
pub(super) fn id_millis(id: &EventId) -> Option<i64> {
    let hex = id.as_str().strip_prefix("evt_")?;
    if hex.len() != 32 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let uuid = uuid::Uuid::try_parse(hex).ok()?;
    (uuid.get_version_num() == 7).then_some(())?;
    i64::from_str_radix(&hex[..12], 16).ok()
}

/// The start of a Unix millisecond's minute.
fn minute_of_millis(ms: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(minute_start(ms)).single()
}

/// The UTC minute an event belongs to: from its id (a UUIDv7 carries its creation
/// time), or its timestamp for an id that is not a UUIDv7.
pub(super) fn event_minute(event: &Event) -> DateTime<Utc> {
    id_millis(&event.id)
        .and_then(minute_of_millis)
        .unwrap_or_else(|| {
            let ms = event.timestamp.timestamp_millis();
            minute_of_millis(ms).unwrap_or(event.timestamp)
        })
}

/// The smallest event id of Unix millisecond `ms` and after: an id sorts below it
/// exactly when it was made earlier.
pub(super) fn id_floor(ms: i64) -> String {
    format!("evt_{:012x}", ms.max(0))
}

/// The Unix millisecond an id or an [`id_floor`] spells (its first 12 hex digits).
pub(super) fn floor_millis(id: &str) -> Option<i64> {
    let hex = id.strip_prefix("evt_")?;
    let valid = (12..=32).contains(&hex.len())
        && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    valid
        .then(|| i64::from_str_radix(&hex[..12], 16).ok())
        .flatten()
}

/// The start of the minute of Unix millisecond `ms`.
pub(super) fn minute_start(ms: i64) -> i64 {
    ms - ms.rem_euclid(MINUTE_MS)
}

/// Where the group holding event `id` is, if its id is a UUIDv7: the day's partition
/// of each shard and the sort key range (`lo`, `hi`) of the groups of its minute whose
/// smallest id is not above it.
pub(super) struct GroupLookup {
    pub(super) partitions: Vec<String>,
    pub(super) lo: String,
    pub(super) hi: String,
}

/// The [`GroupLookup`] of event `id` of `app`; `None` for an id that is not a UUIDv7
/// (its group cannot be found).
pub(super) fn group_lookup(app: &AppId, id: &EventId) -> Option<GroupLookup> {
    let ms = id_millis(id)?;
    let minute = minute_of_millis(ms)?;
    Some(GroupLookup {
        partitions: (0..SHARDS)
            .map(|s| group_partition(app, minute.date_naive(), s))
            .collect(),
        lo: id_floor(minute.timestamp_millis()),
        hi: format!("{id}#~"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::{EventType, ObjectType};

    fn app() -> AppId {
        AppId::parse("shop").unwrap()
    }

    fn event() -> Event {
        Event::new(
            app(),
            EventType::parse("update").unwrap(),
            ObjectType::parse("user").unwrap(),
            serde_json::json!({}),
        )
    }

    #[test]
    fn keys_are_spelled_as_designed() {
        let at = DateTime::parse_from_rfc3339("2026-03-04T05:06:07.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        let sub = SubscriptionId::new("sub_1");
        let first = EventId::parse("evt_1").unwrap();
        assert_eq!(
            PkSk::group(&app(), at, 3, &first, "b_9"),
            PkSk {
                pk: "E#shop#2026-03-04#3".into(),
                sk: "evt_1#b_9".into()
            }
        );
        let rec = PkSk::record(&app(), &sub, 7, at, "b_9", 0);
        assert_eq!(rec.pk, "W#shop#sub_1#7");
        assert_eq!(rec.sk, "2026-03-04T05:06:07.123456Z#b_9");
        assert_eq!(
            PkSk::record(&app(), &sub, 7, at, "b_9", 2).sk,
            "2026-03-04T05:06:07.123456Z#b_9#002"
        );
        assert_eq!(
            PkSk::trail(&app(), &first, &sub, 3, "b_9", 0),
            PkSk {
                pk: "T#shop#evt_1".into(),
                sk: "sub_1#0003#b_9".into()
            }
        );
        assert_eq!(record_subscription(&app(), &rec.pk), Some(sub.clone()));
        let hour = DateTime::parse_from_rfc3339("2026-12-02T11:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            PkSk::health(&app(), &sub, hour),
            PkSk {
                pk: "H#shop#sub_1".into(),
                sk: "2026-12-02T11".into()
            }
        );
        assert_eq!(parse_health_hour("2026-12-02T11"), Some(hour));
        for bad in ["2026-12-02T1", "2026-12-02T11:00", "2026-12-02", "x"] {
            assert_eq!(parse_health_hour(bad), None, "{bad}");
        }
        assert_eq!(record_subscription(&app(), "W#other#sub_1#7"), None);
        assert_eq!(record_subscription(&app(), "W#shop#sub_1#9"), None);
    }

    #[test]
    fn record_sort_keys_are_recognised() {
        assert!(is_record_sort_key("2026-03-04T05:06:07.123456Z#b_0abc"));
        assert!(is_record_sort_key("2026-03-04T05:06:07.123456Z#b_0abc#001"));
        for bad in [
            "",
            "~",
            "2026-03-04T05:06:07Z#b_0abc",
            "2026-03-04T05:06:07.123456Z",
            "2026-03-04T05:06:07.123456Z#x_0abc",
            "2026-03-04T05:06:07.123456Z#b_0abc#1",
            "2026-03-04T05:06:07.123456Z#b_0abc#001#2",
            "2026-13-04T05:06:07.123456Z#b_0abc",
        ] {
            assert!(!is_record_sort_key(bad), "{bad}");
        }
    }

    #[test]
    fn the_minute_comes_from_the_id_and_sorts_with_it() {
        let e = event();
        let ms = id_millis(&e.id).expect("generated ids are UUIDv7");
        assert!((ms - e.timestamp.timestamp_millis()).abs() < 1_000);
        let minute = event_minute(&e);
        assert_eq!(minute.timestamp_millis() % MINUTE_MS, 0);
        assert!(e.timestamp - minute < chrono::TimeDelta::seconds(61));
        let lookup = group_lookup(&app(), &e.id).unwrap();
        assert_eq!(lookup.partitions.len(), usize::from(SHARDS));
        assert!(lookup.lo.as_str() <= e.id.as_str());
        assert!(format!("{}#b_1", e.id) <= lookup.hi);
        assert_eq!(
            lookup.partitions[0],
            format!("E#shop#{}#0", minute.format("%Y-%m-%d"))
        );
    }

    #[test]
    fn ids_that_are_not_uuidv7_fall_back_to_the_timestamp_and_are_not_looked_up() {
        let mut e = event();
        let v4 = uuid::Uuid::new_v4().simple().to_string();
        for id in [
            "evt_custom",
            &format!("evt_{v4}"),
            &format!("evt_{}", v4.to_uppercase()),
        ] {
            e.id = EventId::parse(id).unwrap();
            assert_eq!(id_millis(&e.id), None, "{id}");
            assert!(group_lookup(&app(), &e.id).is_none());
            assert_eq!(
                event_minute(&e).timestamp() / 60,
                e.timestamp.timestamp() / 60
            );
        }
    }
}
