//! Endpoint health: what a webhook's recent attempts add up to.
//!
//! The consumer counts each batch's attempts per webhook and UTC hour
//! ([`hourly_counts`]) and adds them to one counter item per webhook and hour (the
//! store's job); a read adds up the hours it finds ([`WebhookHealth::of`]). Nothing
//! here reads the delivery history itself.
//!
//! - An **attempt** is a request made (or refused by the address policy): a delivery
//!   recorded as not sent (endpoint disabled, webhook deleted) is not one and counts
//!   nowhere.
//! - **Latency** is kept as a histogram with fixed buckets ([`LATENCY_BUCKETS_MS`]),
//!   for failures and successes alike (a timing-out endpoint is slow); a percentile
//!   is the upper bound of the bucket it falls in.
//! - **Consecutive failures** are failed attempts after the last successful one: each
//!   hour keeps the failures after its own last success, and a read adds them up from
//!   the newest hour back to the first hour that had a success.
//!
//! Not to be confused with a webhook's count of deliveries that failed for good
//! ([`crate::Subscription::consecutive_failures`]), which drives the auto-disable rule:
//! that one counts deliveries, these count attempts.

use std::collections::BTreeMap;

use chrono::{DateTime, DurationRound as _, TimeDelta, Utc};

use crate::attempt::{Attempt, AttemptOutcome};
use crate::event::AppId;
use crate::subscription::SubscriptionId;

/// Upper bounds, in milliseconds, of the latency histogram's buckets, roughly
/// log-scale (each about 1.6 times the one before) from 1 ms to 60 s, and a last one up
/// to `HERALD_HTTP_TIMEOUT`'s largest value (300 s), which also takes anything longer.
/// Bucket `i` holds the latencies above bound `i - 1` up to bound `i`.
pub const LATENCY_BUCKETS_MS: [u64; 25] = [
    1, 2, 3, 5, 8, 13, 20, 30, 50, 80, 130, 200, 300, 500, 800, 1_300, 2_000, 3_000, 5_000, 8_000,
    13_000, 20_000, 30_000, 60_000, 300_000,
];

/// Hours the "last 24 h" figures add up: the current UTC hour and the 23 before it.
pub const WINDOW_HOURS: i64 = 24;

/// Hours before the current one that the last success and failure times and the
/// consecutive failures are looked for in: older counters have expired.
pub const LOOKBACK_HOURS: i64 = 48;

/// Latencies counted per bucket of [`LATENCY_BUCKETS_MS`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LatencyHistogram {
    counts: [u64; LATENCY_BUCKETS_MS.len()],
}

impl LatencyHistogram {
    /// The bucket a latency of `ms` falls in (anything past the last bound in the last).
    pub fn bucket_of(ms: u64) -> usize {
        LATENCY_BUCKETS_MS
            .partition_point(|&bound| bound < ms)
            .min(LATENCY_BUCKETS_MS.len() - 1)
    }

    /// Counts one latency of `ms`.
    pub fn record(&mut self, ms: u64) {
        self.counts[Self::bucket_of(ms)] += 1;
    }

    /// Adds `n` latencies to the bucket whose upper bound is `bound_ms` (or, for a
    /// bound that is not one of [`LATENCY_BUCKETS_MS`], the bucket it falls in).
    pub fn add_to_bucket(&mut self, bound_ms: u64, n: u64) {
        self.counts[Self::bucket_of(bound_ms)] += n;
    }

    /// Adds every count of `other`.
    pub fn add(&mut self, other: &Self) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts) {
            *mine += theirs;
        }
    }

    /// The latencies counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The buckets that counted something: (upper bound in ms, count), fastest first.
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        LATENCY_BUCKETS_MS
            .iter()
            .zip(self.counts)
            .filter(|(_, n)| *n > 0)
            .map(|(bound, n)| (*bound, n))
    }

    /// The `p`th percentile (0 < `p` ≤ 100) by nearest rank, as the upper bound of the
    /// bucket it falls in; `None` when nothing was counted.
    pub fn percentile(&self, p: f64) -> Option<u64> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let rank = ((p / 100.0 * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        self.buckets().find_map(|(bound, n)| {
            seen += n;
            (seen >= rank).then_some(bound)
        })
    }
}

