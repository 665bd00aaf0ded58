//! The JSON payload POSTed to webhooks and the stable webhook id of each delivery.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::event::{Event, EventId, EventType, ObjectType};
use crate::subscription::SubscriptionId;

/// The delivered payload: the Standard Webhooks shape (`type`, `timestamp`, `data`)
/// plus the event id and object type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub id: EventId,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub object_type: ObjectType,
    pub timestamp: String,
    pub data: serde_json::Value,
}

impl Envelope {
    pub fn of(event: &Event) -> Self {
        Self {
            id: event.id.clone(),
            event_type: event.event_type.clone(),
            object_type: event.object_type.clone(),
            timestamp: rfc3339(event.timestamp),
            data: event.data.clone(),
        }
    }

    /// The exact bytes that are signed and sent.
    pub fn to_body(&self) -> Vec<u8> {
        // Serializing a struct of strings and a `Value` cannot fail.
        serde_json::to_vec(self).expect("envelope serializes")
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The `webhook-id` of the delivery of `event` to `subscription`: the same on every
/// retry and re-drive, different for every (event, subscription) pair, so receivers
/// can dedupe on it.
pub fn webhook_id(event: &EventId, subscription: &SubscriptionId) -> String {
    let mut h = Sha256::new();
    h.update(event.as_str().as_bytes());
    h.update([0u8]);
    h.update(subscription.as_str().as_bytes());
    let digest = h.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("msg_{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::AppId;

    #[test]
    fn envelope_has_the_standard_webhooks_shape() {
        let event = Event::new(
            AppId::parse("a").unwrap(),
            EventType::parse("update").unwrap(),
            ObjectType::parse("user").unwrap(),
            serde_json::json!({"id": "42", "name": "Ada"}),
        );
        let body: serde_json::Value =
            serde_json::from_slice(&Envelope::of(&event).to_body()).unwrap();
        assert_eq!(body["type"], "update");
        assert_eq!(body["object_type"], "user");
        assert_eq!(body["id"], event.id.as_str());
        assert_eq!(body["data"]["name"], "Ada");
        let ts = body["timestamp"].as_str().unwrap();
        assert!(DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");
        assert!(body.get("app_id").is_none(), "the tenant id is not sent");
    }

    #[test]
    fn webhook_id_is_stable_per_pair_and_distinct_across_pairs() {
        let e1 = EventId::parse("evt_1").unwrap();
        let e2 = EventId::parse("evt_2").unwrap();
        let s1 = SubscriptionId::new("sub_1");
        let s2 = SubscriptionId::new("sub_2");
        assert_eq!(webhook_id(&e1, &s1), webhook_id(&e1, &s1));
        let ids = [
            webhook_id(&e1, &s1),
            webhook_id(&e1, &s2),
            webhook_id(&e2, &s1),
            webhook_id(&e2, &s2),
        ];
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), 4);
        assert!(ids[0].starts_with("msg_") && ids[0].len() == 36);
    }
}
