//! The consumer's metrics, written as CloudWatch Embedded Metric Format (EMF): one JSON
//! line per batch on stdout, which CloudWatch Logs turns into metrics of the
//! `HERALD_METRICS_NAMESPACE` namespace without a `PutMetricData` call
//! (docs/operations.md, "Metrics").
//!
//! Each line has the dimension set `[Service]` (and, with `HERALD_METRICS_PER_APP`,
//! one more line per app of the batch with `[Service, AppId]`, for deployments whose
//! apps are few enough to be worth a metric each: every distinct app is a custom
//! metric CloudWatch bills monthly).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::Arc;

use herald_core::{AppId, Attempt, AttemptOutcome};
use herald_runtime::config::{ConfigError, Validate};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// The `Service` dimension's value.
pub const SERVICE: &str = "herald-consumer";

/// Most values EMF takes for one metric in one document; a batch with more latencies
/// writes more documents.
pub const MAX_VALUES: usize = 100;

/// The metrics settings: `HERALD_METRICS` (`off`, the default, or `emf`),
/// `HERALD_METRICS_NAMESPACE` (default `Herald`) and `HERALD_METRICS_PER_APP`
/// (default false).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MetricsSettings {
    /// Whether metrics are written.
    pub metrics: MetricsMode,
    /// The CloudWatch namespace.
    pub metrics_namespace: String,
    /// Whether each app of a batch also gets a line with an `AppId` dimension.
    #[serde(deserialize_with = "herald_core::settings::flag")]
    pub metrics_per_app: bool,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            metrics: MetricsMode::Off,
            metrics_namespace: "Herald".to_owned(),
            metrics_per_app: false,
        }
    }
}

impl Validate for MetricsSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        let ns = &self.metrics_namespace;
        let printable = ns.chars().all(|c| c.is_ascii_graphic() || c == ' ');
        if ns.is_empty() || ns.len() > 255 || !printable || ns.starts_with("AWS/") {
            return Err(ConfigError::invalid(
                "metrics_namespace",
                ns,
                "1 to 255 printable ASCII characters, not starting with AWS/ (such as Herald/prod)",
            ));
        }
        Ok(())
    }
}

/// Whether the consumer writes metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricsMode {
    /// None (the local default: the worker's output stays readable).
    Off,
    /// EMF lines on stdout (infra/herald.yaml sets it for the consumer function).
    Emf,
}

/// Where EMF lines go.
pub type Sink = Arc<dyn Fn(&str) + Send + Sync>;

/// Writes each line to stdout whole (the lock is held for the line).
pub fn stdout_sink() -> Sink {
    Arc::new(|line: &str| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
    })
}

/// The consumer's metrics writer.
#[derive(Clone)]
pub struct Metrics {
    namespace: String,
    per_app: bool,
    sink: Sink,
}

impl Metrics {
    /// A writer by `settings` to `sink`; none when metrics are off.
    pub fn new(settings: &MetricsSettings, sink: Sink) -> Option<Self> {
        (settings.metrics == MetricsMode::Emf).then(|| Self {
            namespace: settings.metrics_namespace.clone(),
            per_app: settings.metrics_per_app,
            sink,
        })
    }

    /// Whether lines per app are written (and so counted per app).
    pub fn per_app(&self) -> bool {
        self.per_app
    }

    /// Writes the metrics of one batch.
    pub fn batch(&self, counts: &BatchCounts, now_ms: i64) {
        for line in self.lines(counts, now_ms) {
            (self.sink)(&line);
        }
    }

    /// The EMF documents of one batch, one JSON line each.
    pub fn lines(&self, counts: &BatchCounts, now_ms: i64) -> Vec<String> {
        let mut lines = vec![self.document(&counts.all, &[], now_ms, Some(counts), true)];
        // Latencies past the first document's 100 go in documents of their own.
        for chunk in counts.all.latencies_ms.chunks(MAX_VALUES).skip(1) {
            let only = Tally {
                latencies_ms: chunk.to_vec(),
                ..Tally::default()
            };
            lines.push(self.document(&only, &[], now_ms, None, true));
        }
        // Per app, the counts only: the latencies are the service's.
        if self.per_app {
            for (app, tally) in &counts.by_app {
                let dimensions = [("AppId", app.as_str())];
                lines.push(self.document(tally, &dimensions, now_ms, None, false));
            }
        }
        lines
    }

