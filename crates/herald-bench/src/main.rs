//! `herald-bench`: Herald's benchmark harness, run by `make bench` (and, smaller and
//! without thresholds, by `make bench-quick`). Every figure is measured beside a
//! baseline in the same run; the results go to `BENCHMARKS.md` (tables) and
//! `bench-results.json` (raw figures).
//!
//! Sections: (1) delivery throughput of the consumer handler, in process, against a
//! receiver process; (2) end-to-end latency against the emulator; (3) AWS calls per
//! delivered webhook and the cost per million deliveries, with issue #10's goals;
//! (4) footprint; (5) scale.

mod cost;
mod emulator;
mod inproc;
mod partitions;
mod payload;
mod proxy;
mod receiver;
mod report;
mod stats;
mod sys;
#[cfg(test)]
mod template;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use serde::Serialize;

#[global_allocator]
static ALLOCATOR: sys::heap::Counting = sys::heap::Counting;

#[derive(Parser)]
#[command(
    name = "herald-bench",
    about = "Herald's benchmarks: make bench / make bench-quick"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs every benchmark and writes BENCHMARKS.md and bench-results.json. Needs the
    /// emulator (AWS_ENDPOINT_URL): run it through `make bench` or `make bench-quick`.
    Run {
        /// A smoke run: small counts, a few seconds per section.
        #[arg(long)]
        quick: bool,
        /// Directory for BENCHMARKS.md and bench-results.json.
        #[arg(long, default_value = ".")]
        out: PathBuf,
        /// The command to name in the report as the one that produced it.
        #[arg(long, default_value = "herald-bench run")]
        command: String,
    },
    /// The receiver process of the throughput runs (started by `run`).
    #[command(hide = true)]
    Receiver {
        #[arg(long, default_value_t = 1)]
        ports: usize,
    },
}

/// Counts for one run of the harness.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub quick: bool,
    pub profile: &'static str,
    pub throughput_deliveries: usize,
    pub fanout_deliveries: usize,
    pub reps: usize,
    pub emulator: emulator::EmulatorSettings,
}

impl Settings {
    fn new(quick: bool) -> Self {
        let profile = if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        };
        if quick {
            Self {
                quick,
                profile,
                throughput_deliveries: 2_000,
                fanout_deliveries: 1_000,
                reps: 1,
                emulator: emulator::EmulatorSettings {
                    rate: 10.0,
                    steady_secs: 5.0,
                    backlog_events: 20,
                    backlog_subscriptions: 5,
                    backlog_single_events: 50,
                    receiver_delay_ms: 100,
                    starts: 1,
                    lookup_sizes: vec![1, 100, 1_000],
                },
            }
        } else {
            Self {
                quick,
                profile,
                throughput_deliveries: 20_000,
                fanout_deliveries: 10_000,
                reps: 3,
                emulator: emulator::EmulatorSettings {
                    rate: 20.0,
                    steady_secs: 30.0,
                    backlog_events: 300,
                    backlog_subscriptions: 10,
                    backlog_single_events: 1_000,
                    receiver_delay_ms: 100,
                    starts: 4,
                    lookup_sizes: vec![1, 100, 1_000, 10_000],
                },
            }
        }
    }
}

/// Everything one run measured: `bench-results.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub generated_at: String,
    pub command: String,
    pub duration_s: f64,
    pub settings: Settings,
    pub machine: sys::Machine,
    /// 1-minute load average before the run, after the in-process sections, and at the end.
    pub load_average: [f64; 3],
    pub payload_bytes: usize,
    /// How well the bench's events compress (deflate), if python3 could tell.
    pub compression: Option<payload::Compression>,
    pub throughput: Vec<inproc::Comparison>,
    pub fanout: Vec<inproc::Comparison>,
    pub emulator: emulator::EmulatorResults,
    pub prices: cost::Prices,
    /// The priced runs' costs, in the order of `emulator.runs`.
    pub costs: Vec<cost::Breakdown>,
    pub cost_baseline: cost::Breakdown,
}

fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| manifest.to_path_buf())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Receiver { ports } => receiver::serve(ports),
        Cmd::Run {
            quick,
            out,
            command,
        } => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("building the runtime")?;
            runtime.block_on(run(quick, &out, &command))
        }
    }
}

async fn run(quick: bool, out: &Path, command: &str) -> Result<()> {
    let started = Instant::now();
    let settings = Settings::new(quick);
    let root = repo_root();
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let work_dir = root.join("target/bench");
    std::fs::create_dir_all(&work_dir)
        .with_context(|| format!("creating {}", work_dir.display()))?;
    let machine = sys::Machine::describe(&root);
    eprintln!(
        "[bench] {} build, {} run, on {} x {}",
        settings.profile,
        if quick { "quick" } else { "full" },
        machine.cpus,
        machine.cpu_model
    );
    inproc::install_log_sink();
    let load_start = sys::load_average();

    // (1) and (5a): in process, before anything else runs in this process.
    let receiver = receiver::ReceiverProcess::start(100)?;
    eprintln!(
        "[bench] receiver process {} on {} ports",
        receiver.pid(),
        receiver.ports.len()
    );
    let mut throughput = Vec::new();
    for endpoints in [1, 10, 100] {
        let shape = inproc::Shape {
            endpoints,
            subscriptions: endpoints,
            events_per_batch: 10,
            deliveries: settings.throughput_deliveries,
        };
        throughput.push(
            inproc::compare(
                &format!("{endpoints} endpoint(s)"),
                shape,
                true,
                settings.reps,
                &receiver,
            )
            .await?,
        );
    }
    throughput.push(
        inproc::compare(
            "10 endpoints, logs off",
            inproc::Shape {
                endpoints: 10,
                subscriptions: 10,
                events_per_batch: 10,
                deliveries: settings.throughput_deliveries,
            },
            false,
            settings.reps,
            &receiver,
        )
        .await?,
    );
    let mut fanout = Vec::new();
    for subscriptions in [1, 10, 100, 1_000] {
        let shape = inproc::Shape {
            endpoints: subscriptions.min(100),
            subscriptions,
            events_per_batch: 1,
            deliveries: settings.fanout_deliveries.max(subscriptions),
        };
        fanout.push(
            inproc::compare(
                &format!("{subscriptions} subscription(s)"),
                shape,
                true,
                settings.reps,
                &receiver,
            )
            .await?,
        );
    }
    drop(receiver);
    let load_inproc = sys::load_average();

    // (2), (3), (4), (5b): the emulator.
    let emulator = emulator::run(
        &settings.emulator,
        &emulator::bin_dir()?,
        &work_dir,
        &root,
        quick,
    )
    .await?;
    let payload = payload::PAYLOAD_BYTES as f64;
    let costs = emulator
        .runs
        .iter()
        .map(|run| cost::breakdown(run, payload))
        .collect();
    let cost_baseline = cost::breakdown(&emulator.pipe, payload);
    let compression = payload::compression(&work_dir);

    let results = Results {
        generated_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        command: command.to_owned(),
        duration_s: started.elapsed().as_secs_f64(),
        settings,
        machine,
        load_average: [load_start, load_inproc, sys::load_average()],
        payload_bytes: payload::PAYLOAD_BYTES,
        compression,
        throughput,
        fanout,
        emulator,
        prices: cost::PRICES,
        costs,
        cost_baseline,
    };
    let json_path = out.join("bench-results.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&results)?)
        .with_context(|| format!("writing {}", json_path.display()))?;
    let md_path = out.join("BENCHMARKS.md");
    std::fs::write(&md_path, report::markdown(&results))
        .with_context(|| format!("writing {}", md_path.display()))?;
    eprintln!(
        "[bench] wrote {} and {} in {:.0} s",
        md_path.display(),
        json_path.display(),
        results.duration_s
    );
    Ok(())
}
