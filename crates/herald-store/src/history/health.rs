//! Endpoint health counters: one item per webhook and UTC hour in the history table,
//! written by [`HistoryStore::record`] with one `UpdateItem` per webhook of a batch
//! (top-level `ADD`s, so batches handled at the same time add up) and read by
//! [`HistoryStore::health`] with one `Query` of the lookback's hours
//! (`herald_core::health` adds them up).
//!
//! An item holds `attempts`, `successes`, `failures`, one `ms{bound}` count per
//! latency bucket that counted something (`ms130`: latencies above 80 ms up to 130 ms),
//! `last_success_at` and `last_failure_at` (RFC 3339), `failures_since_success` and
//! `expires_at`. A batch with a success sets `failures_since_success` to its failures
//! after that success; a batch without one adds its failures. Batches of one webhook
//! handled at the same time make the times and that counter approximate (the last
//! write wins, by at most a batch's duration); the counts are exact.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use futures::stream::{self, StreamExt as _, TryStreamExt as _};
use herald_core::health::{hour_of, hourly_counts, HourCounts, LOOKBACK_HOURS};
use herald_core::{AppId, Attempt, SubscriptionId, WebhookHealth};

use super::keys::{health_hour, health_partition, parse_health_hour};
use super::HistoryStore;
use crate::{Item, ItemKind, PkSk, StoreError};

const ATTEMPTS: &str = "attempts";
const SUCCESSES: &str = "successes";
const FAILURES: &str = "failures";
const SINCE_SUCCESS: &str = "failures_since_success";
const LAST_SUCCESS: &str = "last_success_at";
const LAST_FAILURE: &str = "last_failure_at";
const EXPIRES_AT: &str = "expires_at";
/// Prefix of a latency bucket's count; its upper bound in milliseconds follows.
const LATENCY_PREFIX: &str = "ms";

/// How long after its hour begins a counter item expires: the lookback, and the hour.
const COUNTERS_KEPT: TimeDelta = TimeDelta::hours(LOOKBACK_HOURS + 1);
/// Counter updates of one batch in flight at once.
const UPDATES_IN_FLIGHT: usize = 16;
/// Webhooks whose health one listing reads at once.
const READS_IN_FLIGHT: usize = 8;

/// One counter item's update: attributes set, and numbers added.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct CounterUpdate {
    pub(super) key: PkSk,
    pub(super) set: Vec<(String, AttributeValue)>,
    pub(super) add: Vec<(String, u64)>,
}

impl CounterUpdate {
    /// The update adding `counts` to the counters of `sub` of `app` in the hour
    /// starting at `hour`.
    pub(super) fn of(
        app: &AppId,
        sub: &SubscriptionId,
        hour: DateTime<Utc>,
        counts: &HourCounts,
    ) -> Self {
        let number = |n: i64| AttributeValue::N(n.to_string());
        let time =
            |t: DateTime<Utc>| AttributeValue::S(t.to_rfc3339_opts(SecondsFormat::Micros, true));
        let mut set = vec![(
            EXPIRES_AT.to_owned(),
            number((hour + COUNTERS_KEPT).timestamp()),
        )];
        let mut add = vec![
            (ATTEMPTS.to_owned(), counts.attempts),
            (SUCCESSES.to_owned(), counts.successes),
            (FAILURES.to_owned(), counts.failures),
        ];
        match counts.last_success_at {
            Some(t) => {
                set.push((LAST_SUCCESS.to_owned(), time(t)));
                set.push((
                    SINCE_SUCCESS.to_owned(),
                    number(counts.failures_since_success as i64),
                ));
            }
            None => add.push((SINCE_SUCCESS.to_owned(), counts.failures_since_success)),
        }
        if let Some(t) = counts.last_failure_at {
            set.push((LAST_FAILURE.to_owned(), time(t)));
        }
        add.extend(
            counts
                .latency
                .buckets()
                .map(|(bound, n)| (format!("{LATENCY_PREFIX}{bound}"), n)),
        );
        Self {
            key: PkSk::health(app, sub, hour),
            set,
            add,
        }
    }

    /// The `UpdateExpression`, with every name a placeholder (`#s0`, `#a0`, …) and
    /// every value one (`:s0`, `:a0`, …), and their two maps.
    fn expression(&self) -> (String, HashMap<String, String>, Item) {
        let mut names = HashMap::new();
        let mut values = Item::new();
        let mut clause = |prefix: char, i: usize, name: &str, value: AttributeValue| {
            names.insert(format!("#{prefix}{i}"), name.to_owned());
            values.insert(format!(":{prefix}{i}"), value);
            format!("#{prefix}{i}")
        };
        let sets: Vec<String> = (self.set.iter().enumerate())
            .map(|(i, (name, value))| {
                let n = clause('s', i, name, value.clone());
                format!("{n} = :s{i}")
            })
            .collect();
        let adds: Vec<String> = (self.add.iter().enumerate())
            .map(|(i, (name, value))| {
                let n = clause('a', i, name, AttributeValue::N(value.to_string()));
                format!("{n} :a{i}")
            })
            .collect();
        let expression = format!("SET {} ADD {}", sets.join(", "), adds.join(", "));
        (expression, names, values)
    }
}

