//! `BENCHMARKS.md`: every figure beside its baseline, the ratio, and why a figure is
//! far from its baseline where it is.

mod calls;
mod goals;
mod hot_path;
mod worker;

use std::fmt::Write;

use crate::cost::{Breakdown, PRICES};
use crate::emulator::{EmulatorResults, RunKind};
use crate::inproc::Comparison;
use crate::stats::{median, Summary};
use crate::Results;

fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn opt_mib(bytes: Option<u64>) -> String {
    bytes.map_or("n/a".into(), |b| format!("{:.2} MiB", b as f64 / 1048576.0))
}

fn ratio(a: f64, b: f64) -> String {
    if b == 0.0 || !a.is_finite() || !b.is_finite() {
        "n/a".into()
    } else {
        format!("{:.2}×", a / b)
    }
}

fn usd(x: f64) -> String {
    if x >= 1.0 {
        format!("${x:.2}")
    } else {
        format!("${x:.3}")
    }
}

pub fn markdown(r: &Results) -> String {
    let mut s = String::new();
    let e = &r.emulator;
    let m = &r.machine;
    let _ = writeln!(s, "# Herald benchmarks\n");
    let _ = writeln!(
        s,
        "Written by `herald-bench` ({}) on {} in {:.0} s{}. Raw figures: \
         [`bench-results.json`](bench-results.json). Every figure stands beside a \
         baseline measured in the same run, on the same machine, with the ratio.\n",
        r.command,
        r.generated_at,
        r.duration_s,
        if r.settings.quick {
            " — **a quick smoke run: small counts, debug build; do not read performance from it**"
        } else {
            ""
        }
    );

    let _ = writeln!(s, "## Machine and versions\n");
    let _ = writeln!(s, "| | |\n| --- | --- |");
    let _ = writeln!(s, "| command | `{}` |", r.command);
    let _ = writeln!(s, "| date | {} |", r.generated_at);
    let _ = writeln!(s, "| CPUs | {} × {} |", m.cpus, m.cpu_model);
    let _ = writeln!(s, "| memory | {:.1} GiB |", m.memory_gib);
    let _ = writeln!(s, "| kernel | Linux {} |", m.kernel);
    let _ = writeln!(s, "| Rust | {} |", m.rustc);
    let _ = writeln!(s, "| emulator | moto server {} |", m.moto);
    let _ = writeln!(
        s,
        "| Herald | {} at {}, {} build |",
        m.herald_version, m.git_commit, r.settings.profile
    );
    let _ = writeln!(
        s,
        "| payload | {} bytes per delivery (signed JSON envelope of an order-like object: hex ids, names, amounts, timestamps, an address, line items, a note from a word list; different per event){} |",
        r.payload_bytes,
        r.compression.as_ref().map_or(String::new(), compression_text)
    );
    let [before, inproc, end] = r.load_average;
    let _ = writeln!(
        s,
        "| load average (1 min): start / after the in-process sections / end | {before:.2} / {inproc:.2} / {end:.2} (the bench's own work and the build before it included) |"
    );
    let [others_before, others_inproc] = r.other_cores;
    // A tenth of a core taken by others is enough to move a rate on a small machine.
    let busy = [others_before, others_inproc]
        .into_iter()
        .flatten()
        .any(|c| c > 0.1);
    let _ = writeln!(
        s,
        "| other processes' CPU (the machine's busy time less the bench's and its receiver's): a second before the run / during the in-process sections | {} / {} cores{} |",
        crate::cores_text(others_before),
        crate::cores_text(others_inproc),
        if busy {
            " — **other work was running on the machine**: the rates vary from run to run \
             (see the ranges); CPU per delivery and the counts vary much less"
        } else {
            " — the machine was otherwise idle"
        }
    );
    let [speed_start, speed_inproc, speed_worker] = r.host_speed_s;
    let (fastest, slowest) = (
        speed_start.min(speed_inproc).min(speed_worker),
        speed_start.max(speed_inproc).max(speed_worker),
    );
    let _ = writeln!(
        s,
        "| host speed: CPU time one thread takes to SHA-256 {} MiB (the same work each time): start / after the in-process sections / after section 6 | {speed_start:.2} / {speed_inproc:.2} / {speed_worker:.2} s{} |\n",
        crate::sys::HOST_SPEED_BYTES >> 20,
        if slowest > fastest * 1.15 {
            " — **the host ran this machine slower at times**, with nothing else running \
             on it: figures measured then cost more CPU on every side (docs/perf/README.md, \
             \"Best runs\")"
        } else {
            " — steady through the run; a compute-only task, it does not see a host that \
             slows memory-, lock- or network-heavy work alone"
        }
    );

    headline(&mut s, r);
    goals::goals(&mut s, r);
    hot_path::goals(&mut s, r);
    throughput(&mut s, r);
    latency(&mut s, e);
    calls::calls_and_cost(&mut s, r);
    footprint(&mut s, e, r.settings.profile);
    scale(&mut s, r);
    worker::section(&mut s, &r.worker, r.settings.profile);
    why(&mut s, r);
    limits(&mut s, r);
    s
}

