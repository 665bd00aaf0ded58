//! Issue #10's goals table: each goal, the figure this run measured, and whether it
//! is met.

use std::fmt::Write;

use super::calls::calls_per_delivery;
use super::usd;
use crate::emulator::{CallsPhase, RunKind};
use crate::partitions::SHARDS;
use crate::Results;

/// Which side of its threshold a goal's figure must be on.
#[derive(Debug, Clone, Copy)]
pub(super) enum Bound {
    AtMost(f64),
    AtLeast(f64),
}

/// One row: what, the measured figure (None: not measured), the goal.
pub(super) struct Goal {
    pub(super) figure: String,
    pub(super) measured: Option<f64>,
    pub(super) shown: String,
    pub(super) bound: Bound,
    pub(super) goal: String,
    /// A verdict other than met / not met (an emulator as the limit, say).
    pub(super) verdict: Option<String>,
}

impl Goal {
    /// A goal whose figure must stay at or below `at_most`.
    fn at_most(
        figure: impl Into<String>,
        measured: Option<f64>,
        shown: String,
        at_most: f64,
        goal: String,
    ) -> Self {
        Self {
            figure: figure.into(),
            measured,
            shown,
            bound: Bound::AtMost(at_most),
            goal,
            verdict: None,
        }
    }
}

/// The goal's rate, as written in the issue.
const RATE: &str = "5,000";

/// Whether the goal is met, from its measured figure.
pub(super) fn verdict(g: &Goal) -> String {
    if let Some(v) = &g.verdict {
        return v.clone();
    }
    let met = match (g.measured, g.bound) {
        (None, _) => return "–".into(),
        (Some(x), Bound::AtMost(limit)) => x <= limit,
        (Some(x), Bound::AtLeast(limit)) => x >= limit,
    };
    if met { "met" } else { "**not met**" }.into()
}

/// The goals as a table.
pub(super) fn table(s: &mut String, rows: &[Goal]) {
    let _ = writeln!(
        s,
        "| figure | measured | goal | |\n| --- | ---: | ---: | --- |"
    );
    for g in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            g.figure,
            g.shown,
            g.goal,
            verdict(g)
        );
    }
    let _ = writeln!(s);
}

/// The hottest partition arithmetic of `p` (the fan-out-1 backlog), in words.
pub(super) fn write_partitions_text(p: &CallsPhase) -> String {
    let w = &p.partitions;
    let d = p.deliveries.max(1);
    let Some(pk) = &w.hottest_pk else {
        return "No DynamoDB writes were counted in the fan-out-1 backlog.".into();
    };
    let family = w.hottest_family.as_deref().unwrap_or(pk);
    let mut text = format!(
        "**Hottest partition, fan-out-1 backlog:** the key `{pk}` took {:.1} write units \
         over {d} deliveries = {:.4} per delivery; at {RATE} deliveries/s to \
         one endpoint that is {:.4} × {RATE} = **{:.0} WRU/s** (measured). ",
        w.hottest.write_units,
        w.hottest.write_units / d as f64,
        w.hottest.write_units / d as f64,
        w.measured_hot_wru_per_s(d),
    );
    if w.hottest_family_sharded {
        let _ = write!(
            text,
            "The hottest key family, `{family}#{{0..{}}}` ({} of its {SHARDS} shards written \
             in this run), took {:.1} write units = {:.4} per delivery; spread evenly over \
             {SHARDS} shards, as each batch picks its shard at random and 5,000 deliveries/s \
             make dozens of batches a second, that is {:.4} × {RATE} / \
             {SHARDS} = **{:.0} WRU/s** per partition (expected). The measured figure is \
             higher when a short run's few batches happen to land unevenly.",
            SHARDS - 1,
            w.hottest_family_keys,
            w.hottest_family_writes.write_units,
            w.hottest_family_writes.write_units / d as f64,
            w.hottest_family_writes.write_units / d as f64,
            w.expected_hot_wru_per_s(d),
        );
    } else {
        let _ = write!(
            text,
            "The key `{family}` has no shard suffix (`#0`..`#{}`), so all of that \
             endpoint's writes land in it: the expected figure is the measured one, \
             **{:.0} WRU/s** (DynamoDB's limit is 1,000 WCU/s per partition).",
            SHARDS - 1,
            w.expected_hot_wru_per_s(d),
        );
    }
    text
}