/// What one webhook's attempts came to in one UTC hour (or in one batch's share of it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HourCounts {
    /// Attempts made.
    pub attempts: u64,
    /// Attempts answered 2xx.
    pub successes: u64,
    /// Attempts that failed.
    pub failures: u64,
    /// Every attempt's latency.
    pub latency: LatencyHistogram,
    /// The latest successful attempt's time.
    pub last_success_at: Option<DateTime<Utc>>,
    /// The latest failed attempt's time.
    pub last_failure_at: Option<DateTime<Utc>>,
    /// Failures after `last_success_at`: all of them when there was no success.
    pub failures_since_success: u64,
}

impl HourCounts {
    /// The counts of `attempts`, in any order; deliveries not sent are left out.
    pub fn of<'a>(attempts: impl IntoIterator<Item = &'a Attempt>) -> Self {
        let mut counts = Self::default();
        let mut failure_times = Vec::new();
        for a in attempts {
            match a.outcome {
                AttemptOutcome::NotSent => continue,
                AttemptOutcome::Succeeded => {
                    counts.successes += 1;
                    counts.last_success_at = counts.last_success_at.max(Some(a.attempted_at));
                }
                AttemptOutcome::Failed => {
                    counts.failures += 1;
                    counts.last_failure_at = counts.last_failure_at.max(Some(a.attempted_at));
                    failure_times.push(a.attempted_at);
                }
            }
            counts.attempts += 1;
            counts.latency.record(a.latency_ms);
        }
        counts.failures_since_success = match counts.last_success_at {
            None => counts.failures,
            Some(ok) => failure_times.iter().filter(|&&t| t > ok).count() as u64,
        };
        counts
    }

    /// Whether there is nothing to count.
    pub fn is_empty(&self) -> bool {
        self.attempts == 0
    }
}

/// A webhook's attempts in one UTC hour: its app, its id and the hour's start.
pub type WebhookHour = (AppId, SubscriptionId, DateTime<Utc>);

/// The start of the UTC hour `t` falls in.
pub fn hour_of(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::hours(1)).unwrap_or(t)
}

/// `attempts` counted per webhook and UTC hour of their time (a batch normally makes
/// one entry per webhook, two when it straddles an hour); deliveries not sent are
/// left out, and so are webhooks that only had those.
pub fn hourly_counts<'a>(
    attempts: impl IntoIterator<Item = &'a Attempt>,
) -> BTreeMap<WebhookHour, HourCounts> {
    let mut by_hour: BTreeMap<WebhookHour, Vec<&Attempt>> = BTreeMap::new();
    for a in attempts {
        if a.outcome != AttemptOutcome::NotSent {
            by_hour
                .entry((
                    a.app_id.clone(),
                    a.subscription_id.clone(),
                    hour_of(a.attempted_at),
                ))
                .or_default()
                .push(a);
        }
    }
    by_hour
        .into_iter()
        .map(|(key, attempts)| (key, HourCounts::of(attempts)))
        .collect()
}

/// A webhook's health at one moment, from its hourly counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WebhookHealth {
    /// Failed attempts since the last successful one, within the lookback
    /// ([`LOOKBACK_HOURS`]).
    pub consecutive_failures: u64,
    /// The latest successful attempt within the lookback.
    pub last_success_at: Option<DateTime<Utc>>,
    /// The latest failed attempt within the lookback.
    pub last_failure_at: Option<DateTime<Utc>>,
    /// The current UTC hour and the 23 before it.
    pub last_24h: HealthWindow,
    /// The same 24 hours one by one, oldest first (hours without attempts included);
    /// empty for a health made by hand.
    pub hours: Vec<HourTally>,
}

/// One UTC hour of a webhook's attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HourTally {
    /// The start of the hour.
    pub hour: DateTime<Utc>,
    /// Attempts made in it.
    pub attempts: u64,
    /// Those that failed.
    pub failures: u64,
}

