//! Per-webhook rate limits: the limit, and the pure arithmetic of the schedule that
//! holds it (docs/delivery.md, "Rate limits").
//!
//! A rate-limited webhook has a **schedule**: the time its next delivery may start
//! (the end of what is already reserved; a generic cell rate algorithm's theoretical
//! arrival time). Reserving `k` deliveries moves the end by `k` intervals of
//! `1 / limit` seconds, from the later of the end and now ([`reserve`]); delivery `i`
//! of the reservation gets the slot `first + i` intervals ([`RateLimit::slots`]). The
//! store keeps one schedule per webhook and moves it with one atomic write per batch,
//! so every consumer instance draws from the same schedule.
//!
//! A delivery whose slot is near waits for it in its batch; one whose slot is further
//! goes back on the queue delayed until a little before it ([`step`]), and is attempted
//! at its slot without reserving again. Deferring is not an attempt: the attempt number
//! does not move, and nothing counts as a failure.

use std::num::NonZeroU32;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::event::ValidationError;

/// The highest rate limit a webhook may have, in deliveries per second.
pub const MAX_RATE_LIMIT: u32 = 10_000;

/// How early a deferred delivery is brought back before its slot, at least: room for
/// the queue to hand it over late (Lambda's batching window, 1 s by default; a poll
/// that notices a delayed message late) without its slot passing.
pub const SLOT_LEAD: Duration = Duration::from_secs(1);

/// The longest a delivery waits for its slot inside a batch; a later slot sends it
/// back on the queue. A deferred delivery comes back one to two seconds before its
/// slot ([`SLOT_LEAD`], and SQS delays by whole seconds, rounded down here), so this
/// is a little over two.
pub const MAX_SLOT_WAIT: Duration = Duration::from_millis(2_500);

/// How late a deferred delivery may come back and still take its slot. Later than
/// this (a consumer outage, a throttled function, a batching window longer than
/// this), it reserves a new slot rather than join a burst of other late ones.
pub const SLOT_GRACE: TimeDelta = TimeDelta::seconds(30);

/// A webhook's rate limit: at most this many deliveries start per second, 1 to
/// [`MAX_RATE_LIMIT`]. Serialized as the number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u32")]
pub struct RateLimit(NonZeroU32);

impl RateLimit {
    /// A limit of `per_second` deliveries per second; an error outside
    /// 1..=[`MAX_RATE_LIMIT`].
    pub fn new(per_second: u64) -> Result<Self, ValidationError> {
        u32::try_from(per_second)
            .ok()
            .filter(|n| *n <= MAX_RATE_LIMIT)
            .and_then(NonZeroU32::new)
            .map(Self)
            .ok_or(ValidationError::OutOfRange {
                what: "rate_limit",
                min: 1,
                max: MAX_RATE_LIMIT as u64,
            })
    }

    /// Deliveries per second.
    pub fn per_second(self) -> u32 {
        self.0.get()
    }

    /// The time between two slots: a second divided by the limit, rounded up to the
    /// microsecond (so the limit is never exceeded by the rounding).
    pub fn interval(self) -> TimeDelta {
        TimeDelta::microseconds(1_000_000_u32.div_ceil(self.per_second()).into())
    }

    /// The stretch of schedule `deliveries` take.
    pub fn span(self, deliveries: u32) -> TimeDelta {
        self.interval() * deliveries as i32
    }

    /// The slots of `count` deliveries reserved from `first`, one interval apart.
    pub fn slots(self, first: DateTime<Utc>, count: usize) -> impl Iterator<Item = DateTime<Utc>> {
        let interval = self.interval();
        (0..count as i32).map(move |i| first + interval * i)
    }
}

impl TryFrom<u64> for RateLimit {
    type Error = ValidationError;

    fn try_from(n: u64) -> Result<Self, Self::Error> {
        Self::new(n)
    }
}

impl From<RateLimit> for u32 {
    fn from(limit: RateLimit) -> u32 {
        limit.per_second()
    }
}

/// A reservation of `span` on a schedule that ends at `end` (`None`: never reserved):
/// it starts at the later of the end and `now`. Returns its first slot and the
/// schedule's new end.
pub fn reserve(
    end: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    span: TimeDelta,
) -> (DateTime<Utc>, DateTime<Utc>) {
    let first = end.map_or(now, |end| end.max(now));
    (first, first + span)
}

/// What to do with a delivery whose slot is `slot`, at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotStep {
    /// Its slot has come: attempt it.
    Now,
    /// Wait this long in the batch, then attempt it.
    Wait(Duration),
    /// Put it back on the queue with this delay (whole seconds): it comes back one to
    /// two seconds before its slot.
    Queue(Duration),
}

/// Where a delivery with slot `slot` goes at `now`, waiting at most `max_wait` in its
/// batch.
pub fn step(slot: DateTime<Utc>, now: DateTime<Utc>, max_wait: Duration) -> SlotStep {
    let Ok(ahead) = (slot - now).to_std() else {
        return SlotStep::Now;
    };
    if ahead.is_zero() {
        SlotStep::Now
    } else if ahead <= max_wait {
        SlotStep::Wait(ahead)
    } else {
        SlotStep::Queue(queue_delay(slot, now))
    }
}

/// The queue delay that brings a delivery back one to two seconds before `slot`: the
/// time to it in whole seconds, rounded down (SQS delays by whole seconds; rounded up,
/// deliveries would come back up to a second late and bunch), less [`SLOT_LEAD`].
pub fn queue_delay(slot: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    Duration::from_secs((slot - now).num_seconds().max(0) as u64).saturating_sub(SLOT_LEAD)
}

