//! Sections 2, 3, 4 and 5b: the real `herald-worker` against the emulator, through
//! the counting proxy; end-to-end latency beside the emulator's own
//! send-to-receive latency; AWS calls per delivered webhook; footprint; and the cost
//! of looking up an app's subscriptions beside a bare one-item query.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageAttributeValue, MessageSystemAttributeName,
    QueueAttributeName, SendMessageBatchRequestEntry,
};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use herald_core::{
    AppId, Event, EventFilter, EventType, ObjectType, ObjectTypeFilter, QueueMessage, Subscription,
};
use herald_publisher::Publisher;
use herald_store::SubscriptionStore;
use herald_testing::{aws_at, Stack};
use serde::Serialize;

use crate::inproc::event_1k;
use crate::proxy::{CountingProxy, Counts};
use crate::stats::Summary;
use crate::sys::{self, Rss};

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

// ---------------------------------------------------------------------------------
// A receiver that notes when each event first arrives.

#[derive(Default)]
struct Arrivals {
    first: HashMap<String, Instant>,
    total: u64,
}

struct LatencyReceiver {
    url: String,
    arrivals: Arc<Mutex<Arrivals>>,
    task: tokio::task::JoinHandle<()>,
}

impl LatencyReceiver {
    async fn start() -> Result<Self> {
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

    fn total(&self) -> u64 {
        self.arrivals.lock().expect("arrivals lock").total
    }

    fn first(&self, id: &str) -> Option<Instant> {
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

/// `herald-worker` as a child process, logging JSON at `info`; killed when dropped.
struct WorkerProc {
    child: Child,
    spawned: Instant,
    log: Arc<Mutex<WorkerLog>>,
}

impl WorkerProc {
    fn spawn(bin: &Path, stack_env: &HashMap<String, String>, endpoint: &str) -> Result<Self> {
        let spawned = Instant::now();
        let mut child = Command::new(bin)
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
                if (parsed.is_null() || level == "WARN" || level == "ERROR")
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
    async fn wait_ready(&mut self, timeout: Duration) -> Result<Duration> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(ready) = self.log.lock().expect("worker log lock").ready {
                return Ok(ready - self.spawned);
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "herald-worker exited with {status} before polling: {}",
                    self.notable().join("\n")
                );
            }
            if Instant::now() > deadline {
                bail!("herald-worker did not start polling within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    fn notable(&self) -> Vec<String> {
        self.log.lock().expect("worker log lock").notable.clone()
    }

    /// The batches handled and the log bytes written since the last call.
    fn take(&self) -> (Vec<BatchLog>, u64) {
        let mut log = self.log.lock().expect("worker log lock");
        (
            std::mem::take(&mut log.batches),
            std::mem::take(&mut log.stderr_bytes),
        )
    }

    fn rss(&self) -> Result<Rss> {
        sys::rss(&self.child.id().to_string())
    }

    /// SIGTERM, then SIGKILL if it has not stopped within 5 s.
    fn stop(&mut self) {
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
// Results.

/// One run's AWS calls and handler work.
#[derive(Debug, Clone, Serialize)]
pub struct CallsPhase {
    pub label: String,
    pub events: u64,
    /// Webhooks delivered (receiver answered 2xx).
    pub deliveries: u64,
    pub counts: Counts,
    /// Batches the consumer handled (= Lambda invocations).
    pub batches: u64,
    /// Handler time per batch, ms (from the worker's "batch handled" lines).
    pub handler_ms: Summary,
    /// Sum over batches of the handler time rounded up to whole ms (Lambda bills per ms).
    pub billed_ms_total: f64,
    /// Bytes of JSON log lines the worker wrote during the run.
    pub log_bytes: u64,
    /// Wall time from the first publish to the last receipt, s.
    pub wall_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub herald_ms: Summary,
    pub baseline_ms: Summary,
    pub herald_lost: usize,
    pub baseline_lost: usize,
    pub rate: f64,
    pub secs: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Footprint {
    pub worker_idle: Rss,
    pub worker_after_load: Rss,
    pub start_to_ready_ms: Vec<f64>,
    pub spawn_true_ms: Vec<f64>,
    pub package: Package,
    pub package_baseline: Package,
}

#[derive(Debug, Clone, Serialize)]
pub struct Package {
    pub what: String,
    pub binary_bytes: Option<u64>,
    pub zip_bytes: Option<u64>,
    pub cargo_lambda_zip_bytes: Option<u64>,
    pub source: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct LookupRow {
    pub subscriptions: usize,
    pub matched: usize,
    pub reps: usize,
    /// `SubscriptionStore::for_app` plus the filter, ms.
    pub lookup_ms: Summary,
    /// The bare one-item Query, timed alternately with the lookups of this row, ms.
    pub baseline_ms: Summary,
    /// Decoding the returned items into subscriptions, in process, µs.
    pub decode_us: f64,
    /// The in-memory filter alone, µs.
    pub filter_us: f64,
    /// What one lookup costs on DynamoDB (from the proxied lookup).
    pub read_units: f64,
    pub item_bytes: u64,
    pub calls: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Lookup {
    pub rows: Vec<LookupRow>,
    /// A bare DynamoDB Query returning one item, ms.
    pub baseline_ms: Summary,
    pub write_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct EmulatorResults {
    pub stack: String,
    pub attempts_table: String,
    pub latency: Latency,
    pub pipe: CallsPhase,
    pub steady: CallsPhase,
    pub backlog: CallsPhase,
    pub footprint: Footprint,
    pub lookup: Lookup,
    pub worker_warnings: Vec<String>,
}

// ---------------------------------------------------------------------------------

fn message_attributes(event: &Event) -> HashMap<String, MessageAttributeValue> {
    [
        ("app_id", event.app_id.as_str()),
        ("event_type", event.event_type.as_str()),
        ("event_id", event.id.as_str()),
    ]
    .into_iter()
    .filter_map(|(k, v)| {
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(v)
            .build()
            .ok()
            .map(|a| (k.to_owned(), a))
    })
    .collect()
}

/// Runs `send(i)` `n` times at `rate` per second, each in its own task so a slow call
/// does not slow the rate; returns the send-start instant of each successful send.
async fn at_rate<F, Fut>(n: usize, rate: f64, send: F) -> Result<Vec<(String, Instant)>>
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

/// The emulator's own latency: SendMessageBatch (one entry, the same body and
/// attributes as the publisher's) to ReceiveMessage on a plain queue, received and
/// deleted the way the worker does; at the same rate.
async fn pipe_run(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    app: &AppId,
    n: usize,
    rate: f64,
) -> Result<(Vec<f64>, usize, f64)> {
    let receipts: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let receiver = {
        let sqs = sqs.clone();
        let url = queue_url.to_owned();
        let receipts = Arc::clone(&receipts);
        tokio::spawn(async move {
            loop {
                if receipts.lock().expect("receipts lock").len() >= n {
                    return Ok::<(), anyhow::Error>(());
                }
                let out = sqs
                    .receive_message()
                    .queue_url(&url)
                    .max_number_of_messages(10)
                    .wait_time_seconds(20)
                    .message_system_attribute_names(MessageSystemAttributeName::All)
                    .message_attribute_names("All")
                    .send()
                    .await
                    .context("ReceiveMessage on the pipe queue")?;
                let messages = out.messages.unwrap_or_default();
                let now = Instant::now();
                let mut entries = Vec::new();
                for (i, m) in messages.iter().enumerate() {
                    if let Some(Ok(QueueMessage::Event { event })) =
                        m.body.as_deref().map(QueueMessage::decode)
                    {
                        receipts
                            .lock()
                            .expect("receipts lock")
                            .entry(event.id.to_string())
                            .or_insert(now);
                    }
                    if let Some(h) = &m.receipt_handle {
                        entries.push(
                            DeleteMessageBatchRequestEntry::builder()
                                .id(i.to_string())
                                .receipt_handle(h)
                                .build()?,
                        );
                    }
                }
                if !entries.is_empty() {
                    sqs.delete_message_batch()
                        .queue_url(&url)
                        .set_entries(Some(entries))
                        .send()
                        .await
                        .context("DeleteMessageBatch on the pipe queue")?;
                }
            }
        })
    };
    let started = Instant::now();
    let sent = at_rate(n, rate, |_| {
        let sqs = sqs.clone();
        let url = queue_url.to_owned();
        let event = event_1k(app);
        async move {
            let event = event?;
            let entry = SendMessageBatchRequestEntry::builder()
                .id("0")
                .message_body(
                    QueueMessage::Event {
                        event: event.clone(),
                    }
                    .encode(),
                )
                .set_message_attributes(Some(message_attributes(&event)))
                .build()?;
            sqs.send_message_batch()
                .queue_url(url)
                .entries(entry)
                .send()
                .await
                .context("SendMessageBatch on the pipe queue")?;
            Ok(event.id.to_string())
        }
    })
    .await?;
    match tokio::time::timeout(Duration::from_secs(60), receiver).await {
        Ok(joined) => joined.context("the pipe receiver panicked")??,
        Err(_) => eprintln!("[bench] the pipe receiver timed out; counting what arrived"),
    }
    let wall = started.elapsed().as_secs_f64();
    let receipts = receipts.lock().expect("receipts lock");
    let mut latencies = Vec::new();
    let mut lost = 0;
    for (id, at) in &sent {
        match receipts.get(id) {
            Some(got) => latencies.push((*got - *at).as_secs_f64() * 1e3),
            None => lost += 1,
        }
    }
    Ok((latencies, lost, wall))
}

async fn wait_for(receiver: &LatencyReceiver, total: u64, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while receiver.total() < total {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
}

fn phase(
    label: &str,
    events: u64,
    deliveries: u64,
    counts: Counts,
    batches: Vec<BatchLog>,
    log_bytes: u64,
    wall_s: f64,
) -> CallsPhase {
    let ms: Vec<f64> = batches.iter().map(|b| b.elapsed_ms).collect();
    CallsPhase {
        label: label.to_owned(),
        events,
        deliveries,
        counts,
        batches: batches.len() as u64,
        handler_ms: Summary::of(&ms),
        // The worker logs whole milliseconds; a 0 ms batch is billed 1 ms.
        billed_ms_total: ms.iter().map(|m| m.ceil().max(1.0)).sum(),
        log_bytes,
        wall_s,
    }
}

async fn create_subscriptions(
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

fn zip_size(binary: &Path, zip: &Path) -> Option<u64> {
    let script = "import sys, zipfile\n\
                  with zipfile.ZipFile(sys.argv[2], 'w', zipfile.ZIP_DEFLATED, compresslevel=9) as z:\n\
                  \x20   z.write(sys.argv[1], 'bootstrap')\n";
    let ok = Command::new("python3")
        .args(["-c", script])
        .arg(binary)
        .arg(zip)
        .status()
        .ok()?
        .success();
    ok.then(|| std::fs::metadata(zip).ok().map(|m| m.len()))
        .flatten()
}

/// The binary's size and the size of a Lambda zip of it (`bootstrap`, deflate level
/// 9), built the same way for Herald and the baseline so the two compare; plus the
/// size of `cargo lambda`'s zip when `make lambda` has left one.
fn package(what: &str, binary: &Path, cargo_lambda_zip: Option<&Path>, out_dir: &Path) -> Package {
    let binary_bytes = std::fs::metadata(binary).ok().map(|m| m.len());
    let zip = out_dir.join(format!("{what}.zip"));
    let zip_bytes = binary_bytes.and_then(|_| zip_size(binary, &zip));
    let cargo_lambda = cargo_lambda_zip.filter(|z| z.exists());
    let cargo_lambda_zip_bytes =
        cargo_lambda.and_then(|z| std::fs::metadata(z).ok().map(|m| m.len()));
    let mut source = format!(
        "{} zipped as `bootstrap` (deflate, level 9)",
        binary
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    if let (Some(z), Some(bytes)) = (cargo_lambda, cargo_lambda_zip_bytes) {
        source.push_str(&format!(
            "; `make lambda` had also left {} ({:.2} MiB, built by cargo lambda)",
            z.display(),
            bytes as f64 / 1048576.0
        ));
    }
    Package {
        what: what.to_owned(),
        binary_bytes,
        zip_bytes,
        cargo_lambda_zip_bytes,
        source,
    }
}

async fn write_subscriptions(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
    subs: Vec<Subscription>,
) -> Result<()> {
    let mut requests = Vec::with_capacity(subs.len());
    for sub in &subs {
        let item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(sub).context("a subscription as an item")?;
        requests.push(
            WriteRequest::builder()
                .put_request(PutRequest::builder().set_item(Some(item)).build()?)
                .build(),
        );
    }
    let chunks: Vec<Vec<WriteRequest>> = requests.chunks(25).map(<[_]>::to_vec).collect();
    use futures::stream::{self, StreamExt, TryStreamExt};
    stream::iter(chunks)
        .map(|mut chunk| async move {
            for _ in 0..10 {
                let out = dynamo
                    .batch_write_item()
                    .request_items(table, chunk.clone())
                    .send()
                    .await
                    .context("BatchWriteItem of subscriptions")?;
                chunk = out
                    .unprocessed_items
                    .and_then(|mut m| m.remove(table))
                    .unwrap_or_default();
                if chunk.is_empty() {
                    return Ok::<(), anyhow::Error>(());
                }
            }
            bail!("subscriptions left unprocessed after 10 rounds")
        })
        .buffer_unordered(4)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

async fn lookup(
    settings: &EmulatorSettings,
    dynamo: &aws_sdk_dynamodb::Client,
    proxied: &aws_sdk_dynamodb::Client,
    proxy: &CountingProxy,
    table: &str,
    quick: bool,
) -> Result<Lookup> {
    let store = SubscriptionStore::new(dynamo.clone(), table);
    let update = EventFilter::parse(&["update"])?;
    let delete = EventFilter::parse(&["delete"])?;
    let write_started = Instant::now();
    for &n in &settings.lookup_sizes {
        let app = AppId::parse(&format!("lookup-{n}"))?;
        let subs = (0..n)
            .map(|i| {
                Subscription::new(
                    app.clone(),
                    format!("https://hooks.example.com/{i}"),
                    if i % 2 == 0 {
                        update.clone()
                    } else {
                        delete.clone()
                    },
                    ObjectTypeFilter::All,
                )
            })
            .collect();
        write_subscriptions(dynamo, table, subs).await?;
        eprintln!("[bench] lookup: wrote {n} subscriptions");
    }
    // The baseline's app: one subscription.
    let one = AppId::parse("bench-lookup-baseline")?;
    write_subscriptions(
        dynamo,
        table,
        vec![Subscription::new(
            one.clone(),
            "https://hooks.example.com/0",
            update,
            ObjectTypeFilter::All,
        )],
    )
    .await?;
    let write_s = write_started.elapsed().as_secs_f64();
    let bare_query = || async {
        let t = Instant::now();
        let out = dynamo
            .query()
            .table_name(table)
            .key_condition_expression("app_id = :app")
            .expression_attribute_values(":app", AttributeValue::S(one.to_string()))
            .send()
            .await
            .context("the bare one-item Query")?;
        if out.count() != 1 {
            bail!("the bare Query found {} items, not 1", out.count());
        }
        Ok::<f64, anyhow::Error>(t.elapsed().as_secs_f64() * 1e3)
    };

    let mut rows = Vec::new();
    let mut all_base = Vec::new();
    for &n in &settings.lookup_sizes {
        let app = AppId::parse(&format!("lookup-{n}"))?;
        let event = Event::new(
            app.clone(),
            EventType::parse("update")?,
            ObjectType::parse("user")?,
            serde_json::json!({}),
        );
        let reps = match (n, quick) {
            (0..=100, false) => 30,
            (0..=100, true) => 10,
            (101..=1000, _) => 5,
            _ => 3,
        };
        // Alternate the bare Query and the lookup, so both see the emulator alike.
        let mut ms = Vec::new();
        let mut base = Vec::new();
        let mut matched = 0;
        for _ in 0..reps {
            base.push(bare_query().await?);
            let t = Instant::now();
            matched = store.matching(&event).await?.len();
            ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        // The same Query once more, through the proxy (to count what DynamoDB would
        // bill), keeping the raw items to time decoding and filtering in process.
        proxy.take();
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = proxied
                .query()
                .table_name(table)
                .key_condition_expression("app_id = :app")
                .expression_attribute_values(":app", AttributeValue::S(app.to_string()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .context("the counted Query")?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        let counts = proxy.take();
        let query = counts.get("DynamoDB Query").cloned().unwrap_or_default();
        let t = Instant::now();
        let all: Vec<Subscription> = items
            .into_iter()
            .map(serde_dynamo::from_item)
            .collect::<Result<_, _>>()
            .context("decoding subscriptions")?;
        let decode_us = t.elapsed().as_secs_f64() * 1e6;
        let t = Instant::now();
        let kept = std::hint::black_box(&all)
            .iter()
            .filter(|s| s.matches(&event))
            .count();
        let filter_us = t.elapsed().as_secs_f64() * 1e6;
        if kept != matched || all.len() != n {
            bail!(
                "lookup of {n}: found {} subscriptions, {kept} matching",
                all.len()
            );
        }
        all_base.extend_from_slice(&base);
        rows.push(LookupRow {
            subscriptions: n,
            matched,
            reps,
            lookup_ms: Summary::of(&ms),
            baseline_ms: Summary::of(&base),
            decode_us,
            filter_us,
            read_units: query.read_units,
            item_bytes: query.item_bytes,
            calls: query.calls,
        });
        eprintln!(
            "[bench] lookup of {n}: p50 {:.1} ms (bare Query {:.1} ms)",
            rows.last().map_or(0.0, |r| r.lookup_ms.p50),
            rows.last().map_or(0.0, |r| r.baseline_ms.p50)
        );
    }
    Ok(Lookup {
        rows,
        baseline_ms: Summary::of(&all_base),
        write_s,
    })
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
    let worker_bin = bin_dir.join("herald-worker");
    if !worker_bin.exists() {
        bail!(
            "{} is missing: build it with `cargo build -p herald-consumer` (make bench does)",
            worker_bin.display()
        );
    }
    eprintln!("[bench] deploying the data plane into the emulator");
    let stack = Stack::deploy("bench").context("deploying the bench stack")?;
    let direct = aws_at(&endpoint).await;
    let proxy = CountingProxy::start(&endpoint).await?;
    let proxied = aws_at(&proxy.url).await;
    let sqs_direct = aws_sdk_sqs::Client::new(&direct);
    let sqs_proxied = aws_sdk_sqs::Client::new(&proxied);
    let dynamo_direct = aws_sdk_dynamodb::Client::new(&direct);
    let table = stack.subscriptions_table().to_owned();
    let store = SubscriptionStore::new(dynamo_direct.clone(), &table);
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

    // The emulator's own send-to-receive latency, on a plain queue.
    let pipe_queue = sqs_direct
        .create_queue()
        .queue_name(format!("herald-bench-pipe-{}", std::process::id()))
        .attributes(QueueAttributeName::VisibilityTimeout, "120")
        .attributes(QueueAttributeName::ReceiveMessageWaitTimeSeconds, "20")
        .send()
        .await
        .context("creating the baseline queue")?
        .queue_url
        .context("the baseline queue has no URL")?;
    let n = (settings.rate * settings.steady_secs).round().max(1.0) as usize;
    eprintln!(
        "[bench] baseline: {n} messages at {}/s through the emulator's SQS",
        settings.rate
    );
    proxy.take();
    let (pipe_ms, pipe_lost, pipe_wall) =
        pipe_run(&sqs_proxied, &pipe_queue, &steady_app, n, settings.rate).await?;
    let pipe = phase(
        "SQS alone (baseline)",
        n as u64,
        (n - pipe_lost) as u64,
        proxy.take(),
        Vec::new(),
        0,
        pipe_wall,
    );

    // Herald at the same rate.
    let mut worker = WorkerProc::spawn(&worker_bin, &stack.env, &proxy.url)?;
    let first_ready = worker.wait_ready(Duration::from_secs(60)).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let worker_idle = worker.rss()?;
    let publisher = Arc::new(Publisher::new(sqs_proxied.clone(), stack.events_queue()));
    eprintln!(
        "[bench] Herald: {n} events at {}/s, publish to receipt",
        settings.rate
    );
    worker.take();
    proxy.take();
    let received0 = receiver.total();
    let started = Instant::now();
    let sent = at_rate(n, settings.rate, |_| {
        let publisher = Arc::clone(&publisher);
        let event = event_1k(&steady_app);
        async move {
            let event = event?;
            publisher
                .publish(&event)
                .await
                .map(|id| id.to_string())
                .context("publishing")
        }
    })
    .await?;
    let complete = wait_for(&receiver, received0 + n as u64, Duration::from_secs(60)).await;
    let wall = started.elapsed().as_secs_f64();
    // Let the last batch's history write and delete finish before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut herald_ms = Vec::new();
    let mut herald_lost = 0;
    for (id, at) in &sent {
        match receiver.first(id) {
            Some(got) => herald_ms.push((got - *at).as_secs_f64() * 1e3),
            None => herald_lost += 1,
        }
    }
    if !complete {
        eprintln!("[bench] {herald_lost} of {n} events did not arrive within 60 s");
    }
    let (batches, log_bytes) = worker.take();
    let steady = phase(
        &format!("steady {}/s, 1 subscription", settings.rate),
        n as u64,
        (receiver.total() - received0).min(n as u64),
        proxy.take(),
        batches,
        log_bytes,
        wall,
    );

    // A backlog: events published in batches of 10, each matching several subscriptions.
    let events: Vec<Event> = (0..settings.backlog_events)
        .map(|_| event_1k(&fanout_app))
        .collect::<Result<_>>()?;
    let expected = (settings.backlog_events * settings.backlog_subscriptions) as u64;
    eprintln!(
        "[bench] Herald: backlog of {} events x {} subscriptions",
        settings.backlog_events, settings.backlog_subscriptions
    );
    let received0 = receiver.total();
    let started = Instant::now();
    publisher
        .publish_all(&events)
        .await
        .context("publishing the backlog")?;
    let complete = wait_for(&receiver, received0 + expected, Duration::from_secs(180)).await;
    let wall = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let delivered = receiver.total() - received0;
    if !complete {
        eprintln!("[bench] backlog: {delivered} of {expected} deliveries arrived within 180 s");
    }
    let (batches, log_bytes) = worker.take();
    let backlog = phase(
        &format!(
            "backlog, {} subscriptions per event",
            settings.backlog_subscriptions
        ),
        settings.backlog_events as u64,
        delivered,
        proxy.take(),
        batches,
        log_bytes,
        wall,
    );
    let worker_after_load = worker.rss()?;
    let worker_warnings = worker.notable();
    worker.stop();

    // Start to ready, beside spawning /bin/true.
    let mut start_to_ready_ms = vec![first_ready.as_secs_f64() * 1e3];
    for _ in 0..settings.starts {
        let mut w = WorkerProc::spawn(&worker_bin, &stack.env, &proxy.url)?;
        start_to_ready_ms.push(w.wait_ready(Duration::from_secs(60)).await?.as_secs_f64() * 1e3);
        w.stop();
    }
    let mut spawn_true_ms = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let status = Command::new("/bin/true")
            .status()
            .context("running /bin/true")?;
        if !status.success() {
            bail!("/bin/true failed");
        }
        spawn_true_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let lambda_zip = root.join("target/lambda/herald-consumer-lambda/bootstrap.zip");
    let footprint = Footprint {
        worker_idle,
        worker_after_load,
        start_to_ready_ms,
        spawn_true_ms,
        package: package(
            "herald-consumer-lambda",
            &bin_dir.join("herald-consumer-lambda"),
            Some(&lambda_zip),
            out_dir,
        ),
        package_baseline: package(
            "herald-bench-hello-lambda",
            &bin_dir.join("herald-bench-hello-lambda"),
            None,
            out_dir,
        ),
    };

    eprintln!("[bench] lookup cost");
    let lookup = lookup(
        settings,
        &dynamo_direct,
        &aws_sdk_dynamodb::Client::new(&proxied),
        &proxy,
        &table,
        quick,
    )
    .await?;

    Ok(EmulatorResults {
        stack: stack.stage.clone(),
        attempts_table: stack.var("HERALD_ATTEMPTS_TABLE").to_owned(),
        latency: Latency {
            herald_ms: Summary::of(&herald_ms),
            baseline_ms: Summary::of(&pipe_ms),
            herald_lost,
            baseline_lost: pipe_lost,
            rate: settings.rate,
            secs: settings.steady_secs,
        },
        pipe,
        steady,
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
