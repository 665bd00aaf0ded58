//! Sections 1 and 5a: the consumer handler fed from an in-process source, with the
//! real HTTP deliverer, against the receiver process; beside a bare reqwest client
//! posting the same bodies to the same endpoints at the same concurrency.
//!
//! Batches are handled concurrently, as the local worker and Lambda's pollers do:
//! enough `Consumer::handle` calls at once ([`calls_at_once`]) to keep the consumer's
//! cap of deliveries in flight busy; the bare client keeps that cap in flight. Herald's
//! calls are polled in a task on the runtime's workers, where the worker and the
//! Lambda run their batches; the bare client runs both there and by `block_on`, and
//! the faster of the two is the baseline ([`Placement`]).
//!
//! Subscriptions, the outbox and the history are the consumer's in-memory fakes
//! (`herald_consumer::testing`; no AWS calls: those are counted in section 3). The handler logs as on Lambda (JSON, `info`)
//! into a counting sink, so the CPU figures include producing the logs.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use bytes::Bytes;
use futures::stream::{self, StreamExt};
use herald_consumer::history::History;
use herald_consumer::testing::{FakeHistory, FakeOutbox, FakeSubscriptions};
use herald_consumer::{Adapters, Consumer, ConsumerConfig, DeliveryPolicy};
use herald_core::{
    AddressPolicy, AppId, Envelope, Event, EventFilter, ObjectTypeFilter, QueueMessage,
    Subscription,
};
use herald_delivery::{HttpDeliverer, HttpSettings};
use herald_queue::Outbox;
use serde::Serialize;

use crate::payload::event_1k;
use crate::placement::{placed, Placement};
use crate::receiver::ReceiverProcess;
use crate::stats::median;
use crate::sys;

// ---------------------------------------------------------------------------------
// Logs as on Lambda, into a counting sink.

static LOGS_ON: AtomicBool = AtomicBool::new(false);
static LOG_BYTES: AtomicU64 = AtomicU64::new(0);

struct CountingWriter;

impl Write for CountingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOG_BYTES.fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the process's log subscriber: the Lambda binary's format
/// ([`herald_runtime::json_log_layer`], level `info`) written to a sink that only
/// counts bytes. Off until [`set_logs`] turns it on.
pub fn install_log_sink() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let layer = herald_runtime::json_log_layer(|| CountingWriter).with_filter(
        tracing_subscriber::filter::filter_fn(|meta| {
            LOGS_ON.load(Ordering::Relaxed) && *meta.level() <= tracing::Level::INFO
        }),
    );
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

/// Turns the counted logs on or off. tracing caches each call site's verdict, so the
/// cache is rebuilt: without that, a call site first seen while logs were off stays
/// off for good (and one first seen on stays on), which made a "logs off" run and a
/// "logs on" run measure the same thing.
pub fn set_logs(on: bool) {
    LOGS_ON.store(on, Ordering::Relaxed);
    tracing::callsite::rebuild_interest_cache();
}

fn log_bytes() -> u64 {
    LOG_BYTES.load(Ordering::Relaxed)
}

/// The consumer's production delivery policy (the defaults of docs/configuration.md).
pub fn default_policy() -> Result<DeliveryPolicy> {
    let required = [
        ("HERALD_EVENTS_QUEUE_URL", "http://unused/events"),
        ("HERALD_DLQ_URL", "http://unused/dlq"),
        ("HERALD_SUBSCRIPTIONS_TABLE", "unused"),
        ("HERALD_HISTORY_TABLE", "unused"),
        ("HERALD_SEAL_KEY_FILE", "unused"),
    ];
    let config =
        ConsumerConfig::from_vars(required).context("the default consumer configuration")?;
    Ok(config.delivery)
}

// ---------------------------------------------------------------------------------
// Workloads.

