//! Webhook routes, scoped to the caller's app.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use herald_core::{
    operational, reserved_header_reason, webhook_id, AppId, Attempt, ContentType, Event,
    EventFilter, EventType, ObjectType, ObjectTypeFilter, PayloadFilter, PayloadFormat, RateLimit,
    Subscription, SubscriptionId, WebhookHealth, MAX_EVENT_TYPES, MAX_RATE_LIMIT,
};
use herald_delivery::{Deliverer, PreparedRoute};
use herald_store::SubscriptionChanges;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::apps::{Page, PageParams};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Body, Query, Tenant};
use crate::formats::{shape_of, ContentTypeName, FormatName};
use crate::health::HealthOut;
use crate::state::AppState;

pub const MAX_URL_LEN: usize = 2048;
pub const MAX_FILTER_ITEMS: usize = 50;
pub const MAX_DESCRIPTION_LEN: usize = 1024;
pub const MAX_HEADERS: usize = 20;
pub const MAX_HEADER_VALUE_LEN: usize = 1024;

/// Registering a webhook.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookIn {
    /// `https://` URL (or `http://` in development mode), at most 2048 characters.
    pub url: String,
    /// Event types, or `["*"]` for all; 1–49 entries (each type is a route, and a
    /// change of the webhook rewrites its routes in one DynamoDB transaction).
    pub events: Vec<String>,
    /// Object types; empty, absent or `["*"]` for all; at most 50.
    #[serde(default)]
    pub object_types: Vec<String>,
    #[serde(default)]
    pub description: String,
    /// Extra headers sent with each delivery (at most 20; `webhook-*`, content,
    /// hop-by-hop, proxy and `X-Amz-Security-Token` headers are reserved; values are
    /// visible ASCII, spaces and tabs, at most 1024 characters).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Defaults to true.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// At most this many deliveries start per second, a whole number from 1 to 10000;
    /// absent or null for no limit. Deliveries over it wait on the queue for their
    /// turn; none is dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 10000)]
    pub rate_limit: Option<serde_json::Value>,
    /// The payload format: `standard` (the default) or `para`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<FormatName>)]
    pub format: Option<String>,
    /// `json` or `form`; absent: the format's default (`json` for `standard`, `form`
    /// for `para`, as Para's `urlEncoded` defaults to true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<ContentTypeName>)]
    pub content_type: Option<String>,
    /// A payload filter: conditions on JSON pointers into the event (`/data/…`,
    /// `/type`, `/object_type`, `/actor/…`, `/changes/…`), `eq`, `in`, `exists` or
    /// `prefix`, combined with `all` and `any` (docs/delivery.md, "Payload filters").
    /// Absent or null: every event the type filters admit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub filter: Option<serde_json::Value>,
    /// Deliveries of events published with the same `ordering_key` are made in
    /// publish order, one at a time, retries included (docs/delivery.md, "Ordered
    /// delivery"); events without a key are delivered as usual. Defaults to false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordered: Option<bool>,
}

/// Changing a webhook: only the fields present change.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_types: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Replaces every custom header; a credential-bearing value sent back exactly as
    /// responses mask it (`***`, `Bearer ***`) keeps the stored value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// A new rate limit (deliveries per second, 1 to 10000), or null to remove it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 10000)]
    pub rate_limit: Option<serde_json::Value>,
    /// A new payload format; without `content_type`, the content type becomes the
    /// format's default too (`json` for `standard`, `form` for `para`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<FormatName>)]
    pub format: Option<String>,
    /// A new content type, `json` or `form`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<ContentTypeName>)]
    pub content_type: Option<String>,
    /// A new payload filter, or null to remove it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    #[schema(value_type = Option<Object>)]
    pub filter: Option<serde_json::Value>,
    /// Ordered delivery per `ordering_key` on or off (deliveries already queued keep
    /// the way they were queued).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordered: Option<bool>,
}

/// A field that is present, `null` included (which `Option<Value>` alone would read
/// as absent): `Some(Value::Null)` clears it.
pub(crate) fn present<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

