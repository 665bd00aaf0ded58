//! How a run's DynamoDB writes spread over partition keys: per key prefix (the `pk` up
//! to its first `#`: `E` event groups, `W` webhook records, `T` trail items, `H` health
//! counters in the history table; other prefixes are reported as they are), the hottest single key,
//! and the hottest key family once a shard suffix is taken off.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::proxy::{Counts, PkWrites};

/// Shards a sharded partition family is spread over (the history table's `ws`, 0..8).
pub const SHARDS: u32 = 8;

/// Deliveries per second at one endpoint in the partition goal.
pub const HOT_ENDPOINT_RATE: f64 = 5_000.0;

/// A run's writes by partition key.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WritePartitions {
    /// Per `pk` prefix (before the first `#`).
    pub by_prefix: BTreeMap<String, PrefixWrites>,
    /// The key that took the most write units, and what it took.
    pub hottest_pk: Option<String>,
    pub hottest: PkWrites,
    /// The family (a key without its shard suffix `#0`..`#7`) with the most write units
    /// per shard once spread evenly (an unsharded key is a family of one shard);
    /// `sharded` when its keys carry such a suffix.
    pub hottest_family: Option<String>,
    pub hottest_family_writes: PkWrites,
    pub hottest_family_sharded: bool,
    /// Distinct keys of that family seen in the run.
    pub hottest_family_keys: u64,
}

/// Writes under one key prefix.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct PrefixWrites {
    /// Distinct keys.
    pub keys: u64,
    pub writes: PkWrites,
}

/// `E#app#2026-01-01#3` -> (`E#app#2026-01-01`, true); `app#sub` -> (`app#sub`, false).
pub fn family(pk: &str) -> (&str, bool) {
    match pk.rsplit_once('#') {
        Some((head, tail)) if tail.parse::<u32>().is_ok_and(|s| s < SHARDS) => (head, true),
        _ => (pk, false),
    }
}

/// The prefix of `pk` before its first `#` (the whole key if it has none).
pub fn prefix(pk: &str) -> &str {
    pk.split_once('#').map_or(pk, |(p, _)| p)
}

impl WritePartitions {
    /// Sums every DynamoDB operation's per-key writes in `counts`.
    pub fn of(counts: &Counts) -> Self {
        let mut by_pk: BTreeMap<&str, PkWrites> = BTreeMap::new();
        for stats in counts.values() {
            for (pk, w) in &stats.by_pk {
                by_pk.entry(pk).or_default().add(w);
            }
        }
        let mut out = Self::default();
        let mut families: BTreeMap<&str, (PkWrites, bool, u64)> = BTreeMap::new();
        for (pk, w) in &by_pk {
            let p = out.by_prefix.entry(prefix(pk).to_owned()).or_default();
            p.keys += 1;
            p.writes.add(w);
            if w.write_units > out.hottest.write_units {
                out.hottest_pk = Some((*pk).to_owned());
                out.hottest = *w;
            }
            let (head, sharded) = family(pk);
            let f = families.entry(head).or_default();
            f.0.add(w);
            f.1 |= sharded;
            f.2 += 1;
        }
        let per_shard = |(w, sharded, _): &(PkWrites, bool, u64)| {
            w.write_units / if *sharded { f64::from(SHARDS) } else { 1.0 }
        };
        if let Some((head, (w, sharded, keys))) = families
            .into_iter()
            .max_by(|a, b| per_shard(&a.1).total_cmp(&per_shard(&b.1)))
        {
            out.hottest_family = Some(head.to_owned());
            out.hottest_family_writes = w;
            out.hottest_family_sharded = sharded;
            out.hottest_family_keys = keys;
        }
        out
    }

    /// Write units per second into the hottest key at [`HOT_ENDPOINT_RATE`] deliveries
    /// per second, at this run's share per delivery (over `deliveries`).
    pub fn measured_hot_wru_per_s(&self, deliveries: u64) -> f64 {
        self.hottest.write_units / deliveries.max(1) as f64 * HOT_ENDPOINT_RATE
    }

    /// The same once each family's writes are spread evenly over its shards (what a
    /// long run converges to; a short run's shards are uneven by chance): the hottest
    /// family's write units per delivery, times the rate, over its shards.
    pub fn expected_hot_wru_per_s(&self, deliveries: u64) -> f64 {
        let shards = if self.hottest_family_sharded {
            f64::from(SHARDS)
        } else {
            1.0
        };
        self.hottest_family_writes.write_units / deliveries.max(1) as f64 * HOT_ENDPOINT_RATE
            / shards
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::OpStats;

    fn counts(writes: &[(&str, f64)]) -> Counts {
        let mut stats = OpStats::default();
        for (pk, units) in writes {
            stats
                .by_pk
                .entry((*pk).to_owned())
                .or_default()
                .add(&PkWrites {
                    items: 1,
                    bytes: 100,
                    write_units: *units,
                });
        }
        [("DynamoDB BatchWriteItem".to_owned(), stats)].into()
    }

    #[test]
    fn shard_suffixes_make_families_and_prefixes_are_before_the_first_hash() {
        assert_eq!(family("E#app#2026-01-01#3"), ("E#app#2026-01-01", true));
        assert_eq!(
            family("W#app#sub_1#8"),
            ("W#app#sub_1#8", false),
            "8 is no shard"
        );
        assert_eq!(family("app#sub_1"), ("app#sub_1", false));
        assert_eq!(prefix("W#app#sub_1#0"), "W");
        assert_eq!(prefix("event#app#evt_1"), "event");
        assert_eq!(prefix("plain"), "plain");
    }

    #[test]
    fn a_sharded_family_is_expected_to_spread_over_eight_shards() {
        // 100 deliveries; W records took 40 units, 25 of them in shard 0 by chance.
        let c = counts(&[("W#a#s#0", 25.0), ("W#a#s#5", 15.0), ("E#a#d#0", 10.0)]);
        let p = WritePartitions::of(&c);
        assert_eq!(p.hottest_pk.as_deref(), Some("W#a#s#0"));
        assert_eq!(p.by_prefix["W"].keys, 2);
        assert_eq!(p.by_prefix["W"].writes.write_units, 40.0);
        assert!((p.measured_hot_wru_per_s(100) - 1250.0).abs() < 1e-9);
        assert_eq!(p.hottest_family.as_deref(), Some("W#a#s"));
        assert!((p.expected_hot_wru_per_s(100) - 40.0 / 100.0 * 5000.0 / 8.0).abs() < 1e-9);
    }

    #[test]
    fn an_unsharded_key_hotter_than_a_shard_bounds_the_expected_figure() {
        let c = counts(&[("W#a#s#0", 25.0), ("W#a#s#5", 15.0), ("T#a#e1", 20.0)]);
        let p = WritePartitions::of(&c);
        assert_eq!(p.hottest_family.as_deref(), Some("T#a#e1"));
        assert!((p.expected_hot_wru_per_s(100) - 1000.0).abs() < 1e-9);
    }

    #[test]
    fn an_unsharded_key_takes_the_whole_rate() {
        let c = counts(&[("app#sub_1", 200.0), ("event#app#e1", 1.0)]);
        let p = WritePartitions::of(&c);
        assert!((p.measured_hot_wru_per_s(100) - 10_000.0).abs() < 1e-9);
        assert!((p.expected_hot_wru_per_s(100) - 10_000.0).abs() < 1e-9);
    }
}
