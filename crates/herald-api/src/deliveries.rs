//! The delivery history: an app's, a webhook's and an event's attempts, filtered.

use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, Utc};
use herald_core::{AppId, Attempt, AttemptOutcome, EventType};
use herald_store::AttemptFilter;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::apps::{Page, PageParams};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::events::path_event;
use crate::extract::{Query, Tenant};
use crate::state::AppState;
use crate::webhooks::load;

/// One delivery attempt (or a delivery not sent) from the history.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AttemptOut {
    pub event_id: String,
    pub event_type: String,
    pub subscription_id: String,
    pub webhook_id: String,
    pub attempt: u32,
    pub attempted_at: chrono::DateTime<chrono::Utc>,
    /// `succeeded`, `failed` or `not_sent`.
    pub outcome: String,
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    pub error_kind: Option<String>,
    pub error: Option<String>,
    pub response_body: String,
    pub next_attempt_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<Attempt> for AttemptOut {
    fn from(a: Attempt) -> Self {
        let outcome = serde_json::to_value(a.outcome)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        Self {
            event_id: a.event_id.to_string(),
            event_type: a.event_type.to_string(),
            subscription_id: a.subscription_id.to_string(),
            webhook_id: a.webhook_id.to_string(),
            attempt: a.attempt,
            attempted_at: a.attempted_at,
            outcome,
            status_code: a.status_code,
            latency_ms: a.latency_ms,
            error_kind: a.error_kind,
            error: a.error,
            response_body: a.response_body,
            next_attempt_at: a.next_attempt_at,
        }
    }
}

/// Filters of a delivery listing; each one narrows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
pub struct DeliveryFilterParams {
    /// Only attempts that ended so: `succeeded`, `failed` or `not_sent`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// Only attempts made at or after this time (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Only attempts made before this time (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Only attempts of events of this type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
}

impl DeliveryFilterParams {
    /// The store's filter, each value checked (422 naming the parameter otherwise).
    pub fn filter(&self) -> ApiResult<AttemptFilter> {
        let outcome = match self.outcome.as_deref() {
            None => None,
            Some("succeeded") => Some(AttemptOutcome::Succeeded),
            Some("failed") => Some(AttemptOutcome::Failed),
            Some("not_sent") => Some(AttemptOutcome::NotSent),
            Some(other) => {
                return Err(ApiError::Validation(format!(
                    "outcome must be succeeded, failed or not_sent, not {other:?}"
                )))
            }
        };
        let (since, until) = time_window(&self.since, &self.until)?;
        let event_type = self
            .event_type
            .as_deref()
            .map(EventType::parse)
            .transpose()
            .map_err(|e| ApiError::Validation(format!("event_type: {e}")))?;
        Ok(AttemptFilter {
            outcome,
            since,
            until,
            event_type,
            ..Default::default()
        })
    }
}

/// The parameter `name`'s time, if given (422 naming it unless RFC 3339).
pub(crate) fn parse_time(name: &str, value: Option<&str>) -> ApiResult<Option<DateTime<Utc>>> {
    value
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    ApiError::Validation(format!(
                        "{name} must be an RFC 3339 time such as 2026-12-01T10:00:00Z, not {v:?}"
                    ))
                })
        })
        .transpose()
}

/// A time of the API.
type Time = DateTime<Utc>;

/// The window `since`..`until` of a listing, each end optional (422 unless each is
/// RFC 3339 and `since` comes first).
pub(crate) fn time_window(
    since: &Option<String>,
    until: &Option<String>,
) -> ApiResult<(Option<Time>, Option<Time>)> {
    let (since, until) = (
        parse_time("since", since.as_deref())?,
        parse_time("until", until.as_deref())?,
    );
    if let (Some(s), Some(u)) = (since, until) {
        if s >= u {
            return Err(ApiError::Validation(
                "since must come before until".to_owned(),
            ));
        }
    }
    Ok((since, until))
}

/// Whose deliveries a listing holds.
#[derive(Debug, Clone, Copy)]
pub enum DeliveryScope<'a> {
    /// Every webhook of the app.
    App,
    /// One webhook of the app, by id (404 for another app's).
    Webhook(&'a str),
    /// One event of the app, by id, to every webhook.
    Event(&'a str),
}

/// A page of `app`'s delivery attempts in `scope`, newest first, filtered.
pub async fn list_attempts(
    state: &AppState,
    app: &AppId,
    scope: DeliveryScope<'_>,
    p: &PageParams,
    f: &DeliveryFilterParams,
) -> ApiResult<Page<AttemptOut>> {
    let filter = f.filter()?;
    let (limit, cursor) = (p.limit()?, p.cursor.as_deref());
    let page = match scope {
        DeliveryScope::App => state.history.for_app(app, &filter, limit, cursor).await?,
        DeliveryScope::Webhook(id) => {
            let sub = load(state, app, id).await?;
            state
                .history
                .for_subscription(app, &sub.id, &filter, limit, cursor)
                .await?
        }
        DeliveryScope::Event(id) => {
            let event = path_event(id)?;
            state
                .history
                .for_event(app, &event, &filter, limit, cursor)
                .await?
        }
    };
    Ok(Page {
        data: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    })
}

/// A webhook's deliveries, newest first, filtered.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "deliveries", params(("id" = String, Path), PageParams, DeliveryFilterParams),
    responses((status = 200, body = Page<AttemptOut>), (status = 404, body = ErrorBody)), security(("app_key" = [])))]
pub async fn webhook_deliveries(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(p): Query<PageParams>,
    Query(f): Query<DeliveryFilterParams>,
) -> ApiResult<Json<Page<AttemptOut>>> {
    list_attempts(&state, &app, DeliveryScope::Webhook(&id), &p, &f)
        .await
        .map(Json)
}

/// An event's deliveries to every webhook, newest first, filtered.
#[utoipa::path(get, path = "/v1/events/{id}/deliveries", tag = "deliveries", params(("id" = String, Path), PageParams, DeliveryFilterParams),
    responses((status = 200, body = Page<AttemptOut>)), security(("app_key" = [])))]
pub async fn event_deliveries(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(p): Query<PageParams>,
    Query(f): Query<DeliveryFilterParams>,
) -> ApiResult<Json<Page<AttemptOut>>> {
    list_attempts(&state, &app, DeliveryScope::Event(&id), &p, &f)
        .await
        .map(Json)
}

/// Every delivery of the app's webhooks, newest first, filtered: one stream to follow
/// (`herald tail`) instead of one per webhook.
#[utoipa::path(get, path = "/v1/deliveries", tag = "deliveries", params(PageParams, DeliveryFilterParams),
    responses((status = 200, body = Page<AttemptOut>), (status = 422, body = ErrorBody)), security(("app_key" = [])))]
pub async fn app_deliveries(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Query(p): Query<PageParams>,
    Query(f): Query<DeliveryFilterParams>,
) -> ApiResult<Json<Page<AttemptOut>>> {
    list_attempts(&state, &app, DeliveryScope::App, &p, &f)
        .await
        .map(Json)
}
