//! Configuration of the consumer and the local worker: the `HERALD_*` settings
//! (documented in docs/configuration.md), read through the one loader
//! (`herald_runtime::config`) and validated at start-up.

use std::time::Duration;

use herald_core::retry::RetrySchedule;
use herald_core::settings;
use herald_delivery::HttpSettings;
use herald_queue::QueueSettings;
use herald_runtime::config::{duration_in_range, in_range, ConfigError, Sources, Validate};
use herald_seal::SealSettings;
use herald_store::DeliveryTables;
use serde::{Deserialize, Serialize};

use crate::handler::DeliveryPolicy;
use crate::metrics::MetricsSettings;

/// The consumer's settings as they are written; [`ConsumerConfig`] is what they mean.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ConsumerSettings {
    /// `HERALD_EVENTS_QUEUE_URL` (polled by the local worker; retries go back onto it)
    /// and `HERALD_DLQ_URL`.
    #[serde(flatten)]
    pub queues: QueueSettings,
    /// `HERALD_SUBSCRIPTIONS_TABLE`, `HERALD_HISTORY_TABLE`, `HERALD_HISTORY_RETENTION`.
    #[serde(flatten)]
    pub tables: DeliveryTables,
    /// `HERALD_KMS_KEY_ID` or `HERALD_SEAL_KEY_FILE`: the master key of the sealed
    /// webhook secrets.
    #[serde(flatten)]
    pub seal: SealSettings,
    /// `HERALD_SUBSCRIPTION_CACHE_TTL` (default 5s; 0s disables the cache).
    #[serde(
        default = "defaults::cache_ttl",
        deserialize_with = "settings::duration",
        serialize_with = "settings::write_duration"
    )]
    pub subscription_cache_ttl: Duration,
    /// `HERALD_DISABLE_AFTER_FAILED_DELIVERIES` (default 5; 0 never disables).
    #[serde(
        default = "defaults::disable_after",
        deserialize_with = "settings::parsed"
    )]
    pub disable_after_failed_deliveries: u32,
    /// `HERALD_RETRY_SCHEDULE` (default `0s,5s,5m,30m,2h,5h,10h,10h`).
    #[serde(default = "defaults::schedule")]
    pub retry_schedule: String,
    /// `HERALD_RETRY_JITTER` (default 0.2, from 0 to 0.5).
    #[serde(default = "defaults::jitter", deserialize_with = "settings::parsed")]
    pub retry_jitter: f64,
    /// `HERALD_RETRY_AFTER_CAP` (default 24h): the longest `Retry-After` honoured.
    #[serde(
        default = "defaults::retry_after_cap",
        deserialize_with = "settings::duration",
        serialize_with = "settings::write_duration"
    )]
    pub retry_after_cap: Duration,
    /// `HERALD_DELIVERY_CONCURRENCY` (default 64).
    #[serde(
        default = "defaults::concurrency",
        deserialize_with = "settings::parsed"
    )]
    pub delivery_concurrency: usize,
    /// `HERALD_BATCH_START_DEADLINE` (default 30s).
    #[serde(
        default = "defaults::start_deadline",
        deserialize_with = "settings::duration",
        serialize_with = "settings::write_duration"
    )]
    pub batch_start_deadline: Duration,
    /// `HERALD_HTTP_CONNECT_TIMEOUT`, `HERALD_HTTP_TIMEOUT`, `HERALD_ALLOW_PRIVATE_NETWORKS`.
    #[serde(flatten)]
    pub http: HttpSettings,
    /// `HERALD_METRICS`, `HERALD_METRICS_NAMESPACE`, `HERALD_METRICS_PER_APP`.
    #[serde(flatten)]
    pub metrics: MetricsSettings,
    /// `HERALD_MAX_QUEUE_DELAY` (default 15m, SQS's maximum): the longest delay put on
    /// one queued retry; longer waits take several hops.
    #[serde(
        default = "defaults::max_queue_delay",
        deserialize_with = "settings::duration",
        serialize_with = "settings::write_duration"
    )]
    pub max_queue_delay: Duration,
    /// `HERALD_WORKER_WAIT` (default 20s): long-poll wait of the local worker.
    #[serde(
        default = "defaults::worker_wait",
        deserialize_with = "settings::duration",
        serialize_with = "settings::write_duration"
    )]
    pub worker_wait: Duration,
    /// `HERALD_WORKER_BATCH_SIZE` (default 100): most messages handed to the consumer
    /// at once, like the event source mapping's `BatchSize`. Without a batching window
    /// the worker takes only what is already waiting, so a large batch costs a trickle
    /// nothing and lets a backlog share each batch's history write.
    #[serde(
        default = "defaults::batch_size",
        deserialize_with = "settings::parsed"
    )]
    pub worker_batch_size: usize,
    /// `HERALD_WORKER_BATCH_WINDOW` (default 0s): how long the local worker gathers a
    /// batch after its first message, like `MaximumBatchingWindowInSeconds`.
    #[serde(
        default,
        deserialize_with = "settings::duration",
        serialize_with = "settings::write_duration"
    )]
    pub worker_batch_window: Duration,
}