/// A webhook. `secret` is present only in the response that created it; the values
/// of credential-bearing headers (`Authorization`, `Cookie`, names with `key`,
/// `token`, `secret`, …) are masked (`***`, or `Bearer ***`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookOut {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub object_types: Vec<String>,
    pub description: String,
    pub headers: BTreeMap<String, String>,
    pub active: bool,
    /// Why Herald disabled the endpoint, if it did.
    pub disabled_reason: Option<String>,
    /// At most this many deliveries start per second; null for no limit.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10000)]
    pub rate_limit: Option<u32>,
    /// The payload format.
    #[serde(default = "standard")]
    #[schema(value_type = FormatName)]
    pub format: String,
    /// How the payload travels in the body.
    #[serde(default = "json")]
    #[schema(value_type = ContentTypeName)]
    pub content_type: String,
    /// The payload filter; null when the webhook has none.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub filter: Option<serde_json::Value>,
    /// Whether deliveries of one `ordering_key` are made in publish order.
    #[serde(default)]
    pub ordered: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// How the endpoint has been answering: present on `GET /v1/webhooks/{id}` and
    /// on each webhook of `GET /v1/webhooks`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthOut>,
}

/// What a webhook of before (without `format`) was: standard.
fn standard() -> String {
    PayloadFormat::Standard.to_string()
}

/// What a webhook of before (without `content_type`) was: JSON.
fn json() -> String {
    ContentType::Json.to_string()
}

impl WebhookOut {
    /// `sub` with its endpoint health.
    fn with_health(sub: &Subscription, health: &WebhookHealth) -> Self {
        Self {
            health: Some(HealthOut::of(sub, health)),
            ..Self::from(sub)
        }
    }
}

impl From<&Subscription> for WebhookOut {
    fn from(s: &Subscription) -> Self {
        Self {
            id: s.id.to_string(),
            url: s.url.clone(),
            events: s.events.to_strings(),
            object_types: s.object_types.to_strings(),
            description: s.description.clone(),
            headers: herald_core::masked_headers(&s.headers),
            active: s.active,
            disabled_reason: s.disabled_reason.clone(),
            rate_limit: s.rate_limit.map(RateLimit::per_second),
            format: s.format.to_string(),
            content_type: s.content_type.to_string(),
            filter: s.filter.as_ref().map(PayloadFilter::to_value),
            ordered: s.ordered,
            created_at: s.created_at,
            updated_at: s.updated_at,
            secret: None,
            health: None,
        }
    }
}

/// A rotated secret.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RotatedSecret {
    /// The new secret (shown once).
    pub secret: String,
    /// Until when the previous secret also signs each delivery.
    pub previous_secret_expires_at: DateTime<Utc>,
}

/// The result of a test delivery.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TestResult {
    pub success: bool,
    pub webhook_id: String,
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    pub error: Option<String>,
    /// The start of the response body (at most 4 KiB).
    pub response_body: String,
}

fn validation(msg: impl Into<String>) -> ApiError {
    ApiError::Validation(msg.into())
}

/// Checks a webhook URL: http(s) with a host, https unless development mode allows
/// http, no credentials, a port the port policy allows (`HERALD_ALLOWED_PORTS`), and
/// not an address the delivery policy refuses (IP literals and `localhost`; names are
/// checked again on every delivery).
pub fn validate_url(state: &AppState, raw: &str) -> ApiResult<String> {
    if raw.len() > MAX_URL_LEN {
        return Err(validation(format!(
            "url is longer than {MAX_URL_LEN} characters"
        )));
    }
    let url =
        url::Url::parse(raw).map_err(|e| validation(format!("url is not a valid URL: {e}")))?;
    match url.scheme() {
        "https" => {}
        "http" if state.config.allow_http => {}
        "http" => return Err(validation(
            "url must use https (http is allowed only in development mode, HERALD_API_ALLOW_HTTP)",
        )),
        other => return Err(validation(format!("url scheme must be https, not {other}"))),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(validation("url must not contain credentials"));
    }
    if let Some(port) = url.port_or_known_default() {
        state
            .config
            .http
            .allowed_ports
            .check(port)
            .map_err(|e| validation(format!("url: {e}")))?;
    }
    let ip: Option<IpAddr> = match url.host() {
        None => return Err(validation("url must have a host")),
        Some(url::Host::Ipv4(v4)) => Some(v4.into()),
        Some(url::Host::Ipv6(v6)) => Some(v6.into()),
        Some(url::Host::Domain(d)) if is_localhost(d) => Some(IpAddr::from([127, 0, 0, 1])),
        Some(url::Host::Domain(_)) => None,
    };
    if let Some(ip) = ip {
        state
            .config
            .http
            .address_policy
            .check(ip)
            .map_err(|e| validation(format!("url: {e}")))?;
    }
    Ok(url.to_string())
}

