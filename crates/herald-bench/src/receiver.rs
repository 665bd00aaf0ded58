//! The fast local receiver for the throughput runs and the worker's end-to-end rows: a
//! separate process (`herald-bench receiver`), so its CPU time is not counted as the
//! sender's. It listens on several ports of 127.0.0.1 (each port is a distinct
//! endpoint with its own connection pool on the sending side), reads every body and
//! answers 204, at once or after a set delay. It counts the requests, and the repeats
//! of a `webhook-id` it has already answered (a delivery made twice).

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;

/// What the receiver has seen.
#[derive(Default)]
struct Seen {
    total: AtomicU64,
    duplicates: AtomicU64,
    /// Hashes of the `webhook-id`s answered (the bare client sends none).
    ids: Mutex<HashSet<u64>>,
    hasher: RandomState,
    delay: Duration,
}

/// The receiver's counts (`GET /count`).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq)]
pub struct Counts {
    /// Requests answered.
    pub total: u64,
    /// Requests whose `webhook-id` had been answered before.
    pub duplicates: u64,
}

/// Runs the receiver until its standard input closes (the parent went away) or it is
/// killed. Prints `{"ports":[...]}` on one line once every port listens. Each request
/// is answered `delay_ms` after it arrived.
pub fn serve(ports: usize, delay_ms: u64) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("building the receiver's runtime")?;
    // Exit when the parent closes our stdin, so no receiver outlives a bench run.
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        std::process::exit(0);
    });
    runtime.block_on(async move {
        let seen = Arc::new(Seen {
            delay: Duration::from_millis(delay_ms),
            ..Seen::default()
        });
        let app = axum::Router::new()
            .route("/count", axum::routing::get(total))
            .fallback(hook)
            .with_state(seen);
        let mut bound = Vec::new();
        for _ in 0..ports.max(1) {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .context("binding a receiver port")?;
            bound.push(listener.local_addr()?.port());
            let app = app.clone();
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
        }
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{}", serde_json::json!({ "ports": bound }))?;
        stdout.flush()?;
        drop(stdout);
        std::future::pending::<()>().await;
        Ok(())
    })
}

async fn hook(State(seen): State<Arc<Seen>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    std::hint::black_box(body.len());
    if !seen.delay.is_zero() {
        tokio::time::sleep(seen.delay).await;
    }
    if let Some(id) = headers.get("webhook-id") {
        let hash = seen.hasher.hash_one(id.as_bytes());
        if !seen.ids.lock().expect("ids lock").insert(hash) {
            seen.duplicates.fetch_add(1, Ordering::Relaxed);
        }
    }
    seen.total.fetch_add(1, Ordering::Relaxed);
    StatusCode::NO_CONTENT
}

async fn total(State(seen): State<Arc<Seen>>) -> String {
    serde_json::json!({
        "total": seen.total.load(Ordering::Relaxed),
        "duplicates": seen.duplicates.load(Ordering::Relaxed),
    })
    .to_string()
}

/// The receiver process, seen from the bench; killed when dropped.
pub struct ReceiverProcess {
    child: Child,
    pub ports: Vec<u16>,
}

impl ReceiverProcess {
    /// Starts a receiver on `ports` ports answering at once.
    pub fn start(ports: usize) -> Result<Self> {
        Self::start_with_delay(ports, 0)
    }

    /// Starts a receiver on `ports` ports answering each request `delay_ms` after it
    /// arrived.
    pub fn start_with_delay(ports: usize, delay_ms: u64) -> Result<Self> {
        let exe = std::env::current_exe().context("locating the bench binary")?;
        let mut child = Command::new(exe)
            .args([
                "receiver",
                "--ports",
                &ports.to_string(),
                "--delay-ms",
                &delay_ms.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the receiver process")?;
        let stdout = child.stdout.take().context("receiver stdout")?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .context("reading the receiver's ports")?;
        let parsed: serde_json::Value = serde_json::from_str(line.trim())
            .with_context(|| format!("the receiver printed {line:?}, not its ports"))?;
        let ports: Vec<u16> = parsed["ports"]
            .as_array()
            .context("no ports in the receiver's first line")?
            .iter()
            .filter_map(|p| p.as_u64().and_then(|p| u16::try_from(p).ok()))
            .collect();
        if ports.is_empty() {
            bail!("the receiver listens on no port");
        }
        Ok(Self { child, ports })
    }

    /// The receiver process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Requests the receiver has answered so far, and the repeated deliveries among them.
    pub async fn counts(&self, client: &reqwest::Client) -> Result<Counts> {
        let text = client
            .get(format!("http://127.0.0.1:{}/count", self.ports[0]))
            .send()
            .await
            .context("asking the receiver for its count")?
            .text()
            .await?;
        serde_json::from_str(text.trim())
            .with_context(|| format!("the receiver's counts {text:?} are not JSON"))
    }

    /// Requests the receiver has answered so far.
    pub async fn count(&self, client: &reqwest::Client) -> Result<u64> {
        Ok(self.counts(client).await?.total)
    }
}

impl Drop for ReceiverProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
