//! `herald-bench`: Herald's benchmark harness, run by `make bench` (and, smaller and
//! without thresholds, by `make bench-quick`). Every figure is measured beside a
//! baseline in the same run; the results go to `BENCHMARKS.md` (tables) and
//! `bench-results.json` (raw figures).
//!
//! Sections: (1) delivery throughput of the consumer handler, in process, against a
//! receiver process; (2) end-to-end latency against the emulator; (3) AWS calls per
//! delivered webhook and the cost per million deliveries, with issue #10's goals;
//! (4) footprint; (5) scale; (6) the worker process end to end on fauxqs and moto.
//! `run --only` runs some of them (for iterating; no report); `profile` and
//! `flamegraph` make the CPU profiles of `make flamegraph`.

mod cost;
mod e2e;
mod emulator;
mod fauxqs;
mod inproc;
mod partitions;
mod payload;
mod perf;
mod placement;
mod proxy;
mod receiver;
mod receives;
mod report;
mod stats;
mod sys;
#[cfg(test)]
mod template;
mod worker_proc;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
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
        /// Run only these sections (comma-separated) and write their figures to
        /// bench-sections.json instead of the report: for iterating on one part.
        #[arg(long, value_enum, value_delimiter = ',')]
        only: Vec<Section>,
    },
    /// Records a CPU profile with `perf record` (for `make flamegraph`): of this process
    /// running section 1's shape (Herald's side, or the bare client's), or of `herald
    /// worker` draining queued events end to end (needs the emulator and fauxqs).
    Profile {
        #[arg(value_enum)]
        what: ProfileTarget,
        /// Where perf writes its data.
        #[arg(long)]
        data: PathBuf,
        /// Deliveries of the in-process run.
        #[arg(long, default_value_t = 50_000)]
        deliveries: usize,
        /// Events the worker drains.
        #[arg(long, default_value_t = 10_000)]
        events: usize,
        /// Endpoints of the in-process run (each event matches one subscription per
        /// endpoint).
        #[arg(long, default_value_t = 10)]
        endpoints: usize,
        /// Events per SQS batch of the in-process run (1 is section 5's fan-out-1
        /// shape).
        #[arg(long, default_value_t = 10)]
        events_per_batch: usize,
    },
    /// Renders perf data into a flame graph SVG and prints the functions with the most
    /// self time as a Markdown table.
    Flamegraph {
        /// The perf data file.
        #[arg(long)]
        data: PathBuf,
        /// The SVG to write.
        #[arg(long)]
        svg: PathBuf,
        #[arg(long)]
        title: String,
        /// Directory of inferno-collapse-perf and inferno-flamegraph (else the PATH).
        #[arg(long)]
        inferno_bin: Option<PathBuf>,
        /// How many functions the table lists.
        #[arg(long, default_value_t = 10)]
        top: usize,
        /// Also write the table to this file.
        #[arg(long)]
        table: Option<PathBuf>,
    },
    /// The receiver process of the throughput runs (started by `run`).
    #[command(hide = true)]
    Receiver {
        #[arg(long, default_value_t = 1)]
        ports: usize,
        /// Answer each request this long after it arrived.
        #[arg(long, default_value_t = 0)]
        delay_ms: u64,
    },
}

/// The parts of a run `--only` can select.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
enum Section {
    /// Sections 1 and 5a (in process, no emulator).
    Inproc,
    /// Section 6 (the worker end to end on fauxqs and moto).
    Worker,
    /// Sections 2, 3, 4 and 5b (the worker against moto through the counting proxy).
    Emulator,
}

/// What `profile` records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ProfileTarget {
    /// Herald's consumer on section 1's shape (`--endpoints`, `--events-per-batch`).
    Inproc,
    /// The bare reqwest client of section 1's baseline, on the same shape: the profile
    /// to hold Herald's beside.
    InprocBare,
    /// `herald worker` draining queued events end to end.
    Worker,
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
    pub e2e: e2e::E2eSettings,
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
                e2e: e2e::E2eSettings {
                    events: 300,
                    fanout1_runs: 2,
                    fanout: 10,
                    slow_events: 200,
                    slow_delay_ms: 100,
                },
            }
        } else {
            Self {
                quick,
                profile,
                throughput_deliveries: 60_000,
                fanout_deliveries: 30_000,
                // Seven, not five: on this kind of machine a run now and then takes
                // half again the CPU per delivery, on either side (a neighbour's load
                // on the host, not the bench's); two such runs of five moved a median.
                reps: 7,
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
                e2e: e2e::E2eSettings {
                    events: 5_000,
                    // As section 1 runs each side seven times: a run of a few seconds
                    // now and then takes half again the CPU (the host, not the code).
                    fanout1_runs: 5,
                    fanout: 10,
                    slow_events: 2_000,
                    slow_delay_ms: 100,
                },
            }
        }
    }
}