mod defaults {
    use std::time::Duration;

    pub fn cache_ttl() -> Duration {
        Duration::from_secs(5)
    }
    pub fn disable_after() -> u32 {
        5
    }
    pub fn schedule() -> String {
        herald_core::retry::DEFAULT_SCHEDULE.to_owned()
    }
    pub fn jitter() -> f64 {
        herald_core::retry::DEFAULT_JITTER
    }
    pub fn retry_after_cap() -> Duration {
        herald_core::retry::DEFAULT_RETRY_AFTER_CAP
    }
    pub fn concurrency() -> usize {
        64
    }
    pub fn start_deadline() -> Duration {
        Duration::from_secs(30)
    }
    pub fn max_queue_delay() -> Duration {
        Duration::from_secs(900)
    }
    pub fn worker_wait() -> Duration {
        Duration::from_secs(20)
    }
    pub fn batch_size() -> usize {
        100
    }
}

impl Validate for ConsumerSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        self.http.validate()?;
        self.metrics.validate()?;
        self.tables.validate()?;
        self.seal.validate()?;
        duration_in_range(
            "subscription_cache_ttl",
            self.subscription_cache_ttl,
            Duration::ZERO..=Duration::from_secs(3_600),
        )?;
        in_range(
            "disable_after_failed_deliveries",
            self.disable_after_failed_deliveries,
            0..=1_000_000,
        )?;
        in_range("retry_jitter", self.retry_jitter, 0.0..=0.5)?;
        in_range(
            "delivery_concurrency",
            self.delivery_concurrency,
            1..=10_000,
        )?;
        duration_in_range(
            "batch_start_deadline",
            self.batch_start_deadline,
            Duration::from_secs(1)..=Duration::from_secs(3_600),
        )?;
        duration_in_range(
            "max_queue_delay",
            self.max_queue_delay,
            Duration::from_secs(1)..=Duration::from_secs(900),
        )?;
        duration_in_range(
            "worker_wait",
            self.worker_wait,
            Duration::ZERO..=Duration::from_secs(20),
        )?;
        in_range("worker_batch_size", self.worker_batch_size, 1..=10_000)?;
        duration_in_range(
            "worker_batch_window",
            self.worker_batch_window,
            Duration::ZERO..=Duration::from_secs(300),
        )?;
        Ok(())
    }
}

/// Everything the consumer needs.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Polled by the local worker; retries go back onto it.
    pub events_queue_url: String,
    /// Where dead letters are parked.
    pub dlq_url: String,
    /// The FIFO queue of ordered delivery, if any (polled by the local worker too).
    pub ordered_queue_url: Option<String>,
    /// The subscriptions table.
    pub subscriptions_table: String,
    /// The delivery history table.
    pub history_table: String,
    /// How long the history and the kept events live.
    pub history_retention: Duration,
    /// The master key of the sealed webhook secrets.
    pub seal: SealSettings,
    /// How long an app's routing version is trusted before it is read again to
    /// confirm the cached routes (zero: not cached).
    pub subscription_cache_ttl: Duration,
    /// Failed deliveries in a row that disable an endpoint (0: never).
    pub disable_after: u32,
    /// Retry schedule, concurrency and time bounds.
    pub delivery: DeliveryPolicy,
    /// The HTTP client's timeouts and address policy.
    pub http: HttpSettings,
    /// Whether and how the consumer writes metrics.
    pub metrics: MetricsSettings,
    /// The longest delay put on one queued retry; longer waits take several hops.
    pub max_queue_delay: Duration,
    /// Long-poll wait of the local worker.
    pub worker_wait: Duration,
    /// Most messages per batch of the local worker.
    pub worker_batch_size: usize,
    /// How long the local worker gathers a batch after its first message.
    pub worker_batch_window: Duration,
}