fn headline(s: &mut String, r: &Results) {
    let e = &r.emulator;
    let _ = writeln!(s, "## Headline\n");
    let _ = writeln!(
        s,
        "| figure | Herald | baseline | ratio |\n| --- | ---: | ---: | ---: |"
    );
    if let Some(t) = r
        .throughput
        .iter()
        .find(|t| t.shape.endpoints == 10 && t.logs && t.alloc_counting)
    {
        let _ = writeln!(
            s,
            "| deliveries/s, 10 endpoints, in process, best runs (vs bare reqwest) | {:.0} | {:.0} | {} |",
            t.herald.per_sec_max,
            t.bare.per_sec_max,
            ratio(t.herald.per_sec_max, t.bare.per_sec_max)
        );
    }
    if let Some(t) = r
        .throughput
        .iter()
        .find(|t| t.shape.endpoints == 10 && t.logs && !t.alloc_counting)
    {
        let _ = writeln!(
            s,
            "| CPU per delivery, 10 endpoints, allocations not counted, best runs (vs bare reqwest) | {:.1} µs | {:.1} µs | {} |",
            t.herald.cpu_us_best,
            t.bare.cpu_us_best,
            ratio(t.herald.cpu_us_best, t.bare.cpu_us_best)
        );
    }
    let l = &e.latency;
    let _ = writeln!(
        s,
        "| publish → receipt p50 / p99, emulator (vs SQS alone) | {:.0} / {:.0} ms | {:.0} / {:.0} ms | {} |",
        l.herald_ms.p50,
        l.herald_ms.p99,
        l.baseline_ms.p50,
        l.baseline_ms.p99,
        ratio(l.herald_ms.p50, l.baseline_ms.p50)
    );
    let calls = calls::calls_per_delivery;
    if let Some(steady) = e.run(RunKind::Steady) {
        let _ = writeln!(
            s,
            "| AWS calls per delivered webhook, steady (vs SQS alone per message) | {:.2} | {:.2} | {} |",
            calls(steady),
            calls(&e.pipe),
            ratio(calls(steady), calls(&e.pipe))
        );
    }
    for c in &r.costs {
        let _ = writeln!(
            s,
            "| cost per million deliveries, {} (vs SQS alone) | {} | {} | {} |",
            c.scenario,
            usd(c.total_usd_per_million),
            usd(r.cost_baseline.total_usd_per_million),
            ratio(
                c.total_usd_per_million,
                r.cost_baseline.total_usd_per_million
            )
        );
    }
    let f = &e.footprint;
    let _ = writeln!(
        s,
        "| worker peak RSS under load (vs the same worker idle) | {:.1} MiB | {:.1} MiB | {} |",
        kib_to_mib(f.worker_after_load.hwm_kib),
        kib_to_mib(f.worker_idle.rss_kib),
        ratio(
            f.worker_after_load.hwm_kib as f64,
            f.worker_idle.rss_kib as f64
        )
    );
    let _ = writeln!(
        s,
        "| Lambda package, zipped (vs a hello-world Rust Lambda) | {} | {} | {} |",
        opt_mib(f.package.zip_bytes),
        opt_mib(f.package_baseline.zip_bytes),
        ratio(
            f.package.zip_bytes.unwrap_or(0) as f64,
            f.package_baseline.zip_bytes.unwrap_or(0) as f64
        )
    );
    let _ = writeln!(
        s,
        "| worker start → ready, median (vs spawning /bin/true) | {:.1} ms | {:.1} ms | {} |",
        median(&f.start_to_ready_ms),
        median(&f.spawn_true_ms),
        ratio(median(&f.start_to_ready_ms), median(&f.spawn_true_ms))
    );
    if let Some(big) = e.lookup.rows.last() {
        let _ = writeln!(
            s,
            "| webhook lookup, app of {} webhooks of which {} take the type: DynamoDB read units (vs a 1-item Query) | {:.1} | 0.5 | {} |",
            big.subscriptions,
            big.matched,
            big.read_units,
            ratio(big.read_units, 0.5)
        );
        let _ = writeln!(
            s,
            "| … confirming a cached lookup (the app's routing version `GetItem`): read units | {:.1} | 0.5 | {} |",
            big.confirm_read_units,
            ratio(big.confirm_read_units, 0.5)
        );
        let _ = writeln!(
            s,
            "| … the whole lookup, p50, on moto (vs a 1-item Query on moto) | {:.0} ms | {:.0} ms | {} |",
            big.lookup_ms.p50,
            big.baseline_ms.p50,
            ratio(big.lookup_ms.p50, big.baseline_ms.p50)
        );
    }
    let _ = writeln!(s);
}