/// Whether a deferred delivery coming back at `now` has missed its slot by more than
/// [`SLOT_GRACE`], and must reserve a new one.
pub fn missed(slot: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    now - slot > SLOT_GRACE
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_700_000_000_000 + ms).unwrap()
    }

    #[test]
    fn a_limit_is_a_whole_number_from_one_to_the_maximum() {
        for bad in [0, u64::from(MAX_RATE_LIMIT) + 1, u64::from(u32::MAX) + 1] {
            let err = RateLimit::new(bad).unwrap_err().to_string();
            assert!(err.contains("rate_limit") && err.contains("10000"), "{err}");
        }
        assert_eq!(RateLimit::new(1).unwrap().per_second(), 1);
        assert_eq!(RateLimit::new(10_000).unwrap().per_second(), 10_000);
        let json = serde_json::to_string(&RateLimit::new(5).unwrap()).unwrap();
        assert_eq!(json, "5");
        assert_eq!(
            serde_json::from_str::<RateLimit>("5").unwrap(),
            RateLimit::new(5).unwrap()
        );
        assert!(serde_json::from_str::<RateLimit>("0").is_err());
        assert!(serde_json::from_str::<RateLimit>("-1").is_err());
        assert!(serde_json::from_str::<RateLimit>("1.5").is_err());
    }

    #[test]
    fn slots_are_one_interval_apart_and_the_interval_never_undercuts_the_limit() {
        let five = RateLimit::new(5).unwrap();
        assert_eq!(five.interval(), TimeDelta::milliseconds(200));
        let slots: Vec<_> = five.slots(at(0), 3).collect();
        assert_eq!(slots, [at(0), at(200), at(400)]);
        assert_eq!(five.span(10), TimeDelta::seconds(2));
        // 1 s / 3 rounded up: three slots take at least a second.
        let three = RateLimit::new(3).unwrap();
        assert_eq!(three.interval(), TimeDelta::microseconds(333_334));
        assert!(three.span(3) >= TimeDelta::seconds(1));
        assert_eq!(
            RateLimit::new(MAX_RATE_LIMIT.into()).unwrap().interval(),
            TimeDelta::microseconds(100)
        );
    }

    #[test]
    fn a_reservation_starts_at_the_schedules_end_or_now_whichever_is_later() {
        let span = TimeDelta::seconds(2);
        assert_eq!(reserve(None, at(0), span), (at(0), at(2_000)));
        // An idle webhook's schedule lies in the past: it starts now, no burst owed.
        assert_eq!(reserve(Some(at(-60_000)), at(0), span), (at(0), at(2_000)));
        // A busy one's lies ahead: the reservation queues behind it.
        assert_eq!(
            reserve(Some(at(5_000)), at(0), span),
            (at(5_000), at(7_000))
        );
    }

    #[test]
    fn a_burst_is_spread_over_the_seconds_it_needs_not_stampeding_the_next_one() {
        // 1,000 deliveries at 10/s, reserved by batches of 100 as they come.
        let limit = RateLimit::new(10).unwrap();
        let now = at(0);
        let mut end = None;
        let mut per_second = std::collections::BTreeMap::<i64, usize>::new();
        for _ in 0..10 {
            let (first, new_end) = reserve(end, now, limit.span(100));
            end = Some(new_end);
            for slot in limit.slots(first, 100) {
                *per_second.entry((slot - now).num_seconds()).or_default() += 1;
            }
        }
        assert_eq!(per_second.len(), 100, "over 100 seconds");
        assert!(per_second.values().all(|n| *n == 10), "{per_second:?}");
        assert_eq!(end, Some(at(100_000)));
    }

    #[test]
    fn near_slots_wait_in_the_batch_and_far_ones_go_back_on_the_queue_to_come_back_early() {
        let wait = MAX_SLOT_WAIT;
        assert_eq!(step(at(-5), at(0), wait), SlotStep::Now);
        assert_eq!(step(at(0), at(0), wait), SlotStep::Now);
        assert_eq!(
            step(at(700), at(0), wait),
            SlotStep::Wait(Duration::from_millis(700))
        );
        assert_eq!(
            step(at(2_500), at(0), wait),
            SlotStep::Wait(Duration::from_millis(2_500))
        );
        // Rounded down, less the lead: back one to two seconds before the slot, then
        // a wait in the batch.
        assert_eq!(
            step(at(2_501), at(0), wait),
            SlotStep::Queue(Duration::from_secs(1))
        );
        assert_eq!(
            step(at(3_999), at(0), wait),
            SlotStep::Queue(Duration::from_secs(2))
        );
        // Beyond SQS's 15 minutes: the delay is the whole way; the outbox takes it in
        // hops, the delivery carrying its slot.
        assert_eq!(
            step(at(3_600_000), at(0), wait),
            SlotStep::Queue(Duration::from_secs(3_599))
        );
        // A batch with less time left waits less.
        assert_eq!(
            step(at(700), at(0), Duration::from_millis(500)),
            SlotStep::Queue(Duration::ZERO)
        );
    }

    #[test]
    fn a_slot_is_kept_within_the_grace_and_reserved_again_after_it() {
        assert!(!missed(at(0), at(-1_000)));
        assert!(!missed(at(0), at(2_000)));
        assert!(!missed(at(0), at(30_000)));
        assert!(missed(at(0), at(30_001)));
    }
}
