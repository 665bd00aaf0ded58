//! Issue #11's goals table (a lean hot path, a worker without a batch barrier): each
//! goal, the figure this run measured, and whether it is met.

use std::fmt::Write;

use super::goals::{table, Bound, Goal};
use crate::e2e::{E2eKind, WorkerRun};
use crate::inproc::Comparison;
use crate::Results;

/// An emulator using this much of a core or more is taken as the limit of a run.
const SATURATED_CORES: f64 = 0.9;

/// The in-process row of `endpoints` endpoints (allocations counted, logs on).
fn row_at(rows: &[Comparison], endpoints: usize) -> Option<&Comparison> {
    rows.iter()
        .find(|c| c.shape.endpoints == endpoints && c.logs && c.alloc_counting)
}

/// Ratios as the goals table shows them: `a / b / c×`, "–" for one not measured.
fn ratios(values: &[Option<f64>]) -> String {
    values
        .iter()
        .map(|x| x.map_or("–".into(), |x| format!("{x:.2}")))
        .collect::<Vec<_>>()
        .join(" / ")
        + "×"
}

/// The busiest emulator of a run, if one used [`SATURATED_CORES`] or more.
pub(super) fn saturated_emulator(run: &WorkerRun) -> Option<(String, f64)> {
    run.others
        .iter()
        .filter(|p| p.process == "fauxqs" || p.process == "moto")
        .max_by(|a, b| a.cores.total_cmp(&b.cores))
        .filter(|p| p.cores >= SATURATED_CORES)
        .map(|p| (p.process.clone(), p.cores))
}