/// What one run delivers.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Shape {
    /// Distinct endpoints (receiver ports; each has its own connection pool).
    pub endpoints: usize,
    /// Subscriptions matching each event (spread over the endpoints).
    pub subscriptions: usize,
    /// Events per SQS batch handed to the handler.
    pub events_per_batch: usize,
    /// Deliveries to make in the timed part (rounded to whole events).
    pub deliveries: usize,
}

/// (url, body) of each delivery, in order.
type Bodies = Vec<(String, Bytes)>;

struct Workload {
    subs: FakeSubscriptions,
    warmup: Vec<SqsEvent>,
    batches: Vec<SqsEvent>,
    /// Every delivery of `batches`, for the bare client.
    bodies: Bodies,
    warm_bodies: Bodies,
    deliveries: usize,
    warm_deliveries: usize,
}

fn record(event: &Event) -> SqsMessage {
    let mut m = SqsMessage::default();
    m.message_id = Some(uuid::Uuid::new_v4().to_string());
    m.receipt_handle = m.message_id.clone();
    m.body = Some(
        QueueMessage::Event {
            event: event.clone(),
        }
        .encode(),
    );
    m.event_source = Some("aws:sqs".into());
    m
}

fn build(shape: Shape, ports: &[u16]) -> Result<Workload> {
    let app = AppId::parse("bench")?;
    let endpoints = shape.endpoints.clamp(1, ports.len());
    let subs: Vec<Subscription> = (0..shape.subscriptions.max(1))
        .map(|i| {
            Subscription::new(
                app.clone(),
                format!("http://127.0.0.1:{}/hook/{i}", ports[i % endpoints]),
                EventFilter::All,
                ObjectTypeFilter::All,
            )
        })
        .collect();
    let events_total = (shape.deliveries / subs.len()).max(1);
    let per_batch = shape.events_per_batch.clamp(1, 10);
    let mut seed = 0;
    let mut make = |events: usize| -> Result<(Vec<SqsEvent>, Bodies)> {
        let mut batches = Vec::new();
        let mut bodies = Vec::with_capacity(events * subs.len());
        let mut current = SqsEvent::default();
        for _ in 0..events {
            seed += 1;
            let event = event_1k(&app, seed)?;
            let body = Bytes::from(Envelope::of(&event).to_body());
            for sub in &subs {
                bodies.push((sub.url.clone(), body.clone()));
            }
            current.records.push(record(&event));
            if current.records.len() == per_batch {
                batches.push(std::mem::take(&mut current));
            }
        }
        if !current.records.is_empty() {
            batches.push(current);
        }
        Ok((batches, bodies))
    };
    let (warmup, warm_bodies) = make(per_batch)?;
    let (batches, bodies) = make(events_total)?;
    let count = subs.len();
    Ok(Workload {
        subs: FakeSubscriptions::with(subs),
        warmup,
        batches,
        deliveries: events_total * count,
        warm_deliveries: warm_bodies.len(),
        bodies,
        warm_bodies,
    })
}

// ---------------------------------------------------------------------------------
// Runs.

/// One timed run.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub deliveries: usize,
    pub wall_s: f64,
    pub cpu_s: f64,
    pub per_sec: f64,
    pub cpu_us_per_delivery: f64,
    /// Peak RSS during the run minus RSS before it (KiB), when the kernel lets the
    /// peak be reset. Memory the allocator kept from earlier runs hides growth here.
    pub peak_rss_delta_kib: Option<i64>,
    /// Peak live heap during the run minus the live heap before it (bytes); 0 when
    /// allocations were not counted.
    pub peak_heap_delta_bytes: u64,
    pub log_bytes_per_delivery: f64,
}

/// Where a timed run started from.
struct Mark {
    started: Instant,
    cpu: Duration,
    rss: Option<sys::Rss>,
    heap: isize,
    logs: u64,
}

