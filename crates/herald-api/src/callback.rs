//! The app's callback secret (docs/security.md, "Callback URLs"): what signs the
//! deliveries of events published with a `callback_url`.

use axum::extract::State;
use axum::Json;
use chrono::Utc;
use herald_core::AppId;

use crate::error::{ApiResult, ErrorBody};
use crate::extract::Tenant;
use crate::state::AppState;
use crate::webhooks::RotatedSecret;

/// Gives `app` a new callback secret (returned once); the previous one, if any, keeps
/// signing for the rotation window.
pub async fn rotate_callback_secret(state: &AppState, app: &AppId) -> ApiResult<RotatedSecret> {
    let window = chrono::Duration::from_std(state.config.rotation_window)
        .unwrap_or(chrono::Duration::hours(24));
    let now = Utc::now();
    let (secret, stored) = state
        .subscriptions
        .rotate_callback_secret(app, now, window)
        .await?;
    Ok(RotatedSecret {
        secret: secret.expose(),
        previous_secret_expires_at: stored.previous_secrets_expire_at.unwrap_or(now),
    })
}

/// Creates or rotates the app's callback secret, which signs the deliveries to the
/// `callback_url` of published events; shown once. Publishing with a `callback_url`
/// needs one.
#[utoipa::path(post, path = "/v1/app/callback-secret/rotate", tag = "events",
    responses((status = 200, body = RotatedSecret),
        (status = 409, body = ErrorBody, description = "Another rotation kept landing first; try again")),
    security(("app_key" = [])))]
pub async fn rotate(
    Tenant(app): Tenant,
    State(state): State<AppState>,
) -> ApiResult<Json<RotatedSecret>> {
    rotate_callback_secret(&state, &app).await.map(Json)
}