/// `localhost` and every name under it (RFC 6761), in any case, with or without the
/// trailing dot of a fully qualified name: they resolve to loopback.
fn is_localhost(domain: &str) -> bool {
    let name = domain
        .strip_suffix('.')
        .unwrap_or(domain)
        .to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

fn validate_events(items: &[String]) -> ApiResult<EventFilter> {
    if items.len() > MAX_EVENT_TYPES {
        return Err(validation(format!(
            "events has more than {MAX_EVENT_TYPES} entries; subscribe to \"*\" to receive every type"
        )));
    }
    EventFilter::parse(items).map_err(|e| validation(format!("events: {e}")))
}

fn validate_object_types(items: &[String]) -> ApiResult<ObjectTypeFilter> {
    if items.len() > MAX_FILTER_ITEMS {
        return Err(validation(format!(
            "object_types has more than {MAX_FILTER_ITEMS} entries"
        )));
    }
    ObjectTypeFilter::parse(items).map_err(|e| validation(format!("object_types: {e}")))
}

fn validate_description(d: &str) -> ApiResult<String> {
    if d.len() > MAX_DESCRIPTION_LEN {
        return Err(validation(format!(
            "description is longer than {MAX_DESCRIPTION_LEN} characters"
        )));
    }
    Ok(d.to_owned())
}

fn validate_headers(h: &BTreeMap<String, String>) -> ApiResult<BTreeMap<String, String>> {
    if h.len() > MAX_HEADERS {
        return Err(validation(format!("at most {MAX_HEADERS} headers")));
    }
    for (name, value) in h {
        axum::http::HeaderName::try_from(name.as_str())
            .map_err(|_| validation(format!("header name {name:?} is not valid")))?;
        if let Some(reason) = reserved_header_reason(name) {
            return Err(validation(format!(
                "header {name} is {reason} and cannot be set on a webhook"
            )));
        }
        if value.len() > MAX_HEADER_VALUE_LEN {
            return Err(validation(format!(
                "header {name} is longer than {MAX_HEADER_VALUE_LEN} characters"
            )));
        }
        // Visible ASCII, spaces and tabs: what every receiver reads the same way.
        if !value
            .bytes()
            .all(|b| b == b'\t' || (0x20..=0x7e).contains(&b))
        {
            return Err(validation(format!(
                "header {name} has an invalid value: only visible ASCII, spaces and tabs"
            )));
        }
    }
    Ok(h.clone())
}

/// Reads a rate limit: `null` for none, else a whole number of deliveries per second
/// from 1 to [`MAX_RATE_LIMIT`].
fn validate_rate_limit(value: &serde_json::Value) -> ApiResult<Option<RateLimit>> {
    if value.is_null() {
        return Ok(None);
    }
    value
        .as_u64()
        .and_then(|n| RateLimit::new(n).ok())
        .map(Some)
        .ok_or_else(|| {
            validation(format!(
                "rate_limit must be null (no limit) or a whole number of deliveries per \
                 second from 1 to {MAX_RATE_LIMIT}, not {value}"
            ))
        })
}

/// Reads a payload filter: `null` for none; a bad one is a 422 naming its bad part.
fn validate_filter(value: &serde_json::Value) -> ApiResult<Option<PayloadFilter>> {
    if value.is_null() {
        return Ok(None);
    }
    PayloadFilter::parse(value)
        .map(Some)
        .map_err(|e| validation(e.to_string()))
}

/// Webhook ids in paths: anything malformed simply does not exist.
fn path_webhook(id: &str) -> ApiResult<SubscriptionId> {
    if id.is_empty()
        || id.len() > 128
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(ApiError::NotFound(format!("webhook {id}")));
    }
    Ok(SubscriptionId::new(id))
}

pub async fn load(state: &AppState, app: &AppId, id: &str) -> ApiResult<Subscription> {
    let sub_id = path_webhook(id)?;
    state
        .subscriptions
        .get(app, &sub_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("webhook {id}")))
}

