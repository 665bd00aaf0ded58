//! Publishing events and re-sending them.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use herald_core::{
    AppId, DeliveryTask, Event, EventId, EventType, ObjectType, OrderingKey, SubscriptionId,
};
use herald_store::{Claim, PlannedEvent};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult, ErrorBody, NotPublished, PartlyPublished};
use crate::extract::{is_too_deep, parse_json, Tenant};
use crate::formats::{context_of, ActorOut};
use crate::state::AppState;
use crate::webhooks::load;

/// Most events in one request.
pub const MAX_EVENTS_PER_REQUEST: usize = 100;
/// Longest accepted `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// One event to publish.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventIn {
    /// A built-in kind (`create`, `update`, `delete`, `createAll`, `updateAll`,
    /// `deleteAll`) or a dotted name of `[a-zA-Z0-9_.]` such as `invoice.paid`.
    #[serde(rename = "type")]
    pub event_type: String,
    pub object_type: String,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    /// Who made the change: `id` (required), `type` and `name`, strings of at most 256
    /// bytes each. Delivered in both payload formats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<ActorOut>)]
    pub actor: Option<serde_json::Value>,
    /// What changed: field name (1 to 256 bytes) → `[before, after]`, at most 100
    /// fields; counted within the event's size limit. Delivered in both payload formats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<HashMap<String, Vec<Value>>>)]
    pub changes: Option<serde_json::Value>,
    /// What orders this event for webhooks with `ordered: true` (the object's id,
    /// say): their deliveries of one key are made in publish order, one at a time
    /// (docs/delivery.md, "Ordered delivery"). 1 to 256 bytes of printable characters.
    /// Webhooks that are not ordered receive the event as usual.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 256)]
    pub ordering_key: Option<String>,
    /// Also deliver this event to this URL, signed with the app's callback secret
    /// (`POST /v1/app/callback-secret/rotate` creates it; needed first), retried and
    /// recorded under the webhook id `callback`. The same address policy as a
    /// webhook's URL. See docs/security.md, "Callback URLs", for what it costs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
}

/// Up to 100 events at once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventBatchIn {
    pub events: Vec<EventIn>,
}

/// `POST /v1/events` takes one event or a batch.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum PublishIn {
    Batch(EventBatchIn),
    One(EventIn),
}

/// The ids of the published events, in request order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Published {
    pub ids: Vec<String>,
}

/// Re-sending an event.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResendIn {
    /// Only to this webhook; to every active matching webhook when absent.
    pub subscription_id: Option<String>,
}

/// The webhooks a re-sent event was queued for.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Resent {
    pub event_id: String,
    pub scheduled: Vec<String>,
}

fn to_event(
    state: &AppState,
    app: &AppId,
    input: EventIn,
    index: Option<usize>,
) -> ApiResult<Event> {
    let at = |field: &str| match index {
        Some(i) => format!("events[{i}].{field}"),
        None => field.to_owned(),
    };
    let event_type = EventType::parse(&input.event_type)
        .map_err(|e| ApiError::Validation(format!("{}: {e}", at("type"))))?;
    if event_type.is_operational() {
        return Err(ApiError::Validation(format!(
            "{}: {:?} is reserved: types starting with {:?} are Herald's own operational events",
            at("type"),
            input.event_type,
            herald_core::operational::PREFIX
        )));
    }
    let object_type = ObjectType::parse(&input.object_type)
        .map_err(|e| ApiError::Validation(format!("{}: {e}", at("object_type"))))?;
    herald_core::check_data(&input.data).map_err(|e| {
        ApiError::Validation(match index {
            Some(i) => format!("events[{i}].{e}"),
            None => e.to_string(),
        })
    })?;
    let (actor, changes) = context_of(input.actor.as_ref(), input.changes.as_ref(), &at(""))?;
    let ordering_key = match &input.ordering_key {
        None => None,
        Some(_) if !state.publisher.orders() => {
            return Err(ApiError::Validation(format!(
                "{}: this deployment has no ordered queue (HERALD_ORDERED_QUEUE_URL), so \
                 it cannot deliver in order; publish without it",
                at("ordering_key")
            )))
        }
        Some(key) => Some(
            OrderingKey::parse(key)
                .map_err(|e| ApiError::Validation(format!("{}: {e}", at("ordering_key"))))?,
        ),
    };
    let callback_url = input
        .callback_url
        .as_deref()
        .map(|url| {
            crate::webhooks::validate_url(state, url).map_err(|e| match e {
                ApiError::Validation(m) => {
                    ApiError::Validation(format!("{}: {m}", at("callback_url")))
                }
                other => other,
            })
        })
        .transpose()?;
    let mut event = Event::new(app.clone(), event_type, object_type, input.data)
        .with_context(actor, changes)
        .with_ordering_key(ordering_key);
    event.callback_url = callback_url;
    Ok(event)
}

