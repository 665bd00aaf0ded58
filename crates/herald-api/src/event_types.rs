//! The event-type catalog of the caller's app: names, descriptions and optional JSON
//! Schemas of `data` (docs/api.md, "Event types").

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use herald_core::{AppId, EventType};
use herald_store::{EventTypeChanges, EventTypeEntry};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::apps::{Page, PageParams};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Body, Query, Tenant};
use crate::schemas::compile;
use crate::state::AppState;
use crate::webhooks::MAX_DESCRIPTION_LEN;

/// Most types in one app's catalog.
pub const MAX_CATALOG_TYPES: u64 = 1000;
/// Most entries on one page: an entry is at most about 66 KB of JSON (a 64 KiB
/// schema), so a page stays near 3 MB, inside Lambda's 6 MB response limit.
pub const MAX_EVENT_TYPES_PER_PAGE: i32 = 50;

/// Adding a type to the catalog.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventTypeIn {
    /// The event type, as events carry it: a built-in kind (`create`, …) or a dotted
    /// name of `[a-zA-Z0-9_.]` such as `invoice.paid` (not `herald.…`, Herald's own).
    pub name: String,
    /// What it means, at most 1024 characters.
    #[serde(default)]
    pub description: String,
    /// A JSON Schema (draft 2020-12 unless its `$schema` names another) that the `data`
    /// of every event of this type must match; at most 64 KiB, no references outside
    /// itself. Absent: any data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub schema: Option<serde_json::Value>,
}

/// Changing a catalog entry: only the fields present change.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventTypePatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A new schema, or null to remove it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::webhooks::present"
    )]
    #[schema(value_type = Option<Object>)]
    pub schema: Option<serde_json::Value>,
}

/// A type of the app's catalog.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventTypeOut {
    pub name: String,
    pub description: String,
    /// The JSON Schema of `data`; null when any data goes.
    #[schema(value_type = Option<Object>)]
    pub schema: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<EventTypeEntry> for EventTypeOut {
    fn from(e: EventTypeEntry) -> Self {
        Self {
            name: e.name.to_string(),
            description: e.description,
            schema: e.schema.and_then(|s| serde_json::from_str(&s).ok()),
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

fn validation(msg: impl Into<String>) -> ApiError {
    ApiError::Validation(msg.into())
}

/// A type named in a request body: valid, and not one of Herald's own.
fn parse_name(name: &str) -> ApiResult<EventType> {
    let t = EventType::parse(name).map_err(|e| validation(format!("name: {e}")))?;
    if t.is_operational() {
        return Err(validation(format!(
            "name: {name:?} is reserved: types starting with {:?} are Herald's own operational events",
            herald_core::operational::PREFIX
        )));
    }
    Ok(t)
}

/// A type named in a path: anything that is not a type is simply not found.
fn path_name(name: &str) -> ApiResult<EventType> {
    EventType::parse(name).map_err(|_| ApiError::NotFound(format!("event type {name}")))
}

fn validate_description(d: &str) -> ApiResult<String> {
    if d.chars().count() > MAX_DESCRIPTION_LEN {
        return Err(validation(format!(
            "description is longer than {MAX_DESCRIPTION_LEN} characters"
        )));
    }
    Ok(d.to_owned())
}

/// A schema to store: it compiles; kept as compact JSON text.
fn validate_schema(schema: &serde_json::Value) -> ApiResult<String> {
    compile(schema).map_err(validation)?;
    Ok(schema.to_string())
}

/// Adds a type to `app`'s catalog.
pub async fn create_event_type(
    state: &AppState,
    app: &AppId,
    input: EventTypeIn,
) -> ApiResult<EventTypeOut> {
    let now = Utc::now();
    let entry = EventTypeEntry {
        app_id: app.clone(),
        name: parse_name(&input.name)?,
        description: validate_description(&input.description)?,
        schema: match &input.schema {
            None | Some(serde_json::Value::Null) => None,
            Some(s) => Some(validate_schema(s)?),
        },
        created_at: now,
        updated_at: now,
    };
    state
        .subscriptions
        .create_event_type(&entry, MAX_CATALOG_TYPES)
        .await?;
    state.schemas.forget(app, &entry.name).await;
    Ok(entry.into())
}

#[utoipa::path(post, path = "/v1/event-types", tag = "event types", request_body = EventTypeIn,
    responses((status = 201, body = EventTypeOut), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("app_key" = [])))]
pub async fn create(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Body(input): Body<EventTypeIn>,
) -> ApiResult<(StatusCode, Json<EventTypeOut>)> {
    let out = create_event_type(&state, &app, input).await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// The app's catalog in name order, at most 50 types a page.
#[utoipa::path(get, path = "/v1/event-types", tag = "event types", params(PageParams),
    responses((status = 200, body = Page<EventTypeOut>)), security(("app_key" = [])))]
