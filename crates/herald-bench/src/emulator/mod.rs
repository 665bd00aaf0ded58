//! Sections 2, 3, 4 and 5b: the real worker (`herald worker`) against the emulator,
//! through the counting proxy; end-to-end latency beside the emulator's own
//! send-to-receive latency; AWS calls and cost per delivered webhook; footprint; and
//! the cost of looking up an app's subscriptions beside a bare one-item query.
//!
//! One module per phase, run in this order by [`run`]: [`latency`] (the baseline and
//! the steady runs), [`calls`] (the backlogs, and what each run counted),
//! [`footprint`], [`lookup`]; [`shared`] holds the stack, the worker process and its
//! batching, the receiver and the pacing they share.
//!
//! The runs: the latency run (latency-first batching, a receiver that answers at
//! once); then, with a receiver that takes [`EmulatorSettings::receiver_delay_ms`],
//! the priced runs: steady at latency-first batching, steady at the event source
//! mapping's defaults, a backlog at fan-out N and one at fan-out 1 (both at the
//! defaults). The worker is respawned when the batching changes.

mod calls;
mod footprint;
mod latency;
mod lookup;
mod shared;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use herald_core::AppId;
use herald_queue::Publisher;
use herald_store::SubscriptionStore;
use serde::Serialize;

pub use crate::worker_proc::Batching;
pub use calls::{CallsPhase, RunKind};
pub use latency::LatencySplit;
pub use lookup::{MATCHING, OTHER_TYPES};

use crate::proxy::CountingProxy;
use crate::stats::Summary;
use shared::{aws_at, create_subscriptions, Bench, LatencyReceiver, Stack};

/// How much of each emulator section to run.
#[derive(Debug, Clone, Serialize)]
pub struct EmulatorSettings {
    /// Events per second published in the latency runs.
    pub rate: f64,
    /// Seconds each latency run publishes for.
    pub steady_secs: f64,
    /// Events published at once for the fan-out backlog.
    pub backlog_events: usize,
    /// Subscriptions matching each event of the fan-out backlog.
    pub backlog_subscriptions: usize,
    /// Events published at once for the fan-out-1 backlog.
    pub backlog_single_events: usize,
    /// How long the receiver of the priced runs takes to answer, ms.
    pub receiver_delay_ms: u64,
    /// Extra worker starts timed for start-to-ready.
    pub starts: usize,
    /// Subscriptions per app in the lookup runs.
    pub lookup_sizes: Vec<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EmulatorResults {
    pub stack: String,
    /// The delivery history's table (`HERALD_HISTORY_TABLE`).
    pub history_table: String,
    pub latency: latency::Latency,
    /// The SQS-alone baseline.
    pub pipe: CallsPhase,
    /// Section 2's latency run (receiver answering at once): counted, not priced.
    pub latency_run: CallsPhase,
    /// The priced runs, in the order of [`PRICED`].
    pub runs: Vec<CallsPhase>,
    pub footprint: footprint::Footprint,
    pub lookup: lookup::Lookup,
    /// Issue #10's routing goals, when the lookup section measures them.
    pub lookup_goals: LookupGoals,
    pub worker_warnings: Vec<String>,
}

/// The priced runs, in report order.
pub const PRICED: [RunKind; 4] = [
    RunKind::BacklogFanout,
    RunKind::BacklogFanout1,
    RunKind::Steady,
    RunKind::SteadyLatencyFirst,
];

impl EmulatorResults {
    /// The run of `kind` (the latency run and the baseline included).
    pub fn run(&self, kind: RunKind) -> Option<&CallsPhase> {
        match kind {
            RunKind::SqsAlone => Some(&self.pipe),
            RunKind::Latency => Some(&self.latency_run),
            _ => self.runs.iter().find(|r| r.kind == kind),
        }
    }
}

/// Issue #10's two routing goals. The slot for section 5b ([`lookup`]) to fill once
/// it measures them; `None` renders as "not measured" in the goals table.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LookupGoals {
    /// DynamoDB read units of one lookup (cache miss) of an event in an app with
    /// 10,000 subscriptions of which 10 match it. Goal: at most 5.
    pub read_units_10k_subscriptions_10_match: Option<f64>,
    /// Read units to confirm that an unchanged app's cached subscriptions are still
    /// current (after the cache's TTL). Goal: at most 0.5.
    pub read_units_confirm_unchanged: Option<f64>,
}

