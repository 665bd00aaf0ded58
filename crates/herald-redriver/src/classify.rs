//! What a dead letter is, what can be known about it, and what moving it means.

use std::collections::HashMap;

use aws_sdk_sqs::types::MessageAttributeValue;
use chrono::{DateTime, Utc};
use herald_core::{DeadLetter, DeliveryTask, QueueMessage};
use serde::Serialize;

use herald_queue::sqs::string_attribute_value;

/// What a DLQ message turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A [`DeadLetter::Failed`] delivery.
    Failed,
    /// A [`DeadLetter::Undecodable`] message.
    Undecodable,
    /// A raw [`QueueMessage`], typically moved by SQS after `maxReceiveCount` receives.
    QueueMessage,
    /// Anything else.
    Unrecognized,
}

/// What can be known about a DLQ message, for filtering and for the attributes it
/// is sent with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// The event's app (tenant).
    pub app_id: Option<String>,
    /// The delivery's subscription.
    pub subscription_id: Option<String>,
    /// The event's type.
    pub event_type: Option<String>,
    /// The event's id.
    pub event_id: Option<String>,
    /// When the message was parked, else when it was sent to the DLQ.
    pub timestamp: Option<DateTime<Utc>>,
}

impl Facts {
    fn of_queue_message(msg: &QueueMessage) -> Self {
        let (event, subscription_id) = match msg {
            QueueMessage::Event { event } => (event, None),
            QueueMessage::Delivery { delivery } => {
                (&delivery.event, Some(delivery.subscription_id.to_string()))
            }
        };
        Self {
            app_id: Some(event.app_id.to_string()),
            subscription_id,
            event_type: Some(event.event_type.to_string()),
            event_id: Some(event.id.to_string()),
            timestamp: None,
        }
    }

    /// Fills what the body did not tell from the message attributes (`app_id`,
    /// `subscription_id`, `event_type`, `event_id`) and, for the time, the SQS
    /// `SentTimestamp` system attribute (milliseconds since the epoch).
    pub fn fill_from_attributes(
        &mut self,
        attributes: &HashMap<String, MessageAttributeValue>,
        sent_timestamp: Option<&str>,
    ) {
        let get = |name: &str| string_attribute_value(attributes, name).map(str::to_owned);
        self.app_id = self.app_id.take().or_else(|| get("app_id"));
        self.subscription_id = self
            .subscription_id
            .take()
            .or_else(|| get("subscription_id"));
        self.event_type = self.event_type.take().or_else(|| get("event_type"));
        self.event_id = self.event_id.take().or_else(|| get("event_id"));
        self.timestamp = self.timestamp.or_else(|| {
            sent_timestamp
                .and_then(|s| s.parse::<i64>().ok())
                .and_then(DateTime::from_timestamp_millis)
        });
    }
}

/// What to do with a DLQ message, should it match.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Send this body to the target queue.
    Move {
        /// The body to send.
        body: String,
        /// Whether the DLQ message's own attributes go with it.
        copy_attributes: bool,
    },
    /// Leave it on the DLQ, for this reason.
    Unmovable {
        /// Why it cannot be moved.
        why: String,
    },
}

/// A DLQ message body, classified.
#[derive(Debug, Clone, PartialEq)]
pub struct Classified {
    /// What the body is.
    pub kind: Kind,
    /// What moving it means.
    pub plan: Plan,
    /// What the body tells about it.
    pub facts: Facts,
    /// Why it was parked, when the body says.
    pub reason: Option<String>,
}