fn finish(deliveries: usize, mark: Mark) -> Result<RunResult> {
    let Mark {
        started,
        cpu: cpu0,
        rss: rss0,
        heap: heap0,
        logs: logs0,
    } = mark;
    let wall = started.elapsed().as_secs_f64();
    let cpu = (sys::process_cpu() - cpu0).as_secs_f64();
    let peak = match rss0 {
        Some(before) => Some(sys::rss("self")?.hwm_kib as i64 - before.rss_kib as i64),
        None => None,
    };
    Ok(RunResult {
        deliveries,
        wall_s: wall,
        cpu_s: cpu,
        per_sec: deliveries as f64 / wall,
        cpu_us_per_delivery: cpu * 1e6 / deliveries as f64,
        peak_rss_delta_kib: peak,
        peak_heap_delta_bytes: if sys::heap::counting() {
            (sys::heap::peak() - heap0).max(0) as u64
        } else {
            0
        },
        log_bytes_per_delivery: (log_bytes() - logs0) as f64 / deliveries as f64,
    })
}

fn start_measuring() -> Result<Mark> {
    let rss = if sys::reset_peak_rss() {
        Some(sys::rss("self")?)
    } else {
        None
    };
    let heap = sys::heap::reset_peak();
    Ok(Mark {
        started: Instant::now(),
        cpu: sys::process_cpu(),
        rss,
        heap,
        logs: log_bytes(),
    })
}

/// `Consumer::handle` calls to keep going at once so that the consumer's cap of
/// deliveries in flight stays busy: enough batches to fill the cap, and one more
/// being started or finished.
pub fn calls_at_once(cap: usize, deliveries_per_batch: usize) -> usize {
    cap.max(1).div_ceil(deliveries_per_batch.max(1)) + 1
}

/// Hands `batches` to the consumer, `at_once` calls at a time; the records returned.
async fn handle_all(consumer: &Consumer, batches: Vec<SqsEvent>, at_once: usize) -> Result<usize> {
    let mut returned = 0;
    let mut calls = stream::iter(batches)
        .map(|batch| consumer.handle(batch))
        .buffer_unordered(at_once.max(1));
    while let Some(response) = calls.next().await {
        returned += response?.batch_item_failures.len();
    }
    Ok(returned)
}

async fn run_herald(
    w: Workload,
    policy: &DeliveryPolicy,
    at_once: usize,
    receiver: &ReceiverProcess,
    probe: &reqwest::Client,
) -> Result<RunResult> {
    // Counts only: keeping every attempt would add to the memory measured.
    let history = Arc::new(FakeHistory::counting());
    let outbox = Arc::new(FakeOutbox::default());
    let deliverer = HttpDeliverer::new(&HttpSettings {
        address_policy: AddressPolicy::with_allowlist("127.0.0.1/32")?,
        ..HttpSettings::default()
    })
    .context("building the HTTP deliverer")?;
    let consumer = Consumer::new(
        Adapters {
            subscriptions: Arc::new(w.subs),
            deliverer: Arc::new(deliverer),
            outbox: Arc::clone(&outbox) as Arc<dyn Outbox>,
            history: Arc::clone(&history) as Arc<dyn History>,
        },
        policy.clone(),
    );
    let before = receiver.counts(probe).await?;
    let mut failures = handle_all(&consumer, w.warmup, at_once).await?;
    let mark = start_measuring()?;
    failures += handle_all(&consumer, w.batches, at_once).await?;
    let result = finish(w.deliveries, mark)?;
    let expected = (w.deliveries + w.warm_deliveries) as u64;
    let succeeded = history.succeeded();
    let after = receiver.counts(probe).await?;
    let received = after.total - before.total;
    let repeated = after.duplicates - before.duplicates;
    if failures > 0
        || succeeded != expected
        || received != expected
        || repeated > 0
        || outbox.sent() > 0
    {
        bail!(
            "the consumer run was not clean: {failures} records returned, {succeeded} of {expected} \
             deliveries succeeded, {received} received ({repeated} of them repeats), \
             {} retries/dead letters",
            outbox.sent()
        );
    }
    Ok(result)
}

