//! What the emulator phases share: the bench stack deployed into the emulator, the
//! counting proxy in front of it, the worker process and its batching, a receiver
//! that notes when each event first arrives and answers after a set delay, pacing,
//! and waiting for a run to settle.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use herald_core::{AppId, EventFilter, ObjectTypeFilter, Subscription};
use herald_store::SubscriptionStore;
use serde::Serialize;

pub(super) use herald_testing::{aws_at, Stack};

use crate::proxy::CountingProxy;
use crate::sys::{self, Rss};

/// Where a run's phases happen: the stack, the emulator behind the counting proxy,
/// the receiver, and where the binaries and outputs are.
pub(super) struct Bench {
    pub(super) stack: Stack,
    pub(super) proxy: CountingProxy,
    /// AWS configuration through the counting proxy.
    pub(super) proxied: aws_config::SdkConfig,
    /// DynamoDB straight to the emulator.
    pub(super) dynamo: aws_sdk_dynamodb::Client,
    /// SQS straight to the emulator.
    pub(super) sqs_direct: aws_sdk_sqs::Client,
    /// SQS through the counting proxy.
    pub(super) sqs_proxied: aws_sdk_sqs::Client,
    pub(super) receiver: LatencyReceiver,
    /// `herald` (the CLI, whose `worker` subcommand is the local consumer).
    pub(super) herald_bin: PathBuf,
    pub(super) bin_dir: PathBuf,
    pub(super) out_dir: PathBuf,
    pub(super) root: PathBuf,
}

impl Bench {
    /// Starts `herald worker` against the stack, through the proxy, batching as
    /// `batching` says.
    pub(super) fn spawn_worker(&self, batching: Batching) -> Result<WorkerProc> {
        WorkerProc::spawn(&self.herald_bin, &self.stack.env, &self.proxy.url, batching)
    }