/// The hour and counts a stored counter item holds.
pub(super) fn counts_of(item: &Item) -> Result<(DateTime<Utc>, HourCounts), StoreError> {
    let corrupt = |what: &str| StoreError::corrupt(ItemKind::HealthCounters, what);
    let hour = match item.get("sk") {
        Some(AttributeValue::S(sk)) => parse_health_hour(sk),
        _ => None,
    }
    .ok_or_else(|| corrupt("its sort key is not a UTC hour"))?;
    let number = |name: &str| -> Result<u64, StoreError> {
        match item.get(name) {
            None => Ok(0),
            Some(AttributeValue::N(n)) => n.parse().map_err(|_| corrupt(name)),
            Some(_) => Err(corrupt(name)),
        }
    };
    let time = |name: &str| -> Result<Option<DateTime<Utc>>, StoreError> {
        match item.get(name) {
            None => Ok(None),
            Some(AttributeValue::S(s)) => DateTime::parse_from_rfc3339(s)
                .map(|t| Some(t.to_utc()))
                .map_err(|_| corrupt(name)),
            Some(_) => Err(corrupt(name)),
        }
    };
    let mut counts = HourCounts {
        attempts: number(ATTEMPTS)?,
        successes: number(SUCCESSES)?,
        failures: number(FAILURES)?,
        failures_since_success: number(SINCE_SUCCESS)?,
        last_success_at: time(LAST_SUCCESS)?,
        last_failure_at: time(LAST_FAILURE)?,
        ..HourCounts::default()
    };
    for name in item.keys() {
        let bound = name
            .strip_prefix(LATENCY_PREFIX)
            .and_then(|b| b.parse::<u64>().ok());
        if let Some(bound) = bound {
            counts.latency.add_to_bucket(bound, number(name)?);
        }
    }
    Ok((hour, counts))
}

impl HistoryStore {
    /// Adds `attempts` to their webhooks' hourly health counters: one `UpdateItem` per
    /// webhook and hour, a few at a time. Best effort: a failure is logged (the
    /// deliveries and their history stand) and never returned.
    pub(super) async fn count_health<'a>(&self, attempts: impl IntoIterator<Item = &'a Attempt>) {
        let updates: Vec<CounterUpdate> = hourly_counts(attempts)
            .iter()
            .map(|((app, sub, hour), counts)| CounterUpdate::of(app, sub, *hour, counts))
            .collect();
        let calls: Vec<_> = updates
            .into_iter()
            .map(|u| self.update_counters(u))
            .collect();
        let failed: Vec<StoreError> = stream::iter(calls)
            .buffer_unordered(UPDATES_IN_FLIGHT)
            .filter_map(|r| async { r.err() })
            .collect()
            .await;
        if let Some(error) = failed.first() {
            tracing::warn!(
                %error,
                webhooks = failed.len(),
                "could not count a batch's attempts in the endpoint health; the deliveries and their history are unaffected"
            );
        }
    }

    async fn update_counters(&self, update: CounterUpdate) -> Result<(), StoreError> {
        let (expression, names, values) = update.expression();
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(update.key.into_item()))
            .update_expression(expression)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("UpdateItem", e))?;
        Ok(())
    }

    /// A webhook's endpoint health now, from its hourly counters of the lookback
    /// (`herald_core::health::LOOKBACK_HOURS` before the current hour): one eventually
    /// consistent `Query`, newest first, of at most 49 items under 1 KiB each.
    pub async fn health(
        &self,
        app: &AppId,
        subscription: &SubscriptionId,
    ) -> Result<WebhookHealth, StoreError> {
        let now = Utc::now();
        let current = hour_of(now);
        let oldest = health_hour(current - TimeDelta::hours(LOOKBACK_HOURS));
        // The next hour too: a consumer whose clock runs a little ahead may write it.
        let newest = health_hour(current + TimeDelta::hours(1));
        let pk = health_partition(app, subscription);
        let mut hours = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .query(&pk, Some((&oldest, &newest)), "")
                .scan_index_forward(false)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StoreError::dynamo("Query", e))?;
            for item in out.items.unwrap_or_default() {
                hours.push(counts_of(&item)?);
            }
            start = out.last_evaluated_key.filter(|k| !k.is_empty());
            if start.is_none() {
                return Ok(WebhookHealth::of(now, hours));
            }
        }
    }

    /// The endpoint health of each of `subscriptions` of `app`, in their order, read a
    /// few at a time.
    pub async fn health_of(
        &self,
        app: &AppId,
        subscriptions: &[SubscriptionId],
    ) -> Result<Vec<WebhookHealth>, StoreError> {
        // The futures are made up front, not by a closure mapped over a stream of
        // borrowed ids: rustc cannot prove such a map's future `Send` for any lifetime,
        // which an axum handler needs.
        let reads: Vec<_> = subscriptions
            .iter()
            .map(|sub| self.health(app, sub))
            .collect();
        stream::iter(reads)
            .buffered(READS_IN_FLIGHT)
            .try_collect()
            .await
    }
}

#[cfg(test)]
mod tests;