async fn post_all(client: &reqwest::Client, bodies: Bodies, in_flight: usize) -> Result<()> {
    let failed = stream::iter(bodies)
        .map(|(url, body)| async move {
            let response = client
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body)
                .send()
                .await?;
            let ok = response.status().is_success();
            response.bytes().await?;
            Ok::<bool, reqwest::Error>(ok)
        })
        .buffer_unordered(in_flight.max(1))
        .filter(|r| std::future::ready(!matches!(r, Ok(true))))
        .count()
        .await;
    if failed > 0 {
        bail!("{failed} bare-client requests failed");
    }
    Ok(())
}

async fn run_bare(
    w: Workload,
    in_flight: usize,
    receiver: &ReceiverProcess,
    probe: &reqwest::Client,
) -> Result<RunResult> {
    let client = reqwest::Client::new();
    let received0 = receiver.count(probe).await?;
    post_all(&client, w.warm_bodies, in_flight).await?;
    let mark = start_measuring()?;
    post_all(&client, w.bodies, in_flight).await?;
    let result = finish(w.deliveries, mark)?;
    let received = receiver.count(probe).await? - received0;
    let expected = (w.deliveries + w.warm_deliveries) as u64;
    if received != expected {
        bail!("the receiver got {received} of the bare client's {expected} requests");
    }
    Ok(result)
}

/// One side's repeated runs: the median, the best and the slowest.
#[derive(Debug, Clone, Serialize)]
pub struct Aggregate {
    /// The median rate of the runs.
    pub per_sec: f64,
    pub per_sec_min: f64,
    /// The best run's rate: the figure the ratios are taken from ([`Comparison`]).
    pub per_sec_max: f64,
    /// The median CPU per delivery of the runs.
    pub cpu_us_per_delivery: f64,
    /// The least CPU per delivery of any run.
    pub cpu_us_best: f64,
    pub peak_rss_delta_kib: Option<i64>,
    pub peak_heap_delta_bytes: u64,
    pub log_bytes_per_delivery: f64,
    pub runs: Vec<RunResult>,
}

impl Aggregate {
    fn of(runs: Vec<RunResult>) -> Self {
        let rates: Vec<f64> = runs.iter().map(|r| r.per_sec).collect();
        let cpu: Vec<f64> = runs.iter().map(|r| r.cpu_us_per_delivery).collect();
        let logs: Vec<f64> = runs.iter().map(|r| r.log_bytes_per_delivery).collect();
        Self {
            per_sec: median(&rates),
            per_sec_min: rates.iter().copied().fold(f64::INFINITY, f64::min),
            per_sec_max: rates.iter().copied().fold(0.0, f64::max),
            cpu_us_per_delivery: median(&cpu),
            cpu_us_best: cpu.iter().copied().fold(f64::INFINITY, f64::min),
            peak_rss_delta_kib: runs.iter().filter_map(|r| r.peak_rss_delta_kib).max(),
            peak_heap_delta_bytes: runs
                .iter()
                .map(|r| r.peak_heap_delta_bytes)
                .max()
                .unwrap_or(0),
            log_bytes_per_delivery: median(&logs),
            runs,
        }
    }
}

/// Herald beside the bare client for one shape.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub label: String,
    pub shape: Shape,
    /// Deliveries in flight at once: the consumer's cap (`HERALD_DELIVERY_CONCURRENCY`,
    /// 64); the bare client keeps this many in flight.
    pub in_flight: usize,
    /// `Consumer::handle` calls going on at once ([`calls_at_once`]).
    pub herald_calls_at_once: usize,
    /// The most deliveries Herald may have in flight at once: the consumer's cap holds
    /// across all its calls, so this is the cap, or less when the calls at once cannot
    /// fill it.
    pub herald_in_flight_max: usize,
    pub logs: bool,
    /// Whether the bench's allocator counted allocations (peak heap figures) during
    /// the row; its atomic counters add to both sides' CPU.
    pub alloc_counting: bool,
    pub herald: Aggregate,
    /// The baseline: the bare client's runs from the placement where its best run was
    /// the faster.
    pub bare: Aggregate,
    /// Where the baseline's runs were polled.
    pub bare_placement: Placement,
    /// The bare client's runs from the other placement.
    pub bare_other: Aggregate,
    /// Herald's best run's deliveries/s over the bare client's best run's. Best runs,
    /// not medians: on a shared host a run now and then takes half again the CPU per
    /// delivery for the same work, on either side, while the machine is otherwise idle
    /// (docs/perf/README.md, "Best runs"); such a run only ever slows a side, so the
    /// fastest run of each is the nearest to what its code costs.
    pub rate_ratio: f64,
    /// Herald's least CPU per delivery over the bare client's.
    pub cpu_ratio: f64,
    /// The ratio of the median rates, shown beside.
    pub rate_ratio_median: f64,
    /// The ratio of the median CPU per delivery, shown beside.
    pub cpu_ratio_median: f64,
}

