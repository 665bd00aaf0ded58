//! What the emulator phases share: the bench stack deployed into the emulator, the
//! counting proxy in front of it, the worker process, a receiver that notes when each
//! event first arrives, and pacing.

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
    /// Starts `herald worker` against the stack, through the proxy.
    pub(super) fn spawn_worker(&self) -> Result<WorkerProc> {
        WorkerProc::spawn(&self.herald_bin, &self.stack.env, &self.proxy.url)
    }
}

// ---------------------------------------------------------------------------------
// A receiver that notes when each event first arrives.

#[derive(Default)]
struct Arrivals {
    first: HashMap<String, Instant>,
    total: u64,
}

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

    pub(super) fn total(&self) -> u64 {
        self.arrivals.lock().expect("arrivals lock").total
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
    let mut a = arrivals.lock().expect("arrivals lock");
    a.total += 1;
    a.first.entry(id).or_insert(now);
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
}

/// The start of the line `herald worker` prints for a person before it logs.
const BANNER: &str = "Herald worker polling ";

/// `herald worker` as a child process, logging JSON at `info`; killed when dropped.
pub(super) struct WorkerProc {
    child: Child,
    spawned: Instant,
    log: Arc<Mutex<WorkerLog>>,
}

impl WorkerProc {
    pub(super) fn spawn(
        bin: &Path,
        stack_env: &HashMap<String, String>,
        endpoint: &str,
    ) -> Result<Self> {
        let spawned = Instant::now();
        let mut child = Command::new(bin)
            .arg("worker")
            .envs(stack_env)
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("HERALD_ALLOW_PRIVATE_NETWORKS", "127.0.0.1/32")
            .env("HERALD_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
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
                match fields["message"].as_str() {
                    Some("worker polling") => log.ready = log.ready.or(Some(now)),
                    Some("batch handled") => log.batches.push(BatchLog {
                        records: fields["records"].as_u64().unwrap_or(0),
                        attempts: fields["attempts"].as_u64().unwrap_or(0),
                        elapsed_ms: fields["elapsed_ms"].as_f64().unwrap_or(0.0),
                    }),
                    _ => {}
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
        })
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

pub(super) async fn wait_for(receiver: &LatencyReceiver, total: u64, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while receiver.total() < total {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
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
