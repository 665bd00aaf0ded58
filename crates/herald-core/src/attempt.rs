//! The delivery history: one record per attempt (or per delivery not sent).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::{AppId, EventId, EventType};
use crate::subscription::SubscriptionId;

/// Most bytes of a response body kept in an attempt record.
pub const RESPONSE_BODY_LIMIT: usize = 4 * 1024;

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
    /// The start of the response body, at most [`RESPONSE_BODY_LIMIT`] bytes.
    #[serde(default)]
    pub response_body: String,
    /// When the next attempt is due, if there will be one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// Cuts `body` to at most [`RESPONSE_BODY_LIMIT`] bytes on a character boundary.
pub fn truncate_body(body: &str) -> String {
    truncate_to(body, RESPONSE_BODY_LIMIT)
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
        let long = "ü".repeat(RESPONSE_BODY_LIMIT);
        let cut = truncate_body(&long);
        assert!(cut.len() <= RESPONSE_BODY_LIMIT && cut.len() >= RESPONSE_BODY_LIMIT - 1);
        assert!(long.starts_with(&cut));
    }
}
