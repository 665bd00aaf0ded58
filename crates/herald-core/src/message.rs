//! What travels on the events queue.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::Event;

/// Longest original body a dead letter keeps, in bytes; longer ones are cut (and
/// marked so), keeping the dead letter itself within SQS's limits.
pub const DEAD_LETTER_BODY_CAP: usize = 200 * 1024;

/// The body of a message on the events queue, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum QueueMessage {
    /// A freshly published event, to be fanned out to every matching subscription.
    Event { event: Event },
}

/// A queue message that is not a valid [`QueueMessage`]; the reason says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("undecodable queue message: {reason}")]
pub struct DecodeError {
    pub reason: String,
}

/// A self-describing message parked on the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DeadLetter {
    /// A queue message that could not be decoded; parked at first sight, never retried.
    Undecodable {
        reason: String,
        /// The original body (cut at [`DEAD_LETTER_BODY_CAP`] bytes when longer).
        body: String,
        body_truncated: bool,
        original_message_id: Option<String>,
        parked_at: DateTime<Utc>,
    },
}

impl DeadLetter {
    /// A dead letter for an undecodable body.
    pub fn undecodable(body: &str, reason: &str, original_message_id: Option<String>) -> Self {
        let mut cut = body.len().min(DEAD_LETTER_BODY_CAP);
        while !body.is_char_boundary(cut) {
            cut -= 1;
        }
        Self::Undecodable {
            reason: reason.to_owned(),
            body: body[..cut].to_owned(),
            body_truncated: cut < body.len(),
            original_message_id,
            parked_at: Utc::now(),
        }
    }

    /// Why this letter was parked.
    pub fn reason(&self) -> &str {
        match self {
            Self::Undecodable { reason, .. } => reason,
        }
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("dead letters serialize")
    }
}

impl QueueMessage {
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("queue messages serialize")
    }

    pub fn decode(body: &str) -> Result<Self, DecodeError> {
        serde_json::from_str(body).map_err(|e| DecodeError {
            reason: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{AppId, EventType, ObjectType};

    #[test]
    fn event_messages_round_trip() {
        let msg = QueueMessage::Event {
            event: Event::new(
                AppId::parse("a").unwrap(),
                EventType::parse("create").unwrap(),
                ObjectType::parse("user").unwrap(),
                serde_json::json!([1, 2]),
            ),
        };
        let body = msg.encode();
        assert!(body.starts_with(r#"{"kind":"event""#));
        assert_eq!(QueueMessage::decode(&body).unwrap(), msg);
    }

    #[test]
    fn dead_letters_keep_the_body_and_cut_huge_ones_on_a_char_boundary() {
        let d = DeadLetter::undecodable("not json", "expected value", Some("m1".into()));
        let json: serde_json::Value = serde_json::from_str(&d.encode()).unwrap();
        assert_eq!(json["kind"], "undecodable");
        assert_eq!(json["body"], "not json");
        assert_eq!(json["body_truncated"], false);
        assert_eq!(d.reason(), "expected value");

        let huge = "é".repeat(DEAD_LETTER_BODY_CAP);
        let DeadLetter::Undecodable {
            body,
            body_truncated,
            ..
        } = DeadLetter::undecodable(&huge, "too big", None);
        assert!(body_truncated);
        assert!(body.len() <= DEAD_LETTER_BODY_CAP);
        assert!(huge.starts_with(&body));
    }

    #[test]
    fn garbage_gives_a_reason() {
        for body in [
            "",
            "not json",
            "{}",
            r#"{"kind":"nope"}"#,
            r#"{"kind":"event"}"#,
        ] {
            let err = QueueMessage::decode(body).unwrap_err();
            assert!(!err.reason.is_empty(), "{body}");
        }
    }
}
