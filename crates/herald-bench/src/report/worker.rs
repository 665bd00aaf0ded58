//! Section 6 of the report: `herald worker` end to end on fauxqs and moto.

use std::fmt::Write;

use super::hot_path::saturated_emulator;
use crate::e2e::{E2eKind, E2eResults, WorkerRun};

/// `fauxqs 38 µs (0.41)` for each process watched besides the worker.
fn others(run: &WorkerRun, name: &str) -> String {
    run.others
        .iter()
        .find(|p| p.process == name)
        .map_or("–".into(), |p| {
            format!("{:.0} µs ({:.2})", p.us_per_delivery, p.cores)
        })
}

/// The section.
pub(super) fn section(s: &mut String, w: &E2eResults, profile: &str) {
    let _ = writeln!(s, "## 6. The worker end to end (fauxqs and moto)\n");
    let _ = writeln!(
        s,
        "The real worker, `herald worker` ({profile} build), as a user runs it (the local \
         worker's default batching: {}), draining events queued before it starts. SQS is \
         [fauxqs](https://www.npmjs.com/package/fauxqs) {} (Node, one thread; pinned in \
         `crates/herald-bench/fauxqs`, started by the bench on 127.0.0.1), where moto's SQS \
         would be the limit; `make fauxqs` patches it to return a message's attributes only \
         when the receive names them, as SQS does (unpatched, every message the worker \
         received would carry the publisher's three attributes, which SQS never sends it); the subscriptions and the delivery history are on moto's \
         DynamoDB, as in sections 2–3. The worker reaches them by `AWS_ENDPOINT_URL_SQS` and \
         `AWS_ENDPOINT_URL`. Each run has queues of its own on fauxqs (the stack's \
         visibility timeout and retention, a dead-letter queue of its own) and a fresh \
         worker; the receiver is the bench's receiver process on 127.0.0.1 (one port per \
         endpoint), answering 204 at once or after a delay. **Rate**: deliveries from the \
         worker's `worker polling` line to its last `batch handled` line. **CPU**: user + \
         system time of each process over the same span, from `/proc/<pid>/stat` (10 ms \
         ticks), per delivery, with the cores it kept busy (CPU seconds per second) in \
         brackets; the worker's is its own, the emulators', the receiver's and the bench's \
         (which reads the worker's log pipe) apart. **Exactly once**: the receiver counts \
         every request and any `webhook-id` it has seen before. Each batch logged is one \
         `ReceiveMessage` that returned messages, one `DeleteMessageBatch` and one history \
         `BatchWriteItem` (section 3 counts the calls through its proxy; there is no proxy \
         here, so as not to slow the path measured).\n",
        w.batching.describe(),
        w.fauxqs_version,
    );
    let _ = writeln!(
        s,
        "| run | deliveries | deliveries/s | worker CPU/delivery (cores) | fauxqs | moto | receiver | bench | batches (events each) | handler p50 / p95 | worker peak RSS | exactly once |"
    );
    let _ = writeln!(
        s,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    );
    for run in &w.runs {
        let once = if run.delivered == run.expected && run.duplicates == 0 {
            "yes".to_owned()
        } else {
            format!(
                "**{} of {}, {} repeated**",
                run.delivered, run.expected, run.duplicates
            )
        };
        let _ = writeln!(
            s,
            "| {} | {} | {:.0} | {:.0} µs ({:.2}) | {} | {} | {} | {} | {} ({:.1}) | {:.0} / {:.0} ms | {:.1} MiB | {once} |",
            run.label,
            run.delivered,
            run.per_sec,
            run.worker.us_per_delivery,
            run.worker.cores,
            others(run, "fauxqs"),
            others(run, "moto"),
            others(run, "receiver"),
            others(run, "bench"),
            run.batches,
            run.records_per_batch.mean,
            run.handler_ms.p50,
            run.handler_ms.p95,
            run.worker_peak_rss_kib as f64 / 1024.0,
        );
    }
    let _ = writeln!(s);
    if let Some(best) = w.best(E2eKind::Fanout1).filter(|b| b.runs.len() > 1) {
        let range = |of: &dyn Fn(&WorkerRun) -> Option<f64>| {
            let v: Vec<f64> = best.runs.iter().filter_map(|r| of(r)).collect();
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(0.0, f64::max);
            format!("{lo:.0}–{hi:.0} µs")
        };
        let fauxqs = |r: &WorkerRun| {
            r.others
                .iter()
                .find(|p| p.process == "fauxqs")
                .map(|p| p.us_per_delivery)
        };
        let _ = writeln!(
            s,
            "**The fan-out-1 drain ran {} times** (each with queues, an app and a worker of \
             its own), as section 1 runs each side several times: issue #11's goals read its \
             best run, the least worker CPU per delivery ({:.0} µs; median {:.0} µs) and the \
             most deliveries/s ({:.0}; median {:.0}). Across the runs the worker took {} per \
             delivery, and fauxqs {}: fauxqs does the same work for every run's messages, so \
             its spread, beyond its first run (which also warms up Node's JIT), is the \
             host's, which weighs on the worker alike \
             (docs/perf/README.md, \"Best runs\").\n",
            best.runs.len(),
            best.least_cpu.worker.us_per_delivery,
            best.median_cpu_us,
            best.fastest.per_sec,
            best.median_per_sec,
            range(&|r| Some(r.worker.us_per_delivery)),
            range(&fauxqs),
        );
    }
    if let Some(slow) = w.run(E2eKind::SlowReceivers) {
        if let Some(ideal) = slow.ideal_per_sec {
            let _ = writeln!(
                s,
                "With receivers answering in {} ms, the consumer's cap of {} deliveries in flight \
                 allows at most {} / {:.1} s = **{:.0} deliveries/s**; the worker made {:.0}/s, \
                 {:.2}× of that. The worker keeps ⌈cap / batch size⌉ + 2 batches in hand \
                 ({:.1} deliveries each here) so that the cap stays busy while a batch that \
                 has delivered writes its history, is deleted and the next is received.\n",
                slow.receiver_delay_ms,
                slow.concurrency_cap,
                slow.concurrency_cap,
                slow.receiver_delay_ms as f64 / 1e3,
                ideal,
                slow.per_sec,
                slow.per_sec / ideal,
                slow.records_per_batch.mean * slow.fanout as f64,
            );
        }
    }
    let limits: Vec<String> = w
        .runs
        .iter()
        .filter_map(|run| {
            saturated_emulator(run)
                .map(|(name, cores)| format!("{} ({name}, {cores:.2} of a core)", run.label))
        })
        .collect();
    let _ = writeln!(
        s,
        "{}\n",
        if limits.is_empty() {
            "No emulator used 0.9 of a core or more in these runs: neither was the limit."
                .to_owned()
        } else {
            format!("An emulator was the limit in: {}.", limits.join("; "))
        }
    );
    if !w.worker_warnings.is_empty() {
        let _ = writeln!(
            s,
            "The worker logged {} warnings or errors in these runs (`worker.worker_warnings` \
             in `bench-results.json`).\n",
            w.worker_warnings.len()
        );
    }
}