    fn document(
        &self,
        tally: &Tally,
        dimensions: &[(&str, &str)],
        now_ms: i64,
        batch: Option<&BatchCounts>,
        with_latency: bool,
    ) -> String {
        let mut root = Map::new();
        let mut metrics = Vec::new();
        let mut put = |name: String, unit: &str, value: Value| {
            metrics.push(json!({"Name": name, "Unit": unit}));
            root.insert(name, value);
        };
        if let Some(b) = batch {
            put("Batches".into(), "Count", json!(1));
            put("Records".into(), "Count", json!(b.records));
            put("BatchDuration".into(), "Milliseconds", json!(b.elapsed_ms));
        }
        for (name, value) in [
            ("Attempts", tally.attempts),
            ("Succeeded", tally.succeeded),
            ("Failed", tally.failed),
            ("Retried", tally.retried),
            ("Parked", tally.parked),
            ("NotSent", tally.not_sent),
            ("Deferred", tally.deferred),
        ] {
            if batch.is_some() || value > 0 {
                put(name.to_owned(), "Count", json!(value));
            }
        }
        for (kind, n) in &tally.failed_by_kind {
            put(format!("Failed.{kind}"), "Count", json!(n));
        }
        if with_latency && !tally.latencies_ms.is_empty() {
            let first: Vec<u64> = tally
                .latencies_ms
                .iter()
                .take(MAX_VALUES)
                .copied()
                .collect();
            put("Latency".into(), "Milliseconds", json!(first));
        }
        let mut keys = vec!["Service"];
        root.insert("Service".into(), json!(SERVICE));
        for (k, v) in dimensions {
            keys.push(k);
            root.insert((*k).to_owned(), json!(v));
        }
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": now_ms,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [keys],
                    "Metrics": metrics,
                }],
            }),
        );
        Value::Object(root).to_string()
    }
}

/// What a set of attempts did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// Requests made (retries included; not-sent deliveries excluded).
    pub attempts: u64,
    /// Answered 2xx.
    pub succeeded: u64,
    /// Failed (any reason).
    pub failed: u64,
    /// Failed with a retry scheduled.
    pub retried: u64,
    /// Failed for good: parked on the DLQ.
    pub parked: u64,
    /// Not sent: the endpoint was disabled or deleted.
    pub not_sent: u64,
    /// Not attempted yet: put back on the queue by the webhook's rate limit (neither
    /// an attempt nor a failure).
    pub deferred: u64,
    /// Failures by kind (`http_status`, `timeout`, `connect`, ...).
    pub failed_by_kind: BTreeMap<String, u64>,
    /// The latency of every request made, in milliseconds.
    pub latencies_ms: Vec<u64>,
}

impl Tally {
    fn add(&mut self, a: &Attempt) {
        match a.outcome {
            AttemptOutcome::NotSent => self.not_sent += 1,
            AttemptOutcome::Succeeded => {
                self.attempts += 1;
                self.succeeded += 1;
                self.latencies_ms.push(a.latency_ms);
            }
            AttemptOutcome::Failed => {
                self.attempts += 1;
                self.failed += 1;
                self.latencies_ms.push(a.latency_ms);
                if a.next_attempt_at.is_some() {
                    self.retried += 1;
                } else {
                    self.parked += 1;
                }
                let kind = a.error_kind.as_deref().unwrap_or("other");
                *self.failed_by_kind.entry(kind.to_owned()).or_default() += 1;
            }
        }
    }
}

/// What one batch did, in all and per app.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchCounts {
    /// Messages in the batch.
    pub records: usize,
    /// How long the batch took, in milliseconds.
    pub elapsed_ms: u64,
    /// Every attempt of the batch.
    pub all: Tally,
    /// The same, per app.
    pub by_app: BTreeMap<AppId, Tally>,
}

