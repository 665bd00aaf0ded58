//! Configuration of the consumer and the local worker, from `HERALD_` environment
//! variables (documented in docs/configuration.md), validated at start-up.

use std::time::Duration;

use herald_core::retry::{self, RetrySchedule};
use herald_core::AddressPolicy;

use crate::delivery::HttpSettings;
use crate::handler::DeliveryPolicy;

/// A setting that is missing or malformed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} must be set")]
    Missing(&'static str),
    #[error("{var}={value:?} is invalid: {reason}")]
    Invalid {
        var: &'static str,
        value: String,
        reason: String,
    },
}

/// Everything the consumer needs.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// `HERALD_EVENTS_QUEUE_URL`: polled by the local worker; retries go back onto it.
    pub events_queue_url: String,
    /// `HERALD_DLQ_URL`: where dead letters are parked.
    pub dlq_url: String,
    /// `HERALD_SUBSCRIPTIONS_TABLE`.
    pub subscriptions_table: String,
    /// `HERALD_ATTEMPTS_TABLE`: the delivery history.
    pub attempts_table: String,
    /// `HERALD_HISTORY_RETENTION_DAYS` (default 30).
    pub history_retention: Duration,
    /// `HERALD_SUBSCRIPTION_CACHE_TTL_MS` (default 5000; 0 disables the cache).
    pub subscription_cache_ttl: Duration,
    /// `HERALD_DISABLE_AFTER_FAILED_DELIVERIES` (default 5; 0 never disables).
    pub disable_after: u32,
    /// Retry schedule, concurrency and time bounds.
    pub delivery: DeliveryPolicy,
    /// `HERALD_HTTP_CONNECT_TIMEOUT_MS`, `HERALD_HTTP_TIMEOUT_MS`,
    /// `HERALD_ALLOW_PRIVATE_NETWORKS`.
    pub http: HttpSettings,
    /// `HERALD_MAX_QUEUE_DELAY_SECS` (default 900, SQS's maximum): the longest delay
    /// put on one queued retry; longer waits take several hops.
    pub max_queue_delay: Duration,
    /// `HERALD_WORKER_WAIT_SECONDS` (default 20): long-poll wait of the local worker.
    pub worker_wait: Duration,
    /// `HERALD_WORKER_BATCH_SIZE` (default 10, at most 10).
    pub worker_batch_size: i32,
}

/// Reads variables through a lookup function, so tests need not touch the process environment.
pub struct Env<F: Fn(&str) -> Option<String>>(pub F);

impl<F: Fn(&str) -> Option<String>> Env<F> {
    pub fn required(&self, var: &'static str) -> Result<String, ConfigError> {
        self.optional(var).ok_or(ConfigError::Missing(var))
    }

    pub fn optional(&self, var: &'static str) -> Option<String> {
        (self.0)(var).filter(|v| !v.trim().is_empty())
    }

    /// A whole number within `range`, or `default` when unset.
    pub fn number<T>(
        &self,
        var: &'static str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        let Some(value) = self.optional(var) else {
            return Ok(default);
        };
        let invalid = |reason: String| ConfigError::Invalid {
            var,
            value: value.clone(),
            reason,
        };
        let n: T = value
            .trim()
            .parse()
            .map_err(|_| invalid("not a whole number".into()))?;
        if !range.contains(&n) {
            return Err(invalid(format!(
                "must be between {} and {}",
                range.start(),
                range.end()
            )));
        }
        Ok(n)
    }

    pub fn millis(
        &self,
        var: &'static str,
        default_ms: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<Duration, ConfigError> {
        self.number(var, default_ms, range)
            .map(Duration::from_millis)
    }
}

impl HttpSettings {
    /// `HERALD_HTTP_CONNECT_TIMEOUT_MS`, `HERALD_HTTP_TIMEOUT_MS` and
    /// `HERALD_ALLOW_PRIVATE_NETWORKS`, shared by the consumer and the API's test pings.
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let allow = env
            .optional("HERALD_ALLOW_PRIVATE_NETWORKS")
            .unwrap_or_default();
        Ok(Self {
            connect_timeout: env.millis("HERALD_HTTP_CONNECT_TIMEOUT_MS", 5_000, 1..=60_000)?,
            total_timeout: env.millis("HERALD_HTTP_TIMEOUT_MS", 15_000, 1..=300_000)?,
            address_policy: AddressPolicy::with_allowlist(&allow).map_err(|e| {
                ConfigError::Invalid {
                    var: "HERALD_ALLOW_PRIVATE_NETWORKS",
                    value: allow.clone(),
                    reason: e.to_string(),
                }
            })?,
            ..HttpSettings::default()
        })
    }
}