/// Classifies a DLQ message body; `now` stamps the fresh schedule of a failed delivery.
pub fn classify(body: &str, now: DateTime<Utc>) -> Classified {
    match DeadLetter::decode(body) {
        Ok(DeadLetter::Failed {
            reason,
            delivery,
            parked_at,
            ..
        }) => {
            let mut facts = Facts::of_queue_message(&QueueMessage::Delivery {
                delivery: delivery.clone(),
            });
            facts.timestamp = Some(parked_at);
            let fresh = QueueMessage::Delivery {
                delivery: DeliveryTask {
                    event: delivery.event,
                    subscription_id: delivery.subscription_id,
                    attempt: 1,
                    first_attempt_at: now,
                    not_before: now,
                    last_result: Some(format!("re-driven from the DLQ after: {reason}")),
                    rate_slot: None,
                },
            };
            Classified {
                kind: Kind::Failed,
                plan: Plan::Move {
                    body: fresh.encode(),
                    copy_attributes: false,
                },
                facts,
                reason: Some(reason),
            }
        }
        Ok(DeadLetter::Undecodable {
            reason,
            body,
            body_truncated,
            parked_at,
            ..
        }) => {
            let mut facts = QueueMessage::decode(&body)
                .map(|m| Facts::of_queue_message(&m))
                .unwrap_or_default();
            facts.timestamp = Some(parked_at);
            let plan = if body_truncated {
                Plan::Unmovable {
                    why: format!(
                        "the original body was cut to its first {} bytes when it was parked, so it cannot be restored",
                        body.len()
                    ),
                }
            } else {
                Plan::Move {
                    body,
                    copy_attributes: false,
                }
            };
            Classified {
                kind: Kind::Undecodable,
                plan,
                facts,
                reason: Some(reason),
            }
        }
        Err(_) => {
            let (kind, facts) = match QueueMessage::decode(body) {
                Ok(msg) => (Kind::QueueMessage, Facts::of_queue_message(&msg)),
                Err(_) => (Kind::Unrecognized, Facts::default()),
            };
            Classified {
                kind,
                plan: Plan::Move {
                    body: body.to_owned(),
                    copy_attributes: true,
                },
                facts,
                reason: None,
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use herald_core::SubscriptionId;
    use herald_queue::sqs::string_attribute;

    use herald_core::testing::event;

    fn failed_letter(app: &str, sub: &str, parked_at: DateTime<Utc>) -> DeadLetter {
        herald_core::testing::parked(event(app, "update"), sub, 500, Some(parked_at))
    }

    /// Facts that tell an app, a subscription and an event type (each when given).
    pub(crate) fn facts(app: Option<&str>, sub: Option<&str>, ty: Option<&str>) -> Facts {
        Facts {
            app_id: app.map(Into::into),
            subscription_id: sub.map(Into::into),
            event_type: ty.map(Into::into),
            event_id: None,
            timestamp: None,
        }
    }

    #[test]
    fn a_failed_delivery_goes_back_as_a_fresh_first_attempt() {
        let parked = Utc::now() - chrono::Duration::hours(2);
        let letter = failed_letter("a", "sub_1", parked);
        let now = Utc::now();
        let c = classify(&letter.encode(), now);
        assert_eq!(c.kind, Kind::Failed);
        assert_eq!(c.reason.as_deref(), Some("all 8 attempts failed"));
        assert_eq!(c.facts.app_id.as_deref(), Some("a"));
        assert_eq!(c.facts.subscription_id.as_deref(), Some("sub_1"));
        assert_eq!(c.facts.event_type.as_deref(), Some("update"));
        assert!(c.facts.event_id.as_deref().unwrap().starts_with("evt_"));
        assert_eq!(c.facts.timestamp, Some(parked));
        let Plan::Move {
            body,
            copy_attributes,
        } = c.plan
        else {
            panic!("a failed delivery is movable")
        };
        assert!(!copy_attributes);
        let QueueMessage::Delivery { delivery } = QueueMessage::decode(&body).unwrap() else {
            panic!("a delivery message")
        };
        let DeadLetter::Failed { delivery: old, .. } = letter else {
            unreachable!()
        };
        assert_eq!(delivery.attempt, 1);
        assert_eq!(delivery.first_attempt_at, now);
        assert_eq!(delivery.not_before, now);
        assert_eq!(delivery.event, old.event);
        assert_eq!(delivery.subscription_id, old.subscription_id);
        assert_eq!(
            delivery.last_result.as_deref(),
            Some("re-driven from the DLQ after: all 8 attempts failed")
        );
    }

    #[test]
    fn an_undecodable_letter_goes_back_as_its_original_body_unless_it_was_cut() {
        let letter = DeadLetter::undecodable("not json", "expected value", Some("m1".into()));
        let c = classify(&letter.encode(), Utc::now());
        assert_eq!(c.kind, Kind::Undecodable);
        assert_eq!(c.reason.as_deref(), Some("expected value"));
        assert_eq!(
            c.plan,
            Plan::Move {
                body: "not json".into(),
                copy_attributes: false
            }
        );
        assert!(c.facts.timestamp.is_some());
        assert_eq!(c.facts.app_id, None);

        let huge = "x".repeat(herald_core::message::DEAD_LETTER_BODY_CAP + 1);
        let cut = DeadLetter::undecodable(&huge, "too big", None);
        let c = classify(&cut.encode(), Utc::now());
        assert_eq!(c.kind, Kind::Undecodable);
        let Plan::Unmovable { why } = c.plan else {
            panic!("a cut body cannot be restored")
        };
        assert!(why.contains("cut"), "{why}");
    }

    #[test]
    fn an_undecodable_letter_whose_body_decodes_tells_its_event() {
        let body = QueueMessage::Event {
            event: event("shop", "create"),
        }
        .encode();
        let c = classify(
            &DeadLetter::undecodable(&body, "old consumer", None).encode(),
            Utc::now(),
        );
        assert_eq!(c.facts.app_id.as_deref(), Some("shop"));
        assert_eq!(c.facts.event_type.as_deref(), Some("create"));
        assert_eq!(
            c.plan,
            Plan::Move {
                body,
                copy_attributes: false
            }
        );
    }

    #[test]
    fn raw_queue_messages_and_garbage_go_back_as_they_are_with_their_attributes() {
        let delivery = QueueMessage::Delivery {
            delivery: DeliveryTask::first(event("a", "invoice.paid"), SubscriptionId::new("s")),
        }
        .encode();
        let c = classify(&delivery, Utc::now());
        assert_eq!(c.kind, Kind::QueueMessage);
        assert_eq!(c.facts.subscription_id.as_deref(), Some("s"));
        assert_eq!(c.facts.event_type.as_deref(), Some("invoice.paid"));
        assert_eq!(c.facts.timestamp, None);
        assert_eq!(c.reason, None);
        assert_eq!(
            c.plan,
            Plan::Move {
                body: delivery,
                copy_attributes: true
            }
        );

        for garbage in ["", "not json", "{}", r#"{"kind":"failed"}"#, "☃"] {
            let c = classify(garbage, Utc::now());
            assert_eq!(c.kind, Kind::Unrecognized, "{garbage}");
            assert_eq!(c.facts, Facts::default());
            assert_eq!(
                c.plan,
                Plan::Move {
                    body: garbage.into(),
                    copy_attributes: true
                }
            );
        }
    }

    #[test]
    fn attributes_fill_only_what_the_body_did_not_tell() {
        let attrs: HashMap<String, MessageAttributeValue> = [
            ("app_id", "from-attr"),
            ("subscription_id", "sub_attr"),
            ("event_type", "delete"),
            ("event_id", "evt_attr"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), string_attribute(v)))
        .collect();
        let mut f = facts(Some("body-app"), None, None);
        f.fill_from_attributes(&attrs, Some("1700000000123"));
        assert_eq!(f.app_id.as_deref(), Some("body-app"));
        assert_eq!(f.subscription_id.as_deref(), Some("sub_attr"));
        assert_eq!(f.event_type.as_deref(), Some("delete"));
        assert_eq!(f.event_id.as_deref(), Some("evt_attr"));
        assert_eq!(
            f.timestamp,
            DateTime::from_timestamp_millis(1_700_000_000_123)
        );

        let parked = Utc::now();
        let mut f = Facts {
            timestamp: Some(parked),
            ..Facts::default()
        };
        f.fill_from_attributes(&HashMap::new(), Some("1700000000123"));
        assert_eq!(
            f.timestamp,
            Some(parked),
            "parked_at wins over SentTimestamp"
        );
        let mut f = Facts::default();
        f.fill_from_attributes(&HashMap::new(), Some("garbage"));
        assert_eq!(f, Facts::default());
    }
}