fn comparison_table(s: &mut String, rows: &[Comparison], first: &str) {
    let _ = writeln!(
        s,
        "| {first} | in flight: bare / Herald (calls at once) | Herald deliveries/s: best (median, slowest) | bare reqwest deliveries/s: best (median, slowest) | ratio: best (medians) | Herald CPU/delivery: least (median) | bare CPU/delivery: least (median) | ratio: least (medians) | Herald peak heap Δ | bare peak heap Δ | ratio | Herald log bytes/delivery | bare reqwest: the baseline's placement; the other's best deliveries/s |"
    );
    let _ = writeln!(
        s,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    );
    for c in rows {
        let heap = |b: u64| {
            if b >= 1 << 20 {
                format!("{:.1} MiB", b as f64 / 1048576.0)
            } else {
                format!("{:.0} KiB", b as f64 / 1024.0)
            }
        };
        let heap = |b: u64| {
            if c.alloc_counting {
                heap(b)
            } else {
                "not counted".into()
            }
        };
        let _ = writeln!(
            s,
            "| {} | {} / ≤ {} ({}) | {:.0} ({:.0}, {:.0}) | {:.0} ({:.0}, {:.0}) | {:.2}× ({:.2}×) | {:.1} µs ({:.1}) | {:.1} µs ({:.1}) | {:.2}× ({:.2}×) | {} | {} | {} | {:.0} | {}; {:.0} {} |",
            c.label,
            c.in_flight,
            c.herald_in_flight_max,
            c.herald_calls_at_once,
            c.herald.per_sec_max,
            c.herald.per_sec,
            c.herald.per_sec_min,
            c.bare.per_sec_max,
            c.bare.per_sec,
            c.bare.per_sec_min,
            c.rate_ratio,
            c.rate_ratio_median,
            c.herald.cpu_us_best,
            c.herald.cpu_us_per_delivery,
            c.bare.cpu_us_best,
            c.bare.cpu_us_per_delivery,
            c.cpu_ratio,
            c.cpu_ratio_median,
            heap(c.herald.peak_heap_delta_bytes),
            heap(c.bare.peak_heap_delta_bytes),
            if c.alloc_counting {
                ratio(
                    c.herald.peak_heap_delta_bytes as f64,
                    c.bare.peak_heap_delta_bytes as f64,
                )
            } else {
                "–".into()
            },
            c.herald.log_bytes_per_delivery,
            c.bare_placement.describe(),
            c.bare_other.per_sec_max,
            c.bare_placement.other().describe(),
        );
    }
    let _ = writeln!(s);
}

fn throughput(s: &mut String, r: &Results) {
    let deliveries = r
        .throughput
        .first()
        .map_or(0, |t| t.herald.runs.first().map_or(0, |x| x.deliveries));
    let _ = writeln!(s, "## 1. Delivery throughput (in process)\n");
    let _ = writeln!(
        s,
        "`Consumer::handle` is fed SQS batches of 10 `Event` messages from memory (no emulator \
         in the loop); subscriptions, outbox and history are in-memory fakes, the deliverer is \
         the real `HttpDeliverer` (hyper's pooled HTTP/1.1 client on rustls, the client reqwest \
         is built on, without reqwest's redirect and retry layers; address policy admitting \
         127.0.0.1/32). Each event matches one \
         subscription per endpoint, so a batch makes 10 × endpoints deliveries; endpoints are \
         distinct ports of one receiver process (a minimal axum server answering 204), so each \
         has its own connection pool, as distinct hosts would. The handler logs as on Lambda \
         (JSON, `info`) into a sink that counts bytes. **Batches are handled concurrently**, as \
         the local worker and Lambda's pollers do: the bench keeps k handler calls going at \
         once (`buffer_unordered`), k = ⌈cap / deliveries per batch⌉ + 1, enough to keep the \
         consumer's cap of deliveries in flight (`HERALD_DELIVERY_CONCURRENCY`, {cap}) busy \
         with one more batch being started or finished. The calls are polled in a task on the \
         runtime's worker threads, where `herald worker` runs its batches and the consumer's \
         Lambda its invocations. **Baseline:** a bare `reqwest::Client` POSTing the same bodies \
         to the same URLs with the cap in flight ({cap}), run both ways, in a task on a worker \
         and by `block_on` from a thread outside the workers (as `#[tokio::main]` polls its main \
         future); the baseline is whichever was faster in the row (its best run), so Herald \
         is held to the bare client at its best, and the last column gives the other. **How in \
         flight is matched:** the bare client never has more than {cap} requests out, and \
         neither has Herald: the consumer's cap holds across all its calls at once (one \
         semaphore in `Consumer`), so the \"≤\" figure is the cap. Every run checks that each \
         delivery arrived exactly once (the receiver counts requests and repeated \
         `webhook-id`s), that every delivery succeeded and that no record was returned. \
         {deliveries} timed deliveries per run after a warm-up batch, {} run(s) of each (Herald, \
         the bare client on a worker, by `block_on`), in rotating order. **The ratios are \
         taken from each side's best run** (the fastest, and the least CPU per delivery), \
         with the ratio of the medians beside: on a shared host a run now and then takes half \
         again the CPU per delivery for the same work, on either side, while the machine is \
         otherwise idle (the other processes' figure above), and such a run only ever slows a \
         side, so a side's best run is the nearest to what its code costs and medians of a \
         few runs move with how many of them were hit (docs/perf/README.md, \"Best runs\"); \
         the median and the slowest run are in brackets. **CPU** is \
         `getrusage(RUSAGE_SELF)` of the bench process over the timed part (user + system, \
         every thread); the receiver runs in its own process and is not counted, but it \
         shares the {} cores. **Peak heap Δ** is the most live heap the run reached above where \
         it started, counted by the bench's global allocator (RSS would hide it behind memory \
         the allocator keeps from earlier runs; the RSS peaks are in the JSON). Counting does \
         atomic operations on every allocation, on both sides, which add to the CPU figures: \
         the row **allocations not counted** runs with the counting switched off (one flag \
         checked per allocation), and is the row issue #11's CPU goal reads. Both sides get \
         their bodies built before the timed part. **Allocator:** mimalloc on both sides, as \
         in the consumer's Lambda and `herald` (glibc's `malloc` took about a third of the \
         CPU of this section before: docs/perf/README.md).\n",
        r.settings.reps,
        r.machine.cpus,
        cap = r.throughput.first().map_or(64, |t| t.in_flight),
    );
    comparison_table(s, &r.throughput, "endpoints");
}

