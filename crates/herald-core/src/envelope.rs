//! The JSON payload POSTed to webhooks and the stable webhook id of each delivery.

use std::fmt;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::actor::{Actor, Changes};
use crate::event::{Event, EventData, EventId, EventType, ObjectType};
use crate::subscription::SubscriptionId;

/// The delivered payload: the Standard Webhooks shape (`type`, `timestamp`, `data`)
/// plus the event id and object type, and the actor, changes and inbound source when
/// the event has them (absent otherwise, so an event without them gives the envelope
/// of before).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub id: EventId,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub object_type: ObjectType,
    pub timestamp: String,
    pub data: serde_json::Value,
    /// Who made the change, when the publisher said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
    /// What changed (field → `[before, after]`), when the publisher said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<Changes>,
    /// The inbound source (`src_…`) the event came in through, for events made from
    /// inbound webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// The envelope of an event, borrowing from it: what [`Envelope::body_of`] serializes,
/// field for field the bytes [`Envelope::to_body`] gives.
#[derive(Serialize)]
struct EnvelopeRef<'a> {
    id: &'a EventId,
    #[serde(rename = "type")]
    event_type: &'a EventType,
    object_type: &'a ObjectType,
    timestamp: String,
    data: &'a EventData,
    #[serde(skip_serializing_if = "Option::is_none")]
    actor: Option<&'a Actor>,
    #[serde(skip_serializing_if = "Option::is_none")]
    changes: Option<&'a Changes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'a str>,
}

impl Envelope {
    /// The envelope of `event` (a copy of its fields).
    pub fn of(event: &Event) -> Self {
        Self {
            id: event.id.clone(),
            event_type: event.event_type.clone(),
            object_type: event.object_type.clone(),
            timestamp: rfc3339(event.timestamp),
            data: event.data.to_value(),
            actor: event.actor.clone(),
            changes: event.changes.clone(),
            source: event.source.clone(),
        }
    }

    /// The exact bytes that are signed and sent.
    pub fn to_body(&self) -> Vec<u8> {
        // Serializing a struct of strings and a `Value` cannot fail.
        serde_json::to_vec(self).expect("envelope serializes")
    }

    /// The body of `event`'s envelope, serialized once and shared by every delivery of
    /// the event (the same bytes as `Envelope::of(event).to_body()`, without copying
    /// the event's data first).
    pub fn body_of(event: &Event) -> Bytes {
        let envelope = EnvelopeRef {
            id: &event.id,
            event_type: &event.event_type,
            object_type: &event.object_type,
            timestamp: rfc3339(event.timestamp),
            data: &event.data,
            actor: event.actor.as_ref(),
            changes: event.changes.as_ref(),
            source: event.source.as_deref(),
        };
        // Room for the data and the envelope's own fields up front: serde_json's own
        // buffer starts at 128 bytes and would grow four times for a 1 KB event,
        // copying the body each time.
        let mut body = Vec::with_capacity(event.data.as_json().len() + ENVELOPE_ROOM);
        // Serializing strings and JSON text cannot fail.
        serde_json::to_writer(&mut body, &envelope).expect("envelope serializes");
        Bytes::from(body)
    }
}

/// Bytes an envelope usually takes beyond its event's data: the id, types and
/// timestamp with their keys (an actor, changes or a source make it grow once).
const ENVELOPE_ROOM: usize = 256;

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Bytes in a webhook id: `msg_` and 32 hex digits (the first 16 bytes of a SHA-256).
pub const WEBHOOK_ID_LEN: usize = 4 + 32;

/// The `webhook-id` of one delivery (`msg_` and 32 lowercase hex digits), held inline:
/// computed once per delivery and copied, never allocated, wherever it is used (the
/// header, the history, the logs).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WebhookId([u8; WEBHOOK_ID_LEN]);

impl WebhookId {
    /// The `webhook-id` of the delivery of `event` to `subscription`: the same on every
    /// retry and re-drive, different for every (event, subscription) pair, so
    /// receivers can dedupe on it.
    pub fn of(event: &EventId, subscription: &SubscriptionId) -> Self {
        let mut h = Sha256::new();
        h.update(event.as_str().as_bytes());
        h.update([0u8]);
        h.update(subscription.as_str().as_bytes());
        let digest = h.finalize();
        let mut id = [0u8; WEBHOOK_ID_LEN];
        id[..4].copy_from_slice(b"msg_");
        hex::encode_to_slice(&digest[..16], &mut id[4..]).expect("32 digits fit 16 bytes");
        Self(id)
    }

    /// Reads back an id in its text form.
    pub fn parse(s: &str) -> Option<Self> {
        let bytes: [u8; WEBHOOK_ID_LEN] = s.as_bytes().try_into().ok()?;
        let digits = &bytes[4..];
        (bytes.starts_with(b"msg_")
            && digits
                .iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b)))
        .then_some(Self(bytes))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Only `msg_` and hex digits are ever written: always ASCII.
        std::str::from_utf8(&self.0).expect("a webhook id is ASCII")
    }
}

