//! The ingest of inbound webhooks: `POST /in/{source_id}`, public (the unguessable
//! source id and the source's credentials are its only gate), served by `herald
//! serve` in the API's router and on Lambda by `herald-ingest-lambda` with
//! [`ingest_router`] alone.
//!
//! A request is looked up by its source, counted against the app's rate limit (429),
//! verified over its original bytes (401 with no detail; the reason goes only to the
//! source's request log), converted to event data (415 for no usable content type,
//! 400 for a body that is not what its type says, 422 for data SQS cannot carry or no
//! event type), deduplicated on the sender's delivery id for 24 hours, and answered
//! 202 once its event is on the events queue (413 when it does not fit a message).
//! Every request that reaches a source is logged in its request log.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::Json;
use chrono::Utc;
use herald_core::inbound::{convert_body, verify, BodyError, IncomingRequest, Source};
use herald_core::{Event, EventId};
use herald_store::{DeliveryClaim, SourceRequest};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::check_rate;
use crate::state::AppState;

/// What the sender gets for an accepted request.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Ingested {
    /// The event the request became (for a duplicate, the first request's).
    pub event_id: String,
    /// Whether this delivery id was seen in the last 24 h (nothing published again).
    pub duplicate: bool,
}

/// The outcome of one request, before it is logged.
struct Outcome {
    result: ApiResult<(StatusCode, Json<Ingested>)>,
    reason: Option<String>,
    delivery_id: Option<String>,
}

impl Outcome {
    fn refused(error: ApiError, reason: impl Into<String>) -> Self {
        Self {
            result: Err(error),
            reason: Some(reason.into()),
            delivery_id: None,
        }
    }
}

#[utoipa::path(post, path = "/in/{source_id}", tag = "sources", params(("source_id" = String, Path)),
    request_body(content = String, description = "The sender's webhook: JSON, XML, a form, multipart or any file", content_type = "*/*"),
    responses((status = 202, body = Ingested, description = "On the events queue"),
        (status = 200, body = Ingested, description = "A duplicate of a delivery id seen in the last 24 h: not published again"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody, description = "Bad or missing credentials (no detail)"),
        (status = 409, body = ErrorBody, description = "A request with the same delivery id is still under way; retry shortly"),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)),
    description = "Takes an inbound webhook in through a source (docs/inbound.md). Public: the source's credentials authenticate it.")]
pub async fn ingest(
    State(state): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Ingested>)> {
    let not_found = || ApiError::NotFound(format!("source {id}"));
    let source_id = herald_core::inbound::SourceId::parse(&id).ok_or_else(not_found)?;
    let source = state
        .sources()?
        .lookup(&source_id)
        .await?
        .ok_or_else(not_found)?;
    check_rate(&state, &source.app_id)?;
    let received_at = Utc::now();
    let outcome = handle(&state, &source, &uri, &headers, &body).await;
    let (status, event_id) = match &outcome.result {
        Ok((status, Json(out))) => (*status, Some(out.event_id.clone())),
        Err(e) => (e.status(), None),
    };
    let entry = SourceRequest {
        received_at,
        outcome: match &outcome.result {
            Ok((_, Json(out))) if out.duplicate => "duplicate",
            Ok(_) => "accepted",
            Err(_) => "rejected",
        }
        .to_owned(),
        status: status.as_u16(),
        reason: outcome.reason,
        size: body.len() as u64,
        content_type: content_type(&headers).map(|c| c.chars().take(128).collect()),
        delivery_id: outcome.delivery_id,
        event_id,
    };
    if let Err(e) = state
        .sources()?
        .record(&source.app_id, &source.id, &entry)
        .await
    {
        tracing::warn!(source = %source.id, error = %e, "could not log an inbound request");
    }
    outcome.result
}

fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::CONTENT_TYPE)?.to_str().ok()
}

/// The `filename` of a `Content-Disposition` header, if any (at most 256 characters).
fn file_name(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_DISPOSITION)?.to_str().ok()?;
    let (_, rest) = value.split_once("filename=")?;
    let name = rest.split(';').next()?.trim().trim_matches('"');
    (!name.is_empty()).then(|| name.chars().take(256).collect())
}

