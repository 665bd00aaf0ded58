//! `herald worker` as a child process of the bench: spawned with the settings of a
//! run, its JSON log lines read for its start, its batches and its warnings; its CPU
//! time and memory read from `/proc`. Sections 2–4 and 6 run it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::sys::{self, Rss};

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
    /// Latency first: whatever one receive returns, at once.
    pub const LATENCY_FIRST: Self = Self {
        size: 10,
        window_ms: 0,
    };
    /// The local worker's default (`HERALD_WORKER_BATCH_SIZE` 100, no window): what is
    /// waiting when the first messages arrive, up to 100, taken at once.
    pub const LOCAL_DEFAULT: Self = Self {
        size: 100,
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

/// One `batch handled` line of the worker.
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
    /// When the last batch line arrived.
    last_batch: Option<Instant>,
}

/// The start of the line `herald worker` prints for a person before it logs.
const BANNER: &str = "Herald worker polling ";

/// `herald worker` as a child process, logging JSON at `info`; killed when dropped.
pub struct WorkerProc {
    child: Child,
    spawned: Instant,
    log: Arc<Mutex<WorkerLog>>,
    /// How it gathers batches.
    pub batching: Batching,
}

impl WorkerProc {
    /// Starts `bin worker` with `env` added to the bench's environment, logging JSON at
    /// `info` to a pipe the bench reads, admitting 127.0.0.1 receivers, batching as
    /// `batching` says.
    pub fn spawn(
        bin: &Path,
        env: impl IntoIterator<Item = (String, String)>,
        batching: Batching,
    ) -> Result<Self> {
        let spawned = Instant::now();
        let mut child = Command::new(bin)
            .arg("worker")
            .envs(env)
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
                read_line(&sink, line, Instant::now());
            }
        });
        Ok(Self {
            child,
            spawned,
            log,
            batching,
        })
    }

    /// The worker's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time the worker process has used so far (every thread).
    pub fn cpu(&self) -> Result<Duration> {
        sys::pid_cpu(self.pid())
    }

    /// Records the worker has logged as handled since it started.
    pub fn records_logged(&self) -> u64 {
        self.log.lock().expect("worker log lock").records
    }

    /// When the worker's last `batch handled` line arrived.
    pub fn last_batch_at(&self) -> Option<Instant> {
        self.log.lock().expect("worker log lock").last_batch
    }

    /// Waits for "worker polling"; returns the time from spawn to that line.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<Duration> {
        Ok(self.wait_ready_at(timeout).await? - self.spawned)
    }

    /// Waits for "worker polling"; returns when that line arrived.
    pub async fn wait_ready_at(&mut self, timeout: Duration) -> Result<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(ready) = self.log.lock().expect("worker log lock").ready {
                return Ok(ready);
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

    /// Lines that were not JSON log lines, and warnings and errors (20 at most).
    pub fn notable(&self) -> Vec<String> {
        self.log.lock().expect("worker log lock").notable.clone()
    }

    /// The batches handled and the log bytes written since the last call.
    pub fn take(&self) -> (Vec<BatchLog>, u64) {
        let mut log = self.log.lock().expect("worker log lock");
        (
            std::mem::take(&mut log.batches),
            std::mem::take(&mut log.stderr_bytes),
        )
    }

    /// The worker's resident memory now and at its peak.
    pub fn rss(&self) -> Result<Rss> {
        sys::rss(&self.child.id().to_string())
    }

    /// SIGTERM, then SIGKILL if it has not stopped within 5 s.
    pub fn stop(&mut self) {
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

/// Reads one line of the worker's standard error. Only the lines that matter are
/// parsed (the start, the batch summaries, warnings and errors, anything not JSON):
/// the worker logs a line per delivery, and parsing each would take CPU from the
/// machine the worker is measured on.
fn read_line(sink: &Mutex<WorkerLog>, line: String, now: Instant) {
    let json = line.starts_with('{');
    let wanted = !json
        || line.contains("\"worker polling\"")
        || line.contains("\"batch")
        || line.contains("\"level\":\"WARN\"")
        || line.contains("\"level\":\"ERROR\"");
    let mut log = sink.lock().expect("worker log lock");
    log.stderr_bytes += line.len() as u64 + 1;
    if !wanted {
        return;
    }
    let parsed: serde_json::Value = serde_json::from_str(&line).unwrap_or(serde_json::Value::Null);
    let fields = &parsed["fields"];
    let message = fields["message"].as_str().unwrap_or("");
    if message == "worker polling" {
        log.ready = log.ready.or(Some(now));
    } else if message.starts_with("batch handled")
        || (message.starts_with("batch") && fields["elapsed_ms"].is_number())
    {
        // The handler's one summary line per batch (its wording may change; its
        // `records` and `elapsed_ms` fields are what is read).
        let records = fields["records"].as_u64().unwrap_or(0);
        log.records += records;
        log.last_batch = Some(now);
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

#[cfg(test)]
mod tests {
    use super::*;
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

    #[test]
    fn only_the_lines_that_matter_are_read() {
        let sink = Mutex::new(WorkerLog::default());
        let now = Instant::now();
        for line in [
            r#"{"level":"INFO","fields":{"message":"worker polling"}}"#,
            r#"{"level":"INFO","fields":{"message":"delivered","status":204}}"#,
            r#"{"level":"INFO","fields":{"message":"batch handled","records":10,"attempts":10,"elapsed_ms":4.0}}"#,
            r#"{"level":"WARN","fields":{"message":"slow"}}"#,
            "Herald worker polling http://q",
            "thread panicked",
        ] {
            read_line(&sink, line.to_owned(), now);
        }
        let log = sink.into_inner().unwrap();
        assert_eq!(log.ready, Some(now));
        assert_eq!(log.records, 10);
        assert_eq!(log.batches.len(), 1);
        assert_eq!(log.last_batch, Some(now));
        assert_eq!(
            log.notable.len(),
            2,
            "the warning and the panic, not the banner"
        );
        assert!(log.stderr_bytes > 0);
    }
}
