//! The delivery history: one record per attempt (or per delivery not sent).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::delivery::{DeliveryOutcome, RESPONSE_BODY_CAP};
use crate::envelope::{webhook_id, WebhookId};
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
    pub webhook_id: WebhookId,
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
    /// The record of attempt number `attempt` to deliver `event` to `subscription`
    /// (whose webhook id, computed once per delivery, is `webhook_id`), made at
    /// `attempted_at`, that ended with `outcome`. The one builder of attempt records,
    /// for the consumer and the API's test ping alike.
    pub fn of_outcome(
        event: &Event,
        subscription: &SubscriptionId,
        webhook_id: WebhookId,
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
            ..Self::record(event, subscription, webhook_id)
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
            error_kind: Some(kind.to_owned()),
            error: detail.map(str::to_owned),
            ..Self::record(event, subscription, webhook_id(&event.id, subscription))
        }
    }

    /// A record of a delivery not sent, with no reason yet: what the builders start from.
    fn record(event: &Event, subscription: &SubscriptionId, webhook_id: WebhookId) -> Self {
        Self {
            app_id: event.app_id.clone(),
            event_id: event.id.clone(),
            event_type: event.event_type.clone(),
            subscription_id: subscription.clone(),
            webhook_id,
            attempt: 0,
            attempted_at: Utc::now(),
            outcome: AttemptOutcome::NotSent,
            status_code: None,
            latency_ms: 0,
            error_kind: None,
            error: None,
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
    use crate::delivery::DeliveryError;
    use crate::event::{EventType, ObjectType};
    use std::time::Duration;

    fn event() -> Event {
        Event::new(
            AppId::parse("shop").unwrap(),
            EventType::parse("update").unwrap(),
            ObjectType::parse("user").unwrap(),
            serde_json::json!({}),
        )
    }

    #[test]
    fn records_say_how_each_attempt_ended() {
        let (e, sub) = (event(), SubscriptionId::generate());
        let now = Utc::now();
        let ok = DeliveryOutcome::answered(204, "fine".into(), None, Duration::from_millis(12));
        let id = webhook_id(&e.id, &sub);
        let a = Attempt::of_outcome(&e, &sub, id, 1, now, &ok);
        assert_eq!(a.outcome, AttemptOutcome::Succeeded);
        assert_eq!(
            (a.status_code, a.latency_ms, a.error_kind),
            (Some(204), 12, None)
        );
        assert_eq!(a.webhook_id, webhook_id(&e.id, &sub));
        assert_eq!((a.attempt, a.attempted_at), (1, now));

        let bad = DeliveryOutcome::answered(503, "x".repeat(5000), None, Duration::ZERO);
        let a = Attempt::of_outcome(&e, &sub, id, 2, now, &bad);
        assert_eq!(a.outcome, AttemptOutcome::Failed);
        assert_eq!(a.error_kind.as_deref(), Some("http_status"));
        assert_eq!(a.response_body.len(), RESPONSE_BODY_CAP);

        let down = DeliveryOutcome::failed(DeliveryError::Timeout, Duration::ZERO);
        let a = Attempt::of_outcome(&e, &sub, id, 3, now, &down);
        assert_eq!(
            (a.error_kind.as_deref(), a.error.as_deref()),
            (Some("timeout"), Some("timed out"))
        );
        assert_eq!(a.status_code, None);

        let skipped = Attempt::not_sent(&e, &sub, "endpoint_disabled", Some("410"));
        assert_eq!(
            (skipped.outcome, skipped.attempt),
            (AttemptOutcome::NotSent, 0)
        );
        assert_eq!(skipped.error_kind.as_deref(), Some("endpoint_disabled"));
    }

    #[test]
    fn bodies_are_cut_at_four_kib_on_a_char_boundary() {
        assert_eq!(truncate_body("short"), "short");
        let long = "ü".repeat(RESPONSE_BODY_CAP);
        let cut = truncate_body(&long);
        assert!(cut.len() <= RESPONSE_BODY_CAP && cut.len() >= RESPONSE_BODY_CAP - 1);
        assert!(long.starts_with(&cut));
    }
}
