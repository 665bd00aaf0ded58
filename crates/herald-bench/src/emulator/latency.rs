//! Section 2: end-to-end latency. The emulator's own send-to-receive latency on a
//! plain queue (the baseline), then Herald at the same rate: publish to receipt at the
//! receiver, through the worker. The same steady run, with a receiver that takes
//! 100 ms and with each batching, is also what section 3 prices.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
use herald_core::{AppId, QueueMessage};
use herald_queue::sqs::{event_attributes, string_attributes};
use herald_queue::Publisher;
use serde::Serialize;

use super::calls::{phase, CallsPhase, RunKind, RunSetup};
use super::shared::{at_rate, Bench, WorkerProc};
use super::EmulatorSettings;
use crate::payload::event_1k;
use crate::stats::Summary;

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub herald_ms: Summary,
    pub baseline_ms: Summary,
    pub herald_lost: usize,
    pub baseline_lost: usize,
    pub rate: f64,
    pub secs: f64,
    /// The priced steady runs' latencies (100 ms receiver; latency-first and the
    /// event source mapping's default batching).
    pub variants: Vec<LatencyVariant>,
}

/// Publish to receipt in one of the priced steady runs.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyVariant {
    pub label: String,
    pub ms: Summary,
    pub lost: usize,
}

/// One run at the steady rate: its calls, and the latency of each event that arrived.
pub(super) struct Run {
    pub(super) calls: CallsPhase,
    pub(super) ms: Vec<f64>,
    pub(super) lost: usize,
}

/// Events (or messages) each steady run sends: the rate times the seconds.
fn events(settings: &EmulatorSettings) -> usize {
    (settings.rate * settings.steady_secs).round().max(1.0) as usize
}

/// The emulator's own send-to-receive latency, on a plain queue.
pub(super) async fn baseline(
    bench: &Bench,
    settings: &EmulatorSettings,
    app: &AppId,
) -> Result<Run> {
    let (sqs_direct, sqs_proxied, proxy) = (&bench.sqs_direct, &bench.sqs_proxied, &bench.proxy);
    let pipe_queue = sqs_direct
        .create_queue()
        .queue_name(format!("herald-bench-pipe-{}", std::process::id()))
        .attributes(QueueAttributeName::VisibilityTimeout, "120")
        .attributes(QueueAttributeName::ReceiveMessageWaitTimeSeconds, "20")
        .send()
        .await
        .context("creating the baseline queue")?
        .queue_url
        .context("the baseline queue has no URL")?;
    let n = events(settings);
    eprintln!(
        "[bench] baseline: {n} messages at {}/s through the emulator's SQS",
        settings.rate
    );
    proxy.take();
    let (pipe_ms, pipe_lost, pipe_wall) =
        pipe_run(sqs_proxied, &pipe_queue, app, n, settings.rate).await?;
    let pipe = phase(
        RunSetup {
            kind: RunKind::SqsAlone,
            label: "SQS alone (baseline)".into(),
            batching: None,
            receiver_delay_ms: 0,
            fanout: 1,
        },
        n as u64,
        (n - pipe_lost) as u64,
        proxy.take(),
        Vec::new(),
        0,
        pipe_wall,
    );
    Ok(Run {
        calls: pipe,
        ms: pipe_ms,
        lost: pipe_lost,
    })
}

/// Herald at the same rate as the baseline: each event published to `app` (one
/// subscription, the receiver), timed from publish to its first arrival; with the
/// worker's batching and the receiver's delay as they are; data seeded from `seed`.
pub(super) async fn steady(
    bench: &Bench,
    settings: &EmulatorSettings,
    worker: &WorkerProc,
    publisher: &Arc<Publisher>,
    app: &AppId,
    kind: RunKind,
    seed: u64,
) -> Result<Run> {
    let (proxy, receiver) = (&bench.proxy, &bench.receiver);
    let n = events(settings);
    let label = format!(
        "steady {}/s, fan-out 1, {}{}",
        settings.rate,
        worker.batching.describe(),
        if kind == RunKind::Latency {
            ", receiver answers at once"
        } else {
            ""
        }
    );
    eprintln!(
        "[bench] Herald: {n} events at {}/s, publish to receipt, {}, receiver {} ms",
        settings.rate,
        worker.batching.describe(),
        receiver.delay_ms()
    );
    worker.take();
    proxy.take();
    let received0 = receiver.total();
    let answered0 = receiver.answered();
    let started = Instant::now();
    let sent = at_rate(n, settings.rate, |i| {
        let publisher = Arc::clone(publisher);
        let event = event_1k(app, seed + i as u64);
        async move {
            let event = event?;
            publisher
                .publish(&event)
                .await
                .map(|id| id.to_string())
                .context("publishing")
        }
    })
    .await?;
    bench
        .settle(
            worker,
            answered0,
            n as u64,
            n as u64,
            Duration::from_secs(60),
        )
        .await;
    let wall = started.elapsed().as_secs_f64();
    let mut herald_ms = Vec::new();
    let mut herald_lost = 0;
    for (id, at) in &sent {
        match receiver.first(id) {
            Some(got) => herald_ms.push((got - *at).as_secs_f64() * 1e3),
            None => herald_lost += 1,
        }
    }
    if herald_lost > 0 {
        eprintln!("[bench] {herald_lost} of {n} events did not arrive within 60 s");
    }
    let (batches, log_bytes) = worker.take();
    let steady = phase(
        RunSetup {
            kind,
            label,
            batching: Some(worker.batching),
            receiver_delay_ms: receiver.delay_ms(),
            fanout: 1,
        },
        n as u64,
        (receiver.total() - received0).min(n as u64),
        proxy.take(),
        batches,
        log_bytes,
        wall,
    );
    Ok(Run {
        calls: steady,
        ms: herald_ms,
        lost: herald_lost,
    })
}