/// Registers a webhook for `app`; the result carries its secret (shown once).
pub async fn create_webhook(
    state: &AppState,
    app: &AppId,
    input: WebhookIn,
) -> ApiResult<WebhookOut> {
    let url = validate_url(state, &input.url)?;
    let mut sub = Subscription::new(
        app.clone(),
        url,
        validate_events(&input.events)?,
        validate_object_types(&input.object_types)?,
    );
    sub.description = validate_description(&input.description)?;
    sub.headers = validate_headers(&input.headers)?;
    sub.active = input.active.unwrap_or(true);
    sub.rate_limit = match &input.rate_limit {
        Some(limit) => validate_rate_limit(limit)?,
        None => None,
    };
    let (format, content_type) = shape_of(input.format.as_deref(), input.content_type.as_deref())?;
    sub.format = format.unwrap_or_default();
    sub.content_type = content_type.unwrap_or_else(|| sub.format.default_content_type());
    sub.filter = match &input.filter {
        Some(filter) => validate_filter(filter)?,
        None => None,
    };
    crate::event_types::check_known(state, app, &sub.events).await?;
    sub.ordered = input.ordered.unwrap_or(false);
    // Checked before the write: concurrent creates can pass it together, so the cap can
    // be exceeded by the number of creates in flight, never more.
    let limit = state.config.max_webhooks_per_app;
    if state.subscriptions.count(&sub.app_id).await? >= limit {
        return Err(validation(format!(
            "this app already has {limit} webhooks, the most it may have \
             (HERALD_MAX_WEBHOOKS_PER_APP); delete one first"
        )));
    }
    state.subscriptions.create(&sub).await?;
    let mut out = WebhookOut::from(&sub);
    out.secret = Some(sub.secrets[0].expose());
    Ok(out)
}

#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = WebhookIn,
    responses((status = 201, body = WebhookOut), (status = 422, body = ErrorBody)), security(("app_key" = [])))]
pub async fn create(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Body(input): Body<WebhookIn>,
) -> ApiResult<(StatusCode, Json<WebhookOut>)> {
    let out = create_webhook(&state, &app, input).await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// Most webhooks on one page: a webhook is at most about 30 KB of JSON (a 2 KB URL,
/// a 1 KB description, 20 headers of 1 KB, 49 event types and the object types), so
/// a page stays near 3 MB, well inside Lambda's 6 MB response limit.
pub const MAX_WEBHOOKS_PER_PAGE: i32 = 100;

/// A page of `app`'s webhooks in id order, each with its endpoint health.
pub async fn list_webhooks(
    state: &AppState,
    app: &AppId,
    p: &PageParams,
) -> ApiResult<Page<WebhookOut>> {
    let page = state
        .subscriptions
        .list(
            app,
            p.limit_at_most(MAX_WEBHOOKS_PER_PAGE)?,
            p.cursor.as_deref(),
        )
        .await?;
    let ids: Vec<SubscriptionId> = page.items.iter().map(|s| s.id.clone()).collect();
    let health = state.history.health_of(app, &ids).await?;
    Ok(Page {
        data: page
            .items
            .iter()
            .zip(&health)
            .map(|(sub, health)| WebhookOut::with_health(sub, health))
            .collect(),
        next_cursor: page.next_cursor,
    })
}

/// An app's webhooks in id order (oldest first), each with its endpoint health;
/// `limit` is served at most 100 at a time.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", params(PageParams),
    responses((status = 200, body = Page<WebhookOut>)), security(("app_key" = [])))]
pub async fn list(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Query(p): Query<PageParams>,
) -> ApiResult<Json<Page<WebhookOut>>> {
    list_webhooks(&state, &app, &p).await.map(Json)
}

/// `app`'s webhook `id` with its endpoint health (404 for another app's).
pub async fn get_webhook(state: &AppState, app: &AppId, id: &str) -> ApiResult<WebhookOut> {
    let sub = load(state, app, id).await?;
    let health = state.history.health(app, &sub.id).await?;
    Ok(WebhookOut::with_health(&sub, &health))
}

