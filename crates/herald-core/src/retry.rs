//! The retry policy: the schedule of attempts, `Retry-After`, and what to do after
//! each attempt. Pure functions of their inputs (jitter takes its random number as
//! an argument), so every rule is unit-tested here.

use std::time::Duration;

/// Default delays before each attempt: immediately, 5 s, 5 min, 30 min, 2 h, 5 h,
/// 10 h, 10 h (eight attempts over about 28 hours).
pub const DEFAULT_SCHEDULE: &str = "0s,5s,5m,30m,2h,5h,10h,10h";
/// Default jitter: each delay is moved by up to ±20 %.
pub const DEFAULT_JITTER: f64 = 0.2;
/// Default ceiling on a delay stretched by `Retry-After`.
pub const DEFAULT_RETRY_AFTER_CAP: Duration = Duration::from_secs(24 * 3600);

/// A schedule that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("the retry schedule is empty")]
    Empty,
    #[error("{0:?} is not a duration (use e.g. 0s, 500ms, 5s, 5m, 2h)")]
    BadDuration(String),
    #[error("jitter must be between 0 and 0.5, got {0}")]
    BadJitter(String),
}

/// When each attempt of a delivery is made, relative to the failure before it.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySchedule {
    /// `delays[n]` is the wait before attempt `n + 1`; `delays[0]` is normally zero.
    delays: Vec<Duration>,
    jitter: f64,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        Self::parse(DEFAULT_SCHEDULE, DEFAULT_JITTER).expect("the default schedule parses")
    }
}

/// Parses `500ms`, `5s`, `5m`, `2h`, `1d` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, ScheduleError> {
    let s = s.trim();
    let bad = || ScheduleError::BadDuration(s.to_owned());
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let secs = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(secs).map(Duration::from_secs).ok_or_else(bad)
}

impl RetrySchedule {
    /// Parses a comma-separated list of delays (`0s,5s,5m,...`) and a jitter fraction.
    pub fn parse(delays: &str, jitter: f64) -> Result<Self, ScheduleError> {
        if !(0.0..=0.5).contains(&jitter) {
            return Err(ScheduleError::BadJitter(jitter.to_string()));
        }
        let delays = delays
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(parse_duration)
            .collect::<Result<Vec<_>, _>>()?;
        if delays.is_empty() {
            return Err(ScheduleError::Empty);
        }
        Ok(Self { delays, jitter })
    }

    /// How many attempts a delivery gets in all.
    pub fn max_attempts(&self) -> u32 {
        self.delays.len() as u32
    }

    /// The longest delay in the schedule, before jitter.
    pub fn longest_delay(&self) -> Duration {
        self.delays.iter().copied().max().unwrap_or_default()
    }

    /// The delay before attempt `attempt + 1`, after attempt `attempt` failed, or
    /// `None` when `attempt` was the last. `unit` is a random number in `[0, 1)`
    /// that places the jitter.
    pub fn delay_after(&self, attempt: u32, unit: f64) -> Option<Duration> {
        let base = *self.delays.get(attempt as usize)?;
        let factor = 1.0 + self.jitter * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        Some(base.mul_f64(factor))
    }
}

/// Honours a receiver's `Retry-After` within bounds: never sooner than the scheduled
/// delay, never later than twice it, and never later than `cap` (unless the schedule
/// itself is later).
pub fn honour_retry_after(
    scheduled: Duration,
    retry_after: Option<Duration>,
    cap: Duration,
) -> Duration {
    match retry_after {
        None => scheduled,
        Some(asked) => {
            let ceiling = (scheduled * 2).min(cap).max(scheduled);
            asked.clamp(scheduled, ceiling)
        }
    }
}

/// Why an attempt failed, as far as the retry policy cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptFailure {
    /// The receiver answered with a non-2xx status.
    Status {
        code: u16,
        retry_after: Option<Duration>,
    },
    /// No usable answer: timeout, connection refused or reset, TLS failure.
    Transport,
    /// The destination is not allowed (a private address, say); retrying cannot help.
    Refused,
}

/// What to do with a delivery after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextStep {
    /// Try again after this delay.
    Retry(Duration),
    /// No more attempts: park it on the DLQ with the reason.
    Park { reason: String },
    /// The endpoint said it is gone (410): disable it now and park the delivery.
    DisableAndPark { reason: String },
}

