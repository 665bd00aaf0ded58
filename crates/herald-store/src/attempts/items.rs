//! The delivery history table's layout: its keys and the typed items of attempts
//! and of events kept for re-sending.

use herald_core::{AppId, Attempt, Event, EventId, SubscriptionId};
use serde::{Deserialize, Serialize};
use serde_with::json::JsonString;
use serde_with::serde_as;

use crate::PkSk;

/// The history table's key of each kind of item: the only place it is spelled out.
impl PkSk {
    /// An attempt: in its subscription's partition, sorted by time, then event, then
    /// attempt number.
    pub(super) fn attempt(a: &Attempt) -> Self {
        Self {
            pk: subscription_partition(&a.app_id, &a.subscription_id),
            sk: format!(
                "{}#{}#{:04}",
                a.attempted_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                a.event_id,
                a.attempt
            ),
        }
    }

    /// An event kept for re-sending, in a partition of its own.
    pub(super) fn event(app: &AppId, id: &EventId) -> Self {
        Self {
            pk: format!("event#{app}#{id}"),
            sk: "event".to_owned(),
        }
    }
}

/// The partition (`pk`) of a subscription's attempts.
pub(super) fn subscription_partition(app: &AppId, sub: &SubscriptionId) -> String {
    format!("{app}#{sub}")
}

/// The partition (`event_pk`) of an event's attempts in the [`super::BY_EVENT_INDEX`].
pub(super) fn event_partition(app: &AppId, event: &EventId) -> String {
    format!("{app}#{event}")
}

/// The item of an attempt: the [`Attempt`]'s own attributes beside its keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct AttemptItem {
    #[serde(flatten)]
    pub(super) key: PkSk,
    pub(super) event_pk: String,
    /// Unix seconds; the table's TTL attribute.
    pub(super) expires_at: i64,
    #[serde(flatten)]
    pub(super) attempt: Attempt,
}

/// The item of an event kept for re-sending.
#[serde_as]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct EventItem {
    #[serde(flatten)]
    pub(super) key: PkSk,
    /// The event as JSON text, not as a map: DynamoDB nests maps at most 32 levels
    /// deep, while an event's `data` may nest deeper (publishing accepts about 126).
    #[serde_as(as = "JsonString")]
    pub(super) event: Event,
    /// Unix seconds; the table's TTL attribute.
    pub(super) expires_at: i64,
}

impl AttemptItem {
    /// The item of `attempt`, expiring at `expires_at` (Unix seconds).
    pub(super) fn new(attempt: &Attempt, expires_at: i64) -> Self {
        Self {
            key: PkSk::attempt(attempt),
            event_pk: event_partition(&attempt.app_id, &attempt.event_id),
            expires_at,
            attempt: attempt.clone(),
        }
    }
}

impl EventItem {
    /// The item of `event`, expiring at `expires_at` (Unix seconds).
    pub(super) fn new(event: &Event, expires_at: i64) -> Self {
        Self {
            key: PkSk::event(&event.app_id, &event.id),
            event: event.clone(),
            expires_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use herald_core::{AttemptOutcome, EventType, ObjectType};

    use aws_sdk_dynamodb::types::AttributeValue;

    use super::*;
    use crate::{from_item, to_item, ItemKind};

    fn event(data: serde_json::Value) -> Event {
        Event::new(
            AppId::parse("shop").unwrap(),
            EventType::parse("update").unwrap(),
            ObjectType::parse("user").unwrap(),
            data,
        )
    }

    #[test]
    fn attempts_keep_their_layout_and_round_trip() {
        let e = event(serde_json::json!({"id": "42"}));
        let sub = SubscriptionId::new("sub_1");
        let mut attempt = Attempt {
            app_id: e.app_id.clone(),
            event_id: e.id.clone(),
            event_type: e.event_type.clone(),
            subscription_id: sub.clone(),
            webhook_id: "msg_1".into(),
            attempt: 2,
            attempted_at: e.timestamp,
            outcome: AttemptOutcome::Failed,
            status_code: None,
            latency_ms: 12,
            error_kind: Some("timeout".into()),
            error: Some("timed out".into()),
            response_body: String::new(),
            next_attempt_at: Some(e.timestamp),
        };
        for status_code in [None, Some(503)] {
            attempt.status_code = status_code;
            let expires_at = e.timestamp.timestamp() + 3600;
            let item = to_item(ItemKind::Attempt, &AttemptItem::new(&attempt, expires_at)).unwrap();
            assert_eq!(item["pk"], AttributeValue::S("shop#sub_1".into()));
            let AttributeValue::S(sk) = &item["sk"] else {
                panic!("sk is a string");
            };
            assert!(sk.ends_with(&format!("#{}#0002", e.id)), "{sk}");
            assert_eq!(
                item["event_pk"],
                AttributeValue::S(format!("shop#{}", e.id))
            );
            assert_eq!(
                item["expires_at"],
                AttributeValue::N(expires_at.to_string())
            );
            assert_eq!(item["attempt"], AttributeValue::N("2".into()));
            assert_eq!(item.contains_key("status_code"), status_code.is_some());
            let back: AttemptItem = from_item(ItemKind::Attempt, item).unwrap();
            assert_eq!(back.attempt, attempt);
        }
    }

    #[test]
    fn deeply_nested_events_are_kept_as_json_text_and_come_back() {
        // Deeper than DynamoDB's 32 levels of nested maps, as deep as publishing accepts.
        let mut data = serde_json::json!("leaf");
        for level in 0..120 {
            data = if level % 2 == 0 {
                serde_json::json!({ "next": data })
            } else {
                serde_json::json!([data])
            };
        }
        let e = event(data);
        let item = to_item(ItemKind::Event, &EventItem::new(&e, 0)).unwrap();
        assert_eq!(
            item["pk"],
            AttributeValue::S(format!("event#shop#{}", e.id))
        );
        assert_eq!(item["sk"], AttributeValue::S("event".into()));
        assert_eq!(
            item["event"],
            AttributeValue::S(serde_json::to_string(&e).unwrap())
        );
        let back: EventItem = from_item(ItemKind::Event, item).unwrap();
        assert_eq!(back.event, e);
    }
}