/// A webhook, with its endpoint health.
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = WebhookOut), (status = 404, body = ErrorBody)), security(("app_key" = [])))]
pub async fn get(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookOut>> {
    get_webhook(&state, &app, &id).await.map(Json)
}

/// Changes the fields `patch` names of `app`'s webhook `id`, and only those.
pub async fn update_webhook(
    state: &AppState,
    app: &AppId,
    id: &str,
    patch: WebhookPatch,
) -> ApiResult<WebhookOut> {
    let sub_id = path_webhook(id)?;
    let (format, content_type) = shape_of(patch.format.as_deref(), patch.content_type.as_deref())?;
    let changes = SubscriptionChanges {
        url: patch
            .url
            .as_deref()
            .map(|url| validate_url(state, url))
            .transpose()?,
        events: patch.events.as_deref().map(validate_events).transpose()?,
        object_types: patch
            .object_types
            .as_deref()
            .map(validate_object_types)
            .transpose()?,
        description: patch
            .description
            .as_deref()
            .map(validate_description)
            .transpose()?,
        headers: patch.headers.as_ref().map(validate_headers).transpose()?,
        active: patch.active,
        rate_limit: patch
            .rate_limit
            .as_ref()
            .map(validate_rate_limit)
            .transpose()?,
        format,
        content_type,
        filter: patch.filter.as_ref().map(validate_filter).transpose()?,
        ordered: patch.ordered,
    };
    if let Some(events) = &changes.events {
        crate::event_types::check_known(state, app, events).await?;
    }
    // Only the attributes the patch names change, in a write guarded by the item's
    // version and retried from a fresh read: a concurrent auto-disable or another
    // PATCH of other fields is never overwritten (409 if it kept losing the race).
    let sub = state.subscriptions.apply(app, &sub_id, &changes).await?;
    Ok(WebhookOut::from(&sub))
}

#[utoipa::path(patch, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)), request_body = WebhookPatch,
    responses((status = 200, body = WebhookOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "The webhook kept changing under the PATCH; try again")), security(("app_key" = [])),
    description = "Changes only the fields given; a concurrent change of other fields (another PATCH, an automatic disable) is kept.")]
pub async fn update(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Body(patch): Body<WebhookPatch>,
) -> ApiResult<Json<WebhookOut>> {
    update_webhook(&state, &app, &id, patch).await.map(Json)
}

/// Deletes `app`'s webhook `id` (404 if it has none such).
pub async fn delete_webhook(state: &AppState, app: &AppId, id: &str) -> ApiResult<()> {
    let sub_id = path_webhook(id)?;
    state.subscriptions.delete(app, &sub_id).await?;
    Ok(())
}