/// What a comparison runs with besides its shape.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The handler logs as on Lambda (JSON, `info`) into the counting sink.
    pub logs: bool,
    /// The bench's allocator counts allocations (for the peak heap figures).
    pub alloc_counting: bool,
}

/// One side of a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Herald,
    Bare(Placement),
}

/// Runs Herald (on a worker) and the bare client (on a worker and by `block_on`)
/// `reps` times each, in turn, on `shape`; the baseline is the bare client from the
/// placement where its best run was the faster, so Herald is held to the bare client
/// at its best.
pub async fn compare(
    label: &str,
    shape: Shape,
    options: Options,
    reps: usize,
    receiver: &ReceiverProcess,
) -> Result<Comparison> {
    let policy = default_policy()?;
    let cap = policy.concurrency.max(1);
    let per_batch = shape.events_per_batch.clamp(1, 10) * shape.subscriptions.max(1);
    let at_once = calls_at_once(cap, per_batch);
    let in_flight = cap;
    let probe = reqwest::Client::new();
    let mut herald = Vec::new();
    let mut bare_worker = Vec::new();
    let mut bare_block_on = Vec::new();
    sys::heap::set_counting(options.alloc_counting);
    let sides = [
        Side::Herald,
        Side::Bare(Placement::Worker),
        Side::Bare(Placement::BlockOn),
    ];
    for rep in 0..reps.max(1) {
        // Rotate the order so drift on a busy machine hits every side alike.
        for turn in 0..sides.len() {
            let w = build(shape, &receiver.ports)?;
            let outcome = match sides[(rep + turn) % sides.len()] {
                Side::Herald => {
                    set_logs(options.logs);
                    let r = run_herald(w, &policy, at_once, receiver, &probe).await;
                    set_logs(false);
                    r.map(|r| herald.push(r))
                        .with_context(|| format!("{label}: Herald run"))
                }
                Side::Bare(placement) => {
                    let runs = match placement {
                        Placement::Worker => &mut bare_worker,
                        Placement::BlockOn => &mut bare_block_on,
                    };
                    placed(placement, run_bare(w, in_flight, receiver, &probe))
                        .await
                        .map(|r| runs.push(r))
                        .with_context(|| {
                            format!("{label}: bare-client run ({})", placement.describe())
                        })
                }
            };
            if outcome.is_err() {
                sys::heap::set_counting(true);
            }
            outcome?;
        }
    }
    sys::heap::set_counting(true);
    let herald = Aggregate::of(herald);
    let on_worker = Aggregate::of(bare_worker);
    let by_block_on = Aggregate::of(bare_block_on);
    let (bare_placement, bare, bare_other) = if by_block_on.per_sec_max > on_worker.per_sec_max {
        (Placement::BlockOn, by_block_on, on_worker)
    } else {
        (Placement::Worker, on_worker, by_block_on)
    };
    eprintln!(
        "[bench] {label}: best runs: Herald {:.0}/s ({:.1} µs CPU), bare {:.0}/s ({:.1} µs CPU, {}; {:.0}/s {}); medians: Herald {:.0}/s, bare {:.0}/s",
        herald.per_sec_max,
        herald.cpu_us_best,
        bare.per_sec_max,
        bare.cpu_us_best,
        bare_placement.describe(),
        bare_other.per_sec_max,
        bare_placement.other().describe(),
        herald.per_sec,
        bare.per_sec,
    );
    Ok(Comparison {
        label: label.to_owned(),
        shape,
        in_flight,
        herald_calls_at_once: at_once,
        herald_in_flight_max: cap.min(at_once * per_batch),
        logs: options.logs,
        alloc_counting: options.alloc_counting,
        rate_ratio: herald.per_sec_max / bare.per_sec_max,
        cpu_ratio: herald.cpu_us_best / bare.cpu_us_best,
        rate_ratio_median: herald.per_sec / bare.per_sec,
        cpu_ratio_median: herald.cpu_us_per_delivery / bare.cpu_us_per_delivery,
        herald,
        bare,
        bare_placement,
        bare_other,
    })
}