/// What a webhook's attempts came to over some hours.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthWindow {
    /// Attempts made.
    pub attempts: u64,
    /// Attempts answered 2xx.
    pub successes: u64,
    /// Attempts that failed.
    pub failures: u64,
    /// Every attempt's latency.
    pub latency: LatencyHistogram,
}

impl HealthWindow {
    /// Successes over attempts; `None` without attempts.
    pub fn success_rate(&self) -> Option<f64> {
        (self.attempts > 0).then(|| self.successes as f64 / self.attempts as f64)
    }

    /// The median latency, as its bucket's upper bound.
    pub fn latency_p50_ms(&self) -> Option<u64> {
        self.latency.percentile(50.0)
    }

    /// The 95th percentile latency, as its bucket's upper bound.
    pub fn latency_p95_ms(&self) -> Option<u64> {
        self.latency.percentile(95.0)
    }
}

impl WebhookHealth {
    /// The health at `now` from a webhook's hourly counters (start of the hour and its
    /// counts, in any order; hours older than the lookback are ignored).
    pub fn of(
        now: DateTime<Utc>,
        hours: impl IntoIterator<Item = (DateTime<Utc>, HourCounts)>,
    ) -> Self {
        let current = hour_of(now);
        let window_start = current - TimeDelta::hours(WINDOW_HOURS - 1);
        let lookback_start = current - TimeDelta::hours(LOOKBACK_HOURS);
        let mut hours: Vec<_> = hours
            .into_iter()
            .filter(|(hour, _)| *hour >= lookback_start)
            .collect();
        hours.sort_by_key(|(hour, _)| std::cmp::Reverse(*hour));
        let mut health = Self::default();
        let mut since_success_open = true;
        for (hour, counts) in &hours {
            health.last_success_at = health.last_success_at.max(counts.last_success_at);
            health.last_failure_at = health.last_failure_at.max(counts.last_failure_at);
            if since_success_open {
                health.consecutive_failures += counts.failures_since_success;
                since_success_open = counts.last_success_at.is_none();
            }
            if *hour >= window_start {
                let w = &mut health.last_24h;
                w.attempts += counts.attempts;
                w.successes += counts.successes;
                w.failures += counts.failures;
                w.latency.add(&counts.latency);
            }
        }
        health.hours = (0..WINDOW_HOURS)
            .map(|i| {
                let hour = window_start + TimeDelta::hours(i);
                let (attempts, failures) = hours
                    .iter()
                    .filter(|(h, _)| *h == hour)
                    .fold((0, 0), |(a, f), (_, c)| (a + c.attempts, f + c.failures));
                HourTally {
                    hour,
                    attempts,
                    failures,
                }
            })
            .collect();
        health
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{timed_attempt as made, utc as at};

    #[test]
    fn latencies_fall_in_the_bucket_up_to_their_bound() {
        assert_eq!(LatencyHistogram::bucket_of(0), 0);
        assert_eq!(LatencyHistogram::bucket_of(1), 0);
        assert_eq!(LatencyHistogram::bucket_of(2), 1);
        assert_eq!(LATENCY_BUCKETS_MS[LatencyHistogram::bucket_of(81)], 130);
        assert_eq!(LATENCY_BUCKETS_MS[LatencyHistogram::bucket_of(130)], 130);
        assert_eq!(
            LATENCY_BUCKETS_MS[LatencyHistogram::bucket_of(60_001)],
            300_000
        );
        assert_eq!(
            LatencyHistogram::bucket_of(u64::MAX),
            LATENCY_BUCKETS_MS.len() - 1
        );
        assert!(LATENCY_BUCKETS_MS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn percentiles_are_the_nearest_ranks_bucket_bound() {
        let mut h = LatencyHistogram::default();
        assert_eq!(h.percentile(50.0), None);
        // 20 latencies: 18 of 10 ms, one of 100 ms, one of 1 s.
        for _ in 0..18 {
            h.record(10);
        }
        h.record(100);
        h.record(1_000);
        assert_eq!(h.total(), 20);
        assert_eq!(h.percentile(50.0), Some(13));
        assert_eq!(h.percentile(90.0), Some(13), "rank 18");
        assert_eq!(h.percentile(95.0), Some(130), "rank 19");
        assert_eq!(h.percentile(100.0), Some(1_300));
        assert_eq!(
            h.buckets().collect::<Vec<_>>(),
            vec![(13, 18), (130, 1), (1_300, 1)]
        );
        // The same as the exact nearest rank of the samples, bucketed.
        let mut samples: Vec<u64> = (1..=97).map(|i| i * i * 7 % 4_000).collect();
        let mut h = LatencyHistogram::default();
        samples.iter().for_each(|&ms| h.record(ms));
        samples.sort_unstable();
        for p in [1.0, 50.0, 95.0, 99.0, 100.0] {
            let rank = (p / 100.0 * samples.len() as f64).ceil() as usize;
            let exact = samples[rank - 1];
            assert_eq!(
                h.percentile(p),
                Some(LATENCY_BUCKETS_MS[LatencyHistogram::bucket_of(exact)]),
                "p{p}"
            );
        }
    }

    #[test]
    fn histograms_add_up_bucket_by_bucket() {
        let mut a = LatencyHistogram::default();
        a.record(4);
        let mut b = LatencyHistogram::default();
        b.add_to_bucket(5, 2);
        b.add_to_bucket(7, 1);
        a.add(&b);
        assert_eq!(a.buckets().collect::<Vec<_>>(), vec![(5, 3), (8, 1)]);
    }

    #[test]
    fn an_hour_counts_attempts_made_and_the_failures_after_its_last_success() {
        let attempts = [
            made(AttemptOutcome::Failed, "2026-12-02T11:00:01Z", 5),
            made(AttemptOutcome::Succeeded, "2026-12-02T11:00:03Z", 90),
            made(AttemptOutcome::Failed, "2026-12-02T11:00:02Z", 1_000),
            made(AttemptOutcome::NotSent, "2026-12-02T11:00:09Z", 0),
            made(AttemptOutcome::Failed, "2026-12-02T11:00:05Z", 6),
            made(AttemptOutcome::Failed, "2026-12-02T11:00:04Z", 6),
        ];
        let c = HourCounts::of(&attempts);
        assert_eq!((c.attempts, c.successes, c.failures), (5, 1, 4));
        assert_eq!(c.last_success_at, Some(at("2026-12-02T11:00:03Z")));
        assert_eq!(c.last_failure_at, Some(at("2026-12-02T11:00:05Z")));
        assert_eq!(c.failures_since_success, 2);
        assert_eq!(
            c.latency.buckets().collect::<Vec<_>>(),
            vec![(5, 1), (8, 2), (130, 1), (1_300, 1)]
        );
        let only_failures = HourCounts::of(&attempts[2..3]);
        assert_eq!(only_failures.failures_since_success, 1);
        assert_eq!(only_failures.last_success_at, None);
        assert!(HourCounts::of(&attempts[3..4]).is_empty());
    }

    #[test]
    fn a_batch_is_counted_per_webhook_and_hour_without_the_deliveries_not_sent() {
        let mut other = made(AttemptOutcome::Succeeded, "2026-12-02T11:59:59Z", 9);
        other.subscription_id = SubscriptionId::new("sub_2");
        let mut not_sent = made(AttemptOutcome::NotSent, "2026-12-02T11:10:00Z", 0);
        not_sent.subscription_id = SubscriptionId::new("sub_3");
        let attempts = [
            made(AttemptOutcome::Failed, "2026-12-02T11:59:59.9Z", 5),
            made(AttemptOutcome::Succeeded, "2026-12-02T12:00:00.1Z", 5),
            other,
            not_sent,
        ];
        let counts = hourly_counts(&attempts);
        let keys: Vec<_> = counts
            .keys()
            .map(|(app, sub, hour)| format!("{app}/{sub}/{}", hour.format("%H")))
            .collect();
        assert_eq!(keys, ["shop/sub_1/11", "shop/sub_1/12", "shop/sub_2/11"]);
        assert!(counts.values().all(|c| c.attempts == 1));
    }

    fn hour(failures: u64, last_ok: Option<&str>, since: u64, latency: u64) -> HourCounts {
        let mut c = HourCounts {
            attempts: failures + u64::from(last_ok.is_some()),
            successes: u64::from(last_ok.is_some()),
            failures,
            last_success_at: last_ok.map(at),
            last_failure_at: (failures > 0).then(|| at("2026-12-01T00:00:00Z")),
            failures_since_success: since,
            ..HourCounts::default()
        };
        for _ in 0..c.attempts {
            c.latency.record(latency);
        }
        c
    }

    #[test]
    fn health_adds_the_last_24_hours_and_counts_failures_back_to_the_last_success() {
        let now = at("2026-12-02T11:30:00Z");
        let hours = vec![
            // Outside the lookback: ignored, success and all.
            (
                at("2026-11-30T10:00:00Z"),
                hour(0, Some("2026-11-30T10:01:00Z"), 0, 1),
            ),
            // In the lookback, not in the last 24 h.
            (
                at("2026-12-01T10:00:00Z"),
                hour(3, Some("2026-12-01T10:05:00Z"), 2, 2_000),
            ),
            // The window: 12:00 yesterday to 11:00 today, newest last here on purpose.
            (at("2026-12-01T12:00:00Z"), hour(4, None, 4, 100)),
            (at("2026-12-02T11:00:00Z"), hour(1, None, 1, 100)),
        ];
        let h = WebhookHealth::of(now, hours.clone());
        assert_eq!(
            h.consecutive_failures,
            1 + 4 + 2,
            "back to yesterday's success"
        );
        assert_eq!(h.last_success_at, Some(at("2026-12-01T10:05:00Z")));
        assert_eq!(h.last_failure_at, Some(at("2026-12-01T00:00:00Z")));
        let w = &h.last_24h;
        assert_eq!((w.attempts, w.successes, w.failures), (5, 0, 5));
        assert_eq!(w.success_rate(), Some(0.0));
        assert_eq!(
            (w.latency_p50_ms(), w.latency_p95_ms()),
            (Some(130), Some(130))
        );
        // The same 24 hours one by one, oldest first, quiet hours included.
        let tally = |i: usize| (h.hours[i].hour, h.hours[i].attempts, h.hours[i].failures);
        assert_eq!(h.hours.len(), 24);
        assert_eq!(tally(0), (at("2026-12-01T12:00:00Z"), 4, 4));
        assert_eq!(tally(1), (at("2026-12-01T13:00:00Z"), 0, 0));
        assert_eq!(tally(23), (at("2026-12-02T11:00:00Z"), 1, 1));

        // A success in the latest hour ends the count there.
        let mut recovered = hours;
        recovered.push((
            at("2026-12-02T10:00:00Z"),
            hour(0, Some("2026-12-02T10:59:00Z"), 0, 10),
        ));
        let h = WebhookHealth::of(now, recovered);
        assert_eq!(h.consecutive_failures, 1);
        assert_eq!(h.last_success_at, Some(at("2026-12-02T10:59:00Z")));
        assert_eq!(h.last_24h.attempts, 6);
        assert_eq!(h.last_24h.success_rate(), Some(1.0 / 6.0));
        assert_eq!(h.last_24h.latency_p50_ms(), Some(130));

        let none = WebhookHealth::of(now, Vec::new());
        assert!(none.hours.iter().all(|h| h.attempts == 0) && none.hours.len() == 24);
        let quiet = WebhookHealth {
            hours: Vec::new(),
            ..none.clone()
        };
        assert_eq!(quiet, WebhookHealth::default());
        assert_eq!(none.last_24h.success_rate(), None);
        assert_eq!(none.last_24h.latency_p95_ms(), None);
    }
}
