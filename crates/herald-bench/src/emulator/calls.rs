//! Section 3: AWS calls per delivered webhook. A backlog of events, each matching
//! several subscriptions, published at once; and what every run (the baseline, the
//! steady run, the backlog) counted through the proxy and read off the worker's logs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use herald_core::{AppId, Event};
use herald_queue::Publisher;
use serde::Serialize;

use super::shared::{wait_for, BatchLog, Bench, WorkerProc};
use super::EmulatorSettings;
use crate::inproc::event_1k;
use crate::proxy::Counts;
use crate::stats::Summary;

/// One run's AWS calls and handler work.
#[derive(Debug, Clone, Serialize)]
pub struct CallsPhase {
    pub label: String,
    pub events: u64,
    /// Webhooks delivered (receiver answered 2xx).
    pub deliveries: u64,
    pub counts: Counts,
    /// Batches the consumer handled (= Lambda invocations).
    pub batches: u64,
    /// Handler time per batch, ms (from the worker's "batch handled" lines).
    pub handler_ms: Summary,
    /// Sum over batches of the handler time rounded up to whole ms (Lambda bills per ms).
    pub billed_ms_total: f64,
    /// Bytes of JSON log lines the worker wrote during the run.
    pub log_bytes: u64,
    /// Wall time from the first publish to the last receipt, s.
    pub wall_s: f64,
}

/// A backlog: events published in batches of 10, each matching several subscriptions
/// of `app`.
pub(super) async fn backlog(
    bench: &Bench,
    settings: &EmulatorSettings,
    worker: &WorkerProc,
    publisher: &Arc<Publisher>,
    app: &AppId,
) -> Result<CallsPhase> {
    let (proxy, receiver) = (&bench.proxy, &bench.receiver);
    let events: Vec<Event> = (0..settings.backlog_events)
        .map(|_| event_1k(app))
        .collect::<Result<_>>()?;
    let expected = (settings.backlog_events * settings.backlog_subscriptions) as u64;
    eprintln!(
        "[bench] Herald: backlog of {} events x {} subscriptions",
        settings.backlog_events, settings.backlog_subscriptions
    );
    let received0 = receiver.total();
    let started = Instant::now();
    publisher
        .publish_all(&events)
        .await
        .context("publishing the backlog")?;
    let complete = wait_for(receiver, received0 + expected, Duration::from_secs(180)).await;
    let wall = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let delivered = receiver.total() - received0;
    if !complete {
        eprintln!("[bench] backlog: {delivered} of {expected} deliveries arrived within 180 s");
    }
    let (batches, log_bytes) = worker.take();
    Ok(phase(
        &format!(
            "backlog, {} subscriptions per event",
            settings.backlog_subscriptions
        ),
        settings.backlog_events as u64,
        delivered,
        proxy.take(),
        batches,
        log_bytes,
        wall,
    ))
}

pub(super) fn phase(
    label: &str,
    events: u64,
    deliveries: u64,
    counts: Counts,
    batches: Vec<BatchLog>,
    log_bytes: u64,
    wall_s: f64,
) -> CallsPhase {
    let ms: Vec<f64> = batches.iter().map(|b| b.elapsed_ms).collect();
    CallsPhase {
        label: label.to_owned(),
        events,
        deliveries,
        counts,
        batches: batches.len() as u64,
        handler_ms: Summary::of(&ms),
        // The worker logs whole milliseconds; a 0 ms batch is billed 1 ms.
        billed_ms_total: ms.iter().map(|m| m.ceil().max(1.0)).sum(),
        log_bytes,
        wall_s,
    }
}
