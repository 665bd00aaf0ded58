//! Request extractors: authentication and JSON bodies with API-shaped errors.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use herald_core::AppId;
use herald_store::ApiKey;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| ApiError::Unauthorized("missing Authorization: Bearer <key>".into()))?;
    let value = header
        .to_str()
        .map_err(|_| ApiError::Unauthorized("malformed Authorization header".into()))?;
    // Auth schemes are case-insensitive (RFC 9110 §11.1): `bearer` and `BEARER` too.
    value
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim())
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ApiError::Unauthorized("Authorization must be `Bearer <key>`".into()))
}

fn is_admin(state: &AppState, key: &str) -> bool {
    state
        .config
        .admin_key
        .as_deref()
        .is_some_and(|admin| bool::from(admin.as_bytes().ct_eq(key.as_bytes())))
}

/// Who a presented key belongs to.
#[derive(Debug, Clone)]
pub enum Caller {
    /// The admin key.
    Admin,
    /// A key of an app (its metadata: id, app, prefix; never the key).
    App(ApiKey),
}

/// Who `key` belongs to, checked as every route checks it: the admin key (compared in
/// constant time) or a live key of a live app; `None` for anything else.
pub async fn authenticate(state: &AppState, key: &str) -> ApiResult<Option<Caller>> {
    if is_admin(state, key) {
        return Ok(Some(Caller::Admin));
    }
    Ok(state.apps.authenticate(key).await?.map(Caller::App))
}

/// Counts a request of `app` against its rate limit (429 past it).
pub fn check_rate(state: &AppState, app: &AppId) -> ApiResult<()> {
    if let Some(limiter) = &state.limiter {
        if limiter.check_key(app).is_err() {
            return Err(ApiError::RateLimited(format!(
                "more than {} requests per second for this app; slow down",
                state.config.rate_limit
            )));
        }
    }
    Ok(())
}

/// The caller holds the admin key.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match authenticate(state, bearer(parts)?).await? {
            Some(Caller::Admin) => Ok(Admin),
            Some(Caller::App(_)) => Err(ApiError::Forbidden(
                "this route needs the admin key, not an app key".into(),
            )),
            None => Err(ApiError::Unauthorized("invalid API key".into())),
        }
    }
}

/// The caller holds a key of this app; every app route is scoped to it.
pub struct Tenant(pub AppId);

impl FromRequestParts<AppState> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match authenticate(state, bearer(parts)?).await? {
            Some(Caller::App(key)) => {
                check_rate(state, &key.app_id)?;
                Ok(Tenant(key.app_id))
            }
            Some(Caller::Admin) => Err(ApiError::Forbidden(
                "this route needs an app key; the admin key manages apps and keys only".into(),
            )),
            None => Err(ApiError::Unauthorized("invalid API key".into())),
        }
    }
}

/// A JSON body, read whatever its content type, with 400 for malformed JSON, 422 for
/// JSON of the wrong shape, and 413 past the size limit.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let limit = state.config.max_body_bytes;
        let bytes = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| ApiError::PayloadTooLarge(format!("request body over {limit} bytes")))?;
        parse_json(&bytes).map(Body)
    }
}

/// Parses a JSON body with the API's error mapping.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::BadRequest("a JSON body is required".into()));
    }
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::Validation(e.to_string()),
        _ => ApiError::BadRequest(format!("{MALFORMED}{e}")),
    })
}

const MALFORMED: &str = "malformed JSON: ";

/// Whether [`parse_json`] failed on JSON nested past serde_json's limit of 128 levels
/// (well-formed, but too deep to read), which a route may report as a 422.
pub fn is_too_deep(e: &ApiError) -> bool {
    matches!(e, ApiError::BadRequest(m)
        if m.strip_prefix(MALFORMED).is_some_and(|m| m.starts_with("recursion limit exceeded")))
}

/// Query parameters with 400 on malformed ones.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|q| Query(q.0))
            .map_err(|e| ApiError::BadRequest(format!("invalid query: {}", e.body_text())))
    }
}
