//! Inbound source routes (`/v1/sources`), scoped to the caller's app: CRUD and the
//! log of received requests. Credentials are write-only: responses mask them, and an
//! update that sends a masked value back keeps the stored one. The ingest itself is
//! in [`crate::ingest`].

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use herald_core::inbound::{EventTypeRule, Source, SourceAuth, SourceId};
use herald_core::{AppId, ObjectType};
use herald_store::SourceRequest;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::apps::{Page, PageParams};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Body, Query, Tenant};
use crate::state::AppState;

/// Most sources one app may have; creating one more answers 422.
pub const MAX_SOURCES_PER_APP: usize = 100;

/// Object type of a source's events when none is given.
pub const DEFAULT_OBJECT_TYPE: &str = "inbound";

/// Creating a source.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceIn {
    /// A name for people, 1 to 256 bytes.
    pub name: String,
    /// `{"mode": "none"}`; `{"mode": "basic", "username", "password"}`;
    /// `{"mode": "api_key", "in": "header"|"query", "name", "key"}`;
    /// `{"mode": "hmac", "header", "algorithm": "sha256"|"sha1", "encoding":
    /// "hex"|"base64", "prefix"?, "secret"}`; or a preset: `{"mode":
    /// "standard_webhooks", "secret": "whsec_…", "tolerance_secs"?: 300}`,
    /// `{"mode": "github", "secret"}`, `{"mode": "stripe", "secret",
    /// "tolerance_secs"?: 300}`, `{"mode": "shopify", "secret"}`. Write-only.
    #[schema(value_type = Object)]
    pub auth: SourceAuth,
    /// `{"from": "fixed", "value"}`, `{"from": "header", "name"}` or `{"from":
    /// "json_pointer", "pointer"}`; presets default to `X-GitHub-Event`,
    /// `X-Shopify-Topic` or the body's `/type`. Required for the other modes.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub event_type: Option<EventTypeRule>,
    /// The object type of its events (default `inbound`).
    #[serde(default)]
    pub object_type: Option<String>,
}

/// Changing a source: the fields given, and only those.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourcePatch {
    /// A new name.
    pub name: Option<String>,
    /// As in [`SourceIn`]; a credential sent back masked (`***`) in the same mode
    /// keeps the stored one.
    #[schema(value_type = Option<Object>)]
    pub auth: Option<SourceAuth>,
    /// A new event type rule, as in [`SourceIn`].
    #[schema(value_type = Option<Object>)]
    pub event_type: Option<EventTypeRule>,
    /// A new object type.
    pub object_type: Option<String>,
}

/// A source, its credentials masked.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SourceOut {
    /// `src_` and 32 hex digits (128 random bits).
    pub id: String,
    /// Its name.
    pub name: String,
    /// Where senders post: `/in/{id}` on the ingest URL.
    pub ingest_path: String,
    /// The auth settings, every credential shown as `***`.
    #[schema(value_type = Object)]
    pub auth: SourceAuth,
    /// How the event type is chosen.
    #[schema(value_type = Object)]
    pub event_type: EventTypeRule,
    /// The object type of its events.
    pub object_type: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<&Source> for SourceOut {
    fn from(s: &Source) -> Self {
        Self {
            id: s.id.to_string(),
            name: s.name.clone(),
            ingest_path: format!("/in/{}", s.id),
            auth: s.auth.masked(),
            event_type: s.event_type.clone(),
            object_type: s.object_type.to_string(),
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

/// One request a source received.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SourceRequestOut {
    /// When it arrived.
    pub received_at: DateTime<Utc>,
    /// `accepted`, `duplicate` (a delivery id seen in the last 24 h: not published
    /// again) or `rejected`.
    pub outcome: String,
    /// The status the sender got.
    pub status: u16,
    /// Why it was rejected.
    pub reason: Option<String>,
    /// Bytes of the body.
    pub size: u64,
    /// Its `Content-Type`, cut at 128 characters.
    pub content_type: Option<String>,
    /// The sender's delivery id, where its scheme has one.
    pub delivery_id: Option<String>,
    /// The event it became (for a duplicate, the first request's).
    pub event_id: Option<String>,
}

impl From<SourceRequest> for SourceRequestOut {
    fn from(r: SourceRequest) -> Self {
        Self {
            received_at: r.received_at,
            outcome: r.outcome,
            status: r.status,
            reason: r.reason,
            size: r.size,
            content_type: r.content_type,
            delivery_id: r.delivery_id,
            event_id: r.event_id,
        }
    }
}

fn object_type(value: Option<&str>) -> ApiResult<ObjectType> {
    ObjectType::parse(value.unwrap_or(DEFAULT_OBJECT_TYPE))
        .map_err(|e| ApiError::Validation(format!("object_type: {e}")))
}

/// Path ids of a source: one that cannot exist is not found.
fn path_source(id: &str) -> ApiResult<SourceId> {
    SourceId::parse(id).ok_or_else(|| ApiError::NotFound(format!("source {id}")))
}

/// `app`'s source `id` (404 for another app's).
async fn load(state: &AppState, app: &AppId, id: &str) -> ApiResult<Source> {
    state
        .sources()?
        .get(app, &path_source(id)?)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("source {id}")))
}