/// The emulator's own latency: SendMessageBatch (one entry, the same body and
/// attributes as the publisher's) to ReceiveMessage on a plain queue, received and
/// deleted the way the worker does; at the same rate.
async fn pipe_run(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    app: &AppId,
    n: usize,
    rate: f64,
) -> Result<(Vec<f64>, usize, f64)> {
    let receipts: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let receiver = {
        let sqs = sqs.clone();
        let url = queue_url.to_owned();
        let receipts = Arc::clone(&receipts);
        tokio::spawn(async move {
            loop {
                if receipts.lock().expect("receipts lock").len() >= n {
                    return Ok::<(), anyhow::Error>(());
                }
                let out = sqs
                    .receive_message()
                    .queue_url(&url)
                    .max_number_of_messages(10)
                    .wait_time_seconds(20)
                    .message_system_attribute_names(MessageSystemAttributeName::All)
                    .message_attribute_names("All")
                    .send()
                    .await
                    .context("ReceiveMessage on the pipe queue")?;
                let messages = out.messages.unwrap_or_default();
                let now = Instant::now();
                let mut entries = Vec::new();
                for (i, m) in messages.iter().enumerate() {
                    if let Some(Ok(QueueMessage::Event { event })) =
                        m.body.as_deref().map(QueueMessage::decode)
                    {
                        receipts
                            .lock()
                            .expect("receipts lock")
                            .entry(event.id.to_string())
                            .or_insert(now);
                    }
                    if let Some(h) = &m.receipt_handle {
                        entries.push(
                            DeleteMessageBatchRequestEntry::builder()
                                .id(i.to_string())
                                .receipt_handle(h)
                                .build()?,
                        );
                    }
                }
                if !entries.is_empty() {
                    sqs.delete_message_batch()
                        .queue_url(&url)
                        .set_entries(Some(entries))
                        .send()
                        .await
                        .context("DeleteMessageBatch on the pipe queue")?;
                }
            }
        })
    };
    let started = Instant::now();
    let sent = at_rate(n, rate, |i| {
        let sqs = sqs.clone();
        let url = queue_url.to_owned();
        let event = event_1k(app, i as u64);
        async move {
            let event = event?;
            let entry = SendMessageBatchRequestEntry::builder()
                .id("0")
                .message_body(
                    QueueMessage::Event {
                        event: event.clone(),
                    }
                    .encode(),
                )
                .set_message_attributes(Some(string_attributes(event_attributes(&event))))
                .build()?;
            sqs.send_message_batch()
                .queue_url(url)
                .entries(entry)
                .send()
                .await
                .context("SendMessageBatch on the pipe queue")?;
            Ok(event.id.to_string())
        }
    })
    .await?;
    match tokio::time::timeout(Duration::from_secs(60), receiver).await {
        Ok(joined) => joined.context("the pipe receiver panicked")??,
        Err(_) => eprintln!("[bench] the pipe receiver timed out; counting what arrived"),
    }
    let wall = started.elapsed().as_secs_f64();
    let receipts = receipts.lock().expect("receipts lock");
    let mut latencies = Vec::new();
    let mut lost = 0;
    for (id, at) in &sent {
        match receipts.get(id) {
            Some(got) => latencies.push((*got - *at).as_secs_f64() * 1e3),
            None => lost += 1,
        }
    }
    Ok((latencies, lost, wall))
}
