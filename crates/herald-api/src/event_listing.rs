//! The app's events, newest first, filtered by type, object type and time.

use axum::extract::State;
use axum::Json;
use herald_core::{AppId, EventType, ObjectType};
use herald_store::{EventQuery, ListedEvent};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::apps::{Page, PageParams};
use crate::deliveries::time_window;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::event_status::PublishedEventOut;
use crate::extract::{Query, Tenant};
use crate::state::AppState;

/// An event of a listing: as published, with the webhooks it matched. Its delivery
/// status per webhook is at `GET /v1/events/{id}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventSummaryOut {
    #[serde(flatten)]
    pub event: PublishedEventOut,
    /// Webhooks its fan-out sent it to.
    pub sent_to: Vec<String>,
    /// Webhooks it matched but was not sent to (disabled then).
    pub not_sent: Vec<String>,
}

impl From<ListedEvent> for EventSummaryOut {
    fn from(l: ListedEvent) -> Self {
        let ids = |v: Vec<herald_core::SubscriptionId>| v.iter().map(|s| s.to_string()).collect();
        Self {
            event: PublishedEventOut::from(&l.event),
            sent_to: ids(l.sent_to),
            not_sent: ids(l.not_sent),
        }
    }
}

/// Filters of the event listing; each one narrows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
pub struct EventListParams {
    /// Only events of this type.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    #[param(rename = "type")]
    pub event_type: Option<String>,
    /// Only events about this object type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_type: Option<String>,
    /// Only events published at or after this time (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Only events published before this time (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

impl EventListParams {
    /// The store's query, each value checked (422 naming the parameter otherwise).
    pub fn query(&self) -> ApiResult<EventQuery> {
        let (since, until) = time_window(&self.since, &self.until)?;
        Ok(EventQuery {
            event_type: self
                .event_type
                .as_deref()
                .map(EventType::parse)
                .transpose()
                .map_err(|e| ApiError::Validation(format!("type: {e}")))?,
            object_type: self
                .object_type
                .as_deref()
                .map(ObjectType::parse)
                .transpose()
                .map_err(|e| ApiError::Validation(format!("object_type: {e}")))?,
            since,
            until,
        })
    }
}

/// A page of `app`'s events, newest first, filtered.
pub async fn list_events_of(
    state: &AppState,
    app: &AppId,
    p: &PageParams,
    f: &EventListParams,
) -> ApiResult<Page<EventSummaryOut>> {
    let query = f.query()?;
    let page = state
        .history
        .list_events(app, &query, p.limit()?, p.cursor.as_deref())
        .await?;
    Ok(Page {
        data: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    })
}

/// The app's events, newest first. Events that matched a webhook are kept for the
/// history retention; a narrow filter may answer a short (even empty) page with a
/// `next_cursor` to go on.
#[utoipa::path(get, path = "/v1/events", tag = "events", params(PageParams, EventListParams),
    responses((status = 200, body = Page<EventSummaryOut>), (status = 422, body = ErrorBody)), security(("app_key" = [])))]
pub async fn list_events(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Query(p): Query<PageParams>,
    Query(f): Query<EventListParams>,
) -> ApiResult<Json<Page<EventSummaryOut>>> {
    list_events_of(&state, &app, &p, &f).await.map(Json)
}
