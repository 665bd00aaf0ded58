//! What the emulator phases share: the bench stack deployed into the emulator, the
//! counting proxy in front of it, the worker process and its batching, a receiver
//! that notes when each event first arrives and answers after a set delay, pacing,
//! and waiting for a run to settle.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use herald_core::{AppId, EventFilter, ObjectTypeFilter, Subscription};
use herald_store::SubscriptionStore;

pub(super) use herald_testing::{aws_at, Stack};

use crate::proxy::CountingProxy;
pub(super) use crate::worker_proc::{BatchLog, Batching, WorkerProc};

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
        let env = self
            .stack
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .chain([("AWS_ENDPOINT_URL".to_owned(), self.proxy.url.clone())]);
        WorkerProc::spawn(&self.herald_bin, env, batching)
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
// Pacing and subscriptions (the stack is herald_testing's).

/// One send of [`at_rate`]: what it returned (an event id), when it started and when
/// it returned.
pub(super) struct Sent {
    pub(super) id: String,
    pub(super) started: Instant,
    pub(super) ended: Instant,
}

/// Runs `send(i)` `n` times at `rate` per second, each in its own task so a slow call
/// does not slow the rate; returns each successful send.
pub(super) async fn at_rate<F, Fut>(n: usize, rate: f64, send: F) -> Result<Vec<Sent>>
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
            fut.await.map(|id| Sent {
                id,
                started,
                ended: Instant::now(),
            })
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