async fn handle(
    state: &AppState,
    source: &Source,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Outcome {
    let request = IncomingRequest {
        headers,
        query: uri.query(),
        body,
        now: Utc::now().timestamp(),
    };
    let delivery_id = match verify(&source.auth, &request) {
        Ok(v) => v.delivery_id,
        Err(why) => {
            return Outcome::refused(
                ApiError::Unauthorized("unauthorized".into()),
                why.to_string(),
            )
        }
    };
    let mut outcome = match event_of(source, headers, body) {
        Err((error, reason)) => Outcome::refused(error, reason),
        Ok(event) => publish(state, source, event, delivery_id.as_deref()).await,
    };
    outcome.delivery_id = delivery_id;
    outcome
}

/// The event a verified request becomes, or the error and the reason to log.
fn event_of(
    source: &Source,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Event, (ApiError, String)> {
    let converted = convert_body(content_type(headers), file_name(headers).as_deref(), body)
        .map_err(|e| match e {
            BodyError::Unsupported(ref m) => {
                (ApiError::UnsupportedMediaType(m.clone()), e.to_string())
            }
            BodyError::Malformed { .. } => (ApiError::BadRequest(e.to_string()), e.to_string()),
        })?;
    herald_core::check_data(&converted.data)
        .map_err(|e| (ApiError::Validation(e.to_string()), e.to_string()))?;
    let event_type = source
        .event_type
        .pick(headers, &converted.data)
        .ok_or_else(|| {
            let m = "the request has no valid event type where the source looks for it".to_owned();
            (ApiError::Validation(m.clone()), m)
        })?;
    Ok(Event::new(
        source.app_id.clone(),
        event_type,
        source.object_type.clone(),
        converted.data,
    )
    .with_source(source.id.to_string()))
}

fn answered(status: StatusCode, event_id: String, duplicate: bool) -> Outcome {
    Outcome {
        result: Ok((
            status,
            Json(Ingested {
                event_id,
                duplicate,
            }),
        )),
        reason: None,
        delivery_id: None,
    }
}

/// Claims the delivery id (a repeat of a queued one answers 200 with the first event,
/// of one still under way 409), then puts the event on the events queue and marks the
/// id queued; a failure frees the delivery id for the sender's retry.
async fn publish(
    state: &AppState,
    source: &Source,
    event: Event,
    delivery: Option<&str>,
) -> Outcome {
    let event_id: &EventId = &event.id;
    let sources = match state.sources() {
        Ok(sources) => sources,
        Err(e) => return Outcome::refused(e, "no inbound sources in memory mode"),
    };
    if let Some(d) = delivery {
        match sources
            .claim_delivery(&source.id, d, event_id.as_str())
            .await
        {
            Ok(DeliveryClaim::New) => {}
            Ok(DeliveryClaim::Duplicate(first)) => return answered(StatusCode::OK, first, true),
            Ok(DeliveryClaim::InProgress) => {
                return Outcome::refused(
                    ApiError::Conflict(
                        "a request with this delivery id is being handled; retry shortly".into(),
                    ),
                    "a request with this delivery id was under way",
                )
            }
            Err(e) => return Outcome::refused(e.into(), "storage unavailable"),
        }
    }
    match state.publisher.publish(&event).await {
        Ok(_) => {
            if let Some(d) = delivery {
                // Not fatal: the claim's lease runs out and a repeat is published again
                // (at least once, never lost).
                if let Err(e) = sources.queued(&source.id, d).await {
                    tracing::warn!(source = %source.id, error = %e, "could not mark a delivery id queued");
                }
            }
            answered(StatusCode::ACCEPTED, event_id.to_string(), false)
        }
        Err(e) => {
            if let Some(d) = delivery {
                if let Err(e) = sources.release_delivery(&source.id, d).await {
                    tracing::warn!(source = %source.id, error = %e, "could not free a delivery id");
                }
            }
            match e {
                herald_queue::PublishError::TooLarge { .. } => {
                    Outcome::refused(ApiError::PayloadTooLarge(e.to_string()), e.to_string())
                }
                other => {
                    tracing::error!(source = %source.id, error = %other, "inbound event not queued");
                    Outcome::refused(
                        ApiError::Unavailable("the event could not be queued; retry".into()),
                        other.to_string(),
                    )
                }
            }
        }
    }
}
