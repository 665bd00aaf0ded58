//! A webhook's endpoint health as the API shows it (`health` on `GET /v1/webhooks/{id}`
//! and on each webhook of `GET /v1/webhooks`): read from hourly counters the consumer
//! adds to once per batch (docs/storage.md, "Endpoint health"), never from the history.

use chrono::{DateTime, Utc};
use herald_core::{HealthWindow, Subscription, WebhookHealth};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How an endpoint has been answering. Counts are of attempts: each HTTP request
/// Herald made (a retry is another attempt; a delivery not sent because the webhook
/// was disabled is none). Figures are kept per UTC hour and for 48 hours; batches of
/// one webhook handled at the same time may make `consecutive_failures` and the last
/// times lag by a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HealthOut {
    /// Failed attempts since the last successful one (counted back 48 hours at most);
    /// 0 once an attempt succeeds.
    pub consecutive_failures: u64,
    /// Deliveries in a row that failed for good (every attempt failed, or the address
    /// was refused); any successful delivery resets it. The endpoint is disabled when
    /// it reaches `HERALD_DISABLE_AFTER_FAILED_DELIVERIES` (default 5).
    pub failed_deliveries_in_a_row: u32,
    /// The latest successful attempt in the last 48 hours.
    pub last_success_at: Option<DateTime<Utc>>,
    /// The latest failed attempt in the last 48 hours.
    pub last_failure_at: Option<DateTime<Utc>>,
    /// The last 24 hours: the current UTC hour and the 23 before it.
    pub last_24h: HealthWindowOut,
    /// The same 24 hours one by one, oldest first: each UTC hour's attempts and
    /// failures (the web console's chart).
    #[serde(default)]
    pub hours: Vec<HourOut>,
}

/// One UTC hour of an endpoint's attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HourOut {
    /// The start of the hour.
    pub hour: DateTime<Utc>,
    /// Attempts made in it.
    pub attempts: u64,
    /// Those that failed.
    pub failures: u64,
}

/// What an endpoint's attempts came to over a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HealthWindowOut {
    /// Attempts made.
    pub attempts: u64,
    /// Attempts answered 2xx.
    pub successes: u64,
    /// Attempts that failed (any other status, a timeout, a refused connection).
    pub failures: u64,
    /// `successes / attempts`, from 0 to 1; null without attempts.
    pub success_rate: Option<f64>,
    /// Median latency of the attempts (failures included), in milliseconds, as the
    /// upper bound of its histogram bucket (1, 2, 3, 5, 8, 13, 20, 30, 50, 80, 130, 200,
    /// 300, 500, 800, 1300, 2000, 3000, 5000, 8000, 13000, 20000, 30000, 60000 or
    /// 300000 ms); null without attempts.
    pub latency_p50_ms: Option<u64>,
    /// 95th percentile latency, bucketed the same way; null without attempts.
    pub latency_p95_ms: Option<u64>,
}

impl HealthOut {
    /// The health of `sub`: its counters' figures, and its count of deliveries failed
    /// for good.
    pub fn of(sub: &Subscription, health: &WebhookHealth) -> Self {
        Self {
            consecutive_failures: health.consecutive_failures,
            failed_deliveries_in_a_row: sub.consecutive_failures,
            last_success_at: health.last_success_at,
            last_failure_at: health.last_failure_at,
            last_24h: HealthWindowOut::from(&health.last_24h),
            hours: health
                .hours
                .iter()
                .map(|h| HourOut {
                    hour: h.hour,
                    attempts: h.attempts,
                    failures: h.failures,
                })
                .collect(),
        }
    }
}

impl From<&HealthWindow> for HealthWindowOut {
    fn from(w: &HealthWindow) -> Self {
        Self {
            attempts: w.attempts,
            successes: w.successes,
            failures: w.failures,
            success_rate: w.success_rate(),
            latency_p50_ms: w.latency_p50_ms(),
            latency_p95_ms: w.latency_p95_ms(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::health::LATENCY_BUCKETS_MS;
    use herald_core::{AppId, EventFilter, LatencyHistogram, ObjectTypeFilter};

    #[test]
    fn the_two_failure_counts_come_from_their_own_sources() {
        let mut sub = Subscription::new(
            AppId::parse("shop").unwrap(),
            "https://example.com",
            EventFilter::All,
            ObjectTypeFilter::All,
        );
        sub.consecutive_failures = 2;
        let mut latency = LatencyHistogram::default();
        latency.record(70);
        latency.record(70);
        latency.record(900);
        let health = WebhookHealth {
            consecutive_failures: 7,
            last_24h: HealthWindow {
                attempts: 3,
                successes: 1,
                failures: 2,
                latency,
            },
            ..WebhookHealth::default()
        };
        let out = serde_json::to_value(HealthOut::of(&sub, &health)).unwrap();
        assert_eq!(
            out,
            serde_json::json!({
                "consecutive_failures": 7,
                "failed_deliveries_in_a_row": 2,
                "last_success_at": null,
                "last_failure_at": null,
                "hours": [],
                "last_24h": {
                    "attempts": 3, "successes": 1, "failures": 2,
                    "success_rate": 1.0 / 3.0,
                    "latency_p50_ms": 80, "latency_p95_ms": 1300
                }
            })
        );
        let none = HealthWindowOut::from(&HealthWindow::default());
        assert_eq!(
            (none.success_rate, none.latency_p50_ms, none.latency_p95_ms),
            (None, None, None)
        );
    }

    #[test]
    fn the_documented_buckets_are_the_histograms() {
        let doc = serde_json::to_value(crate::openapi()).unwrap();
        let p50 = &doc["components"]["schemas"]["HealthWindowOut"]["properties"]["latency_p50_ms"];
        let bounds: Vec<String> = LATENCY_BUCKETS_MS.iter().map(u64::to_string).collect();
        let (head, last) = bounds.split_at(bounds.len() - 1);
        let listed = format!("({} or {} ms)", head.join(", "), last[0]);
        let description = p50["description"].as_str().unwrap_or_default();
        let description = description.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(description.contains(&listed), "{description}\n{listed}");
    }
}