/// The `webhook-id` of the delivery of `event` to `subscription` ([`WebhookId::of`]).
pub fn webhook_id(event: &EventId, subscription: &SubscriptionId) -> WebhookId {
    WebhookId::of(event, subscription)
}

impl AsRef<str> for WebhookId {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for WebhookId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for WebhookId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq<str> for WebhookId {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for WebhookId {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for WebhookId {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<WebhookId> for &str {
    fn eq(&self, other: &WebhookId) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<WebhookId> for String {
    fn eq(&self, other: &WebhookId) -> bool {
        self == other.as_str()
    }
}

impl Serialize for WebhookId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for WebhookId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s)
            .ok_or_else(|| serde::de::Error::custom("not a webhook id (msg_ and 32 hex digits)"))
    }
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
        assert!(ids[0].as_str().starts_with("msg_") && ids[0].as_str().len() == 36);
    }

    /// The webhook id as it was first computed, one `format!` per byte: the inline id
    /// must give the very same text, or receivers would see new ids for old deliveries.
    fn webhook_id_as_before(event: &EventId, subscription: &SubscriptionId) -> String {
        let mut h = Sha256::new();
        h.update(event.as_str().as_bytes());
        h.update([0u8]);
        h.update(subscription.as_str().as_bytes());
        let digest = h.finalize();
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!("msg_{hex}")
    }

    #[test]
    fn the_inline_webhook_id_is_the_text_of_before() {
        for i in 0..2_000 {
            let event = if i % 3 == 0 {
                EventId::generate()
            } else {
                EventId::parse(&format!("evt_{i}")).unwrap()
            };
            let sub = if i % 2 == 0 {
                SubscriptionId::generate()
            } else {
                SubscriptionId::new(format!("sub_{}", i * 7))
            };
            let id = webhook_id(&event, &sub);
            let before = webhook_id_as_before(&event, &sub);
            assert_eq!(id.as_str(), before);
            assert_eq!(id.to_string(), before);
            assert_eq!(format!("{id:?}"), format!("{before:?}"));
            assert_eq!(WebhookId::parse(&before), Some(id));
            let json = serde_json::to_string(&id).unwrap();
            assert_eq!(json, format!("\"{before}\""));
            assert_eq!(serde_json::from_str::<WebhookId>(&json).unwrap(), id);
        }
        for bad in [
            "",
            "msg_",
            "msg_0123456789abcdef0123456789ABCDEF",
            "evt_0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(WebhookId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_shared_body_is_the_envelope_serialized() {
        for data in [
            serde_json::json!({"id": "42", "name": "Ada", "nested": {"a": [1, 2.5, null, true]}}),
            serde_json::json!([]),
            serde_json::json!("text with \"quotes\" and ü"),
        ] {
            let event = Event::new(
                AppId::parse("a").unwrap(),
                EventType::parse("invoice.paid").unwrap(),
                ObjectType::parse("invoice").unwrap(),
                data,
            );
            assert_eq!(Envelope::body_of(&event), Envelope::of(&event).to_body());
        }
    }

    #[test]
    fn actor_and_changes_are_added_after_data_only_when_present() {
        let plain = Event::new(
            AppId::parse("a").unwrap(),
            EventType::parse("update").unwrap(),
            ObjectType::parse("invoice").unwrap(),
            serde_json::json!({"id": "inv_1"}),
        );
        let body = String::from_utf8(Envelope::body_of(&plain).to_vec()).unwrap();
        assert!(body.ends_with(r#""data":{"id":"inv_1"}}"#), "{body}");
        let event = plain.with_context(
            Some(Actor::new("u_1".into(), None, Some("Ada".into())).unwrap()),
            Changes::from_json(&serde_json::json!({"status": ["draft", "paid"]})).unwrap(),
        );
        let body = String::from_utf8(Envelope::body_of(&event).to_vec()).unwrap();
        assert!(
            body.ends_with(
                r#""data":{"id":"inv_1"},"actor":{"id":"u_1","name":"Ada"},"changes":{"status":["draft","paid"]}}"#
            ),
            "{body}"
        );
        assert_eq!(Envelope::body_of(&event), Envelope::of(&event).to_body());
        let back: Envelope = serde_json::from_str(&body).unwrap();
        assert_eq!(back.actor, event.actor);
        assert_eq!(back.changes, event.changes);
    }

    #[test]
    fn an_inbound_events_source_is_added_last_only_when_present() {
        let mut event = Event::new(
            AppId::parse("a").unwrap(),
            EventType::parse("push").unwrap(),
            ObjectType::parse("repository").unwrap(),
            serde_json::json!({"ref": "main"}),
        );
        let body = String::from_utf8(Envelope::body_of(&event).to_vec()).unwrap();
        assert!(!body.contains("source"), "{body}");
        event.source = Some("src_0123".into());
        let body = String::from_utf8(Envelope::body_of(&event).to_vec()).unwrap();
        assert!(
            body.ends_with(r#""data":{"ref":"main"},"source":"src_0123"}"#),
            "{body}"
        );
        assert_eq!(Envelope::body_of(&event), Envelope::of(&event).to_body());
        let back: Envelope = serde_json::from_str(&body).unwrap();
        assert_eq!(back.source.as_deref(), Some("src_0123"));
    }
}