#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)), security(("app_key" = [])))]
pub async fn delete(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    delete_webhook(&state, &app, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Enables `app`'s webhook `id`, announcing it if it was disabled.
pub async fn enable_webhook(state: &AppState, app: &AppId, id: &str) -> ApiResult<WebhookOut> {
    let sub = load(state, app, id).await?;
    state.subscriptions.enable(app, &sub.id).await?;
    if !sub.active {
        announce(state, operational::webhook_enabled(app, &sub.id, &sub.url)).await;
    }
    Ok(WebhookOut::from(&load(state, app, id).await?))
}

#[utoipa::path(post, path = "/v1/webhooks/{id}/enable", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = WebhookOut), (status = 404, body = ErrorBody)), security(("app_key" = [])))]
pub async fn enable(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookOut>> {
    enable_webhook(&state, &app, &id).await.map(Json)
}

/// Publishes an operational event (`herald_core::operational`) about a change the API
/// made. Best effort: the change stands, and a failure is logged.
async fn announce(state: &AppState, event: Event) {
    if let Err(e) = state.outbox.publish(&event).await {
        tracing::warn!(error = %e, event_type = %event.event_type, "could not publish an operational event");
    }
}

/// Disables `app`'s webhook `id`, announcing it if it was active.
pub async fn disable_webhook(state: &AppState, app: &AppId, id: &str) -> ApiResult<WebhookOut> {
    let sub = load(state, app, id).await?;
    let reason = "disabled through the API";
    state.subscriptions.disable(app, &sub.id, reason).await?;
    if sub.active {
        announce(
            state,
            operational::webhook_disabled(app, &sub.id, &sub.url, reason),
        )
        .await;
    }
    Ok(WebhookOut::from(&load(state, app, id).await?))
}

#[utoipa::path(post, path = "/v1/webhooks/{id}/disable", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = WebhookOut), (status = 404, body = ErrorBody)), security(("app_key" = [])))]
pub async fn disable(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookOut>> {
    disable_webhook(&state, &app, &id).await.map(Json)
}

/// Gives `app`'s webhook `id` a new secret (returned once); the previous one keeps
/// signing for the rotation window.
pub async fn rotate_secret(state: &AppState, app: &AppId, id: &str) -> ApiResult<RotatedSecret> {
    let sub_id = path_webhook(id)?;
    let window = chrono::Duration::from_std(state.config.rotation_window)
        .unwrap_or(chrono::Duration::hours(24));
    let (secret, sub) = state
        .subscriptions
        .rotate_secret(app, &sub_id, Utc::now(), window)
        .await?;
    Ok(RotatedSecret {
        secret: secret.expose(),
        previous_secret_expires_at: sub.previous_secrets_expire_at.unwrap_or_else(Utc::now),
    })
}

#[utoipa::path(post, path = "/v1/webhooks/{id}/secret/rotate", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = RotatedSecret), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "The webhook kept changing under the rotation; try again")),
    security(("app_key" = [])))]
pub async fn rotate(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<RotatedSecret>> {
    rotate_secret(&state, &app, &id).await.map(Json)
}

/// The event type of test pings.
pub const PING_TYPE: &str = "webhook.test";

/// Sends a test ping to `app`'s webhook `id` now, records it in the history, and
/// returns how the endpoint answered.
pub async fn test_webhook(state: &AppState, app: &AppId, id: &str) -> ApiResult<TestResult> {
    let sub = load(state, app, id).await?;
    let event = Event::new(
        app.clone(),
        EventType::parse(PING_TYPE).expect("a valid type"),
        ObjectType::parse("webhook").expect("a valid object type"),
        serde_json::json!({"message": "A test delivery from Herald", "webhook_id": sub.id}),
    );
    let body = herald_core::Body::of(&event, sub.format, sub.content_type);
    let id = webhook_id(&event.id, &sub.id);
    let route = Arc::new(PreparedRoute::new(sub.route()));
    let attempted_at = Utc::now();
    let outcome = state
        .deliverer
        .deliver(route.sign(id, body, attempted_at))
        .await;
    let attempt = Attempt::of_outcome(&event, &sub.id, id, 1, attempted_at, &outcome);
    // Recorded as a batch of its own: the ping's event and its one attempt.
    let mut history = herald_store::BatchHistory::start();
    history.fanned_out(event);
    history.attempted(attempt.clone(), true);
    if let Err(e) = state.history.record(&history).await {
        tracing::warn!(error = %e, "could not record the test delivery");
    }
    Ok(TestResult {
        success: outcome.is_success(),
        webhook_id: attempt.webhook_id.to_string(),
        status_code: outcome.status(),
        latency_ms: attempt.latency_ms,
        error: attempt.error,
        response_body: attempt.response_body,
    })
}

#[utoipa::path(post, path = "/v1/webhooks/{id}/test", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = TestResult), (status = 404, body = ErrorBody)), security(("app_key" = [])))]
pub async fn test(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<TestResult>> {
    test_webhook(&state, &app, &id).await.map(Json)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(name: &str, value: &str) -> ApiResult<BTreeMap<String, String>> {
        validate_headers(&BTreeMap::from([(name.to_owned(), value.to_owned())]))
    }

    #[test]
    fn transport_and_proxy_headers_and_non_ascii_values_are_refused() {
        for name in [
            "Connection",
            "Keep-Alive",
            "Proxy-Authorization",
            "Proxy-Connection",
            "TE",
            "Trailer",
            "Transfer-Encoding",
            "Upgrade",
            "Expect",
            "Host",
            "Content-Length",
            "Content-Encoding",
            "Forwarded",
            "X-Forwarded-For",
            "x-forwarded-host",
            "X-FORWARDED-PROTO",
            "X-Amz-Security-Token",
            "webhook-id",
        ] {
            let err = one(name, "x").unwrap_err();
            assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY, "{name}");
            assert!(err.to_string().contains(name), "{err}");
        }
        for value in ["caf\u{e9}", "a\u{7f}", "line\nbreak", "nul\0", "\u{1F980}"] {
            let err = one("x-team", value).unwrap_err();
            assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY, "{value:?}");
        }
        for (name, value) in [
            ("x-team", "a b\tc ~!"),
            ("Authorization", "Bearer t0k3n"),
            ("Cookie", "a=b"),
            ("x-empty", ""),
        ] {
            assert!(one(name, value).is_ok(), "{name}: {value:?}");
        }
    }

    #[test]
    fn localhost_in_every_spelling_is_localhost() {
        for name in [
            "localhost",
            "LOCALHOST",
            "localhost.",
            "LocalHost.",
            "api.localhost",
            "a.b.LOCALHOST",
            "api.localhost.",
            "x.Localhost.",
        ] {
            assert!(is_localhost(name), "{name}");
        }
        for name in [
            "example.com",
            "localhost.example.com",
            "notlocalhost",
            "localhost..",
            "mylocalhost.",
        ] {
            assert!(!is_localhost(name), "{name}");
        }
    }
}