/// Creates a source of `app`.
pub async fn create_source(state: &AppState, app: &AppId, input: SourceIn) -> ApiResult<SourceOut> {
    let source = Source::new(
        app.clone(),
        input.name,
        input.auth,
        input.event_type,
        object_type(input.object_type.as_deref())?,
    )
    .map_err(|e| ApiError::Validation(e.to_string()))?;
    let existing = state
        .sources()?
        .list(app, MAX_SOURCES_PER_APP as i32, None)
        .await?;
    if existing.items.len() >= MAX_SOURCES_PER_APP {
        return Err(ApiError::Validation(format!(
            "an app may have at most {MAX_SOURCES_PER_APP} sources; delete one first"
        )));
    }
    state.sources()?.create(&source).await?;
    Ok(SourceOut::from(&source))
}

#[utoipa::path(post, path = "/v1/sources", tag = "sources", request_body = SourceIn,
    responses((status = 201, body = SourceOut), (status = 422, body = ErrorBody)), security(("app_key" = [])))]
pub async fn create(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Body(input): Body<SourceIn>,
) -> ApiResult<(StatusCode, Json<SourceOut>)> {
    let out = create_source(&state, &app, input).await?;
    Ok((StatusCode::CREATED, Json(out)))
}

#[utoipa::path(get, path = "/v1/sources", tag = "sources", params(PageParams),
    responses((status = 200, body = Page<SourceOut>)), security(("app_key" = [])))]
pub async fn list(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Query(p): Query<PageParams>,
) -> ApiResult<Json<Page<SourceOut>>> {
    let page = state
        .sources()?
        .list(&app, p.limit()?, p.cursor.as_deref())
        .await?;
    Ok(Json(Page {
        data: page.items.iter().map(SourceOut::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

#[utoipa::path(get, path = "/v1/sources/{id}", tag = "sources", params(("id" = String, Path)),
    responses((status = 200, body = SourceOut), (status = 404, body = ErrorBody)), security(("app_key" = [])))]
pub async fn get(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<SourceOut>> {
    Ok(Json(SourceOut::from(&load(&state, &app, &id).await?)))
}

#[utoipa::path(patch, path = "/v1/sources/{id}", tag = "sources", params(("id" = String, Path)), request_body = SourcePatch,
    responses((status = 200, body = SourceOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "The source changed under the PATCH; try again")), security(("app_key" = [])))]
pub async fn update(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Body(patch): Body<SourcePatch>,
) -> ApiResult<Json<SourceOut>> {
    let before = load(&state, &app, &id).await?;
    let mut after = before.clone();
    if let Some(name) = patch.name {
        after.name = name;
    }
    if let Some(auth) = patch.auth {
        after.auth = auth.unmask(&before.auth);
    }
    if let Some(rule) = patch.event_type {
        after.event_type = rule;
    }
    if let Some(t) = patch.object_type {
        after.object_type = object_type(Some(&t))?;
    }
    after
        .validate()
        .map_err(|e| ApiError::Validation(e.to_string()))?;
    after.updated_at = Utc::now();
    state.sources()?.update(&before, &after).await?;
    Ok(Json(SourceOut::from(&after)))
}

#[utoipa::path(delete, path = "/v1/sources/{id}", tag = "sources", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)), security(("app_key" = [])))]
pub async fn delete(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.sources()?.delete(&app, &path_source(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/sources/{id}/requests", tag = "sources", params(("id" = String, Path), PageParams),
    responses((status = 200, body = Page<SourceRequestOut>), (status = 404, body = ErrorBody)), security(("app_key" = [])),
    description = "The requests the source received, newest first, at most 100 a page; kept for the history retention.")]
pub async fn requests(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(p): Query<PageParams>,
) -> ApiResult<Json<Page<SourceRequestOut>>> {
    let source = load(&state, &app, &id).await?;
    let page = state
        .sources()?
        .requests(
            &app,
            &source.id,
            p.limit_at_most(herald_store::MAX_REQUEST_PAGE)?,
            p.cursor.as_deref(),
        )
        .await?;
    Ok(Json(Page {
        data: page.items.into_iter().map(SourceRequestOut::from).collect(),
        next_cursor: page.next_cursor,
    }))
}
