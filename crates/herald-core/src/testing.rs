//! Fixtures for tests across the workspace (feature `testing`): the events and dead
//! letters every suite builds, written once.

use chrono::{DateTime, Utc};

use crate::attempt::{Attempt, AttemptOutcome};
use crate::event::{AppId, Event, EventType, ObjectType};
use crate::message::{DeadLetter, DeliveryTask};
use crate::subscription::{EventFilter, ObjectTypeFilter, Route, Subscription, SubscriptionId};

/// An event of `app` and type `event_type` on a `user`, with data `{"id": "42"}`.
pub fn event(app: &str, event_type: &str) -> Event {
    Event::new(
        AppId::parse(app).expect("a valid app id"),
        EventType::parse(event_type).expect("a valid event type"),
        ObjectType::parse("user").expect("a valid object type"),
        serde_json::json!({"id": "42"}),
    )
}

/// The dead letter of `event`'s delivery to `subscription` after all 8 attempts
/// failed with HTTP `status`, parked at `parked_at` (its first attempt's time when
/// `None`).
pub fn parked(
    event: Event,
    subscription: &str,
    status: u16,
    parked_at: Option<DateTime<Utc>>,
) -> DeadLetter {
    let mut delivery = DeliveryTask::first(event, SubscriptionId::new(subscription));
    delivery.attempt = 8;
    delivery.last_result = Some(format!("HTTP {status}"));
    let parked_at = parked_at.unwrap_or(delivery.first_attempt_at);
    DeadLetter::Failed {
        reason: "all 8 attempts failed".into(),
        delivery,
        attempts: 8,
        last_status: Some(status),
        last_error: None,
        parked_at,
    }
}

/// The route of an active webhook of app `shop` posting every event to `url`, with
/// a fresh secret.
pub fn route(url: &str) -> Route {
    Subscription::new(
        AppId::parse("shop").expect("a valid app id"),
        url,
        EventFilter::All,
        ObjectTypeFilter::All,
    )
    .route()
}

/// Attempt 1 of `event` to webhook `subscription`, made at `at`, that ended with
/// `outcome`: HTTP 200 when it succeeded, 500 (error kind `http_status`) when it failed,
/// no request when not sent; 7 ms; no retry due.
pub fn attempt(
    event: &Event,
    subscription: &str,
    outcome: AttemptOutcome,
    at: DateTime<Utc>,
) -> Attempt {
    let sub = SubscriptionId::new(subscription);
    let (status_code, error_kind) = match outcome {
        AttemptOutcome::Succeeded => (Some(200), None),
        AttemptOutcome::Failed => (Some(500), Some("http_status".to_owned())),
        AttemptOutcome::NotSent => (None, Some("endpoint_disabled".to_owned())),
    };
    Attempt {
        attempt: u32::from(outcome != AttemptOutcome::NotSent),
        attempted_at: at,
        outcome,
        status_code,
        latency_ms: 7,
        error_kind,
        ..Attempt::not_sent(event, &sub, "", None)
    }
}

/// A UTC time from RFC 3339 text (`2026-12-02T11:00:00Z`).
pub fn utc(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .expect("an RFC 3339 time")
        .to_utc()
}

/// [`attempt`] of a fresh `update` event of app `shop` to webhook `sub_1`, made at
/// `time` (RFC 3339), that took `latency_ms`.
pub fn timed_attempt(outcome: AttemptOutcome, time: &str, latency_ms: u64) -> Attempt {
    Attempt {
        latency_ms,
        ..attempt(&event("shop", "update"), "sub_1", outcome, utc(time))
    }
}
