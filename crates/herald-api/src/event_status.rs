//! One event as published, and where its delivery stands at each webhook it matched.

use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, Utc};
use herald_core::{AppId, Attempt, AttemptOutcome, SubscriptionId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::events::path_event;
use crate::extract::Tenant;
use crate::formats::{changes_out, ActorOut};
use crate::state::AppState;

/// An event as published: what `GET /v1/events/{id}` and the event listing both show
/// of it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PublishedEventOut {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub object_type: String,
    pub timestamp: DateTime<Utc>,
    /// The data exactly as published.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    /// Who made the change, when the publisher said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<ActorOut>,
    /// What changed, field → `[before, after]`, when the publisher said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<HashMap<String, Vec<Value>>>)]
    pub changes: Option<serde_json::Value>,
    /// What orders it for ordered webhooks, when the publisher said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordering_key: Option<String>,
    /// The inbound source (`src_…`) the event came in through, for events made from
    /// inbound webhooks (docs/inbound.md); absent for published ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl From<&herald_core::Event> for PublishedEventOut {
    fn from(event: &herald_core::Event) -> Self {
        Self {
            id: event.id.to_string(),
            event_type: event.event_type.to_string(),
            object_type: event.object_type.to_string(),
            timestamp: event.timestamp,
            data: event.data.to_value(),
            actor: event.actor.as_ref().map(ActorOut::from),
            changes: changes_out(event.changes.as_ref()),
            ordering_key: event.ordering_key.as_ref().map(ToString::to_string),
            source: event.source.clone(),
        }
    }
}

/// An event as published, with its delivery status per webhook.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventOut {
    #[serde(flatten)]
    pub event: PublishedEventOut,
    /// Every webhook the event matched, by webhook id.
    pub webhooks: Vec<WebhookStatusOut>,
}

/// Where an event's delivery to one webhook stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WebhookStatusOut {
    pub webhook_id: String,
    /// `succeeded` (an attempt answered 2xx); `failing` (a retry is due at `next_attempt_at`); `parked` (every
    /// attempt failed, or a 410 or a refused address: on the dead-letter queue);
    /// `not_sent` (the endpoint was disabled); `pending` (no attempt recorded yet).
    pub status: String,
    /// Requests made.
    pub attempts: u32,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_status_code: Option<u16>,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// The status at `webhook` from its attempts, newest first.
pub fn status_of(webhook: &SubscriptionId, newest_first: &[&Attempt]) -> WebhookStatusOut {
    let made: Vec<&&Attempt> = newest_first
        .iter()
        .filter(|a| a.outcome != AttemptOutcome::NotSent)
        .collect();
    let last = made.first();
    let status = if made.iter().any(|a| a.outcome == AttemptOutcome::Succeeded) {
        "succeeded"
    } else if let Some(last) = last {
        if last.next_attempt_at.is_some() {
            "failing"
        } else {
            "parked"
        }
    } else if newest_first.is_empty() {
        "pending"
    } else {
        "not_sent"
    };
    WebhookStatusOut {
        webhook_id: webhook.to_string(),
        status: status.to_owned(),
        attempts: made.len() as u32,
        last_attempt_at: last.map(|a| a.attempted_at),
        last_status_code: last.and_then(|a| a.status_code),
        next_attempt_at: last
            .filter(|_| status == "failing")
            .and_then(|a| a.next_attempt_at),
    }
}

/// `app`'s event `id` as published, with its delivery status at each webhook it
/// matched (404 for another app's).
pub async fn event_status(state: &AppState, app: &AppId, id: &str) -> ApiResult<EventOut> {
    let event_id = path_event(id)?;
    let stored = state
        .history
        .stored_event(app, &event_id)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "event {id} (events that matched a webhook are kept for the history retention)"
            ))
        })?;
    let mut webhooks: Vec<SubscriptionId> = stored
        .sent_to
        .iter()
        .chain(&stored.not_sent)
        .chain(stored.attempts.iter().map(|a| &a.subscription_id))
        .cloned()
        .collect();
    webhooks.sort();
    webhooks.dedup();
    let event = stored.event;
    Ok(EventOut {
        event: PublishedEventOut::from(&event),
        webhooks: webhooks
            .iter()
            .map(|w| {
                let of_w: Vec<&Attempt> = stored
                    .attempts
                    .iter()
                    .filter(|a| &a.subscription_id == w)
                    .collect();
                status_of(w, &of_w)
            })
            .collect(),
    })
}

/// An event of the caller's app, its data as published and its delivery status at
/// each webhook it matched.
#[utoipa::path(get, path = "/v1/events/{id}", tag = "events", params(("id" = String, Path)),
    responses((status = 200, body = EventOut), (status = 404, body = ErrorBody, description = "No such event of this app: never published, matched no webhook, or past the history retention")),
    security(("app_key" = [])))]
pub async fn get_event(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<EventOut>> {
    event_status(&state, &app, &id).await.map(Json)
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;
    use herald_core::testing;

    use super::*;

    fn attempt(outcome: AttemptOutcome, minutes_ago: i64, next: bool) -> Attempt {
        let at = Utc::now() - TimeDelta::minutes(minutes_ago);
        Attempt {
            next_attempt_at: next.then(|| at + TimeDelta::minutes(5)),
            ..testing::attempt(&testing::event("a", "update"), "sub_1", outcome, at)
        }
    }

    #[test]
    fn the_status_follows_the_newest_attempt_and_any_success() {
        use AttemptOutcome::{Failed, NotSent, Succeeded};
        let w = SubscriptionId::new("sub_1");
        let status = |attempts: &[Attempt]| {
            let refs: Vec<&Attempt> = attempts.iter().collect();
            status_of(&w, &refs)
        };
        assert_eq!(status(&[]).status, "pending");
        let failing = status(&[attempt(Failed, 1, true), attempt(Failed, 6, true)]);
        assert_eq!((failing.status.as_str(), failing.attempts), ("failing", 2));
        assert!(failing.next_attempt_at.is_some());
        let parked = status(&[attempt(Failed, 1, false), attempt(Failed, 6, true)]);
        assert_eq!(parked.status, "parked");
        assert_eq!(parked.next_attempt_at, None);
        let ok = status(&[attempt(Succeeded, 1, false), attempt(Failed, 6, true)]);
        assert_eq!((ok.status.as_str(), ok.attempts), ("succeeded", 2));
        let resent_after_success =
            status(&[attempt(Failed, 1, true), attempt(Succeeded, 6, false)]);
        assert_eq!(
            resent_after_success.status, "succeeded",
            "delivered once is delivered"
        );
        let off = status(&[attempt(NotSent, 1, false)]);
        assert_eq!((off.status.as_str(), off.attempts), ("not_sent", 0));
    }
}
