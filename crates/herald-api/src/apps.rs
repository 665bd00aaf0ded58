//! Admin routes: apps (tenants) and their API keys.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use herald_core::AppId;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Admin, Body, Query};
use crate::state::AppState;

/// Creating an app.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppIn {
    /// `[a-zA-Z0-9_-]`, at most 64 characters; generated when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// A display name, at most 256 characters.
    pub name: String,
}

/// An app (tenant).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AppOut {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

impl From<herald_store::App> for AppOut {
    fn from(a: herald_store::App) -> Self {
        Self {
            id: a.id.to_string(),
            name: a.name,
            created_at: a.created_at,
        }
    }
}

/// An API key. `key` is present only in the response that created it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KeyOut {
    pub id: String,
    pub app_id: String,
    /// The start of the key, to tell keys apart.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl From<herald_store::ApiKey> for KeyOut {
    fn from(k: herald_store::ApiKey) -> Self {
        Self {
            id: k.id,
            app_id: k.app_id.to_string(),
            prefix: k.prefix,
            created_at: k.created_at,
            key: None,
        }
    }
}

/// A page of results; pass `next_cursor` as `cursor` for the next one.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Paging parameters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
pub struct PageParams {
    /// Items per page, 1–250 (default 50).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i32>,
    /// The `next_cursor` of the previous page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

impl PageParams {
    /// The page size asked for (default 50), refused outside 1–250.
    pub fn limit(&self) -> ApiResult<i32> {
        match self.limit {
            None => Ok(50),
            Some(n) if (1..=250).contains(&n) => Ok(n),
            Some(n) => Err(ApiError::Validation(format!(
                "limit must be between 1 and 250, not {n}"
            ))),
        }
    }

    /// [`PageParams::limit`], served at most `most` at a time: for listings whose
    /// items are large enough that 250 of them could pass Lambda's 6 MB response limit.
    pub fn limit_at_most(&self, most: i32) -> ApiResult<i32> {
        self.limit().map(|n| n.min(most))
    }
}

pub fn parse_app_id(id: &str) -> ApiResult<AppId> {
    if id.len() > 64 {
        return Err(ApiError::Validation(
            "app id is longer than 64 characters".into(),
        ));
    }
    AppId::parse(id).map_err(|e| ApiError::Validation(e.to_string()))
}

/// Path ids of an app: an invalid one cannot exist.
fn path_app(id: &str) -> ApiResult<AppId> {
    AppId::parse(id).map_err(|_| ApiError::NotFound(format!("app {id}")))
}

/// Creates an app: the id given (checked) or a generated one, and a name of 1 to 256
/// characters. The admin route and the operator's console page call this.
pub async fn new_app(state: &AppState, input: &AppIn) -> ApiResult<AppOut> {
    let id = match &input.id {
        Some(id) => parse_app_id(id)?,
        None => AppId::parse(&herald_core::new_id("app_"))
            .map_err(|e| ApiError::Validation(e.to_string()))?,
    };
    let name = input.name.trim();
    if name.is_empty() || name.len() > 256 {
        return Err(ApiError::Validation(
            "name must be 1 to 256 characters".into(),
        ));
    }
    Ok(state.apps.create_app(&id, name).await?.into())
}

/// A page of apps.
pub async fn apps_page(state: &AppState, p: &PageParams) -> ApiResult<Page<AppOut>> {
    let page = state
        .apps
        .list_apps(p.limit()?, p.cursor.as_deref())
        .await?;
    Ok(Page {
        data: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    })
}

/// The app `id`, or 404.
pub async fn app(state: &AppState, id: &str) -> ApiResult<AppOut> {
    let app_id = path_app(id)?;
    let app = state
        .apps
        .get_app(&app_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("app {id}")))?;
    Ok(app.into())
}

