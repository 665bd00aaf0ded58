//! Recovering a webhook's failures: every delivery to it that failed for good or was
//! not sent in a time window, and has not succeeded since, queued again once.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use futures::future::join_all;
use herald_core::{DeliveryTask, SubscriptionId};
use herald_store::{RecoveryCandidate, RecoveryState};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::deliveries::time_window;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{parse_json, Tenant};
use crate::state::AppState;
use crate::webhooks::load;

/// Deliveries queued at once by one call.
const QUEUED_AT_ONCE: usize = 8;

/// What to recover.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoverIn {
    /// Deliveries whose attempts failed at or after this time (RFC 3339).
    pub since: String,
    /// … and before this time (RFC 3339); now when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// The `next_cursor` of the previous call of the same recovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// What one call of a recovery did. A call examines a bounded share of the window;
/// call again with `next_cursor` (and the same `since` and `until`) until it is null.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct RecoverOut {
    /// Deliveries queued again by this call.
    pub queued: usize,
    /// Deliveries an earlier recovery queued already (not queued twice).
    pub already_queued: usize,
    /// Deliveries with a retry still pending: left to it.
    pub retrying: usize,
    /// Deliveries that succeeded since they failed.
    pub succeeded_since: usize,
    /// Deliveries whose event is no longer kept (past the history retention, or too
    /// large to store): they cannot be sent again.
    pub expired: usize,
    /// Event ids of the deliveries queued by this call.
    pub event_ids: Vec<String>,
    /// Pass it back to go on with the window; null when the window is done.
    pub next_cursor: Option<String>,
}

/// Recovers `app`'s webhook `id`'s failures of the window `input` names: one bounded
/// share of it per call (see [`recover`]).
pub async fn recover_webhook(
    state: &AppState,
    app: &herald_core::AppId,
    id: &str,
    input: RecoverIn,
) -> ApiResult<RecoverOut> {
    let (since, until) = time_window(&Some(input.since), &input.until)?;
    let since = since.ok_or_else(|| ApiError::Validation("since is required".to_owned()))?;
    if since > Utc::now() {
        return Err(ApiError::Validation("since is in the future".to_owned()));
    }
    let sub = load(state, app, id).await?;
    if !sub.active {
        return Err(ApiError::Conflict(format!(
            "webhook {id} is disabled: enable it, then recover its failures"
        )));
    }
    let page = state
        .history
        .recovery_page(app, &sub.id, since, until, input.cursor.as_deref())
        .await?;
    let mut out = RecoverOut {
        next_cursor: page.next_cursor,
        ..Default::default()
    };
    let mut due = Vec::new();
    for c in page.candidates {
        match c.state {
            RecoveryState::Due => due.push(c),
            RecoveryState::Queued => out.already_queued += 1,
            RecoveryState::Retrying => out.retrying += 1,
            RecoveryState::Succeeded => out.succeeded_since += 1,
        }
    }
    let mut outcomes: Vec<ApiResult<Queued>> = Vec::with_capacity(due.len());
    for chunk in due.chunks(QUEUED_AT_ONCE) {
        outcomes.extend(join_all(chunk.iter().map(|c| requeue(state, app, &sub.id, c))).await);
    }
    let mut failure = None;
    for outcome in outcomes {
        match outcome {
            Ok(Queued::Now(event)) => {
                out.queued += 1;
                out.event_ids.push(event);
            }
            Ok(Queued::Already) => out.already_queued += 1,
            Ok(Queued::Expired) => out.expired += 1,
            Err(e) => failure = Some(e),
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    out.event_ids.sort();
    tracing::info!(%app, webhook = %sub.id, queued = out.queued, "failures recovered");
    Ok(out)
}

/// Queues again every delivery to the webhook whose newest attempt failed for good
/// (parked on the dead-letter queue after its last attempt, a 410 or a refused
/// address) or was not sent (endpoint disabled) in the window, and has not
/// succeeded since. Repeating the same request queues nothing twice: a delivery is
/// queued again only once an attempt newer than the last recovery failed too.
/// Deliveries still being retried are left to their retry. Dead letters stay on the
/// dead-letter queue: re-driving them after a recovery sends them again (see
/// docs/delivery.md, "Recovering an endpoint's failures").
#[utoipa::path(post, path = "/v1/webhooks/{id}/recover", tag = "webhooks", params(("id" = String, Path)), request_body = RecoverIn,
    responses((status = 202, body = RecoverOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "The webhook is disabled: enable it first"),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody, description = "Some deliveries could not be queued; repeat the request: what was queued is not queued again")),
    security(("app_key" = [])))]
pub async fn recover(
    Tenant(app): Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<RecoverOut>)> {
    let input: RecoverIn = parse_json(&body)?;
    let out = recover_webhook(&state, &app, &id, input).await?;
    Ok((StatusCode::ACCEPTED, Json(out)))
}

/// What became of one due delivery.
enum Queued {
    /// Queued by this call (the event id).
    Now(String),
    /// Another recovery claimed it first.
    Already,
    /// Its event is no longer kept.
    Expired,
}

/// Claims a due delivery and queues it again as a fresh first attempt; a claim whose
/// delivery could not be queued is taken back.
async fn requeue(
    state: &AppState,
    app: &herald_core::AppId,
    sub: &SubscriptionId,
    c: &RecoveryCandidate,
) -> ApiResult<Queued> {
    if !state
        .history
        .claim_recovery(app, sub, &c.event_id, c.newest.attempted_at)
        .await?
    {
        return Ok(Queued::Already);
    }
    let queued = match state.history.get_event(app, &c.event_id).await {
        Ok(Some(event)) => state
            .outbox
            .schedule(
                &DeliveryTask::first(event, sub.clone()),
                std::time::Duration::ZERO,
            )
            .await
            .map(|_| Queued::Now(c.event_id.to_string()))
            .map_err(|e| {
                ApiError::Unavailable(format!(
                    "could not queue a delivery, repeat the request: {e}"
                ))
            }),
        Ok(None) => Ok(Queued::Expired),
        Err(e) => Err(e.into()),
    };
    if !matches!(queued, Ok(Queued::Now(_))) {
        if let Err(e) = state.history.release_recovery(app, sub, &c.event_id).await {
            tracing::warn!(error = %e, event = %c.event_id, "could not release a recovery claim");
        }
    }
    queued
}
