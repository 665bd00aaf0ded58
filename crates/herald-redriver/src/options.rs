//! How a run is asked for: the command-line flags, the options they map to, and the
//! filter that picks which dead letters move.

use chrono::{DateTime, Utc};

use crate::{Facts, RedriveError};

/// Default ceiling on messages sent per second.
pub const DEFAULT_RATE_PER_SEC: f64 = 50.0;
/// Default time, in seconds, received messages stay hidden from other consumers.
pub const DEFAULT_VISIBILITY_TIMEOUT_SECS: i32 = 60;

/// The re-drive flags of `herald redrive`.
#[derive(clap::Args, Debug, Clone)]
pub struct RedriveFlags {
    /// Report what would move; move and delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Only events of this app.
    #[arg(long, value_name = "APP_ID")]
    pub app: Option<String>,
    /// Only deliveries to this webhook (subscription).
    #[arg(long, value_name = "SUBSCRIPTION_ID")]
    pub subscription: Option<String>,
    /// Only events of this type.
    #[arg(long, value_name = "TYPE")]
    pub event_type: Option<String>,
    /// Only messages parked at least this long ago (s, m, h or d: 90s, 30m, 1h, 2d).
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    pub older_than: Option<chrono::Duration>,
    /// Only messages parked at most this long ago (s, m, h or d).
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    pub newer_than: Option<chrono::Duration>,
    /// Stop after this many matching messages.
    #[arg(long, value_name = "N")]
    pub max: Option<usize>,
    /// Send at most this many messages per second.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_RATE_PER_SEC)]
    pub rate: f64,
    /// Seconds the run holds received messages before they show again on their own.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_VISIBILITY_TIMEOUT_SECS)]
    pub visibility_timeout: i32,
}

impl RedriveFlags {
    /// The library options these flags ask for.
    pub fn options(&self) -> RedriveOptions {
        RedriveOptions {
            filter: Filter {
                app_id: self.app.clone(),
                subscription_id: self.subscription.clone(),
                event_type: self.event_type.clone(),
                older_than: self.older_than,
                newer_than: self.newer_than,
            },
            dry_run: self.dry_run,
            max_messages: self.max,
            max_examined: None,
            rate_per_sec: self.rate,
            visibility_timeout_secs: self.visibility_timeout,
        }
    }
}
/// Longest visibility timeout SQS accepts (12 hours).
const MAX_VISIBILITY_TIMEOUT_SECS: i32 = 43_200;

/// Parses an age such as `90s`, `30m`, `1h` or `2d` (plain numbers are seconds).
pub fn parse_age(s: &str) -> Result<chrono::Duration, RedriveError> {
    let bad = || RedriveError::BadDuration(s.to_owned());
    let std = herald_core::retry::parse_duration(s).map_err(|_| bad())?;
    chrono::Duration::from_std(std).map_err(|_| bad())
}

/// Which dead letters a run moves. Every criterion set must hold; a criterion about
/// something that cannot be known for a message (an app for garbage, say) does not
/// hold, so a filtered run never moves what it cannot identify.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// Only events of this app (tenant).
    pub app_id: Option<String>,
    /// Only deliveries to this subscription.
    pub subscription_id: Option<String>,
    /// Only events of this type.
    pub event_type: Option<String>,
    /// Only messages parked (or, when the body does not say, sent) at least this long ago.
    pub older_than: Option<chrono::Duration>,
    /// Only messages parked (or sent) at most this long ago.
    pub newer_than: Option<chrono::Duration>,
}

impl Filter {
    /// Whether no criterion is set (everything matches).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Whether a message with these facts matches, at time `now`.
    pub fn matches(&self, facts: &Facts, now: DateTime<Utc>) -> bool {
        fn same(want: &Option<String>, have: &Option<String>) -> bool {
            match want {
                None => true,
                Some(want) => have.as_deref() == Some(want.as_str()),
            }
        }
        if !same(&self.app_id, &facts.app_id)
            || !same(&self.subscription_id, &facts.subscription_id)
            || !same(&self.event_type, &facts.event_type)
        {
            return false;
        }
        if self.older_than.is_none() && self.newer_than.is_none() {
            return true;
        }
        let Some(at) = facts.timestamp else {
            return false;
        };
        let age = now - at;
        self.older_than.is_none_or(|d| age >= d) && self.newer_than.is_none_or(|d| age <= d)
    }
}

/// How a run behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct RedriveOptions {
    /// Which messages to move.
    pub filter: Filter,
    /// Report what would move, and move (and delete) nothing.
    pub dry_run: bool,
    /// Stop once this many messages have matched.
    pub max_messages: Option<usize>,
    /// Stop once this many messages have been looked at, matching or not: bounds the
    /// work of one run over a large DLQ (the console's pages).
    pub max_examined: Option<usize>,
    /// Ceiling on messages sent per second; the run sleeps to stay under it.
    pub rate_per_sec: f64,
    /// How long received messages stay hidden while the run holds them, in seconds.
    pub visibility_timeout_secs: i32,
}

