//! Ordered delivery per key (docs/delivery.md, "Ordered delivery"): the names an
//! ordered event or delivery travels under on the SQS FIFO queue.
//!
//! An event published with an `ordering_key` goes onto the FIFO queue in the message
//! group of (app, key), so its fan-out happens in publish order; the delivery to each
//! webhook with `ordered: true` goes back onto it in the group of (webhook, key), so one
//! key's deliveries to one webhook are attempted one at a time, in that order. Group
//! and deduplication ids are SHA-256 digests (64 hex digits): SQS allows 128 characters
//! of a narrow set, and a key may hold any character an event may.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::event::{check_text, is_queue_safe_char, AppId, EventId, ValidationError};
use crate::subscription::SubscriptionId;

/// Longest accepted ordering key, in bytes.
pub const MAX_ORDERING_KEY_LEN: usize = 256;

/// What orders an app's events for its ordered webhooks (the object's id, say): the
/// deliveries of one key to one ordered webhook are made in publish order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct OrderingKey(String);

impl OrderingKey {
    /// Validates a key: 1–256 bytes of printable characters the queue carries.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        check_text(
            "ordering_key",
            s,
            MAX_ORDERING_KEY_LEN,
            "printable characters",
            |c| is_queue_safe_char(c) && !c.is_control(),
        )?;
        Ok(Self(s.to_owned()))
    }

    /// The key as published.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrderingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for OrderingKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The hex SHA-256 of the parts, each ended by a NUL (no part holds one), so that
/// different tuples never give the same text.
fn digest(parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hex::encode(hash.finalize())
}

/// The message group of an ordered event's fan-out: (app, key).
pub fn event_group(app: &AppId, key: &OrderingKey) -> String {
    digest(&["event", app.as_str(), key.as_str()])
}

/// The message group of an ordered webhook's deliveries of one key: (webhook, key).
pub fn delivery_group(webhook: &SubscriptionId, key: &OrderingKey) -> String {
    digest(&["delivery", webhook.as_str(), key.as_str()])
}

/// The deduplication id of an ordered event on the FIFO queue: a re-sent publish
/// within SQS's five-minute window is queued once.
pub fn event_dedup(event: &EventId) -> String {
    digest(&["event", event.as_str()])
}

/// The deduplication id of an ordered delivery: its identity (event, webhook), so an
/// event fanned out twice (its record came back) queues the delivery once.
pub fn delivery_dedup(event: &EventId, webhook: &SubscriptionId) -> String {
    digest(&["delivery", event.as_str(), webhook.as_str()])
}

/// The attempt an ordered delivery's receive is: a failed attempt leaves its message
/// on the queue (invisible until the retry is due) rather than queuing a new one, so
/// the queue's receive count says how many attempts came before. `first` is the
/// attempt the message was queued for (1), `receive_count` SQS's
/// `ApproximateReceiveCount` (1 on the first receive).
pub fn attempt_of(first: u32, receive_count: u32) -> u32 {
    first.saturating_add(receive_count.saturating_sub(1)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_bounded_and_printable() {
        assert_eq!(OrderingKey::parse("inv_1").unwrap().as_str(), "inv_1");
        assert!(OrderingKey::parse("ünïcode / with spaces").is_ok());
        assert!(OrderingKey::parse("").is_err());
        assert!(OrderingKey::parse("a\u{7}b").is_err());
        assert!(OrderingKey::parse(&"k".repeat(MAX_ORDERING_KEY_LEN)).is_ok());
        let err = OrderingKey::parse(&"k".repeat(MAX_ORDERING_KEY_LEN + 1)).unwrap_err();
        assert!(err.to_string().contains("256"), "{err}");
    }

    #[test]
    fn groups_are_per_webhook_and_key_and_fit_sqs() {
        let (a, b) = (
            OrderingKey::parse("a").unwrap(),
            OrderingKey::parse("b").unwrap(),
        );
        let (w1, w2) = (SubscriptionId::new("sub_1"), SubscriptionId::new("sub_2"));
        let g = delivery_group(&w1, &a);
        assert_eq!(g.len(), 64);
        assert!(g.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(g, delivery_group(&w1, &a));
        assert_ne!(g, delivery_group(&w1, &b));
        assert_ne!(g, delivery_group(&w2, &a));
        // The NUL separator: ("ab", "c") is not ("a", "bc").
        let ab = OrderingKey::parse("bc").unwrap();
        assert_ne!(
            delivery_group(&SubscriptionId::new("a"), &ab),
            delivery_group(
                &SubscriptionId::new("ab"),
                &OrderingKey::parse("c").unwrap()
            )
        );
        let app = AppId::parse("shop").unwrap();
        assert_ne!(
            event_group(&app, &a),
            delivery_group(&SubscriptionId::new("shop"), &a)
        );
        let e = EventId::parse("evt_1").unwrap();
        assert_ne!(delivery_dedup(&e, &w1), delivery_dedup(&e, &w2));
    }

    #[test]
    fn the_attempt_follows_the_receive_count() {
        assert_eq!(attempt_of(1, 1), 1);
        assert_eq!(attempt_of(1, 3), 3);
        assert_eq!(attempt_of(1, 0), 1);
    }
}