/// Deletes the app `id`, its keys and its webhooks.
pub async fn remove_app(state: &AppState, id: &str) -> ApiResult<()> {
    let app_id = path_app(id)?;
    // The tombstone first: from here on no key of the app works and none can be made,
    // so nothing can add to what is deleted next. The id is never given out again.
    state.apps.delete_app(&app_id).await?;
    for sub in state.subscriptions.for_app(&app_id).await? {
        state.subscriptions.delete(&app_id, &sub.id).await?;
    }
    state.subscriptions.delete_event_types(&app_id).await?;
    // Its inbound sources (none in memory mode): their URLs answer 404 from here on.
    let Some(sources) = &state.sources else {
        return Ok(());
    };
    let mut cursor = None;
    loop {
        let page = sources
            .list(&app_id, herald_store::MAX_PAGE_SIZE, cursor.as_deref())
            .await?;
        for source in &page.items {
            sources.delete(&app_id, &source.id).await?;
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(())
}

/// Makes a key for the app `id`: the result holds the key itself, this once.
pub async fn new_key(state: &AppState, id: &str) -> ApiResult<KeyOut> {
    let app_id = path_app(id)?;
    if state.apps.get_app(&app_id).await?.is_none() {
        return Err(ApiError::NotFound(format!("app {id}")));
    }
    let new = state.apps.create_key(&app_id).await?;
    let mut out = KeyOut::from(new.key);
    out.key = Some(new.secret);
    Ok(out)
}

/// A page of the keys of the app `id` (metadata only).
pub async fn keys_page(state: &AppState, id: &str, p: &PageParams) -> ApiResult<Page<KeyOut>> {
    let app_id = path_app(id)?;
    if state.apps.get_app(&app_id).await?.is_none() {
        return Err(ApiError::NotFound(format!("app {id}")));
    }
    let page = state
        .apps
        .list_keys(&app_id, p.limit()?, p.cursor.as_deref())
        .await?;
    Ok(Page {
        data: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    })
}

/// Revokes the key `key_id` of the app `id`.
pub async fn revoke_key(state: &AppState, id: &str, key_id: &str) -> ApiResult<()> {
    let app_id = path_app(id)?;
    if key_id.len() > 128 || !state.apps.delete_key(&app_id, key_id).await? {
        return Err(ApiError::NotFound(format!("key {key_id}")));
    }
    Ok(())
}

#[utoipa::path(post, path = "/v1/apps", tag = "apps", request_body = AppIn,
    responses((status = 201, body = AppOut), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn create_app(
    _: Admin,
    State(state): State<AppState>,
    Body(input): Body<AppIn>,
) -> ApiResult<(StatusCode, Json<AppOut>)> {
    Ok((StatusCode::CREATED, Json(new_app(&state, &input).await?)))
}

#[utoipa::path(get, path = "/v1/apps", tag = "apps", params(PageParams),
    responses((status = 200, body = Page<AppOut>)), security(("admin_key" = [])))]
pub async fn list_apps(
    _: Admin,
    State(state): State<AppState>,
    Query(p): Query<PageParams>,
) -> ApiResult<Json<Page<AppOut>>> {
    Ok(Json(apps_page(&state, &p).await?))
}

#[utoipa::path(get, path = "/v1/apps/{id}", tag = "apps", params(("id" = String, Path)),
    responses((status = 200, body = AppOut), (status = 404, body = ErrorBody)), security(("admin_key" = [])))]
pub async fn get_app(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<AppOut>> {
    Ok(Json(app(&state, &id).await?))
}

#[utoipa::path(delete, path = "/v1/apps/{id}", tag = "apps", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)), security(("admin_key" = [])))]
pub async fn delete_app(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    remove_app(&state, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/apps/{id}/keys", tag = "apps", params(("id" = String, Path)),
    responses((status = 201, body = KeyOut), (status = 404, body = ErrorBody)), security(("admin_key" = [])))]
pub async fn create_key(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<KeyOut>)> {
    Ok((StatusCode::CREATED, Json(new_key(&state, &id).await?)))
}

#[utoipa::path(get, path = "/v1/apps/{id}/keys", tag = "apps", params(("id" = String, Path), PageParams),
    responses((status = 200, body = Page<KeyOut>), (status = 404, body = ErrorBody)), security(("admin_key" = [])))]
pub async fn list_keys(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(p): Query<PageParams>,
) -> ApiResult<Json<Page<KeyOut>>> {
    Ok(Json(keys_page(&state, &id, &p).await?))
}

#[utoipa::path(delete, path = "/v1/apps/{id}/keys/{key_id}", tag = "apps", params(("id" = String, Path), ("key_id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)), security(("admin_key" = [])))]
pub async fn delete_key(
    _: Admin,
    State(state): State<AppState>,
    Path((id, key_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    revoke_key(&state, &id, &key_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
