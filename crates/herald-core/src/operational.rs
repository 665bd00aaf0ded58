//! Operational events: Herald's own events about an app's endpoints, delivered like any
//! other event to the app's webhooks that list them (signed, retried, in the history).
//!
//! - `herald.webhook.disabled`: an endpoint was disabled (by repeated failed
//!   deliveries, a 410, or the API), with the reason.
//! - `herald.webhook.enabled`: an endpoint was enabled again through the API.
//! - `herald.delivery.exhausted`: a delivery was parked on the DLQ after its last
//!   attempt (or a 410, or a refused address).
//! - `herald.delivery.recovered`: an endpoint whose deliveries had failed for good
//!   succeeded again.
//!
//! **No loops.** A webhook receives them only by listing them (a webhook taking every
//! type, `*`, does not), never one about itself (the event names its subject,
//! `data.webhook_id`, and the fan-out skips it), and the failures of an operational
//! event's own deliveries announce nothing further (no `exhausted` or `recovered`
//! about them). Applications cannot publish `herald.*` types.

use serde_json::json;

use crate::event::{AppId, Event, EventType, ObjectType};
use crate::subscription::SubscriptionId;

/// The prefix reserved for operational event types.
pub const PREFIX: &str = "herald.";
/// An endpoint was disabled.
pub const WEBHOOK_DISABLED: &str = "herald.webhook.disabled";
/// An endpoint was enabled again.
pub const WEBHOOK_ENABLED: &str = "herald.webhook.enabled";
/// A delivery was parked after its last attempt.
pub const DELIVERY_EXHAUSTED: &str = "herald.delivery.exhausted";
/// An endpoint succeeded again after deliveries to it had failed for good.
pub const DELIVERY_RECOVERED: &str = "herald.delivery.recovered";

impl EventType {
    /// Whether this is one of Herald's operational types (`herald.…`).
    pub fn is_operational(&self) -> bool {
        self.as_str().starts_with(PREFIX)
    }
}

fn operational(app: &AppId, event_type: &str, object_type: &str, data: serde_json::Value) -> Event {
    Event::new(
        app.clone(),
        EventType::parse(event_type).expect("operational types are valid"),
        ObjectType::parse(object_type).expect("operational object types are valid"),
        data,
    )
}

/// `herald.webhook.disabled` about `webhook` (at `url`), with the reason.
pub fn webhook_disabled(app: &AppId, webhook: &SubscriptionId, url: &str, reason: &str) -> Event {
    operational(
        app,
        WEBHOOK_DISABLED,
        "webhook",
        json!({"webhook_id": webhook, "url": url, "reason": reason}),
    )
}

/// `herald.webhook.enabled` about `webhook` (at `url`).
pub fn webhook_enabled(app: &AppId, webhook: &SubscriptionId, url: &str) -> Event {
    operational(
        app,
        WEBHOOK_ENABLED,
        "webhook",
        json!({"webhook_id": webhook, "url": url}),
    )
}

/// What `herald.delivery.exhausted` tells about a parked delivery.
#[derive(Debug, Clone)]
pub struct Exhausted<'a> {
    /// The event whose delivery was parked.
    pub event: &'a Event,
    /// The webhook it was for, and its URL.
    pub webhook: &'a SubscriptionId,
    pub url: &'a str,
    /// The delivery's `webhook-id`.
    pub webhook_message_id: &'a str,
    /// Attempts made, and why it was parked.
    pub attempts: u32,
    pub reason: &'a str,
    pub last_status: Option<u16>,
    pub last_error: Option<&'a str>,
}

/// `herald.delivery.exhausted` about a parked delivery.
pub fn delivery_exhausted(e: &Exhausted<'_>) -> Event {
    operational(
        &e.event.app_id,
        DELIVERY_EXHAUSTED,
        "delivery",
        json!({
            "webhook_id": e.webhook,
            "url": e.url,
            "event_id": e.event.id,
            "event_type": e.event.event_type,
            "webhook_message_id": e.webhook_message_id,
            "attempts": e.attempts,
            "reason": e.reason,
            "last_status": e.last_status,
            "last_error": e.last_error,
        }),
    )
}

/// `herald.delivery.recovered` about `webhook` (at `url`), which just succeeded.
pub fn delivery_recovered(app: &AppId, webhook: &SubscriptionId, url: &str) -> Event {
    operational(
        app,
        DELIVERY_RECOVERED,
        "webhook",
        json!({"webhook_id": webhook, "url": url}),
    )
}

/// The webhook an operational event is about (`data.webhook_id`); `None` for other
/// events.
pub fn subject(event: &Event) -> Option<SubscriptionId> {
    if !event.event_type.is_operational() {
        return None;
    }
    let data = event.data.to_value();
    data.get("webhook_id")
        .and_then(|v| v.as_str())
        .map(SubscriptionId::new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subscription::EventFilter;

    #[test]
    fn operational_types_need_listing_and_name_their_subject() {
        let app = AppId::parse("shop").unwrap();
        let sub = SubscriptionId::new("sub_1");
        let e = webhook_disabled(&app, &sub, "https://x.example/h", "410 Gone");
        assert!(e.event_type.is_operational());
        assert_eq!(subject(&e), Some(sub.clone()));
        assert!(
            !EventFilter::All.matches(&e.event_type),
            "`*` does not take them"
        );
        assert!(EventFilter::parse(&[WEBHOOK_DISABLED])
            .unwrap()
            .matches(&e.event_type));
        let data = e.data.to_value();
        assert_eq!(data["reason"], "410 Gone");
        assert_eq!(data["url"], "https://x.example/h");

        let plain = crate::testing::event("shop", "update");
        assert_eq!(subject(&plain), None);
        assert!(EventFilter::All.matches(&plain.event_type));
        let x = delivery_exhausted(&Exhausted {
            event: &plain,
            webhook: &sub,
            url: "https://x.example/h",
            webhook_message_id: "msg_1",
            attempts: 8,
            reason: "all 8 attempts failed",
            last_status: Some(500),
            last_error: None,
        });
        assert_eq!(x.event_type.as_str(), DELIVERY_EXHAUSTED);
        assert_eq!(x.data.to_value()["event_id"], plain.id.as_str());
        assert_eq!(subject(&x), Some(sub));
    }
}
