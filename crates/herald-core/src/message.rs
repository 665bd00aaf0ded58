//! What travels on the events queue.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::subscription::SubscriptionId;

/// Longest original body a dead letter keeps, in bytes; longer ones are cut (and
/// marked so), keeping the dead letter itself within SQS's limits.
pub const DEAD_LETTER_BODY_CAP: usize = 200 * 1024;

/// The body of a message on the events queue, tagged by `kind`.
///
/// Decoded by [`wire`]'s single pass rather than serde's internally tagged enums,
/// which buffer the whole message into an intermediate tree first and cannot carry an
/// event's data as text ([`crate::EventData`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum QueueMessage {
    /// A freshly published event, to be fanned out to every matching subscription.
    Event { event: Event },
    /// One (event, subscription) delivery still owed: a retry after a failed attempt,
    /// a delivery deferred from a large fan-out, or one moved back by the re-driver.
    Delivery { delivery: DeliveryTask },
}

/// A delivery of one event to one subscription, carried on the queue between attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryTask {
    pub event: Event,
    pub subscription_id: SubscriptionId,
    /// The number of the attempt this message is for (1 for the first).
    pub attempt: u32,
    /// When the first attempt was made (or, for a fresh task, created).
    pub first_attempt_at: DateTime<Utc>,
    /// Not to be attempted before this time. SQS delays a message by 15 minutes at
    /// most, so a consumer that receives it early sends it back for the rest.
    pub not_before: DateTime<Utc>,
    /// The outcome of the previous attempt, for the logs and the DLQ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_result: Option<String>,
    /// The slot its webhook's rate limit reserved for this attempt, when the limit
    /// deferred it ([`crate::rate`]): it is attempted then without reserving again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_slot: Option<DateTime<Utc>>,
}

impl DeliveryTask {
    /// A first attempt, due now.
    pub fn first(event: Event, subscription_id: SubscriptionId) -> Self {
        let now = Utc::now();
        Self {
            event,
            subscription_id,
            attempt: 1,
            first_attempt_at: now,
            not_before: now,
            last_result: None,
            rate_slot: None,
        }
    }
}

/// A queue message that is not a valid [`QueueMessage`]; the reason says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("undecodable queue message: {reason}")]
pub struct DecodeError {
    pub reason: String,
}

