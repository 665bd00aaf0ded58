//! The delivery history: one record per attempt (or per delivery not sent).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::delivery::{DeliveryOutcome, RESPONSE_BODY_CAP};
use crate::envelope::webhook_id;
use crate::event::{AppId, Event, EventId, EventType};
use crate::subscription::SubscriptionId;

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// The receiver answered 2xx.
    Succeeded,
    /// The attempt was made and failed.
    Failed,
    /// No request was made: the endpoint is disabled or was deleted.
    NotSent,
}

/// One attempt to deliver one event to one subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub app_id: AppId,
    pub event_id: EventId,
    pub event_type: EventType,
    pub subscription_id: SubscriptionId,
    pub webhook_id: String,
    /// 1 for the first attempt; 0 for a delivery that was not sent.
    pub attempt: u32,
    pub attempted_at: DateTime<Utc>,
    pub outcome: AttemptOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    /// `http_status`, `timeout`, `connect`, `request`, `refused_address`,
    /// `endpoint_disabled`, `subscription_deleted`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The start of the response body, at most [`RESPONSE_BODY_CAP`] bytes.
    #[serde(default)]
    pub response_body: String,
    /// When the next attempt is due, if there will be one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
}

impl Attempt {
    /// The record of attempt number `attempt` to deliver `event` to `subscription`,
    /// made at `attempted_at`, that ended with `outcome`. The one builder of attempt
    /// records, for the consumer and the API's test ping alike.
    pub fn of_outcome(
        event: &Event,
        subscription: &SubscriptionId,
        attempt: u32,
        attempted_at: DateTime<Utc>,
        outcome: &DeliveryOutcome,
    ) -> Self {
        let succeeded = outcome.is_success();
        let error_kind = match (outcome.error(), succeeded) {
            (Some(e), _) => Some(e.kind().to_owned()),
            (None, false) => Some("http_status".to_owned()),
            (None, true) => None,
        };
        Self {
            app_id: event.app_id.clone(),
            event_id: event.id.clone(),
            event_type: event.event_type.clone(),
            subscription_id: subscription.clone(),
            webhook_id: webhook_id(&event.id, subscription),
            attempt,
            attempted_at,
            outcome: if succeeded {
                AttemptOutcome::Succeeded
            } else {
                AttemptOutcome::Failed
            },
            status_code: outcome.status(),
            latency_ms: outcome.latency.as_millis() as u64,
            error_kind,
            error: outcome.error().map(|e| e.to_string()),
            response_body: truncate_body(outcome.response_body()),
            next_attempt_at: None,
        }
    }

    /// The record of a delivery that was not sent: `kind` says why
    /// (`endpoint_disabled`, `subscription_deleted`), `detail` adds the reason if any.
    pub fn not_sent(
        event: &Event,
        subscription: &SubscriptionId,
        kind: &str,
        detail: Option<&str>,
    ) -> Self {
        Self {
            app_id: event.app_id.clone(),
            event_id: event.id.clone(),
            event_type: event.event_type.clone(),
            subscription_id: subscription.clone(),
            webhook_id: webhook_id(&event.id, subscription),
            attempt: 0,
            attempted_at: Utc::now(),
            outcome: AttemptOutcome::NotSent,
            status_code: None,
            latency_ms: 0,
            error_kind: Some(kind.to_owned()),
            error: detail.map(str::to_owned),
            response_body: String::new(),
            next_attempt_at: None,
        }
    }
}

/// Cuts `body` to at most [`RESPONSE_BODY_CAP`] bytes on a character boundary.
pub fn truncate_body(body: &str) -> String {
    truncate_to(body, RESPONSE_BODY_CAP)
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub fn truncate_to(s: &str, max: usize) -> String {
    s[..s.floor_char_boundary(max.min(s.len()))].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_cut_at_four_kib_on_a_char_boundary() {
        assert_eq!(truncate_body("short"), "short");
        let long = "ü".repeat(RESPONSE_BODY_CAP);
        let cut = truncate_body(&long);
        assert!(cut.len() <= RESPONSE_BODY_CAP && cut.len() >= RESPONSE_BODY_CAP - 1);
        assert!(long.starts_with(&cut));
    }
}
