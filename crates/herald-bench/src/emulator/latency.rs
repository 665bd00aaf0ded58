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
use super::shared::{at_rate, Bench, Sent, WorkerProc};
use super::EmulatorSettings;
use crate::payload::event_1k;
use crate::receives::ReceiveLog;
use crate::stats::Summary;

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub herald_ms: Summary,
    pub baseline_ms: Summary,
    pub herald_lost: usize,
    pub baseline_lost: usize,
    pub rate: f64,
    pub secs: f64,
    /// The latency run's events, each split into the emulator's part and Herald's:
    /// issue #11's figure for what Herald adds.
    pub split: LatencySplit,
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
    pub split: Option<LatencySplit>,
}

/// One run at the steady rate: its calls, and the latency of each event that arrived.
pub(super) struct Run {
    pub(super) calls: CallsPhase,
    pub(super) ms: Vec<f64>,
    pub(super) lost: usize,
    /// Herald's runs: each event's time split into the emulator's part and Herald's.
    pub(super) split: Option<LatencySplit>,
}

/// Each event's publish → receipt split at the moment the proxy handed it to the worker
/// (see [`crate::receives`]), in ms.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LatencySplit {
    /// Events split (every arrived event the proxy saw handed over).
    pub events: usize,
    /// Arrived events the proxy did not see handed over (not split).
    pub unseen: usize,
    /// Handed to the worker → arrival at the receiver: Herald's own time.
    pub herald_ms: Summary,
    /// Time in the queue with no receive of the worker's open (finishing a batch).
    pub waiting_for_poll_ms: Summary,
    /// The two together, per event: Herald's share beyond the emulator's send → receive.
    pub beyond_emulator_ms: Summary,
    /// The rest, the emulator's own send → receive with a receive open (from the start
    /// of the publish call).
    pub emulator_ms: Summary,
}

#[derive(Default)]
struct Split {
    unseen: usize,
    herald: Vec<f64>,
    waiting: Vec<f64>,
    beyond: Vec<f64>,
    emulator: Vec<f64>,
}

impl Split {
    /// Splits one event's time: `sent` by the publisher, `got` at the receiver.
    fn add(&mut self, receives: &ReceiveLog, queue: &str, sent: &Sent, got: Instant) {
        let Some(handed) = receives.handed(&sent.id) else {
            self.unseen += 1;
            return;
        };
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let herald = ms(got.saturating_duration_since(handed));
        let waiting = ms(receives.idle(queue, sent.ended, handed));
        self.herald.push(herald);
        self.waiting.push(waiting);
        self.beyond.push(herald + waiting);
        self.emulator
            .push((ms(handed.saturating_duration_since(sent.started)) - waiting).max(0.0));
    }

    fn summary(&self) -> LatencySplit {
        LatencySplit {
            events: self.herald.len(),
            unseen: self.unseen,
            herald_ms: Summary::of(&self.herald),
            waiting_for_poll_ms: Summary::of(&self.waiting),
            beyond_emulator_ms: Summary::of(&self.beyond),
            emulator_ms: Summary::of(&self.emulator),
        }
    }
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
        split: None,
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
    let mut split = Split::default();
    {
        let receives = bench.proxy.receives();
        let queue = bench.stack.events_queue();
        for sent in &sent {
            let Some(got) = receiver.first(&sent.id) else {
                herald_lost += 1;
                continue;
            };
            herald_ms.push((got - sent.started).as_secs_f64() * 1e3);
            split.add(&receives, queue, sent, got);
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
        split: Some(split.summary()),
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
    for sent in &sent {
        match receipts.get(&sent.id) {
            Some(got) => latencies.push((*got - sent.started).as_secs_f64() * 1e3),
            None => lost += 1,
        }
    }
    Ok((latencies, lost, wall))
}