/// The goals of issue #11.
pub(super) fn goals(s: &mut String, r: &Results) {
    let mut rows = Vec::new();
    let rows_at: Vec<Option<&Comparison>> = [1, 10, 100]
        .iter()
        .map(|e| row_at(&r.throughput, *e))
        .collect();
    let rates: Vec<Option<f64>> = rows_at.iter().map(|c| c.map(|c| c.rate_ratio)).collect();
    let medians: Vec<Option<f64>> = rows_at
        .iter()
        .map(|c| c.map(|c| c.rate_ratio_median))
        .collect();
    let lowest = rates
        .iter()
        .copied()
        .collect::<Option<Vec<f64>>>()
        .map(|v| v.into_iter().fold(f64::INFINITY, f64::min));
    rows.push(Goal {
        figure: "deliveries/s vs bare reqwest, 1 / 10 / 100 endpoints, best runs (section 1)"
            .into(),
        measured: lowest,
        shown: format!("{} (medians {})", ratios(&rates), ratios(&medians)),
        bound: Bound::AtLeast(0.8),
        goal: "≥ 0.8× each".into(),
        verdict: None,
    });
    let uncounted = r
        .throughput
        .iter()
        .find(|c| c.shape.endpoints == 10 && c.logs && !c.alloc_counting);
    rows.push(Goal {
        figure:
            "CPU per delivery vs bare reqwest, 10 endpoints, allocations not counted, best runs (section 1)"
                .into(),
        measured: uncounted.map(|c| c.cpu_ratio),
        shown: uncounted.map_or("not measured".into(), |c| {
            format!(
                "{:.2}× ({:.1} vs {:.1} µs; medians {:.2}×)",
                c.cpu_ratio, c.herald.cpu_us_best, c.bare.cpu_us_best, c.cpu_ratio_median
            )
        }),
        bound: Bound::AtMost(1.25),
        goal: "≤ 1.25×".into(),
        verdict: None,
    });
    let single = r.fanout.iter().find(|c| c.shape.subscriptions == 1);
    rows.push(Goal {
        figure:
            "fan-out 1 subscription per event, deliveries/s vs bare reqwest, best runs (section 5)"
                .into(),
        measured: single.map(|c| c.rate_ratio),
        shown: single.map_or("not measured".into(), |c| {
            format!("{:.2}× (medians {:.2}×)", c.rate_ratio, c.rate_ratio_median)
        }),
        bound: Bound::AtLeast(0.7),
        goal: "≥ 0.7×".into(),
        verdict: None,
    });
    let slow = r.worker.run(E2eKind::SlowReceivers);
    let ideal = slow.and_then(|w| Some((w, w.ideal_per_sec?)));
    rows.push(Goal {
        figure: "local worker, 100 ms receivers, deliveries/s vs the concurrency cap's ideal (section 6)"
            .into(),
        measured: ideal.map(|(w, i)| w.per_sec / i),
        shown: ideal.map_or("not measured".into(), |(w, i)| {
            format!(
                "{:.2}× ({:.0} of {:.0}/s: cap {} / {} ms)",
                w.per_sec / i,
                w.per_sec,
                i,
                w.concurrency_cap,
                w.receiver_delay_ms
            )
        }),
        bound: Bound::AtLeast(0.9),
        goal: "≥ 0.9×".into(),
        verdict: None,
    });
    let split = &r.emulator.latency.split;
    rows.push(Goal {
        figure:
            "publish → receipt p99 beyond the emulator's own send → receive, per event (section 2)"
                .into(),
        measured: (split.events > 0).then_some(split.beyond_emulator_ms.p99),
        shown: if split.events > 0 {
            format!(
                "{:.1} ms (Herald's own {:.1} ms, waiting for a poll {:.1} ms, at p99)",
                split.beyond_emulator_ms.p99, split.herald_ms.p99, split.waiting_for_poll_ms.p99
            )
        } else {
            "not measured".into()
        },
        bound: Bound::AtMost(10.0),
        goal: "≤ 10 ms in every run".into(),
        verdict: None,
    });
    let f1 = r.worker.best(E2eKind::Fanout1);
    let fan = r.worker.run(E2eKind::Fanout);
    let of_runs = |b: &crate::e2e::BestRuns<'_>| {
        if b.runs.len() > 1 {
            format!("best of {} runs; ", b.runs.len())
        } else {
            String::new()
        }
    };
    rows.push(Goal {
        figure: "`herald worker` end to end, own CPU per delivery, fan-out 1 (section 6; emulators apart)"
            .into(),
        measured: f1.as_ref().map(|b| b.least_cpu.worker.us_per_delivery),
        shown: f1.as_ref().map_or("not measured".into(), |b| {
            format!(
                "{:.0} µs ({}median {:.0} µs{})",
                b.least_cpu.worker.us_per_delivery,
                of_runs(b),
                b.median_cpu_us,
                fan.map_or(String::new(), |f| format!(
                    "; {:.0} µs at fan-out {}",
                    f.worker.us_per_delivery, f.fanout
                ))
            )
        }),
        bound: Bound::AtMost(120.0),
        goal: "≤ 120 µs".into(),
        verdict: None,
    });
    let fastest = f1.as_ref().map(|b| b.fastest);
    let limit = fastest.and_then(saturated_emulator);
    rows.push(Goal {
        figure: format!(
            "`herald worker` end to end, {} queued events, one endpoint, deliveries/s (SQS on fauxqs)",
            fastest.map_or(0, |w| w.events)
        ),
        measured: fastest.map(|w| w.per_sec),
        shown: f1.as_ref().map_or("not measured".into(), |b| {
            format!(
                "{:.0} ({}median {:.0})",
                b.fastest.per_sec,
                of_runs(b),
                b.median_per_sec
            )
        }),
        bound: Bound::AtLeast(2_000.0),
        goal: "≥ 2,000, or an emulator saturated as the limit".into(),
        verdict: match (fastest, limit) {
            (Some(w), Some((name, cores))) if w.per_sec < 2_000.0 => Some(format!(
                "{name} saturated ({cores:.2} of a core): the emulator is the limit"
            )),
            _ => None,
        },
    });
    let zip = r.emulator.footprint.package.zip_bytes;
    rows.push(Goal {
        figure: "consumer Lambda zip (section 4)".into(),
        measured: zip.map(|b| b as f64 / 1048576.0),
        shown: zip.map_or("not measured".into(), |b| {
            format!("{:.2} MiB", b as f64 / 1048576.0)
        }),
        bound: Bound::AtMost(4.0),
        goal: "≤ 4 MiB".into(),
        verdict: None,
    });

    let _ = writeln!(s, "## Issue #11 goals\n");
    let _ = writeln!(
        s,
        "The goals of issue #11 (a lean hot path, a worker without a batch barrier), from \
         sections 1, 2, 4, 5 and 6 of this run.{}\n",
        if r.settings.quick {
            " **A quick run: small counts, too small to judge a goal by.**"
        } else {
            ""
        }
    );
    table(s, &rows);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::e2e::tests::{cpu, sample_run};

    #[test]
    fn an_emulator_at_a_full_core_is_the_limit() {
        let mut run = sample_run(E2eKind::Fanout1, 1.0, 1.0);
        run.others = vec![cpu("fauxqs", 0.5), cpu("moto", 0.95), cpu("receiver", 1.5)];
        assert_eq!(saturated_emulator(&run), Some(("moto".into(), 0.95)));
        run.others = vec![cpu("fauxqs", 0.5), cpu("receiver", 1.5)];
        assert_eq!(
            saturated_emulator(&run),
            None,
            "the receiver is no emulator"
        );
    }
}