impl Default for RedriveOptions {
    fn default() -> Self {
        Self {
            filter: Filter::default(),
            dry_run: false,
            max_messages: None,
            max_examined: None,
            rate_per_sec: DEFAULT_RATE_PER_SEC,
            visibility_timeout_secs: DEFAULT_VISIBILITY_TIMEOUT_SECS,
        }
    }
}

impl RedriveOptions {
    /// Refuses options the run cannot honour: a rate that is not a positive number, a
    /// visibility timeout SQS does not accept.
    pub(crate) fn validate(&self) -> Result<(), RedriveError> {
        if !(self.rate_per_sec.is_finite() && self.rate_per_sec > 0.0) {
            return Err(RedriveError::InvalidOptions(format!(
                "the rate must be a positive number of messages per second, not {}",
                self.rate_per_sec
            )));
        }
        if !(1..=MAX_VISIBILITY_TIMEOUT_SECS).contains(&self.visibility_timeout_secs) {
            return Err(RedriveError::InvalidOptions(format!(
                "the visibility timeout must be 1 to {MAX_VISIBILITY_TIMEOUT_SECS} seconds, not {}",
                self.visibility_timeout_secs
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::tests::facts;

    #[test]
    fn filters_match_on_what_is_known_and_never_on_what_is_not() {
        let now = Utc::now();
        let known = facts(Some("a"), Some("sub_1"), Some("update"));
        let unknown = Facts::default();
        assert!(Filter::default().is_empty());
        assert!(Filter::default().matches(&known, now));
        assert!(Filter::default().matches(&unknown, now));

        let app = |a: &str| Filter {
            app_id: Some(a.into()),
            ..Filter::default()
        };
        assert!(!app("a").is_empty());
        assert!(app("a").matches(&known, now));
        assert!(!app("b").matches(&known, now));
        assert!(!app("a").matches(&unknown, now));

        let sub = Filter {
            subscription_id: Some("sub_1".into()),
            ..Filter::default()
        };
        assert!(sub.matches(&known, now));
        assert!(!sub.matches(&facts(Some("a"), Some("sub_2"), Some("update")), now));
        assert!(!sub.matches(&facts(Some("a"), None, Some("update")), now));

        let all = Filter {
            app_id: Some("a".into()),
            subscription_id: Some("sub_1".into()),
            event_type: Some("update".into()),
            ..Filter::default()
        };
        assert!(all.matches(&known, now));
        assert!(!all.matches(&facts(Some("a"), Some("sub_1"), Some("create")), now));
    }

    #[test]
    fn age_filters_use_the_timestamp_and_skip_messages_without_one() {
        let now = Utc::now();
        let aged = |mins: i64| Facts {
            timestamp: Some(now - chrono::Duration::minutes(mins)),
            ..Facts::default()
        };
        let older = Filter {
            older_than: Some(chrono::Duration::hours(1)),
            ..Filter::default()
        };
        assert!(older.matches(&aged(61), now));
        assert!(older.matches(&aged(60), now));
        assert!(!older.matches(&aged(59), now));
        assert!(!older.matches(&Facts::default(), now));

        let newer = Filter {
            newer_than: Some(chrono::Duration::minutes(30)),
            ..Filter::default()
        };
        assert!(newer.matches(&aged(29), now));
        assert!(!newer.matches(&aged(31), now));
        assert!(!newer.matches(&Facts::default(), now));

        let window = Filter {
            older_than: Some(chrono::Duration::hours(1)),
            newer_than: Some(chrono::Duration::hours(2)),
            ..Filter::default()
        };
        assert!(window.matches(&aged(90), now));
        assert!(!window.matches(&aged(30), now));
        assert!(!window.matches(&aged(150), now));
    }

    #[test]
    fn ages_parse_with_units() {
        assert_eq!(parse_age("45s").unwrap(), chrono::Duration::seconds(45));
        assert_eq!(parse_age("45").unwrap(), chrono::Duration::seconds(45));
        assert_eq!(parse_age("30m").unwrap(), chrono::Duration::minutes(30));
        assert_eq!(parse_age("1h").unwrap(), chrono::Duration::hours(1));
        assert_eq!(parse_age(" 2d ").unwrap(), chrono::Duration::days(2));
        for bad in ["", "h", "1w", "-1h", "1.5h", "1 h", "99999999999999999999d"] {
            let err = parse_age(bad).unwrap_err();
            assert!(matches!(err, RedriveError::BadDuration(_)), "{bad}");
        }
    }

    #[test]
    fn options_are_validated() {
        assert!(RedriveOptions::default().validate().is_ok());
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let opts = RedriveOptions {
                rate_per_sec: rate,
                ..RedriveOptions::default()
            };
            assert!(opts.validate().is_err(), "{rate}");
        }
        for secs in [0, -1, 43_201] {
            let opts = RedriveOptions {
                visibility_timeout_secs: secs,
                ..RedriveOptions::default()
            };
            assert!(opts.validate().is_err(), "{secs}");
        }
    }
}