/// Section 1's shape (`endpoints`, `events_per_batch`), Herald's side or, with `bare`,
/// the bare client's, `deliveries` long, logs on and allocations not counted, with
/// `perf record` attached to this process for the run; for `make flamegraph` and
/// docs/perf.
pub async fn profile(
    deliveries: usize,
    endpoints: usize,
    events_per_batch: usize,
    bare: bool,
    data: &std::path::Path,
) -> Result<RunResult> {
    let receiver = ReceiverProcess::start(endpoints)?;
    let shape = Shape {
        endpoints,
        subscriptions: endpoints,
        events_per_batch,
        deliveries,
    };
    let policy = default_policy()?;
    let at_once = calls_at_once(policy.concurrency, events_per_batch * endpoints);
    let w = build(shape, &receiver.ports)?;
    let probe = reqwest::Client::new();
    sys::heap::set_counting(false);
    let perf = crate::perf::PerfRecording::attach(std::process::id(), data)?;
    set_logs(true);
    let result = if bare {
        run_bare(w, policy.concurrency, &receiver, &probe).await
    } else {
        run_herald(w, &policy, at_once, &receiver, &probe).await
    };
    set_logs(false);
    perf.stop()?;
    sys::heap::set_counting(true);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_toggle_takes_effect_at_call_sites_already_seen() {
        install_log_sink();
        let emit = || tracing::info!(probe = "toggle", "a counted line");
        let counted = |f: &dyn Fn()| {
            let before = log_bytes();
            f();
            log_bytes() - before
        };
        set_logs(false);
        assert_eq!(counted(&emit), 0, "off: nothing written");
        set_logs(true);
        assert!(counted(&emit) > 0, "on: the same call site now writes");
        set_logs(false);
        assert_eq!(counted(&emit), 0, "off again");
    }

    #[test]
    fn workloads_fan_out_over_the_endpoints() {
        let shape = Shape {
            endpoints: 2,
            subscriptions: 4,
            events_per_batch: 10,
            deliveries: 100,
        };
        let w = build(shape, &[1000, 1001, 1002]).unwrap();
        assert_eq!(w.deliveries, 100);
        assert_eq!(w.bodies.len(), 100);
        assert_eq!(w.batches.len(), 3, "25 events in batches of 10");
        let urls: std::collections::BTreeSet<_> = w
            .bodies
            .iter()
            .map(|(u, _)| u.split('/').nth(2).unwrap().to_owned())
            .collect();
        assert_eq!(urls.len(), 2);
        assert!(default_policy().unwrap().concurrency >= 1);
    }

    #[test]
    fn enough_calls_at_once_to_keep_the_cap_busy() {
        // 10 deliveries a batch: 7 batches fill 64, one more is being started.
        assert_eq!(calls_at_once(64, 10), 8);
        // 100 a batch: one fills the cap (the call caps itself), one more.
        assert_eq!(calls_at_once(64, 100), 2);
        assert_eq!(calls_at_once(64, 1), 65);
        assert_eq!(calls_at_once(64, 64), 2);
    }
}