/// Checks the `data` of each event whose type has a JSON Schema in the app's catalog
/// (422 at the first that does not match, naming its place in the data). The schemas
/// of a request's types are looked up together (from the cache, else read).
async fn check_schemas(
    state: &AppState,
    app: &AppId,
    events: &[Event],
    batch: bool,
) -> ApiResult<()> {
    use futures::{StreamExt, TryStreamExt};
    let types: std::collections::BTreeSet<EventType> =
        events.iter().map(|e| e.event_type.clone()).collect();
    let schemas: std::collections::BTreeMap<EventType, _> = futures::stream::iter(types)
        .map(|t: EventType| async move {
            let schema = state
                .schemas
                .get(state.subscriptions.as_ref(), app, &t)
                .await?;
            Ok::<_, ApiError>((t, schema))
        })
        .buffer_unordered(8)
        .try_collect()
        .await?;
    for (i, event) in events.iter().enumerate() {
        let Some(Some(schema)) = schemas.get(&event.event_type) else {
            continue;
        };
        let at = if batch {
            format!("events[{i}].data")
        } else {
            "data".to_owned()
        };
        schema.check(&event.data.to_value(), &event.event_type, &at)?;
    }
    Ok(())
}

#[utoipa::path(post, path = "/v1/events", tag = "events", request_body = PublishIn,
    params(("Idempotency-Key" = Option<String>, Header, description = "Same key and body within 24 h: the same ids, each event published once (a try that failed part-way is resumed: only what did not reach the queue is published, under the same ids); a different body: 409")),
    responses((status = 202, body = Published), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, description = "Some or all events did not reach the queue: which did, and why the others did not; retry with the same Idempotency-Key", body = PartlyPublished)),
    security(("app_key" = [])))]