impl BatchCounts {
    /// The counts of `attempts`, made by a batch of `records` in `elapsed_ms`, and of
    /// the deliveries its rate limits `deferred` (one app id each).
    /// A failed attempt with no next attempt counts as parked: the consumer parks
    /// every delivery it does not retry (a dead letter that could not be sent is
    /// counted again when its record comes back).
    pub fn of<'a>(
        records: usize,
        elapsed_ms: u64,
        attempts: impl IntoIterator<Item = &'a Attempt>,
        deferred: &[AppId],
        per_app: bool,
    ) -> Self {
        let mut counts = Self {
            records,
            elapsed_ms,
            ..Self::default()
        };
        for a in attempts {
            counts.all.add(a);
            if per_app {
                counts.by_app.entry(a.app_id.clone()).or_default().add(a);
            }
        }
        counts.all.deferred = deferred.len() as u64;
        if per_app {
            for app in deferred {
                counts.by_app.entry(app.clone()).or_default().deferred += 1;
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use chrono::Utc;
    use herald_core::testing;

    use super::*;

    fn attempt(app: &str, outcome: AttemptOutcome, kind: Option<&str>, retry: bool) -> Attempt {
        let now = Utc::now();
        Attempt {
            error_kind: kind.map(str::to_owned),
            next_attempt_at: retry.then_some(now),
            ..testing::attempt(&testing::event(app, "update"), "sub_1", outcome, now)
        }
    }

    fn capture(per_app: bool) -> (Metrics, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&lines);
        let settings = MetricsSettings {
            metrics: MetricsMode::Emf,
            metrics_per_app: per_app,
            ..MetricsSettings::default()
        };
        let sink: Sink = Arc::new(move |l: &str| kept.lock().unwrap().push(l.to_owned()));
        (Metrics::new(&settings, sink).unwrap(), lines)
    }

    #[test]
    fn a_batch_is_one_emf_document_whose_metrics_are_declared_and_present() {
        let (metrics, lines) = capture(false);
        let attempts = [
            attempt("a", AttemptOutcome::Succeeded, None, false),
            attempt("a", AttemptOutcome::Failed, Some("timeout"), true),
            attempt("b", AttemptOutcome::Failed, Some("http_status"), false),
            attempt(
                "b",
                AttemptOutcome::NotSent,
                Some("endpoint_disabled"),
                false,
            ),
        ];
        let deferred = [AppId::parse("a").unwrap(), AppId::parse("b").unwrap()];
        metrics.batch(
            &BatchCounts::of(3, 42, &attempts, &deferred, false),
            1_700_000_000_000,
        );
        let lines = lines.lock().unwrap();
        assert_eq!(lines.len(), 1, "no per-app lines unless asked");
        let doc: Value = serde_json::from_str(&lines[0]).unwrap();
        let cw = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000i64);
        assert_eq!(cw["Namespace"], "Herald");
        assert_eq!(cw["Dimensions"], json!([["Service"]]));
        assert_eq!(doc["Service"], SERVICE);
        // Every declared metric is a top-level member, as EMF requires.
        for m in cw["Metrics"].as_array().unwrap() {
            let name = m["Name"].as_str().unwrap();
            assert!(!doc[name].is_null(), "{name} declared but absent");
        }
        assert_eq!(doc["Records"], 3);
        assert_eq!(doc["BatchDuration"], 42);
        assert_eq!(doc["Attempts"], 3, "not-sent deliveries make no request");
        assert_eq!(doc["Succeeded"], 1);
        assert_eq!(doc["Failed"], 2);
        assert_eq!(doc["Retried"], 1);
        assert_eq!(doc["Parked"], 1);
        assert_eq!(doc["NotSent"], 1);
        assert_eq!(
            doc["Deferred"], 2,
            "deferrals are neither attempts nor failures"
        );
        assert_eq!(doc["Failed.timeout"], 1);
        assert_eq!(doc["Failed.http_status"], 1);
        assert_eq!(doc["Latency"], json!([7, 7, 7]));
    }

    #[test]
    fn latencies_past_a_hundred_and_apps_get_documents_of_their_own() {
        let (metrics, lines) = capture(true);
        let attempts: Vec<Attempt> = (0..250)
            .map(|n| {
                let app = if n % 2 == 0 { "a" } else { "b" };
                attempt(app, AttemptOutcome::Succeeded, None, false)
            })
            .collect();
        metrics.batch(&BatchCounts::of(250, 9, &attempts, &[], true), 0);
        let docs: Vec<Value> = lines
            .lock()
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        // The batch (100 latencies), two more latency documents (100, 50), two apps.
        assert_eq!(docs.len(), 5);
        let latencies: usize = docs[..3]
            .iter()
            .map(|d| d["Latency"].as_array().unwrap().len())
            .sum();
        assert_eq!(
            latencies, 250,
            "every latency once, at most 100 per document"
        );
        assert!(docs
            .iter()
            .all(|d| d["Latency"].as_array().is_none_or(|l| l.len() <= 100)));
        assert_eq!(docs[0]["Batches"], 1);
        assert!(docs[1]["Batches"].is_null(), "a batch is counted once");
        let per_app: Vec<_> = docs[3..]
            .iter()
            .map(|d| {
                assert_eq!(
                    d["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
                    json!([["Service", "AppId"]])
                );
                (
                    d["AppId"].as_str().unwrap().to_owned(),
                    d["Attempts"].clone(),
                )
            })
            .collect();
        assert_eq!(
            per_app,
            vec![("a".to_owned(), json!(125)), ("b".to_owned(), json!(125))]
        );
    }

    #[test]
    fn metrics_are_off_unless_asked_for() {
        let sink: Sink = Arc::new(|_| panic!("nothing is written"));
        assert!(Metrics::new(&MetricsSettings::default(), sink).is_none());
    }
}
