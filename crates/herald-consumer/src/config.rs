//! Configuration of the consumer and the local worker, from `HERALD_` environment
//! variables (documented in docs/configuration.md), validated at start-up.

use std::time::Duration;

use crate::delivery::HttpSettings;

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
    /// `HERALD_EVENTS_QUEUE_URL` (required by the local worker, which polls it).
    pub events_queue_url: Option<String>,
    /// `HERALD_DLQ_URL`: where undecodable messages are parked.
    pub dlq_url: String,
    /// `HERALD_SUBSCRIPTIONS_TABLE`.
    pub subscriptions_table: String,
    /// `HERALD_SUBSCRIPTION_CACHE_TTL_MS` (default 5000; 0 disables the cache).
    pub subscription_cache_ttl: Duration,
    /// `HERALD_DELIVERY_CONCURRENCY` (default 64): deliveries in flight per batch.
    pub delivery_concurrency: usize,
    /// `HERALD_HTTP_CONNECT_TIMEOUT_MS` (default 5000) and `HERALD_HTTP_TIMEOUT_MS`
    /// (default 15000, the whole attempt).
    pub http: HttpSettings,
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

impl ConsumerConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|var| std::env::var(var).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(lookup);
        let http = HttpSettings {
            connect_timeout: env.millis("HERALD_HTTP_CONNECT_TIMEOUT_MS", 5_000, 1..=60_000)?,
            total_timeout: env.millis("HERALD_HTTP_TIMEOUT_MS", 15_000, 1..=300_000)?,
            ..HttpSettings::default()
        };
        Ok(Self {
            events_queue_url: env.optional("HERALD_EVENTS_QUEUE_URL"),
            dlq_url: env.required("HERALD_DLQ_URL")?,
            subscriptions_table: env.required("HERALD_SUBSCRIPTIONS_TABLE")?,
            subscription_cache_ttl: env.millis(
                "HERALD_SUBSCRIPTION_CACHE_TTL_MS",
                5_000,
                0..=3_600_000,
            )?,
            delivery_concurrency: env.number("HERALD_DELIVERY_CONCURRENCY", 64, 1..=10_000)?,
            http,
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

    const BASE: [(&str, &str); 2] = [
        ("HERALD_DLQ_URL", "http://q/dlq"),
        ("HERALD_SUBSCRIPTIONS_TABLE", "subs"),
    ];

    #[test]
    fn defaults_apply_when_only_the_required_settings_are_given() {
        let c = config(&BASE).unwrap();
        assert_eq!(c.delivery_concurrency, 64);
        assert_eq!(c.http.total_timeout, Duration::from_secs(15));
        assert_eq!(c.subscription_cache_ttl, Duration::from_secs(5));
        assert_eq!(c.worker_batch_size, 10);
        assert!(c.events_queue_url.is_none());
    }

    #[test]
    fn missing_and_malformed_settings_name_the_variable() {
        let err = config(&[("HERALD_DLQ_URL", "x")]).unwrap_err();
        assert_eq!(err.to_string(), "HERALD_SUBSCRIPTIONS_TABLE must be set");
        let mut vars = BASE.to_vec();
        vars.push(("HERALD_DELIVERY_CONCURRENCY", "lots"));
        let err = config(&vars).unwrap_err().to_string();
        assert!(
            err.contains("HERALD_DELIVERY_CONCURRENCY") && err.contains("not a whole number"),
            "{err}"
        );
        let mut vars = BASE.to_vec();
        vars.push(("HERALD_WORKER_BATCH_SIZE", "11"));
        let err = config(&vars).unwrap_err().to_string();
        assert!(err.contains("between 1 and 10"), "{err}");
    }
}