    /// Waits (up to `timeout`) until a run of `events` events and `deliveries`
    /// deliveries is over: the receiver answered every delivery, the worker logged
    /// every record as handled and deleted every message (a batch's history is written
    /// before its messages are deleted). Says what was missing if it times out.
    pub(super) async fn settle(
        &self,
        worker: &WorkerProc,
        answered0: u64,
        events: u64,
        deliveries: u64,
        timeout: Duration,
    ) {
        let deadline = Instant::now() + timeout;
        loop {
            let answered = self.receiver.answered() - answered0;
            let handled = worker.records_logged();
            let deleted = self.proxy.items("SQS DeleteMessageBatch");
            if answered >= deliveries && handled >= events && deleted >= events {
                return;
            }
            if Instant::now() > deadline {
                eprintln!(
                    "[bench] after {timeout:?}: {answered} of {deliveries} deliveries answered, \
                     {handled} of {events} records handled, {deleted} messages deleted"
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// How the worker gathers a batch (`HERALD_WORKER_BATCH_SIZE`,
/// `HERALD_WORKER_BATCH_WINDOW`), as the event source mapping's `BatchSize` and
/// `MaximumBatchingWindowInSeconds` do on Lambda.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Batching {
    pub size: usize,
    pub window_ms: u64,
}

impl Batching {
    /// infra/herald.yaml's defaults (`ConsumerBatchSize`, `ConsumerBatchingWindowSeconds`).
    pub const ESM_DEFAULT: Self = Self {
        size: 100,
        window_ms: 1_000,
    };
    /// Latency first: whatever one receive returns, at once (the local worker's default).
    pub const LATENCY_FIRST: Self = Self {
        size: 10,
        window_ms: 0,
    };

    /// `batch 100, window 1 s`.
    pub fn describe(&self) -> String {
        format!(
            "batch {}, window {}",
            self.size,
            if self.window_ms.is_multiple_of(1000) {
                format!("{} s", self.window_ms / 1000)
            } else {
                format!("{} ms", self.window_ms)
            }
        )
    }
}

// ---------------------------------------------------------------------------------
// A receiver that notes when each event first arrives.

#[derive(Default)]
struct Arrivals {
    first: HashMap<String, Instant>,
    total: u64,
    /// Requests answered (after the delay).
    answered: u64,
    /// How long to wait before answering, ms.
    delay_ms: u64,
}

/// The emulator runs' receiver: notes when each event first arrives, then answers 204
/// after the delay set with [`LatencyReceiver::set_delay`] (0 at first).
pub(super) struct LatencyReceiver {
    pub(super) url: String,
    arrivals: Arc<Mutex<Arrivals>>,
    task: tokio::task::JoinHandle<()>,
}

impl LatencyReceiver {
    pub(super) async fn start() -> Result<Self> {
        let arrivals = Arc::new(Mutex::new(Arrivals::default()));
        let app = axum::Router::new()
            .fallback(arrive)
            .with_state(Arc::clone(&arrivals));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the latency receiver")?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            url,
            arrivals,
            task,
        })
    }

    /// Requests received so far.
    pub(super) fn total(&self) -> u64 {
        self.arrivals.lock().expect("arrivals lock").total
    }

    /// Requests answered so far.
    pub(super) fn answered(&self) -> u64 {
        self.arrivals.lock().expect("arrivals lock").answered
    }

    /// How long the receiver waits before answering, ms.
    pub(super) fn delay_ms(&self) -> u64 {
        self.arrivals.lock().expect("arrivals lock").delay_ms
    }

    /// Answers every later request `delay` after it arrived (a real endpoint's work;
    /// Lambda bills the consumer for the wait).
    pub(super) fn set_delay(&self, delay: Duration) {
        self.arrivals.lock().expect("arrivals lock").delay_ms = delay.as_millis() as u64;
    }

    pub(super) fn first(&self, id: &str) -> Option<Instant> {
        self.arrivals
            .lock()
            .expect("arrivals lock")
            .first
            .get(id)
            .copied()
    }
}

impl Drop for LatencyReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn arrive(State(arrivals): State<Arc<Mutex<Arrivals>>>, body: Bytes) -> StatusCode {
    let now = Instant::now();
    let id = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["id"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let delay = {
        let mut a = arrivals.lock().expect("arrivals lock");
        a.total += 1;
        a.first.entry(id).or_insert(now);
        a.delay_ms
    };
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    arrivals.lock().expect("arrivals lock").answered += 1;
    StatusCode::NO_CONTENT
}

// ---------------------------------------------------------------------------------
// The worker process.

#[derive(Debug, Clone, Copy, Serialize)]
pub struct BatchLog {
    pub records: u64,
    pub attempts: u64,
    pub elapsed_ms: f64,
}

#[derive(Default)]
struct WorkerLog {
    ready: Option<Instant>,
    batches: Vec<BatchLog>,
    stderr_bytes: u64,
    notable: Vec<String>,
    /// Records of every batch logged since start (not cleared by `take`).
    records: u64,
}

/// The start of the line `herald worker` prints for a person before it logs.
const BANNER: &str = "Herald worker polling ";

/// `herald worker` as a child process, logging JSON at `info`; killed when dropped.
pub(super) struct WorkerProc {
    child: Child,
    spawned: Instant,
    log: Arc<Mutex<WorkerLog>>,
    /// How it gathers batches.
    pub(super) batching: Batching,
}

impl WorkerProc {
    pub(super) fn spawn(
        bin: &Path,
        stack_env: &HashMap<String, String>,
        endpoint: &str,
        batching: Batching,
    ) -> Result<Self> {
        let spawned = Instant::now();
        let mut child = Command::new(bin)
            .arg("worker")
            .envs(stack_env)
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("HERALD_ALLOW_PRIVATE_NETWORKS", "127.0.0.1/32")
            .env("HERALD_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .env("HERALD_WORKER_BATCH_SIZE", batching.size.to_string())
            .env(
                "HERALD_WORKER_BATCH_WINDOW",
                format!("{}ms", batching.window_ms),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stderr = child.stderr.take().context("worker stderr")?;
        let log = Arc::new(Mutex::new(WorkerLog::default()));
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let now = Instant::now();
                let parsed: serde_json::Value =
                    serde_json::from_str(&line).unwrap_or(serde_json::Value::Null);
                let fields = &parsed["fields"];
                let mut log = sink.lock().expect("worker log lock");
                log.stderr_bytes += line.len() as u64 + 1;
                let message = fields["message"].as_str().unwrap_or("");
                if message == "worker polling" {
                    log.ready = log.ready.or(Some(now));
                } else if message.starts_with("batch handled")
                    || (message.starts_with("batch") && fields["elapsed_ms"].is_number())
                {
                    // The handler's one summary line per batch (its wording may change;
                    // its `records` and `elapsed_ms` fields are what is read).
                    let records = fields["records"].as_u64().unwrap_or(0);
                    log.records += records;
                    log.batches.push(BatchLog {
                        records,
                        attempts: fields["attempts"]
                            .as_u64()
                            .or(fields["deliveries"].as_u64())
                            .unwrap_or(0),
                        elapsed_ms: fields["elapsed_ms"].as_f64().unwrap_or(0.0),
                    });
                }
                let level = parsed["level"].as_str().unwrap_or("");
                // The CLI's one line for a person at start is not a log line.
                let banner = parsed.is_null() && line.starts_with(BANNER);
                if (parsed.is_null() || level == "WARN" || level == "ERROR")
                    && !banner
                    && log.notable.len() < 20
                {
                    log.notable.push(line);
                }
            }
        });
        Ok(Self {
            child,
            spawned,
            log,
            batching,
        })
    }

    /// Records the worker has logged as handled since it started.
    pub(super) fn records_logged(&self) -> u64 {
        self.log.lock().expect("worker log lock").records
    }

    /// Waits for "worker polling"; returns the time from spawn to that line.
    pub(super) async fn wait_ready(&mut self, timeout: Duration) -> Result<Duration> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(ready) = self.log.lock().expect("worker log lock").ready {
                return Ok(ready - self.spawned);
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "herald worker exited with {status} before polling: {}",
                    self.notable().join("\n")
                );
            }
            if Instant::now() > deadline {
                bail!("herald worker did not start polling within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    pub(super) fn notable(&self) -> Vec<String> {
        self.log.lock().expect("worker log lock").notable.clone()
    }

    /// The batches handled and the log bytes written since the last call.
    pub(super) fn take(&self) -> (Vec<BatchLog>, u64) {
        let mut log = self.log.lock().expect("worker log lock");
        (
            std::mem::take(&mut log.batches),
            std::mem::take(&mut log.stderr_bytes),
        )
    }

    pub(super) fn rss(&self) -> Result<Rss> {
        sys::rss(&self.child.id().to_string())
    }

    /// SIGTERM, then SIGKILL if it has not stopped within 5 s.
    pub(super) fn stop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: signalling our own child process by its id.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for WorkerProc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------
// Pacing and subscriptions (the stack is herald_testing's).

/// Runs `send(i)` `n` times at `rate` per second, each in its own task so a slow call
/// does not slow the rate; returns the send-start instant of each successful send.
pub(super) async fn at_rate<F, Fut>(n: usize, rate: f64, send: F) -> Result<Vec<(String, Instant)>>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<String>> + Send + 'static,
{
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        ticker.tick().await;
        let fut = send(i);
        tasks.spawn(async move {
            let started = Instant::now();
            fut.await.map(|id| (id, started))
        });
    }
    let mut sent = Vec::with_capacity(n);
    while let Some(joined) = tasks.join_next().await {
        sent.push(joined.context("a send task panicked")??);
    }
    Ok(sent)
}

pub(super) async fn create_subscriptions(
    store: &SubscriptionStore,
    app: &AppId,
    url: &str,
    n: usize,
) -> Result<()> {
    for _ in 0..n {
        let sub = Subscription::new(app.clone(), url, EventFilter::All, ObjectTypeFilter::All);
        store
            .create(&sub)
            .await
            .context("registering a subscription")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Batching;
    use crate::template::default_of;

    #[test]
    fn the_default_batching_is_the_templates() {
        let size = default_of("ConsumerBatchSize").expect("ConsumerBatchSize");
        let window = default_of("ConsumerBatchingWindowSeconds").expect("the window");
        assert_eq!(size, Batching::ESM_DEFAULT.size.to_string());
        assert_eq!(
            window.parse::<u64>().unwrap() * 1000,
            Batching::ESM_DEFAULT.window_ms
        );
    }
}
