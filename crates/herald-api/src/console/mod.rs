//! The web console: server-rendered HTML (maud) with htmx for partial updates, served
//! under `/console` by the API's own router, so `herald serve` and the API's Lambda
//! function serve it with nothing else to host.
//!
//! It calls the same functions the API's handlers call (`webhooks::create_webhook`,
//! `deliveries::list_attempts`, …) with the app of the session, so it shows and does
//! nothing the API would not, and every lookup is scoped to the session's app exactly as
//! the API scopes it to the key's. Sessions are signed cookies ([`session`]); every form
//! post carries the session's CSRF token and must come from the console's own origin
//! ([`auth`]). The operator (signed in with the admin key) has pages of its own under
//! `/console/ops` (system status, apps and keys, the dead-letter queue) and none of a
//! tenant's: to see an app's pages, sign in with one of its keys (the operator can make
//! one). A tenant's session gets a 403 page on every operator page. Every response
//! carries a strict CSP (scripts from `'self'` only, no inline scripts or styles) and
//! refuses framing.

mod apps;
mod assets;
mod auth;
mod chart;
mod deliveries;
mod dlq;
mod events;
mod ops;
mod overview;
mod page;
pub mod session;
mod webhook_form;
mod webhooks;

use axum::http::{header, HeaderValue};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

pub use session::SessionKey;

use crate::state::AppState;

/// The console's routes, to be nested at `/console`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(auth::home))
        .route("/sign-in", get(auth::sign_in_page).post(auth::sign_in))
        .route("/sign-out", post(auth::sign_out))
        .route("/overview", get(overview::show))
        .route("/webhooks", get(webhooks::list).post(webhooks::create))
        .route("/webhooks/new", get(webhooks::new_form))
        .route(
            "/webhooks/{id}",
            get(webhooks::detail).post(webhooks::update),
        )
        .route("/webhooks/{id}/edit", get(webhooks::edit_form))
        .route("/webhooks/{id}/deliveries", get(deliveries::of_webhook))
        .route("/webhooks/{id}/{action}", post(webhooks::action))
        .route("/deliveries", get(deliveries::of_app))
        .route("/events", get(events::list))
        .route("/events/{id}", get(events::detail))
        .route("/events/{id}/resend", post(events::resend))
        .route(
            "/events/{id}/attempts/{webhook}/{attempt}",
            get(deliveries::attempt),
        )
        .route("/ops", get(ops::status))
        .route("/ops/apps", get(apps::list).post(apps::create))
        .route("/ops/apps/{id}", get(apps::detail))
        .route(
            "/ops/apps/{id}/delete",
            get(apps::confirm_delete).post(apps::delete),
        )
        .route("/ops/apps/{id}/keys", post(apps::create_key))
        .route("/ops/apps/{id}/keys/{key_id}/revoke", post(apps::revoke))
        .route("/ops/dlq", get(dlq::show))
        .route("/ops/dlq/redrive", get(dlq::dry_run).post(dlq::redrive))
        .route("/static/{file}", get(assets::serve))
        .fallback(not_found)
        .layer(axum::middleware::map_response(security_headers))
}

async fn not_found() -> page::ConsoleError {
    page::ConsoleError::new(axum::http::StatusCode::NOT_FOUND, "there is no such page")
}

/// The policy of every console response: scripts, styles, images and form posts from
/// the console's own origin only, no inline script or style, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Adds the security headers to every console response, and `Cache-Control: no-store`
/// to those that do not set their own caching (pages may hold a secret shown once).
async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
