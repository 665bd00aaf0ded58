//! The text form of a webhook's endpoint health (`herald webhooks get` and `list`);
//! `--json` prints the API's `health` object as it is.

use herald_api::health::{HealthOut, HealthWindowOut};

use crate::output::time;

/// A success rate as a percentage, `-` without attempts.
fn rate(w: &HealthWindowOut) -> String {
    w.success_rate
        .map_or_else(|| "-".to_owned(), |r| format!("{:.1}%", r * 100.0))
}

/// A bucketed latency, `≤130 ms`, or `-`.
fn latency(ms: Option<u64>) -> String {
    ms.map_or_else(|| "-".to_owned(), |ms| format!("≤{ms} ms"))
}

/// The lines `herald webhooks get` prints under a webhook, aligned with its fields.
pub fn lines(h: &HealthOut) -> Vec<String> {
    let w = &h.last_24h;
    let last_24h = if w.attempts == 0 {
        "no attempts".to_owned()
    } else {
        format!(
            "{} attempts, {} succeeded ({} ok, {} failed), latency p50 {}, p95 {}",
            w.attempts,
            rate(w),
            w.successes,
            w.failures,
            latency(w.latency_p50_ms),
            latency(w.latency_p95_ms)
        )
    };
    let when = |t: &Option<chrono::DateTime<chrono::Utc>>| {
        t.as_ref().map_or_else(|| "none in 48 h".to_owned(), time)
    };
    vec![
        format!("  last 24 h:    {last_24h}"),
        format!(
            "  failing:      {} attempts since the last success; deliveries failed for good in a row: {}",
            h.consecutive_failures, h.failed_deliveries_in_a_row
        ),
        format!("  last success: {}", when(&h.last_success_at)),
        format!("  last failure: {}", when(&h.last_failure_at)),
    ]
}

/// The columns `herald webhooks list` adds to a webhook's line.
pub fn columns(h: &HealthOut) -> String {
    let w = &h.last_24h;
    format!(
        "24h={} of {} p95={} failing={} last_ok={}",
        rate(w),
        w.attempts,
        w.latency_p95_ms
            .map_or_else(|| "-".to_owned(), |ms| format!("{ms}ms")),
        h.consecutive_failures,
        h.last_success_at
            .as_ref()
            .map_or_else(|| "-".to_owned(), time),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health() -> HealthOut {
        HealthOut {
            consecutive_failures: 4,
            failed_deliveries_in_a_row: 1,
            last_success_at: Some("2026-12-02T11:00:03.123456Z".parse().unwrap()),
            last_failure_at: None,
            last_24h: HealthWindowOut {
                attempts: 13,
                successes: 6,
                failures: 7,
                success_rate: Some(6.0 / 13.0),
                latency_p50_ms: Some(80),
                latency_p95_ms: Some(130),
            },
            hours: Vec::new(),
        }
    }

    #[test]
    fn health_reads_as_text() {
        let h = health();
        assert_eq!(
            lines(&h),
            [
                "  last 24 h:    13 attempts, 46.2% succeeded (6 ok, 7 failed), latency p50 ≤80 ms, p95 ≤130 ms",
                "  failing:      4 attempts since the last success; deliveries failed for good in a row: 1",
                "  last success: 2026-12-02 11:00:03.123",
                "  last failure: none in 48 h",
            ]
        );
        assert_eq!(
            columns(&h),
            "24h=46.2% of 13 p95=130ms failing=4 last_ok=2026-12-02 11:00:03.123"
        );
        let quiet = HealthOut {
            consecutive_failures: 0,
            last_success_at: None,
            last_24h: HealthWindowOut {
                attempts: 0,
                successes: 0,
                failures: 0,
                success_rate: None,
                latency_p50_ms: None,
                latency_p95_ms: None,
            },
            ..h
        };
        assert_eq!(lines(&quiet)[0], "  last 24 h:    no attempts");
        assert_eq!(columns(&quiet), "24h=- of 0 p95=- failing=0 last_ok=-");
    }
}
