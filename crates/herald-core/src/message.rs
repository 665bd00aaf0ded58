//! What travels on the events queue.

use serde::{Deserialize, Serialize};

use crate::event::Event;

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
    fn garbage_gives_a_reason() {
        for body in ["", "not json", "{}", r#"{"kind":"nope"}"#, r#"{"kind":"event"}"#] {
            let err = QueueMessage::decode(body).unwrap_err();
            assert!(!err.reason.is_empty(), "{body}");
        }
    }
}