pub async fn publish(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Published>)> {
    if body.len() > state.config.max_body_bytes {
        return Err(ApiError::PayloadTooLarge(format!(
            "request body over {} bytes",
            state.config.max_body_bytes
        )));
    }
    let input: PublishIn = parse_json(&body).map_err(|e| {
        if is_too_deep(&e) {
            ApiError::Validation(format!(
                "data nests arrays and objects deeper than {} levels",
                herald_core::MAX_DATA_DEPTH
            ))
        } else {
            e
        }
    })?;
    let batch = matches!(input, PublishIn::Batch(_));
    let events = match input {
        PublishIn::One(e) => vec![to_event(&state, &app, e, None)?],
        PublishIn::Batch(b) => {
            if b.events.is_empty() || b.events.len() > MAX_EVENTS_PER_REQUEST {
                return Err(ApiError::Validation(format!(
                    "events must hold 1 to {MAX_EVENTS_PER_REQUEST} events"
                )));
            }
            b.events
                .into_iter()
                .enumerate()
                .map(|(i, e)| to_event(&state, &app, e, Some(i)))
                .collect::<ApiResult<Vec<_>>>()?
        }
    };

    check_schemas(&state, &app, &events, batch).await?;
    if events.iter().any(|e| e.callback_url.is_some())
        && state.subscriptions.callback_secrets(&app).await?.is_none()
    {
        return Err(ApiError::Validation(
            "callback_url needs the app's callback secret, which signs those deliveries: \
             create it with POST /v1/app/callback-secret/rotate (`herald callback-secret \
             rotate`) first"
                .into(),
        ));
    }

    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => {
            let k = v.to_str().map_err(|_| {
                ApiError::BadRequest("Idempotency-Key must be visible ASCII".into())
            })?;
            if k.is_empty() || k.len() > MAX_IDEMPOTENCY_KEY_LEN {
                return Err(ApiError::BadRequest(format!(
                    "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} characters"
                )));
            }
            Some(k.to_owned())
        }
    };
    let mut events = events;
    // What an earlier try of this request under the same key already queued.
    let mut queued_before: Vec<EventId> = Vec::new();
    if let Some(key) = &key {
        let hash: String = Sha256::digest(&body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let planned: Vec<PlannedEvent> = events
            .iter()
            .map(|e| PlannedEvent {
                id: e.id.clone(),
                timestamp: e.timestamp,
            })
            .collect();
        match state.idempotency.claim(&app, key, &hash, &planned).await? {
            Claim::New => {}
            Claim::Resume { planned, queued } => {
                // The same body, so the same events: give them the first try's ids
                // and times, and publish only those not on the queue yet.
                if planned.len() != events.len() {
                    return Err(ApiError::Unavailable(
                        "the stored Idempotency-Key claim does not match this request".into(),
                    ));
                }
                for (event, plan) in events.iter_mut().zip(planned) {
                    event.id = plan.id;
                    event.timestamp = plan.timestamp;
                }
                queued_before = queued;
            }
            Claim::Replay(response) => {
                let ids: Published = serde_json::from_value(response).map_err(|_| {
                    ApiError::Unavailable("stored idempotent response is unreadable".into())
                })?;
                return Ok((StatusCode::ACCEPTED, Json(ids)));
            }
            Claim::InProgress => {
                return Err(ApiError::Conflict(
                    "a request with this Idempotency-Key is still in progress; retry shortly"
                        .into(),
                ))
            }
            Claim::Mismatch => {
                return Err(ApiError::Conflict(
                    "this Idempotency-Key was used with a different request body".into(),
                ))
            }
        }
    }

    let ids: Vec<String> = events.iter().map(|e| e.id.to_string()).collect();
    let to_publish: Vec<Event> = events
        .iter()
        .filter(|e| !queued_before.contains(&e.id))
        .cloned()
        .collect();
    let (queued, failed) = match state.publisher.publish_all(&to_publish).await {
        Ok(_) => (events.iter().map(|e| e.id.clone()).collect(), Vec::new()),
        Err(e @ herald_queue::PublishError::TooLarge { .. }) if queued_before.is_empty() => {
            // Refused before anything was sent: the key is free for a corrected body.
            if let Some(key) = &key {
                let _ = state.idempotency.release(&app, key).await;
            }
            return Err(ApiError::PayloadTooLarge(e.to_string()));
        }
        Err(herald_queue::PublishError::Failed { published, failed }) => {
            let mut queued = queued_before.clone();
            queued.extend(published);
            (queued, failed)
        }
        Err(other) => {
            let reason = other.to_string();
            let failed = to_publish
                .iter()
                .map(|e| (e.id.clone(), reason.clone()))
                .collect();
            (queued_before.clone(), failed)
        }
    };
    if !failed.is_empty() {
        tracing::error!(
            queued = queued.len(),
            failed = failed.len(),
            "publishing failed part-way"
        );
        if let Some(key) = &key {
            if let Err(e) = state.idempotency.progress(&app, key, &queued).await {
                tracing::warn!(error = %e, "could not record which events were queued");
            }
        }
        let retry = if key.is_some() {
            "retry with the same Idempotency-Key to publish the rest under the same ids"
        } else {
            "send an Idempotency-Key to make retries publish each event once"
        };
        return Err(ApiError::PartlyPublished {
            message: format!(
                "{} of {} events were not accepted; {retry}",
                failed.len(),
                ids.len()
            ),
            ids,
            queued: queued.iter().map(ToString::to_string).collect(),
            failed: failed
                .into_iter()
                .map(|(id, reason)| NotPublished {
                    id: id.to_string(),
                    reason,
                })
                .collect(),
        });
    }
    let out = Published { ids };
    if let Some(key) = &key {
        if let Err(e) = state
            .idempotency
            .complete(&app, key, &serde_json::to_value(&out).unwrap_or_default())
            .await
        {
            tracing::warn!(error = %e, "could not store the idempotent response");
        }
    }
    Ok((StatusCode::ACCEPTED, Json(out)))
}

pub(crate) fn path_event(id: &str) -> ApiResult<EventId> {
    EventId::parse(id).map_err(|_| ApiError::NotFound(format!("event {id}")))
}

/// Queues `app`'s event `id` again, to one webhook or to every active matching one.
pub async fn resend_event(
    state: &AppState,
    app: &AppId,
    id: &str,
    input: ResendIn,
) -> ApiResult<Resent> {
    let event_id = path_event(id)?;
    let event = state
        .history
        .get_event(app, &event_id)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "event {id} (events are kept for the history retention)"
            ))
        })?;
    let targets: Vec<SubscriptionId> = match &input.subscription_id {
        Some(sub) => vec![load(state, app, sub).await?.id],
        None => state
            .subscriptions
            .matching(&event)
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect(),
    };
    for sub in &targets {
        state
            .outbox
            .schedule(
                &DeliveryTask::first(event.clone(), sub.clone()),
                std::time::Duration::ZERO,
            )
            .await
            .map_err(|e| {
                ApiError::Unavailable(format!("could not queue the re-send, retry: {e}"))
            })?;
    }
    Ok(Resent {
        event_id: id.to_owned(),
        scheduled: targets.iter().map(|s| s.to_string()).collect(),
    })
}

#[utoipa::path(post, path = "/v1/events/{id}/resend", tag = "events", params(("id" = String, Path)), request_body = ResendIn,
    responses((status = 202, body = Resent), (status = 404, body = ErrorBody)), security(("app_key" = [])))]
pub async fn resend(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Resent>)> {
    let input: ResendIn = if body.is_empty() {
        ResendIn::default()
    } else {
        parse_json(&body)?
    };
    let out = resend_event(&state, &app, &id, input).await?;
    Ok((StatusCode::ACCEPTED, Json(out)))
}
