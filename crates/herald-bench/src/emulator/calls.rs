//! Section 3: AWS calls per delivered webhook. Backlogs of events published at once,
//! each matching one or several subscriptions; and what every run (the baseline, the
//! steady runs, the backlogs) counted through the proxy and read off the worker's logs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use herald_core::{AppId, Event};
use herald_queue::Publisher;
use serde::Serialize;

use super::shared::{BatchLog, Batching, Bench, WorkerProc};
use crate::partitions::WritePartitions;
use crate::payload::event_1k;
use crate::proxy::Counts;
use crate::stats::Summary;

/// Which run a [`CallsPhase`] is; the goals and the report look runs up by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// The emulator's SQS alone (section 2's baseline).
    SqsAlone,
    /// Section 2's latency run: latency-first batching, a receiver answering at once.
    Latency,
    /// Steady rate, fan-out 1, latency-first batching, the delayed receiver.
    SteadyLatencyFirst,
    /// Steady rate, fan-out 1, the event source mapping's default batching.
    Steady,
    /// A backlog, each event matching several subscriptions.
    BacklogFanout,
    /// A backlog, each event matching one subscription.
    BacklogFanout1,
}

/// How a run was set up, besides its counts.
#[derive(Debug, Clone, Serialize)]
pub struct RunSetup {
    pub kind: RunKind,
    pub label: String,
    /// The worker's batching (none for the SQS-alone baseline).
    pub batching: Option<Batching>,
    /// How long the receiver took to answer each delivery, ms.
    pub receiver_delay_ms: u64,
    /// Subscriptions each event matched.
    pub fanout: u64,
}

/// One run's AWS calls and handler work.
#[derive(Debug, Clone, Serialize)]
pub struct CallsPhase {
    pub kind: RunKind,
    pub label: String,
    pub batching: Option<Batching>,
    pub receiver_delay_ms: u64,
    pub fanout: u64,
    pub events: u64,
    /// Webhooks delivered (receiver answered 2xx).
    pub deliveries: u64,
    pub counts: Counts,
    /// DynamoDB writes by partition key.
    pub partitions: WritePartitions,
    /// Batches the consumer handled (= Lambda invocations).
    pub batches: u64,
    /// Records (events) per batch.
    pub records_per_batch: Summary,
    /// Handler time per batch, ms (from the worker's "batch handled" lines).
    pub handler_ms: Summary,
    /// Sum over batches of the handler time rounded up to whole ms (Lambda bills per ms).
    pub billed_ms_total: f64,
    /// Bytes of JSON log lines the worker wrote during the run.
    pub log_bytes: u64,
    /// Wall time from the first publish to the last receipt, s.
    pub wall_s: f64,
}

/// A backlog: `events` events published at once in batches of 10 (`publish_all`),
/// each matching `fanout` subscriptions of `app`; data seeded from `seed`.
#[allow(clippy::too_many_arguments)]
pub(super) async fn backlog(
    bench: &Bench,
    worker: &WorkerProc,
    publisher: &Arc<Publisher>,
    app: &AppId,
    kind: RunKind,
    events: usize,
    fanout: usize,
    seed: u64,
) -> Result<CallsPhase> {
    let (proxy, receiver) = (&bench.proxy, &bench.receiver);
    let batch: Vec<Event> = (0..events)
        .map(|i| event_1k(app, seed + i as u64))
        .collect::<Result<_>>()?;
    let expected = (events * fanout) as u64;
    eprintln!(
        "[bench] Herald: backlog of {events} events x {fanout} subscription(s), {}, receiver {} ms",
        worker.batching.describe(),
        bench.receiver.delay_ms()
    );
    worker.take();
    proxy.take();
    let received0 = receiver.total();
    let answered0 = receiver.answered();
    let started = Instant::now();
    publisher
        .publish_all(&batch)
        .await
        .context("publishing the backlog")?;
    bench
        .settle(
            worker,
            answered0,
            events as u64,
            expected,
            Duration::from_secs(300),
        )
        .await;
    let wall = started.elapsed().as_secs_f64();
    let delivered = (receiver.total() - received0).min(expected);
    let (batches, log_bytes) = worker.take();
    Ok(phase(
        RunSetup {
            kind,
            label: format!("backlog, fan-out {fanout}, {}", worker.batching.describe()),
            batching: Some(worker.batching),
            receiver_delay_ms: bench.receiver.delay_ms(),
            fanout: fanout as u64,
        },
        events as u64,
        delivered,
        proxy.take(),
        batches,
        log_bytes,
        wall,
    ))
}

/// A run's figures from its setup, counts and the worker's batch lines.
pub(super) fn phase(
    setup: RunSetup,
    events: u64,
    deliveries: u64,
    counts: Counts,
    batches: Vec<BatchLog>,
    log_bytes: u64,
    wall_s: f64,
) -> CallsPhase {
    let ms: Vec<f64> = batches.iter().map(|b| b.elapsed_ms).collect();
    let records: Vec<f64> = batches.iter().map(|b| b.records as f64).collect();
    CallsPhase {
        kind: setup.kind,
        label: setup.label,
        batching: setup.batching,
        receiver_delay_ms: setup.receiver_delay_ms,
        fanout: setup.fanout,
        events,
        deliveries,
        partitions: WritePartitions::of(&counts),
        counts,
        batches: batches.len() as u64,
        records_per_batch: Summary::of(&records),
        handler_ms: Summary::of(&ms),
        // The worker logs whole milliseconds; a 0 ms batch is billed 1 ms.
        billed_ms_total: ms.iter().map(|m| m.ceil().max(1.0)).sum(),
        log_bytes,
        wall_s,
    }
}