/// Runs every emulator section. `AWS_ENDPOINT_URL` must point at the emulator.
pub async fn run(
    settings: &EmulatorSettings,
    bin_dir: &Path,
    out_dir: &Path,
    root: &Path,
    quick: bool,
) -> Result<EmulatorResults> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").context(
        "AWS_ENDPOINT_URL is not set: run the bench with `make bench`, which starts the emulator",
    )?;
    let herald_bin = bin_dir.join("herald");
    if !herald_bin.exists() {
        bail!(
            "{} is missing: build it with `cargo build -p herald-cli` (make bench does)",
            herald_bin.display()
        );
    }
    eprintln!("[bench] deploying the data plane into the emulator");
    let stack = Stack::deploy("bench").context("deploying the bench stack")?;
    let direct = aws_at(&endpoint).await;
    let proxy = CountingProxy::start(&endpoint).await?;
    let proxied = aws_at(&proxy.url).await;
    let sqs_direct = aws_sdk_sqs::Client::new(&direct);
    let sqs_proxied = aws_sdk_sqs::Client::new(&proxied);
    let dynamo = aws_sdk_dynamodb::Client::new(&direct);
    let store =
        SubscriptionStore::new(dynamo.clone(), stack.subscriptions_table(), stack.sealer()?);
    let receiver = LatencyReceiver::start().await?;

    let steady_app = AppId::parse("bench-steady")?;
    let fanout_app = AppId::parse("bench-fanout")?;
    create_subscriptions(&store, &steady_app, &receiver.url, 1).await?;
    create_subscriptions(
        &store,
        &fanout_app,
        &receiver.url,
        settings.backlog_subscriptions,
    )
    .await?;
    let bench = Bench {
        stack,
        proxy,
        proxied,
        dynamo,
        sqs_direct,
        sqs_proxied,
        receiver,
        herald_bin,
        bin_dir: bin_dir.to_path_buf(),
        out_dir: out_dir.to_path_buf(),
        root: root.to_path_buf(),
    };

    // The emulator's own send-to-receive latency, on a plain queue.
    let pipe = latency::baseline(&bench, settings, &steady_app).await?;
    let publisher = Arc::new(Publisher::new(
        bench.sqs_proxied.clone(),
        bench.stack.events_queue(),
    ));

    // Herald at the same rate, latency first: the latency run (receiver answering at
    // once), then the same with the slow receiver (priced).
    let mut worker = bench.spawn_worker(Batching::LATENCY_FIRST)?;
    let first_ready = worker.wait_ready(Duration::from_secs(60)).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let worker_idle = worker.rss()?;
    let latency_run = latency::steady(
        &bench,
        settings,
        &worker,
        &publisher,
        &steady_app,
        RunKind::Latency,
        1_000_000,
    )
    .await?;
    bench
        .receiver
        .set_delay(Duration::from_millis(settings.receiver_delay_ms));
    let steady_fast = latency::steady(
        &bench,
        settings,
        &worker,
        &publisher,
        &steady_app,
        RunKind::SteadyLatencyFirst,
        2_000_000,
    )
    .await?;
    let mut peak = worker.rss()?;
    let mut worker_warnings = worker.notable();
    worker.stop();
    // The stopped worker's long poll goes on in the emulator for up to 20 s and would
    // take (and hide) messages published meanwhile.
    if !bench
        .proxy
        .wait_started_before_now(Duration::from_secs(30))
        .await
    {
        eprintln!("[bench] the stopped worker's last poll still runs after 30 s");
    }

    // The event source mapping's default batching: steady, then the two backlogs.
    let mut worker = bench.spawn_worker(Batching::ESM_DEFAULT)?;
    worker.wait_ready(Duration::from_secs(60)).await?;
    let steady = latency::steady(
        &bench,
        settings,
        &worker,
        &publisher,
        &steady_app,
        RunKind::Steady,
        3_000_000,
    )
    .await?;
    let backlog = calls::backlog(
        &bench,
        &worker,
        &publisher,
        &fanout_app,
        RunKind::BacklogFanout,
        settings.backlog_events,
        settings.backlog_subscriptions,
        4_000_000,
    )
    .await?;
    let backlog_single = calls::backlog(
        &bench,
        &worker,
        &publisher,
        &steady_app,
        RunKind::BacklogFanout1,
        settings.backlog_single_events,
        1,
        5_000_000,
    )
    .await?;
    let after = worker.rss()?;
    if after.hwm_kib > peak.hwm_kib {
        peak = after;
    }
    worker_warnings.extend(worker.notable());
    worker.stop();
    bench.receiver.set_delay(Duration::ZERO);

    let footprint = footprint::measure(&bench, settings, first_ready, worker_idle, peak).await?;

    eprintln!("[bench] lookup cost");
    let lookup = lookup::lookup(&bench, settings, quick).await?;
    // Issue #10's routing rows: the largest app measured (10,000 subscriptions in the
    // full run), of which `MATCHING` take the event's type.
    let lookup_goals = lookup
        .rows
        .iter()
        .max_by_key(|row| row.subscriptions)
        .filter(|row| row.subscriptions >= 10_000)
        .map(|row| LookupGoals {
            read_units_10k_subscriptions_10_match: Some(row.read_units),
            read_units_confirm_unchanged: Some(row.confirm_read_units),
        })
        .unwrap_or_default();

    let variant = |run: &latency::Run| latency::LatencyVariant {
        label: run.calls.label.clone(),
        ms: Summary::of(&run.ms),
        lost: run.lost,
        split: run.split.clone(),
    };
    let variants = vec![variant(&steady_fast), variant(&steady)];
    let mut runs = vec![steady_fast.calls, steady.calls, backlog, backlog_single];
    runs.sort_by_key(|r| PRICED.iter().position(|k| *k == r.kind));
    Ok(EmulatorResults {
        stack: bench.stack.stage.clone(),
        history_table: bench.stack.var("HERALD_HISTORY_TABLE").to_owned(),
        latency: latency::Latency {
            herald_ms: Summary::of(&latency_run.ms),
            baseline_ms: Summary::of(&pipe.ms),
            herald_lost: latency_run.lost,
            baseline_lost: pipe.lost,
            rate: settings.rate,
            secs: settings.steady_secs,
            split: latency_run.split.clone().unwrap_or_default(),
            variants,
        },
        pipe: pipe.calls,
        latency_run: latency_run.calls,
        runs,
        footprint,
        lookup,
        lookup_goals,
        worker_warnings,
    })
}

/// Where the built binaries are: beside this one.
pub fn bin_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the bench binary")?;
    exe.parent()
        .map(Path::to_path_buf)
        .context("the bench binary has no directory")
}
