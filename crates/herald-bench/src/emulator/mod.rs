//! Sections 2, 3, 4 and 5b: the real worker (`herald worker`) against the emulator,
//! through the counting proxy; end-to-end latency beside the emulator's own
//! send-to-receive latency; AWS calls per delivered webhook; footprint; and the cost
//! of looking up an app's subscriptions beside a bare one-item query.
//!
//! One module per phase, run in this order by [`run`]: [`latency`] (the baseline and
//! the steady run), [`calls`] (the backlog run, and what each run counted),
//! [`footprint`], [`lookup`]; [`shared`] holds the stack, the worker process, the
//! receiver and the pacing they share.

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

pub use calls::CallsPhase;

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
    /// Events published at once for the backlog run.
    pub backlog_events: usize,
    /// Subscriptions matching each backlog event.
    pub backlog_subscriptions: usize,
    /// Extra worker starts timed for start-to-ready.
    pub starts: usize,
    /// Subscriptions per app in the lookup runs.
    pub lookup_sizes: Vec<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EmulatorResults {
    pub stack: String,
    pub history_table: String,
    pub latency: latency::Latency,
    pub pipe: CallsPhase,
    pub steady: CallsPhase,
    pub backlog: CallsPhase,
    pub footprint: footprint::Footprint,
    pub lookup: lookup::Lookup,
    pub worker_warnings: Vec<String>,
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
    let store = SubscriptionStore::new(dynamo.clone(), stack.subscriptions_table());
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

    // Herald at the same rate.
    let mut worker = bench.spawn_worker()?;
    let first_ready = worker.wait_ready(Duration::from_secs(60)).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let worker_idle = worker.rss()?;
    let publisher = Arc::new(Publisher::new(
        bench.sqs_proxied.clone(),
        bench.stack.events_queue(),
    ));
    let steady = latency::steady(&bench, settings, &worker, &publisher, &steady_app).await?;

    // A backlog: events published in batches of 10, each matching several subscriptions.
    let backlog = calls::backlog(&bench, settings, &worker, &publisher, &fanout_app).await?;
    let worker_after_load = worker.rss()?;
    let worker_warnings = worker.notable();
    worker.stop();

    let footprint = footprint::measure(
        &bench,
        settings,
        first_ready,
        worker_idle,
        worker_after_load,
    )
    .await?;

    eprintln!("[bench] lookup cost");
    let lookup = lookup::lookup(&bench, settings, quick).await?;

    Ok(EmulatorResults {
        stack: bench.stack.stage.clone(),
        history_table: bench.stack.var("HERALD_HISTORY_TABLE").to_owned(),
        latency: latency::Latency {
            herald_ms: Summary::of(&steady.ms),
            baseline_ms: Summary::of(&pipe.ms),
            herald_lost: steady.lost,
            baseline_lost: pipe.lost,
            rate: settings.rate,
            secs: settings.steady_secs,
        },
        pipe: pipe.calls,
        steady: steady.calls,
        backlog,
        footprint,
        lookup,
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