/// [`sys::host_speed`] on a blocking thread, logged.
async fn host_speed() -> Result<f64> {
    let seconds = tokio::task::spawn_blocking(sys::host_speed).await?;
    eprintln!("[bench] host speed: SHA-256 of 256 MiB took {seconds:.2} s of CPU");
    Ok(seconds)
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
    /// Cores other processes kept busy (the machine's busy CPU less the bench's and its
    /// receiver's): over a second before the run, and during the in-process sections.
    pub other_cores: [Option<f64>; 2],
    /// The host's speed ([`sys::host_speed`], CPU seconds of a fixed task): before the
    /// run, after the in-process sections, and after section 6.
    pub host_speed_s: [f64; 3],
    pub payload_bytes: usize,
    /// How well the bench's events compress (deflate), if python3 could tell.
    pub compression: Option<payload::Compression>,
    pub throughput: Vec<inproc::Comparison>,
    pub fanout: Vec<inproc::Comparison>,
    /// Section 6.
    pub worker: e2e::E2eResults,
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
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("building the runtime")
    };
    match cli.command {
        Cmd::Receiver { ports, delay_ms } => receiver::serve(ports, delay_ms),
        Cmd::Run {
            quick,
            out,
            command,
            only,
        } => placement::on_a_worker(runtime()?, async move {
            if only.is_empty() {
                run(quick, &out, &command).await
            } else {
                run_only(quick, &out, &only).await
            }
        }),
        Cmd::Profile {
            what,
            data,
            deliveries,
            events,
            endpoints,
            events_per_batch,
        } => placement::on_a_worker(runtime()?, async move {
            profile(what, &data, deliveries, events, endpoints, events_per_batch).await
        }),
        Cmd::Flamegraph {
            data,
            svg,
            title,
            inferno_bin,
            top,
            table,
        } => {
            let text = perf::render(&data, &svg, &title, inferno_bin.as_deref(), top)?;
            if let Some(path) = table {
                std::fs::write(&path, &text)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            println!("{}\n{text}", svg.display());
            Ok(())
        }
    }
}

/// Sections 1 and 5a: Herald in process beside the bare client; and the cores other
/// processes kept busy meanwhile.
async fn inproc_sections(
    settings: &Settings,
) -> Result<(
    Vec<inproc::Comparison>,
    Vec<inproc::Comparison>,
    Option<f64>,
)> {
    let receiver = receiver::ReceiverProcess::start(100)?;
    eprintln!(
        "[bench] receiver process {} on {} ports",
        receiver.pid(),
        receiver.ports.len()
    );
    let own = || -> Result<Duration> { Ok(sys::process_cpu() + sys::pid_cpu(receiver.pid())?) };
    let other_work = sys::OtherWork::start(own()?);
    let counted = inproc::Options {
        logs: true,
        alloc_counting: true,
    };
    let ten = inproc::Shape {
        endpoints: 10,
        subscriptions: 10,
        events_per_batch: 10,
        deliveries: settings.throughput_deliveries,
    };
    let mut throughput = Vec::new();
    for endpoints in [1, 10, 100] {
        let shape = inproc::Shape {
            endpoints,
            subscriptions: endpoints,
            ..ten
        };
        throughput.push(
            inproc::compare(
                &format!("{endpoints} endpoint(s)"),
                shape,
                counted,
                settings.reps,
                &receiver,
            )
            .await?,
        );
    }
    throughput.push(
        inproc::compare(
            "10 endpoints, allocations not counted",
            ten,
            inproc::Options {
                alloc_counting: false,
                ..counted
            },
            settings.reps,
            &receiver,
        )
        .await?,
    );
    throughput.push(
        inproc::compare(
            "10 endpoints, logs off",
            ten,
            inproc::Options {
                logs: false,
                ..counted
            },
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
                counted,
                settings.reps,
                &receiver,
            )
            .await?,
        );
    }
    let others = other_work.cores(own()?);
    Ok((throughput, fanout, others))
}

/// A core count for the log, or "unknown".
pub(crate) fn cores_text(cores: Option<f64>) -> String {
    cores.map_or_else(|| "unknown".to_owned(), |c| format!("{c:.2}"))
}

