//! Which attempts a delivery listing keeps: by outcome, time and event type.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64;
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use herald_core::{Attempt, AttemptOutcome, EventType};
use sha2::{Digest, Sha256};

/// The attempts a listing keeps; the default keeps every one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttemptFilter {
    /// Only attempts that ended so.
    pub outcome: Option<AttemptOutcome>,
    /// Only attempts made at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only attempts made before this time.
    pub until: Option<DateTime<Utc>>,
    /// Only attempts of events of this type.
    pub event_type: Option<EventType>,
    /// Only attempts that did not succeed (failed or not sent).
    pub not_succeeded: bool,
}

/// How long after its batch began an attempt of the batch can be made, at most: the
/// batch's records are keyed by its start, so a listing since a time reads records
/// from this much earlier.
pub(super) const BATCH_SPAN: TimeDelta = TimeDelta::minutes(15);

impl AttemptFilter {
    /// The attempts a recovery looks at: those that did not succeed between `since`
    /// and `until`.
    pub fn recovery_window(since: DateTime<Utc>, until: Option<DateTime<Utc>>) -> Self {
        Self {
            since: Some(since),
            until,
            not_succeeded: true,
            ..Self::default()
        }
    }

    /// Whether `attempt` is kept.
    pub fn matches(&self, attempt: &Attempt) -> bool {
        self.outcome.is_none_or(|o| attempt.outcome == o)
            && !(self.not_succeeded && attempt.outcome == AttemptOutcome::Succeeded)
            && self.since.is_none_or(|t| attempt.attempted_at >= t)
            && self.until.is_none_or(|t| attempt.attempted_at < t)
            && self
                .event_type
                .as_ref()
                .is_none_or(|t| &attempt.event_type == t)
    }

    /// Whether a webhook record holding `failed` failures among `n` entries can hold
    /// a kept attempt (records carry those two counts outside their compressed body).
    pub(super) fn may_hold(&self, n: usize, failed: usize) -> bool {
        if self.not_succeeded && failed == 0 {
            return false;
        }
        match self.outcome {
            Some(AttemptOutcome::Failed | AttemptOutcome::NotSent) => failed > 0,
            Some(AttemptOutcome::Succeeded) => failed < n,
            None => true,
        }
    }

    /// A short fingerprint of the filter, part of a listing's cursor scope, so a
    /// cursor resumes only the listing (filter included) it came from.
    pub fn fingerprint(&self) -> String {
        if *self == Self::default() {
            return String::new();
        }
        let time = |t: Option<DateTime<Utc>>| {
            t.map(|t| t.to_rfc3339_opts(SecondsFormat::Micros, true))
                .unwrap_or_default()
        };
        let text = format!(
            "{:?}|{}|{}|{}|{}",
            self.outcome,
            self.not_succeeded,
            time(self.since),
            time(self.until),
            self.event_type.as_ref().map_or("", EventType::as_str)
        );
        fingerprint_of(&text)
    }
}

/// The short fingerprint of a listing's filter spelled as `text` (`#f` and 8
/// characters), part of its cursors' scope.
pub(super) fn fingerprint_of(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    format!("#f{}", BASE64.encode(&digest[..6]))
}

#[cfg(test)]
mod tests {
    use herald_core::testing;

    use super::*;

    fn attempt(outcome: AttemptOutcome, at: DateTime<Utc>, event_type: &str) -> Attempt {
        testing::attempt(&testing::event("a", event_type), "sub_1", outcome, at)
    }

    #[test]
    fn each_field_narrows_and_the_window_is_half_open() {
        let t0 = Utc::now();
        let a = attempt(AttemptOutcome::Failed, t0, "invoice.paid");
        assert!(AttemptFilter::default().matches(&a));
        let f = |f: AttemptFilter| f.matches(&a);
        assert!(f(AttemptFilter {
            outcome: Some(AttemptOutcome::Failed),
            ..Default::default()
        }));
        assert!(!f(AttemptFilter {
            outcome: Some(AttemptOutcome::Succeeded),
            ..Default::default()
        }));
        assert!(f(AttemptFilter {
            since: Some(t0),
            until: Some(t0 + TimeDelta::seconds(1)),
            ..Default::default()
        }));
        assert!(!f(AttemptFilter {
            until: Some(t0),
            ..Default::default()
        }));
        assert!(!f(AttemptFilter {
            event_type: Some(EventType::parse("invoice.sent").unwrap()),
            ..Default::default()
        }));
    }

    #[test]
    fn records_without_failures_are_skipped_for_failures_and_fingerprints_differ() {
        let failed = AttemptFilter {
            outcome: Some(AttemptOutcome::Failed),
            ..Default::default()
        };
        assert!(!failed.may_hold(10, 0));
        assert!(failed.may_hold(10, 1));
        let ok = AttemptFilter {
            outcome: Some(AttemptOutcome::Succeeded),
            ..Default::default()
        };
        assert!(!ok.may_hold(3, 3));
        assert_eq!(AttemptFilter::default().fingerprint(), "");
        assert_ne!(failed.fingerprint(), ok.fingerprint());
        assert_eq!(failed.fingerprint(), failed.clone().fingerprint());
        let unsuccessful = AttemptFilter {
            not_succeeded: true,
            ..Default::default()
        };
        assert!(!unsuccessful.may_hold(10, 0));
        assert!(unsuccessful.may_hold(10, 1));
        assert_ne!(unsuccessful.fingerprint(), "");
        let t0 = Utc::now();
        assert!(!unsuccessful.matches(&attempt(AttemptOutcome::Succeeded, t0, "a")));
        assert!(unsuccessful.matches(&attempt(AttemptOutcome::Failed, t0, "a")));
        assert!(unsuccessful.matches(&attempt(AttemptOutcome::NotSent, t0, "a")));
    }
}