impl ConsumerConfig {
    /// From the process's `HERALD_*` environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::load(&Sources::from_env())
    }

    /// From settings given by variable name (tests, and `herald worker`'s layers).
    pub fn from_vars<K: AsRef<str>, V: Into<String>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, ConfigError> {
        Self::load(&Sources::new().vars("settings", vars))
    }

    /// Reads, validates and interprets the settings of `sources`.
    pub fn load(sources: &Sources) -> Result<Self, ConfigError> {
        let s: ConsumerSettings = sources.load()?;
        let schedule = RetrySchedule::parse(&s.retry_schedule, s.retry_jitter)
            .map_err(|e| ConfigError::invalid("retry_schedule", &s.retry_schedule, e))?;
        let delivery = DeliveryPolicy {
            schedule,
            retry_after_cap: s.retry_after_cap,
            concurrency: s.delivery_concurrency,
            start_deadline: s.batch_start_deadline,
            attempt_timeout: s.http.total_timeout,
        };
        Ok(Self {
            events_queue_url: s.queues.events_queue_url,
            dlq_url: s.queues.dlq_url,
            ordered_queue_url: s.queues.ordered_queue_url,
            subscriptions_table: s.tables.subscriptions_table,
            history_table: s.tables.history_table,
            history_retention: s.tables.history_retention,
            seal: s.seal,
            subscription_cache_ttl: s.subscription_cache_ttl,
            disable_after: s.disable_after_failed_deliveries,
            delivery,
            http: HttpSettings {
                pool_max_idle_per_host: s.delivery_concurrency,
                ..s.http
            },
            metrics: s.metrics,
            max_queue_delay: s.max_queue_delay,
            worker_wait: s.worker_wait,
            worker_batch_size: s.worker_batch_size,
            worker_batch_window: s.worker_batch_window,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::AddressPolicy;

    fn config(vars: &[(&str, &str)]) -> Result<ConsumerConfig, ConfigError> {
        ConsumerConfig::from_vars(vars.iter().copied())
    }

    const BASE: [(&str, &str); 5] = [
        ("HERALD_EVENTS_QUEUE_URL", "http://q/events"),
        ("HERALD_DLQ_URL", "http://q/dlq"),
        ("HERALD_SUBSCRIPTIONS_TABLE", "subs"),
        ("HERALD_HISTORY_TABLE", "history"),
        ("HERALD_SEAL_KEY_FILE", "/run/herald.key"),
    ];

    #[test]
    fn defaults_apply_when_only_the_required_settings_are_given() {
        let c = config(&BASE).unwrap();
        assert_eq!(c.delivery.concurrency, 64);
        assert_eq!(c.http.total_timeout, Duration::from_secs(15));
        assert_eq!(c.http.connect_timeout, Duration::from_secs(5));
        assert_eq!(c.http.pool_max_idle_per_host, 64);
        assert_eq!(c.subscription_cache_ttl, Duration::from_secs(5));
        assert_eq!(c.worker_batch_size, 100);
        assert_eq!(c.delivery.schedule, RetrySchedule::default());
        assert_eq!(c.delivery.worst_case_batch_time(), Duration::from_secs(55));
        assert_eq!(c.history_retention, Duration::from_secs(30 * 86_400));
        assert_eq!(c.disable_after, 5);
        assert_eq!(c.http.address_policy, AddressPolicy::strict());
    }

    #[test]
    fn a_compressed_schedule_and_an_allowlist_are_accepted() {
        let mut vars = BASE.to_vec();
        vars.push(("HERALD_RETRY_SCHEDULE", "0s,1s,2s"));
        vars.push(("HERALD_RETRY_JITTER", "0"));
        vars.push(("HERALD_ALLOW_PRIVATE_NETWORKS", "127.0.0.1/32,::1"));
        vars.push(("HERALD_HTTP_TIMEOUT", "2s"));
        vars.push(("HERALD_WORKER_WAIT", "1s"));
        vars.push(("HERALD_DELIVERY_CONCURRENCY", "200"));
        let c = config(&vars).unwrap();
        assert_eq!(c.http.pool_max_idle_per_host, 200);
        assert_eq!(c.delivery.schedule.max_attempts(), 3);
        assert_eq!(
            c.delivery.schedule.delay_after(1, 0.9),
            Some(Duration::from_secs(1))
        );
        assert!(c
            .http
            .address_policy
            .check("127.0.0.1".parse().unwrap())
            .is_ok());
        assert_eq!(c.delivery.attempt_timeout, Duration::from_secs(2));
        assert_eq!(c.worker_wait, Duration::from_secs(1));
    }

    #[test]
    fn batch_size_and_window_are_independent() {
        for (size, window, secs) in [("500", "1s", 1), ("500", "0s", 0), ("1", "0s", 0)] {
            let mut vars = BASE.to_vec();
            vars.push(("HERALD_WORKER_BATCH_SIZE", size));
            vars.push(("HERALD_WORKER_BATCH_WINDOW", window));
            let c = config(&vars).unwrap();
            assert_eq!(c.worker_batch_size.to_string(), size);
            assert_eq!(c.worker_batch_window, Duration::from_secs(secs));
        }
    }

    #[test]
    fn metrics_are_off_by_default_and_emf_when_asked() {
        use crate::metrics::MetricsMode;
        assert_eq!(config(&BASE).unwrap().metrics.metrics, MetricsMode::Off);
        let mut vars = BASE.to_vec();
        vars.push(("HERALD_METRICS", "emf"));
        vars.push(("HERALD_METRICS_NAMESPACE", "Acme/Herald"));
        vars.push(("HERALD_METRICS_PER_APP", "true"));
        let m = config(&vars).unwrap().metrics;
        assert_eq!(m.metrics, MetricsMode::Emf);
        assert_eq!(m.metrics_namespace, "Acme/Herald");
        assert!(m.metrics_per_app);
        let mut vars = BASE.to_vec();
        vars.push(("HERALD_METRICS", "statsd"));
        let err = config(&vars).unwrap_err().to_string();
        assert!(err.starts_with("HERALD_METRICS"), "{err}");
        for bad in ["AWS/Lambda", "no\nnewlines"] {
            let mut vars = BASE.to_vec();
            vars.push(("HERALD_METRICS_NAMESPACE", bad));
            let err = config(&vars).unwrap_err().to_string();
            assert!(
                err.starts_with("HERALD_METRICS_NAMESPACE"),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn a_master_key_is_required() {
        let err = config(&BASE[..4]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "HERALD_KMS_KEY_ID or HERALD_SEAL_KEY_FILE must be set"
        );
    }

    #[test]
    fn missing_and_malformed_settings_name_the_variable() {
        let err = config(&BASE[..3]).unwrap_err();
        assert_eq!(err.to_string(), "HERALD_HISTORY_TABLE must be set");
        for (var, value) in [
            ("HERALD_DELIVERY_CONCURRENCY", "lots"),
            ("HERALD_WORKER_BATCH_SIZE", "10001"),
            ("HERALD_WORKER_BATCH_SIZE", "0"),
            ("HERALD_WORKER_BATCH_WINDOW", "10m"),
            ("HERALD_RETRY_SCHEDULE", "5s,soon"),
            ("HERALD_RETRY_JITTER", "0.9"),
            ("HERALD_ALLOW_PRIVATE_NETWORKS", "localhost"),
            ("HERALD_RETRY_AFTER_CAP", "forever"),
            ("HERALD_HTTP_TIMEOUT", "15000"),
            ("HERALD_HTTP_TIMEOUT", "15 parsecs"),
            ("HERALD_WORKER_WAIT", "1m"),
        ] {
            let mut vars = BASE.to_vec();
            vars.push((var, value));
            let err = config(&vars).unwrap_err().to_string();
            assert!(err.starts_with(var), "{var}: {err}");
        }
    }
}