/// Where the run writes its scratch files (`target/bench`).
fn work_dir(root: &Path) -> Result<PathBuf> {
    let dir = root.join("target/bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

async fn run(quick: bool, out: &Path, command: &str) -> Result<()> {
    let started = Instant::now();
    let settings = Settings::new(quick);
    let root = repo_root();
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let work_dir = work_dir(&root)?;
    let machine = sys::Machine::describe(&root);
    eprintln!(
        "[bench] {} build, {} run, on {} x {}",
        settings.profile,
        if quick { "quick" } else { "full" },
        machine.cpus,
        machine.cpu_model
    );
    inproc::install_log_sink();
    let speed_start = host_speed().await?;
    let load_start = sys::load_average();
    // What the rest of the machine does while the bench sits idle for a second.
    let idle = sys::OtherWork::start(sys::process_cpu());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let others_before = idle.cores(sys::process_cpu());

    // (1) and (5a): in process, before anything else runs in this process.
    let (throughput, fanout, others_inproc) = inproc_sections(&settings).await?;
    let load_inproc = sys::load_average();
    let speed_inproc = host_speed().await?;
    eprintln!(
        "[bench] other processes' CPU: {} cores before, {} during the in-process sections",
        cores_text(others_before),
        cores_text(others_inproc)
    );

    // (6): the worker end to end on fauxqs and moto, while moto is fresh.
    let bin_dir = emulator::bin_dir()?;
    let worker = e2e::run(&settings.e2e, &root, &bin_dir).await?;
    let speed_worker = host_speed().await?;

    // (2), (3), (4), (5b): the emulator.
    let emulator = emulator::run(&settings.emulator, &bin_dir, &work_dir, &root, quick).await?;
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
        other_cores: [others_before, others_inproc],
        host_speed_s: [speed_start, speed_inproc, speed_worker],
        payload_bytes: payload::PAYLOAD_BYTES,
        compression,
        throughput,
        fanout,
        worker,
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

/// Some sections only, their figures in `bench-sections.json` (no report).
async fn run_only(quick: bool, out: &Path, only: &[Section]) -> Result<()> {
    let started = Instant::now();
    let settings = Settings::new(quick);
    let root = repo_root();
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    inproc::install_log_sink();
    let mut figures = serde_json::Map::new();
    figures.insert("settings".into(), serde_json::to_value(&settings)?);
    if only.contains(&Section::Inproc) {
        let (throughput, fanout, others) = inproc_sections(&settings).await?;
        figures.insert("other_cores_inproc".into(), serde_json::to_value(others)?);
        figures.insert("throughput".into(), serde_json::to_value(throughput)?);
        figures.insert("fanout".into(), serde_json::to_value(fanout)?);
    }
    if only.contains(&Section::Worker) {
        let worker = e2e::run(&settings.e2e, &root, &emulator::bin_dir()?).await?;
        figures.insert("worker".into(), serde_json::to_value(worker)?);
    }
    if only.contains(&Section::Emulator) {
        let emulator = emulator::run(
            &settings.emulator,
            &emulator::bin_dir()?,
            &work_dir(&root)?,
            &root,
            quick,
        )
        .await?;
        figures.insert("emulator".into(), serde_json::to_value(emulator)?);
    }
    let path = out.join("bench-sections.json");
    std::fs::write(&path, serde_json::to_string_pretty(&figures)?)
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!(
        "[bench] wrote {} in {:.0} s",
        path.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `herald-bench profile`.
async fn profile(
    what: ProfileTarget,
    data: &Path,
    deliveries: usize,
    events: usize,
    endpoints: usize,
    events_per_batch: usize,
) -> Result<()> {
    inproc::install_log_sink();
    match what {
        ProfileTarget::Inproc | ProfileTarget::InprocBare => {
            let bare = what == ProfileTarget::InprocBare;
            let r = inproc::profile(deliveries, endpoints, events_per_batch, bare, data).await?;
            eprintln!(
                "[bench] profiled {} in process: {} deliveries at {:.0}/s, {:.1} µs CPU each",
                if bare { "the bare client" } else { "Herald" },
                r.deliveries,
                r.per_sec,
                r.cpu_us_per_delivery
            );
        }
        ProfileTarget::Worker => {
            let r = e2e::profile(events, &repo_root(), &emulator::bin_dir()?, data).await?;
            eprintln!(
                "[bench] profiled herald worker: {} deliveries at {:.0}/s, {:.0} µs of its CPU each",
                r.delivered, r.per_sec, r.worker.us_per_delivery
            );
        }
    }
    Ok(())
}