fn latency(s: &mut String, e: &EmulatorResults) {
    let l = &e.latency;
    let _ = writeln!(s, "## 2. End-to-end latency (emulator)\n");
    let _ = writeln!(
        s,
        "The real `herald worker` (long polls of 20 s, latency-first batching: whatever one \
         receive returns, up to 10, no batching window) against moto, one subscription to a \
         receiver in the bench process that answers at once. {:.0} events/s for {:.0} s, each \
         published on its own (`Publisher::publish`, one `SendMessageBatch`); latency runs from \
         the start of the publish call to the receiver's first byte-complete request. \
         **Baseline:** the emulator alone at the same rate in the same run: `SendMessageBatch` \
         of the same body and attributes to a second queue, `ReceiveMessage` with the worker's \
         parameters, `DeleteMessageBatch`; from the start of the send to the return of the \
         receive. Both go through the counting proxy.\n",
        l.rate, l.secs
    );
    let _ = writeln!(
        s,
        "| | n | lost | p50 | p95 | p99 | max | mean |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    let row = |s: &mut String, name: &str, x: &Summary, lost: usize| {
        let _ = writeln!(
            s,
            "| {name} | {} | {lost} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms |",
            x.n, x.p50, x.p95, x.p99, x.max, x.mean
        );
    };
    row(s, "Herald: publish → receipt", &l.herald_ms, l.herald_lost);
    row(
        s,
        "baseline: SQS send → receive (emulator alone)",
        &l.baseline_ms,
        l.baseline_lost,
    );
    let _ = writeln!(
        s,
        "| difference of the two runs' figures (not judged: see below) | | | {:.1} ms | {:.1} ms | {:.1} ms | | {:.1} ms |",
        l.herald_ms.p50 - l.baseline_ms.p50,
        l.herald_ms.p95 - l.baseline_ms.p95,
        l.herald_ms.p99 - l.baseline_ms.p99,
        l.herald_ms.mean - l.baseline_ms.mean
    );
    let _ = writeln!(
        s,
        "| ratio | | | {} | {} | {} | | {} |\n",
        ratio(l.herald_ms.p50, l.baseline_ms.p50),
        ratio(l.herald_ms.p95, l.baseline_ms.p95),
        ratio(l.herald_ms.p99, l.baseline_ms.p99),
        ratio(l.herald_ms.mean, l.baseline_ms.mean)
    );
    latency_split(s, &l.split);
    let h = &e.latency_run.handler_ms;
    let _ = writeln!(
        s,
        "In that run the worker handled {} batches; handler time per batch (its `batch handled` \
         log line, which includes the history write to the emulator): p50 {:.0} ms, p95 {:.0} ms, \
         mean {:.1} ms.\n",
        e.latency_run.batches, h.p50, h.p95, h.mean
    );
    if !l.variants.is_empty() {
        let _ = writeln!(
            s,
            "The priced steady runs of section 3, at the same rate with a receiver that takes \
             {} ms to answer (the time to the request's arrival, so the receiver's own time is \
             not in it); the batching window is what an event waits for at a trickle:\n",
            e.runs.first().map_or(0, |p| p.receiver_delay_ms)
        );
        let _ = writeln!(
            s,
            "| | n | lost | p50 | p95 | p99 | max | mean |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for v in &l.variants {
            row(s, &format!("Herald: {}", v.label), &v.ms, v.lost);
        }
        let _ = writeln!(s);
    }
}