/// Decides the next step after attempt number `attempt` failed.
pub fn next_step(
    schedule: &RetrySchedule,
    attempt: u32,
    failure: &AttemptFailure,
    retry_after_cap: Duration,
    unit: f64,
) -> NextStep {
    match failure {
        AttemptFailure::Status { code: 410, .. } => NextStep::DisableAndPark {
            reason: "endpoint answered 410 Gone; it was disabled".to_owned(),
        },
        AttemptFailure::Refused => NextStep::Park {
            reason: "destination refused by the address policy".to_owned(),
        },
        _ => match schedule.delay_after(attempt, unit) {
            None => NextStep::Park {
                reason: format!("all {} attempts failed", schedule.max_attempts()),
            },
            Some(delay) => {
                let retry_after = match failure {
                    AttemptFailure::Status {
                        code: 429 | 503,
                        retry_after,
                    } => *retry_after,
                    _ => None,
                };
                NextStep::Retry(honour_retry_after(delay, retry_after, retry_after_cap))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn the_default_schedule_is_eight_attempts_over_about_a_day() {
        let s = RetrySchedule::default();
        assert_eq!(s.max_attempts(), 8);
        let expected = [5, 300, 1800, 7200, 18_000, 36_000, 36_000];
        for (attempt, secs) in (1..).zip(expected) {
            assert_eq!(
                s.delay_after(attempt, 0.5),
                Some(S(secs)),
                "after attempt {attempt}"
            );
        }
        assert_eq!(s.delay_after(8, 0.5), None);
        assert_eq!(s.longest_delay(), S(36_000));
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let s = RetrySchedule::default();
        assert_eq!(s.delay_after(2, 0.0), Some(S(240)));
        assert_eq!(s.delay_after(2, 1.0), Some(S(360)));
        let mid = s.delay_after(2, 0.25).unwrap();
        assert!(mid > S(240) && mid < S(300));
    }

    #[test]
    fn schedules_parse_units_and_reject_nonsense() {
        let s = RetrySchedule::parse("0, 500ms, 2s ,1m,1h,1d", 0.0).unwrap();
        assert_eq!(s.max_attempts(), 6);
        assert_eq!(s.delay_after(1, 0.9), Some(Duration::from_millis(500)));
        assert_eq!(s.delay_after(5, 0.0), Some(S(86_400)));
        assert_eq!(RetrySchedule::parse("", 0.2), Err(ScheduleError::Empty));
        assert!(matches!(
            RetrySchedule::parse("5x", 0.2),
            Err(ScheduleError::BadDuration(_))
        ));
        assert!(matches!(
            RetrySchedule::parse("-5s", 0.2),
            Err(ScheduleError::BadDuration(_))
        ));
        assert!(matches!(
            RetrySchedule::parse("5s", 0.9),
            Err(ScheduleError::BadJitter(_))
        ));
    }

    #[test]
    fn retry_after_is_bounded_by_the_schedule_twice_it_and_the_cap() {
        let cap = S(3600);
        assert_eq!(honour_retry_after(S(10), None, cap), S(10));
        assert_eq!(
            honour_retry_after(S(10), Some(S(1)), cap),
            S(10),
            "never sooner"
        );
        assert_eq!(
            honour_retry_after(S(10), Some(S(15)), cap),
            S(15),
            "honoured"
        );
        assert_eq!(
            honour_retry_after(S(10), Some(S(100)), cap),
            S(20),
            "at most twice"
        );
        assert_eq!(
            honour_retry_after(S(3000), Some(S(5900)), cap),
            S(3600),
            "capped"
        );
        assert_eq!(
            honour_retry_after(S(7200), Some(S(9000)), cap),
            S(7200),
            "the schedule wins over the cap"
        );
    }

    #[test]
    fn next_step_follows_status_and_schedule() {
        let s = RetrySchedule::parse("0s,10s,20s", 0.0).unwrap();
        let cap = DEFAULT_RETRY_AFTER_CAP;
        let status = |code, ra: Option<u64>| AttemptFailure::Status {
            code,
            retry_after: ra.map(S),
        };
        assert_eq!(
            next_step(&s, 1, &status(500, None), cap, 0.5),
            NextStep::Retry(S(10))
        );
        assert_eq!(
            next_step(&s, 1, &AttemptFailure::Transport, cap, 0.5),
            NextStep::Retry(S(10))
        );
        assert_eq!(
            next_step(&s, 2, &status(302, None), cap, 0.5),
            NextStep::Retry(S(20))
        );
        assert_eq!(
            next_step(&s, 1, &status(429, Some(15)), cap, 0.5),
            NextStep::Retry(S(15))
        );
        assert_eq!(
            next_step(&s, 1, &status(503, Some(99)), cap, 0.5),
            NextStep::Retry(S(20))
        );
        assert_eq!(
            next_step(&s, 1, &status(500, Some(15)), cap, 0.5),
            NextStep::Retry(S(10)),
            "Retry-After only counts on 429 and 503"
        );
        assert!(
            matches!(next_step(&s, 3, &status(500, None), cap, 0.5), NextStep::Park { reason } if reason.contains("all 3 attempts"))
        );
        assert!(matches!(
            next_step(&s, 1, &status(410, None), cap, 0.5),
            NextStep::DisableAndPark { .. }
        ));
        assert!(matches!(
            next_step(&s, 1, &AttemptFailure::Refused, cap, 0.5),
            NextStep::Park { .. }
        ));
    }
}