impl ConsumerConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|var| std::env::var(var).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(lookup);
        let invalid = |var: &'static str, value: &str, reason: String| ConfigError::Invalid {
            var,
            value: value.to_owned(),
            reason,
        };

        let http = HttpSettings::from_env(&env)?;

        let schedule_text = env
            .optional("HERALD_RETRY_SCHEDULE")
            .unwrap_or_else(|| retry::DEFAULT_SCHEDULE.to_owned());
        let jitter = match env.optional("HERALD_RETRY_JITTER") {
            None => retry::DEFAULT_JITTER,
            Some(j) => j
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|j| (0.0..=0.5).contains(j))
                .ok_or_else(|| {
                    invalid(
                        "HERALD_RETRY_JITTER",
                        &j,
                        "must be a number from 0 to 0.5".into(),
                    )
                })?,
        };
        let schedule = RetrySchedule::parse(&schedule_text, jitter)
            .map_err(|e| invalid("HERALD_RETRY_SCHEDULE", &schedule_text, e.to_string()))?;
        let retry_after_cap = match env.optional("HERALD_RETRY_AFTER_CAP") {
            None => retry::DEFAULT_RETRY_AFTER_CAP,
            Some(v) => retry::parse_duration(&v)
                .map_err(|e| invalid("HERALD_RETRY_AFTER_CAP", &v, e.to_string()))?,
        };
        let delivery = DeliveryPolicy {
            schedule,
            retry_after_cap,
            concurrency: env.number("HERALD_DELIVERY_CONCURRENCY", 64, 1..=10_000)?,
            start_deadline: Duration::from_secs(env.number(
                "HERALD_BATCH_START_DEADLINE_SECS",
                30,
                1..=3_600,
            )?),
            attempt_timeout: http.total_timeout,
        };

        Ok(Self {
            events_queue_url: env.required("HERALD_EVENTS_QUEUE_URL")?,
            dlq_url: env.required("HERALD_DLQ_URL")?,
            subscriptions_table: env.required("HERALD_SUBSCRIPTIONS_TABLE")?,
            attempts_table: env.required("HERALD_ATTEMPTS_TABLE")?,
            history_retention: Duration::from_secs(
                86_400 * env.number("HERALD_HISTORY_RETENTION_DAYS", 30u64, 1..=3_650)?,
            ),
            subscription_cache_ttl: env.millis(
                "HERALD_SUBSCRIPTION_CACHE_TTL_MS",
                5_000,
                0..=3_600_000,
            )?,
            disable_after: env.number(
                "HERALD_DISABLE_AFTER_FAILED_DELIVERIES",
                5,
                0..=1_000_000,
            )?,
            delivery,
            http,
            max_queue_delay: Duration::from_secs(env.number(
                "HERALD_MAX_QUEUE_DELAY_SECS",
                900,
                1..=900,
            )?),
            worker_wait: Duration::from_secs(env.number(
                "HERALD_WORKER_WAIT_SECONDS",
                20,
                0..=20,
            )?),
            worker_batch_size: env.number("HERALD_WORKER_BATCH_SIZE", 10, 1..=10)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<ConsumerConfig, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ConsumerConfig::from_lookup(|k| map.get(k).cloned())
    }

    const BASE: [(&str, &str); 4] = [
        ("HERALD_EVENTS_QUEUE_URL", "http://q/events"),
        ("HERALD_DLQ_URL", "http://q/dlq"),
        ("HERALD_SUBSCRIPTIONS_TABLE", "subs"),
        ("HERALD_ATTEMPTS_TABLE", "attempts"),
    ];

    #[test]
    fn defaults_apply_when_only_the_required_settings_are_given() {
        let c = config(&BASE).unwrap();
        assert_eq!(c.delivery.concurrency, 64);
        assert_eq!(c.http.total_timeout, Duration::from_secs(15));
        assert_eq!(c.subscription_cache_ttl, Duration::from_secs(5));
        assert_eq!(c.worker_batch_size, 10);
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
        let c = config(&vars).unwrap();
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
    }

    #[test]
    fn missing_and_malformed_settings_name_the_variable() {
        let err = config(&BASE[..3]).unwrap_err();
        assert_eq!(err.to_string(), "HERALD_ATTEMPTS_TABLE must be set");
        for (var, value) in [
            ("HERALD_DELIVERY_CONCURRENCY", "lots"),
            ("HERALD_WORKER_BATCH_SIZE", "11"),
            ("HERALD_RETRY_SCHEDULE", "5s,soon"),
            ("HERALD_RETRY_JITTER", "0.9"),
            ("HERALD_ALLOW_PRIVATE_NETWORKS", "localhost"),
            ("HERALD_RETRY_AFTER_CAP", "forever"),
        ] {
            let mut vars = BASE.to_vec();
            vars.push((var, value));
            let err = config(&vars).unwrap_err().to_string();
            assert!(err.contains(var), "{err}");
        }
    }
}