/// Section 2's per-event split of Herald's latency run.
fn latency_split(s: &mut String, split: &crate::emulator::LatencySplit) {
    let _ = writeln!(
        s,
        "**What Herald adds, per event.** The difference of the two rows' percentiles compares \
         two samples of the emulator's latency taken at different times: on a busy machine \
         their tails differ by tens of milliseconds whatever Herald does, so it is shown but \
         not judged. Instead, each of Herald's events is split where the counting proxy handed \
         it to the worker (the `ReceiveMessage` answer that carried it leaving the proxy): \
         **Herald's own time**, from that hand-over to the request's arrival at the receiver \
         (decode, subscription lookup, signing, the POST); **waiting for a poll**, the part of \
         the time from the publish call's return to the hand-over during which the worker had \
         no `ReceiveMessage` open on the queue (it was finishing the previous batch: the \
         history write, the delete); and the rest, the emulator's own send → receive with a \
         receive open. Herald's share beyond the emulator is the first two, added per event; \
         its p99 is issue #11's figure. {} of the events arrived and were split{}.\n",
        split.events,
        if split.unseen > 0 {
            format!(
                " ({} arrived without the proxy seeing them handed over)",
                split.unseen
            )
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        s,
        "| per event | p50 | p95 | p99 | max | mean |\n| --- | ---: | ---: | ---: | ---: | ---: |"
    );
    for (name, x) in [
        (
            "Herald's own: handed to the worker → arrival at the receiver",
            &split.herald_ms,
        ),
        (
            "waiting for a poll: in the queue, no receive of the worker open",
            &split.waiting_for_poll_ms,
        ),
        (
            "**Herald beyond the emulator: the two, per event**",
            &split.beyond_emulator_ms,
        ),
        (
            "the emulator's own: publish → hand-over, a receive open",
            &split.emulator_ms,
        ),
    ] {
        let _ = writeln!(
            s,
            "| {name} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms |",
            x.p50, x.p95, x.p99, x.max, x.mean
        );
    }
    let _ = writeln!(s);
}

/// `; compresses to 60 % (deflate) / 58 % (zstd) alone, 30 % / 28 % 100 at a time`.
fn compression_text(c: &crate::payload::Compression) -> String {
    let pct = |x: Option<usize>, of: usize| {
        x.map_or("?".into(), |x| {
            format!("{:.0} %", x as f64 * 100.0 / of.max(1) as f64)
        })
    };
    format!(
        "; compressed: one alone to {} (deflate) / {} (zstd -3), 100 in one JSON array to {} / {}",
        pct(c.one_deflate, c.one_bytes),
        pct(c.one_zstd, c.one_bytes),
        pct(c.hundred_deflate, c.hundred_bytes),
        pct(c.hundred_zstd, c.hundred_bytes),
    )
}

fn footprint(s: &mut String, e: &EmulatorResults, profile: &str) {
    let f = &e.footprint;
    let _ = writeln!(s, "## 4. Footprint\n");
    let _ = writeln!(
        s,
        "| figure | Herald | baseline | ratio |\n| --- | ---: | ---: | ---: |"
    );
    let _ = writeln!(
        s,
        "| peak RSS of `herald worker` after the runs of sections 2–3 (`VmHWM`) vs its RSS when idle after start | {:.1} MiB | {:.1} MiB | {} |",
        kib_to_mib(f.worker_after_load.hwm_kib),
        kib_to_mib(f.worker_idle.rss_kib),
        ratio(f.worker_after_load.hwm_kib as f64, f.worker_idle.rss_kib as f64)
    );
    let _ = writeln!(
        s,
        "| Lambda package `{}` vs `{}`: binary | {} | {} | {} |",
        f.package.what,
        f.package_baseline.what,
        opt_mib(f.package.binary_bytes),
        opt_mib(f.package_baseline.binary_bytes),
        ratio(
            f.package.binary_bytes.unwrap_or(0) as f64,
            f.package_baseline.binary_bytes.unwrap_or(0) as f64
        )
    );
    let _ = writeln!(
        s,
        "| … zipped | {} | {} | {} |",
        opt_mib(f.package.zip_bytes),
        opt_mib(f.package_baseline.zip_bytes),
        ratio(
            f.package.zip_bytes.unwrap_or(0) as f64,
            f.package_baseline.zip_bytes.unwrap_or(0) as f64
        )
    );
    let _ = writeln!(
        s,
        "| start → ready of `herald worker` (spawn to its `worker polling` line), median of {} | {:.1} ms | {:.1} ms (spawn and exit of `/bin/true`, median of {}) | {} |",
        f.start_to_ready_ms.len(),
        median(&f.start_to_ready_ms),
        median(&f.spawn_true_ms),
        f.spawn_true_ms.len(),
        ratio(median(&f.start_to_ready_ms), median(&f.spawn_true_ms))
    );
    let _ = writeln!(
        s,
        "\nPackage: {}; baseline: {} — the smallest Rust Lambda on the same `lambda_runtime`, \
         answering an SQS batch. Both are built for x86_64-unknown-linux-gnu with the \
         workspace's {} profile{}. Start → ready includes reading the \
         configuration, building the AWS and HTTP clients and one `GetQueueAttributes` call to \
         the emulator (the visibility-timeout check); the individual starts took {} ms.\n",
        f.package.source,
        f.package_baseline.source,
        profile,
        if profile == "release" {
            " (fat LTO, one codegen unit, panic = abort, stripped)"
        } else {
            ", so the sizes are not representative"
        },
        f.start_to_ready_ms
            .iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

fn scale(s: &mut String, r: &Results) {
    let e = &r.emulator;
    let _ = writeln!(s, "## 5. Scale\n");
    let _ = writeln!(s, "### Subscriptions matching one event (in process)\n");
    let _ = writeln!(
        s,
        "As section 1, but each SQS batch holds **one** event and that event matches N \
         subscriptions (spread over up to 100 endpoints), so one handler call makes N \
         deliveries. About {} deliveries per run. Baseline as in section 1, at the same number \
         in flight.\n",
        r.settings.fanout_deliveries
    );
    comparison_table(s, &r.fanout, "subscriptions");
    let _ = writeln!(s, "### Webhook lookup by app size (emulator)\n");
    let _ = writeln!(
        s,
        "`SubscriptionStore::matching`: the routes of the event's (app, type) and of the \
         app's all-types webhooks (two strongly consistent `Query`s), then the object-type \
         filter, timed against moto for apps with N webhooks (written with `BatchWriteItem`, \
         {:.0} s in all) of which {} take the event's type and the rest {} other types. \
         **Baseline:** a `Query` returning one item (one page of one webhook), timed \
         alternately with the lookups of each row (a one-item query reads 0.5 units). The \
         read units are what DynamoDB would bill (counted by the proxy from the bytes \
         returned): for one lookup, and for confirming a cached one, the eventually \
         consistent `GetItem` of the app's routing version that a consumer makes once per \
         app per 5 s (`HERALD_SUBSCRIPTION_CACHE_TTL`); it reloads the routes of a type only \
         when that version moved (a routing change) or after 60 s.\n",
        e.lookup.write_s,
        crate::emulator::MATCHING,
        crate::emulator::OTHER_TYPES
    );
    let _ = writeln!(
        s,
        "| webhooks | matching | runs | lookup p50 | lookup max | 1-item Query p50 (same runs) | ratio | filter (in process) | bytes returned | read units per lookup | read units to confirm |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for row in &e.lookup.rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.1} ms | {:.1} ms | {:.1} ms | {} | {:.0} µs | {} | {:.1} | {:.1} |",
            row.subscriptions,
            row.matched,
            row.reps,
            row.lookup_ms.p50,
            row.lookup_ms.max,
            row.baseline_ms.p50,
            ratio(row.lookup_ms.p50, row.baseline_ms.p50),
            row.filter_us,
            row.item_bytes,
            row.read_units,
            row.confirm_read_units
        );
    }
    let _ = writeln!(s);
}

fn why(s: &mut String, r: &Results) {
    let e = &r.emulator;
    let _ = writeln!(s, "## Why figures are far from their baselines\n");
    if let Some(t) = r
        .throughput
        .iter()
        .find(|t| t.shape.endpoints == 10 && t.logs && t.alloc_counting)
    {
        let off = r.throughput.iter().find(|t| !t.logs);
        let uncounted = r.throughput.iter().find(|t| t.logs && !t.alloc_counting);
        let _ = writeln!(
            s,
            "- **Throughput and CPU (section 1): {} of the bare client's rate, {} its CPU per \
             delivery at 10 endpoints, best runs ({} with allocations not counted: {}).** The bare client \
             only sends bytes. Each Herald delivery also decodes the queue message, matches \
             subscriptions, builds the envelope and serializes it, computes an HMAC-SHA256 \
             signature per secret, derives the `webhook-id` (SHA-256), checks the URL against \
             the address policy, builds an attempt record, and its handler call logs one JSON summary line \
             ({:.0} bytes per delivery); with logs off the CPU per delivery is {}. Each handler \
             call also waits for the slowest delivery of its batch before it answers; with {} \
             calls at once the others keep deliveries in flight meanwhile. The flame graphs in \
             docs/perf/ show where the CPU goes. On this {}-core machine the receiver process \
             competes for the same cores, so CPU per delivery, not the rate, is the figure \
             that carries over to Lambda: at {} MB a function gets about {:.2} of a vCPU (a \
             full one at 1,769 MB), so {:.0} µs of CPU is about {:.2} ms of billed time per \
             delivery.",
            ratio(t.rate_ratio, 1.0),
            ratio(t.cpu_ratio, 1.0),
            uncounted.map_or("n/a".into(), |u| ratio(u.cpu_ratio, 1.0)),
            uncounted.map_or("not measured".into(), |u| format!(
                "{:.1} µs against {:.1} µs",
                u.herald.cpu_us_best, u.bare.cpu_us_best
            )),
            t.herald.log_bytes_per_delivery,
            off.map_or("not measured".into(), |o| {
                let delta = t.herald.cpu_us_per_delivery - o.herald.cpu_us_per_delivery;
                if delta > 0.0 {
                    format!(
                        "{:.1} µs ({} the bare client's), so the logs cost about {delta:.0} µs",
                        o.herald.cpu_us_per_delivery,
                        ratio(o.herald.cpu_us_per_delivery, o.bare.cpu_us_per_delivery)
                    )
                } else {
                    format!(
                        "{:.1} µs, no lower than with logs on: the logs' share is within this \
                         run's noise",
                        o.herald.cpu_us_per_delivery
                    )
                }
            }),
            t.herald_calls_at_once,
            r.machine.cpus,
            PRICES.lambda_memory_mb,
            PRICES.lambda_memory_mb / 1769.0,
            t.herald.cpu_us_per_delivery,
            t.herald.cpu_us_per_delivery / 1e3 / (PRICES.lambda_memory_mb / 1769.0),
        );
    }
    if let (Some(first), Some(last)) = (r.fanout.first(), r.fanout.last()) {
        let _ = writeln!(
            s,
            "- **Fan-out (section 5): from 1 to {} subscriptions per event Herald delivers at \
             {}–{} of the bare client's rate (the spread is mostly the machine's other load; see \
             the ranges) and its CPU per delivery falls from {:.0} µs to {:.0} µs.** \
             With one subscription each handler call makes a single delivery, so the fixed \
             cost of a call (decoding the batch, planning, the `batch handled` log line, the \
             history hand-off) falls on that delivery; the more subscriptions, the more \
             deliveries share it. Memory grows with the fan-out: the peak live heap of a call \
             went from {} KiB to {:.1} MiB ({} the bare client's at the same in flight), \
             because every delivery of a call holds its own copy of the event, the subscription \
             and the signed request, and every attempt record is kept until the call writes \
             the history at its end.",
            last.shape.subscriptions,
            ratio(
                r.fanout
                    .iter()
                    .map(|c| c.rate_ratio)
                    .fold(f64::INFINITY, f64::min),
                1.0
            ),
            ratio(
                r.fanout.iter().map(|c| c.rate_ratio).fold(0.0, f64::max),
                1.0
            ),
            first.herald.cpu_us_per_delivery,
            last.herald.cpu_us_per_delivery,
            first.herald.peak_heap_delta_bytes / 1024,
            last.herald.peak_heap_delta_bytes as f64 / 1048576.0,
            ratio(
                last.herald.peak_heap_delta_bytes as f64,
                last.bare.peak_heap_delta_bytes as f64
            ),
        );
    }
    let l = &e.latency;
    let h = &e.latency_run.handler_ms;
    let _ = writeln!(
        s,
        "- **Latency (section 2): per event, Herald adds p50 {:.1} ms and p99 {:.1} ms beyond \
         the emulator's own send → receive, latency first.** \
         The baseline ends when `ReceiveMessage` returns; Herald's path goes on: decode, \
         subscription lookup (cached; a `Query` to moto every 5 s), sign, POST to the receiver. \
         The worker receives again only after the batch's history write (`BatchWriteItem` to \
         moto) and `DeleteMessageBatch`: the handler took p50 {:.0} ms per batch, most of it \
         moto's. An event that arrives while a batch is being finished waits for it, which is \
         what stretches p95/p99. The absolute figures are moto's; on AWS both rows move with \
         SQS's own latency, and the difference stays what Herald adds: a decode, a cached \
         lookup, a signature and one HTTP request (and, between batches, the history write; \
         Lambda's event source mapping polls with several pollers in parallel). With the \
         event source mapping's default batching (infra/herald.yaml: batch 100, window 1 s) \
         an event at a trickle also waits for the window: {}.",
        l.split.beyond_emulator_ms.p50,
        l.split.beyond_emulator_ms.p99,
        h.p50,
        l.variants
            .iter()
            .map(|v| format!("p50 {:.0} ms with {}", v.ms.p50, v.label))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let largest = |b: Option<&Breakdown>| {
        let mut lines: Vec<_> = b.map(|b| b.lines.iter().collect()).unwrap_or_default();
        lines.sort_by(|a: &&crate::cost::CostLine, b| {
            b.usd_per_million.total_cmp(&a.usd_per_million)
        });
        lines
            .iter()
            .take(3)
            .map(|l| {
                format!(
                    "{} {}",
                    l.item.split(" (").next().unwrap_or(&l.item),
                    usd(l.usd_per_million)
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let name = |c: &Breakdown| e.run(c.kind).map_or(c.scenario.clone(), calls::short);
    let totals = r
        .costs
        .iter()
        .map(|c| format!("{} ({})", usd(c.total_usd_per_million), name(c)))
        .collect::<Vec<_>>()
        .join(", ");
    let lines = r
        .costs
        .iter()
        .map(|c| format!("{}: {}", name(c), largest(Some(c))))
        .collect::<Vec<_>>()
        .join("; ");
    let per_batch = e
        .runs
        .iter()
        .map(|p| {
            format!(
                "{:.1} events ({:.1} deliveries) per batch in the {} run",
                p.records_per_batch.mean,
                p.records_per_batch.mean * p.fanout as f64,
                calls::short(p)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(
        s,
        "- **Cost (section 3): {totals} per million deliveries, against {} for moving a \
         message through SQS alone.** The largest lines: {lines}. The per-batch costs (the \
         `ReceiveMessage` calls, a `DeleteMessageBatch` per 10 messages, the history's \
         `BatchWriteItem`, a Lambda invocation and its platform log lines, the handler's \
         summary log line) are shared by a batch's events and their fan-out: {per_batch}. \
         What remains per delivery is the history's write units (by key prefix in section 3), \
         the Lambda duration (the receiver's {} ms, shared by the deliveries a batch has in \
         flight at once, up to the consumer's concurrency) and any per-delivery log bytes.",
        usd(r.cost_baseline.total_usd_per_million),
        e.runs.first().map_or(0, |p| p.receiver_delay_ms),
    );
    if let Some(f1) = r
        .worker
        .best(crate::e2e::E2eKind::Fanout1)
        .map(|b| b.least_cpu)
    {
        let inproc = r
            .throughput
            .iter()
            .find(|t| t.shape.endpoints == 1 && t.alloc_counting);
        let fan = r.worker.run(crate::e2e::E2eKind::Fanout);
        let _ = writeln!(
            s,
            "- **The worker end to end (section 6): {:.0} deliveries/s at {:.0} µs of its own \
             CPU per delivery, fan-out 1 (its run with the least CPU){}.** Beyond the handler's work (section 1{}), the \
             process pays a `ReceiveMessage` and a `DeleteMessageBatch` per 10 messages (SQS's \
             limit) and the history's `BatchWriteItem` per batch of {:.1} events: building, \
             signing (SigV4), sending and parsing each AWS request; and its runtime wakes for \
             every socket event. At fan-out {} those calls are shared by {}× the deliveries{}. \
             Batches overlap: the worker receives the next while earlier ones deliver, write \
             their history and are deleted (handler p50 {:.0} ms per batch, most of it moto's \
             history write).",
            f1.per_sec,
            f1.worker.us_per_delivery,
            fan.map_or(String::new(), |f| format!(
                "; {:.0}/s at {:.0} µs at fan-out {}",
                f.per_sec, f.worker.us_per_delivery, f.fanout
            )),
            inproc.map_or(String::new(), |t| format!(
                ": {:.0} µs per delivery in process at 1 endpoint",
                t.herald.cpu_us_per_delivery
            )),
            f1.records_per_batch.mean,
            fan.map_or(10, |f| f.fanout),
            fan.map_or(10, |f| f.fanout),
            fan.map_or(String::new(), |f| format!(
                ", hence {:.0} µs",
                f.worker.us_per_delivery
            )),
            f1.handler_ms.p50,
        );
    }
    let f = &e.footprint;
    let _ = writeln!(
        s,
        "- **Start → ready (section 4): {:.0} ms against {:.1} ms for a bare process start.** \
         The worker loads the AWS configuration, builds two SDK clients and the HTTP client \
         (TLS roots included) and waits for a `GetQueueAttributes` round trip to the emulator \
         before it polls; the process start itself is the baseline.",
        median(&f.start_to_ready_ms),
        median(&f.spawn_true_ms)
    );
    let _ = writeln!(
        s,
        "- **Package (section 4): {} the hello-world Lambda.** The consumer links the AWS SDK \
         for SQS and DynamoDB (over reqwest), hyper's HTTP client with rustls, moka and \
         the serde code of every message type; the baseline links only `lambda_runtime`.",
        ratio(
            f.package.zip_bytes.unwrap_or(0) as f64,
            f.package_baseline.zip_bytes.unwrap_or(0) as f64
        )
    );
    if let Some(big) = e.lookup.rows.last() {
        let _ = writeln!(
            s,
            "- **Lookup (section 5): an app of {} webhooks, {} of which take the event's type, \
             costs {:.1} read units per lookup and {:.1} to confirm a cached one.** The lookup \
             reads only the routes of the event's type and of the all-types webhooks ({} \
             bytes here), whatever the app's size; the other webhooks are never read. A \
             consumer confirms its cache with one version read per app per 5 s and reloads a \
             type's routes only after a routing change of the app (or after 60 s), so at 12 \
             confirmations a minute an instance spends about ${:.6} a minute per app. The \
             moto times do not carry over: moto's Query walks the whole table in Python (its \
             one-item Query takes {:.0} ms here, with about {} webhooks and their routes in \
             the table), where DynamoDB reads only the partition.",
            big.subscriptions,
            big.matched,
            big.read_units,
            big.confirm_read_units,
            big.item_bytes,
            big.confirm_read_units * 12.0 * PRICES.dynamodb_per_million_rru / 1e6,
            big.baseline_ms.p50,
            e.lookup.rows.iter().map(|r| r.subscriptions).sum::<usize>(),
        );
    }
    let _ = writeln!(s);
}

fn limits(s: &mut String, r: &Results) {
    let _ = writeln!(s, "## What these figures are not\n");
    let _ = writeln!(
        s,
        "- **Not AWS.** Sections 2, 3 and 5b run against moto {}, which is much slower than \
           SQS and DynamoDB and slows down further as queues grow deep; its absolute latencies \
           are not a prediction for AWS. The baselines run on the same emulator in the same \
           run, so the differences are Herald's. Call counts and billed units do carry over. \
           Section 6 runs SQS on fauxqs {} (one Node thread) and DynamoDB on moto: its rates \
           are bounded by them and by the machine; the worker's CPU per delivery is its own.",
        r.machine.moto, r.worker.fauxqs_version
    );
    let _ = writeln!(
        s,
        "- **Not measured: Lambda cold start.** There is no Lambda runtime emulator on this \
           machine; the worker's start → ready is the nearest figure. arm64 builds (cheaper \
           Lambda duration) cannot be produced here either, so costs assume x86_64."
    );
    let _ = writeln!(
        s,
        "- **Lambda duration** is the handler time of `herald worker` (the same \
           `Consumer::handle` the Lambda binary runs) against moto with a receiver that \
           answers in {} ms: it includes the subscription lookups and the history write to \
           moto, which are slower than DynamoDB's, so on AWS it would be somewhat shorter. \
           The worker gathers a batch before calling the handler, as the event source \
           mapping does before invoking, so the gathering is not billed in either. Lambda's \
           own START/END/REPORT lines are priced at {} bytes per invocation, an upper bound \
           (infra/herald.yaml's JSON log format with system log level WARN drops them).",
        r.emulator.runs.first().map_or(0, |p| p.receiver_delay_ms),
        PRICES.lambda_platform_log_bytes_per_invocation
    );
    let _ = writeln!(
        s,
        "- **Not in the totals:** the event source mapping's polls of an idle queue (a few \
           long polls a minute, a fixed monthly cost, not per delivery), CloudWatch alarms and \
           metrics, KMS (the queues use SQS-managed encryption), retries and re-drives (every \
           delivery here succeeds at once), and the free tiers. Write units of updates and \
           deletes are counted as one per item (their size is not in the request)."
    );
    let _ = writeln!(
        s,
        "- **One machine of {} cores** runs the sender, the receiver and (for sections 2–6) \
           the emulators; the throughput figures are bounded by that. The emulator runs are \
           short (hundreds to a few thousand deliveries): counts per delivery are stable, \
           how writes spread over shards is not (see the goals' partition row).",
        r.machine.cpus
    );
    if !r.emulator.worker_warnings.is_empty() {
        let _ = writeln!(
            s,
            "- The worker logged {} warnings or errors during the runs; see \
               `bench-results.json` (`emulator.worker_warnings`).",
            r.emulator.worker_warnings.len()
        );
    }
    let _ = writeln!(
        s,
        "\nRegenerate with `make bench` (the run time is at the top of this file; the release \
         build adds 8–13 minutes from scratch) or the smoke version `make bench-quick` (debug build, small counts, writes to \
         `target/bench-quick/`)."
    );
}