/// The goals table.
pub(super) fn goals(s: &mut String, r: &Results) {
    let e = &r.emulator;
    let cost = |kind: RunKind| r.costs.iter().find(|c| c.kind == kind);
    let run = |kind: RunKind| e.run(kind);
    let dollars = |kind: RunKind, label: String, at_most: f64| {
        let c = cost(kind);
        Goal::at_most(
            label,
            c.map(|c| c.total_usd_per_million),
            c.map_or("not measured".into(), |c| usd(c.total_usd_per_million)),
            at_most,
            format!("≤ {}", usd(at_most)),
        )
    };
    let fanout = run(RunKind::BacklogFanout).map_or(10, |p| p.fanout);
    let mut rows = vec![
        dollars(
            RunKind::BacklogFanout,
            format!("$ per million deliveries, backlog (batches of 10), fan-out {fanout}"),
            0.25,
        ),
        dollars(
            RunKind::BacklogFanout1,
            "$ per million deliveries, backlog (batches of 10), fan-out 1".into(),
            0.50,
        ),
        dollars(
            RunKind::Steady,
            format!(
                "$ per million deliveries, steady {} events/s, fan-out 1 ({})",
                e.latency.rate,
                run(RunKind::Steady)
                    .and_then(|p| p.batching)
                    .map_or("?".into(), |b| b.describe())
            ),
            1.50,
        ),
    ];
    let delay = e
        .runs
        .iter()
        .map(|p| p.receiver_delay_ms)
        .min()
        .unwrap_or(0);
    rows.push(Goal::at_most(
        "Lambda duration priced at a 100 ms receiver, platform log lines counted",
        Some(if delay >= 100 { 0.0 } else { 1.0 }),
        format!(
            "receiver {delay} ms; {} bytes of platform lines per invocation",
            crate::cost::PRICES.lambda_platform_log_bytes_per_invocation
        ),
        0.0,
        "in the totals above".into(),
    ));
    let calls = run(RunKind::BacklogFanout).map(calls_per_delivery);
    rows.push(Goal::at_most(
        format!("AWS calls per delivery, backlog (fan-out {fanout})"),
        calls,
        calls.map_or("not measured".into(), |c| format!("{c:.3}")),
        0.05,
        "≤ 0.05".into(),
    ));
    let lookups = &e.lookup_goals;
    for (figure, value, at_most) in [
        (
            "read units per lookup, app with 10,000 subscriptions of which 10 match",
            lookups.read_units_10k_subscriptions_10_match,
            5.0,
        ),
        (
            "read units to confirm an unchanged app's subscriptions",
            lookups.read_units_confirm_unchanged,
            0.5,
        ),
    ] {
        rows.push(Goal::at_most(
            figure,
            value,
            value.map_or("not measured".into(), |v| format!("{v:.1}")),
            at_most,
            format!("≤ {at_most}"),
        ));
    }
    let single = run(RunKind::BacklogFanout1);
    let hot = single.map(|p| {
        (
            p.partitions.expected_hot_wru_per_s(p.deliveries),
            p.partitions.measured_hot_wru_per_s(p.deliveries),
        )
    });
    rows.push(Goal::at_most(
        format!(
            "write units per second into any one partition, one endpoint at {RATE} deliveries/s"
        ),
        hot.map(|(expected, _)| expected),
        hot.map_or("not measured".into(), |(expected, measured)| {
            format!("{expected:.0} expected ({measured:.0} in this run's hottest key)")
        }),
        500.0,
        "≤ 500".into(),
    ));

    let _ = writeln!(s, "## Issue #10 goals\n");
    let _ = writeln!(
        s,
        "The goals of issue #10, at list prices, from sections 3 and 5 of this run.{}\n",
        if r.settings.quick {
            " **A quick run: counts too small to judge a goal by.**"
        } else {
            ""
        }
    );
    table(s, &rows);
    if let Some(c) = cost(RunKind::SteadyLatencyFirst) {
        let _ = writeln!(
            s,
            "For comparison, the same steady run with latency-first batching ({}) costs {} per \
             million deliveries (section 3).\n",
            run(RunKind::SteadyLatencyFirst)
                .and_then(|p| p.batching)
                .map_or("?".into(), |b| b.describe()),
            usd(c.total_usd_per_million)
        );
    }
    if lookups.read_units_10k_subscriptions_10_match.is_none() {
        let _ = writeln!(
            s,
            "The two lookup rows are filled by section 5b when it measures them \
             (`emulator.lookup_goals` in `bench-results.json`).\n"
        );
    }
    if let Some(p) = single {
        let _ = writeln!(s, "{}\n", write_partitions_text(p));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_rate_as_written_is_the_rate_computed_with() {
        assert_eq!(
            super::RATE.replace(',', "").parse::<f64>().unwrap(),
            crate::partitions::HOT_ENDPOINT_RATE
        );
    }
}