pub async fn list(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Query(p): Query<PageParams>,
) -> ApiResult<Json<Page<EventTypeOut>>> {
    let page = state
        .subscriptions
        .list_event_types(
            &app,
            p.limit_at_most(MAX_EVENT_TYPES_PER_PAGE)?,
            p.cursor.as_deref(),
        )
        .await?;
    Ok(Json(Page {
        data: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One type of the catalog.
#[utoipa::path(get, path = "/v1/event-types/{name}", tag = "event types", params(("name" = String, Path)),
    responses((status = 200, body = EventTypeOut), (status = 404, body = ErrorBody)), security(("app_key" = [])))]
pub async fn get(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<EventTypeOut>> {
    let t = path_name(&name)?;
    state
        .subscriptions
        .get_event_type(&app, &t, true)
        .await?
        .map(|e| Json(e.into()))
        .ok_or_else(|| ApiError::NotFound(format!("event type {name}")))
}

/// Changes the description or the schema of a type (a new schema applies to events
/// published from then on: within 10 s on every API instance).
#[utoipa::path(patch, path = "/v1/event-types/{name}", tag = "event types", params(("name" = String, Path)), request_body = EventTypePatch,
    responses((status = 200, body = EventTypeOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("app_key" = [])))]
pub async fn update(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Body(patch): Body<EventTypePatch>,
) -> ApiResult<Json<EventTypeOut>> {
    let t = path_name(&name)?;
    let changes = EventTypeChanges {
        description: patch
            .description
            .as_deref()
            .map(validate_description)
            .transpose()?,
        schema: match &patch.schema {
            None => None,
            Some(serde_json::Value::Null) => Some(None),
            Some(s) => Some(Some(validate_schema(s)?)),
        },
    };
    let entry = state
        .subscriptions
        .update_event_type(&app, &t, &changes)
        .await?;
    state.schemas.forget(&app, &t).await;
    Ok(Json(entry.into()))
}

/// Removes a type from the catalog. Webhooks that list it keep it, and events of it
/// are still published (unchecked).
#[utoipa::path(delete, path = "/v1/event-types/{name}", tag = "event types", params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)), security(("app_key" = [])))]
pub async fn delete(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let t = path_name(&name)?;
    state.subscriptions.delete_event_type(&app, &t).await?;
    state.schemas.forget(&app, &t).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Refuses (422) a webhook's event filter that names types missing from `app`'s
/// catalog, when the app has a catalog; an app without one may name any type.
/// Herald's own `herald.…` types are never in a catalog and always allowed.
pub async fn check_known(
    state: &AppState,
    app: &AppId,
    events: &herald_core::EventFilter,
) -> ApiResult<()> {
    let herald_core::EventFilter::Only(types) = events else {
        return Ok(());
    };
    let named: Vec<&EventType> = types.iter().filter(|t| !t.is_operational()).collect();
    let (_, missing) = state.subscriptions.missing_event_types(app, &named).await?;
    if missing.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = missing.iter().map(ToString::to_string).collect();
    Err(validation(format!(
        "events: {} {} not in this app's event-type catalog; add {} first (herald event-types \
         add) or subscribe to \"*\"",
        names.join(", "),
        if names.len() == 1 { "is" } else { "are" },
        if names.len() == 1 { "it" } else { "them" }
    )))
}