/// A self-describing message parked on the dead-letter queue (decoded by [`wire`], as
/// [`QueueMessage`] is).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)] // built one at a time, never stored in bulk
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
    /// A delivery that will not be attempted again: every attempt failed, the endpoint
    /// answered 410 or was disabled, or its address is refused.
    Failed {
        reason: String,
        delivery: DeliveryTask,
        /// Attempts made (0 when the delivery was never attempted).
        attempts: u32,
        last_status: Option<u16>,
        last_error: Option<String>,
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
            Self::Undecodable { reason, .. } | Self::Failed { reason, .. } => reason,
        }
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("dead letters serialize")
    }

    pub fn decode(body: &str) -> Result<Self, DecodeError> {
        serde_json::from_str(body).map_err(|e| DecodeError {
            reason: e.to_string(),
        })
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

/// Decoding of the `kind`-tagged messages in one pass: every variant's fields are read
/// into one struct of optional fields, then the variant `kind` names takes its own,
/// each required one missing named in the error as serde would.
mod wire {
    use chrono::{DateTime, Utc};
    use serde::de::Error;
    use serde::{Deserialize, Deserializer};

    use super::{DeadLetter, DeliveryTask, QueueMessage};
    use crate::event::Event;

    #[derive(Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum MessageKind {
        Event,
        Delivery,
    }

    #[derive(Deserialize)]
    struct Message {
        kind: MessageKind,
        event: Option<Event>,
        delivery: Option<DeliveryTask>,
    }

    impl<'de> Deserialize<'de> for QueueMessage {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let m = Message::deserialize(d)?;
            Ok(match m.kind {
                MessageKind::Event => Self::Event {
                    event: required(m.event, "event")?,
                },
                MessageKind::Delivery => Self::Delivery {
                    delivery: required(m.delivery, "delivery")?,
                },
            })
        }
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum LetterKind {
        Undecodable,
        Failed,
    }

    #[derive(Deserialize)]
    struct Letter {
        kind: LetterKind,
        reason: String,
        parked_at: DateTime<Utc>,
        // Undecodable.
        body: Option<String>,
        body_truncated: Option<bool>,
        #[serde(default)]
        original_message_id: Option<String>,
        // Failed.
        delivery: Option<DeliveryTask>,
        attempts: Option<u32>,
        #[serde(default)]
        last_status: Option<u16>,
        #[serde(default)]
        last_error: Option<String>,
    }

    impl<'de> Deserialize<'de> for DeadLetter {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let l = Letter::deserialize(d)?;
            Ok(match l.kind {
                LetterKind::Undecodable => Self::Undecodable {
                    reason: l.reason,
                    body: required(l.body, "body")?,
                    body_truncated: required(l.body_truncated, "body_truncated")?,
                    original_message_id: l.original_message_id,
                    parked_at: l.parked_at,
                },
                LetterKind::Failed => Self::Failed {
                    reason: l.reason,
                    delivery: required(l.delivery, "delivery")?,
                    attempts: required(l.attempts, "attempts")?,
                    last_status: l.last_status,
                    last_error: l.last_error,
                    parked_at: l.parked_at,
                },
            })
        }
    }

    fn required<T, E: Error>(field: Option<T>, name: &'static str) -> Result<T, E> {
        field.ok_or_else(|| E::missing_field(name))
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
        } = DeadLetter::undecodable(&huge, "too big", None)
        else {
            panic!("an undecodable letter")
        };
        assert!(body_truncated);
        assert!(body.len() <= DEAD_LETTER_BODY_CAP);
        assert!(huge.starts_with(&body));
    }

    #[test]
    fn delivery_tasks_and_failed_letters_round_trip() {
        let event = Event::new(
            AppId::parse("a").unwrap(),
            EventType::parse("invoice.paid").unwrap(),
            ObjectType::parse("invoice").unwrap(),
            serde_json::json!({"total": 3}),
        );
        let task = DeliveryTask::first(event, SubscriptionId::new("sub_1"));
        assert_eq!(task.attempt, 1);
        let msg = QueueMessage::Delivery {
            delivery: task.clone(),
        };
        assert_eq!(QueueMessage::decode(&msg.encode()).unwrap(), msg);
        let letter = DeadLetter::Failed {
            reason: "all 8 attempts failed".into(),
            delivery: task,
            attempts: 8,
            last_status: Some(500),
            last_error: None,
            parked_at: Utc::now(),
        };
        let back = DeadLetter::decode(&letter.encode()).unwrap();
        assert_eq!(back, letter);
        assert_eq!(back.reason(), "all 8 attempts failed");
        assert!(
            QueueMessage::decode(&letter.encode()).is_err(),
            "a dead letter is not a queue message"
        );
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

    #[test]
    fn event_data_travels_as_the_text_it_was_published_as() {
        // Key order and spacing are kept: what the publisher wrote is what is sent.
        let body = r#"{"event":{"id":"evt_1","app_id":"a","type":"create","object_type":"user","timestamp":"2026-01-01T00:00:00Z","data":{"z": 1, "a": [true, null]}},"kind":"event"}"#;
        let QueueMessage::Event { event } = QueueMessage::decode(body).unwrap() else {
            panic!("an event message, whatever the order of its fields")
        };
        assert_eq!(event.data.as_json(), r#"{"z": 1, "a": [true, null]}"#);
        assert_eq!(
            event.data.to_value(),
            serde_json::json!({"a": [true, null], "z": 1})
        );
        let again = QueueMessage::Event { event }.encode();
        assert!(
            again.contains(r#""data":{"z": 1, "a": [true, null]}"#),
            "{again}"
        );
    }

    #[test]
    fn actor_and_changes_travel_in_events_deliveries_and_dead_letters() {
        let event = Event::new(
            AppId::parse("a").unwrap(),
            EventType::parse("update").unwrap(),
            ObjectType::parse("invoice").unwrap(),
            serde_json::json!({"id": "inv_1"}),
        )
        .with_context(
            Some(crate::Actor::new("u_1".into(), Some("user".into()), Some("Ada".into())).unwrap()),
            crate::Changes::from_json(
                &serde_json::json!({"status": ["draft", "paid"], "lines": [[], [{"n": 1}]]}),
            )
            .unwrap(),
        );
        let msg = QueueMessage::Event {
            event: event.clone(),
        };
        let body = msg.encode();
        assert!(
            body.contains(r#""actor":{"id":"u_1","type":"user","name":"Ada"}"#),
            "{body}"
        );
        assert_eq!(QueueMessage::decode(&body).unwrap(), msg);
        let task = DeliveryTask::first(event, SubscriptionId::new("sub_1"));
        let msg = QueueMessage::Delivery {
            delivery: task.clone(),
        };
        assert_eq!(QueueMessage::decode(&msg.encode()).unwrap(), msg);
        let letter = DeadLetter::Failed {
            reason: "r".into(),
            delivery: task,
            attempts: 1,
            last_status: None,
            last_error: None,
            parked_at: Utc::now(),
        };
        assert_eq!(DeadLetter::decode(&letter.encode()).unwrap(), letter);

        // A message of before (no actor, no changes) decodes with neither; bad ones are
        // refused with the reason.
        let plain = r#"{"kind":"event","event":{"id":"evt_1","app_id":"a","type":"create","object_type":"user","timestamp":"2026-01-01T00:00:00Z","data":{}}}"#;
        let QueueMessage::Event { event } = QueueMessage::decode(plain).unwrap() else {
            panic!("an event message")
        };
        assert_eq!((event.actor, event.changes), (None, None));
        for (bad, says) in [
            (r#""actor":{"id":""}"#, "actor.id must not be empty"),
            (r#""changes":{"a":[1]}"#, "invalid length 1"),
        ] {
            let body = plain.replace(r#""data":{}"#, &format!(r#""data":{{}},{bad}"#));
            let err = QueueMessage::decode(&body).unwrap_err();
            assert!(err.reason.contains(says), "{}", err.reason);
        }
    }

    #[test]
    fn a_kind_without_its_fields_names_what_is_missing() {
        let err = QueueMessage::decode(r#"{"kind":"delivery","event":null}"#).unwrap_err();
        assert!(
            err.reason.contains("missing field `delivery`"),
            "{}",
            err.reason
        );
        let err = QueueMessage::decode(r#"{"kind":"later"}"#).unwrap_err();
        assert!(
            err.reason.contains("unknown variant `later`"),
            "{}",
            err.reason
        );
        let err = DeadLetter::decode(
            r#"{"kind":"failed","reason":"r","parked_at":"2026-01-01T00:00:00Z"}"#,
        )
        .unwrap_err();
        assert!(
            err.reason.contains("missing field `delivery`"),
            "{}",
            err.reason
        );
    }
}
