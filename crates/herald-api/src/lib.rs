//! Herald's management API.
//!
//! One axum router ([`router`]), JSON in and out, served locally by `herald serve`
//! and on Lambda by `herald-api-lambda` through `lambda_http` — the same code. The
//! OpenAPI document is generated from the handlers (utoipa), served at
//! `/v1/openapi.json` and checked in at `docs/openapi.json`.

pub mod apps;
pub mod error;
pub mod events;
pub mod extract;
pub mod state;
pub mod webhooks;

use axum::{Json, Router};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::ApiError;
pub use state::{ApiConfig, AppState};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Herald API",
        description = "Register webhooks, publish events, and inspect deliveries. Every error is `{\"error\": {\"code\", \"message\"}}`.",
    ),
    modifiers(&Security),
    tags(
        (name = "apps", description = "Apps (tenants) and API keys; admin key only"),
        (name = "webhooks", description = "Webhook endpoints of the caller's app"),
        (name = "events", description = "Publishing and re-sending events"),
        (name = "deliveries", description = "The delivery history"),
        (name = "meta", description = "Health and this document"),
    )
)]
struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for name in ["admin_key", "app_key"] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
        }
    }
}

/// Liveness.
#[utoipa::path(get, path = "/healthz", tag = "meta", responses((status = 200, description = "The API is up")))]
async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// This OpenAPI document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "meta", responses((status = 200, description = "OpenAPI 3 document")))]
async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    static DOC: std::sync::OnceLock<utoipa::openapi::OpenApi> = std::sync::OnceLock::new();
    Json(DOC.get_or_init(openapi).clone())
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("route {}", uri.path()))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not allowed on {}", uri.path()))
}

fn documented() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(openapi_json))
        .routes(routes!(apps::create_app, apps::list_apps))
        .routes(routes!(apps::get_app, apps::delete_app))
        .routes(routes!(apps::create_key, apps::list_keys))
        .routes(routes!(apps::delete_key))
        .routes(routes!(webhooks::create, webhooks::list))
        .routes(routes!(webhooks::get, webhooks::update, webhooks::delete))
        .routes(routes!(webhooks::enable))
        .routes(routes!(webhooks::disable))
        .routes(routes!(webhooks::rotate))
        .routes(routes!(webhooks::test))
        .routes(routes!(events::publish))
        .routes(routes!(events::webhook_deliveries))
        .routes(routes!(events::event_deliveries))
        .routes(routes!(events::resend))
}

/// The OpenAPI document of the whole API, generated from the handlers.
pub fn openapi() -> utoipa::openapi::OpenApi {
    documented().split_for_parts().1
}

/// The API router. Every route is documented; unknown routes and methods get JSON errors.
pub fn router(state: AppState) -> Router {
    let (router, _) = documented().split_for_parts();
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(
            state.config.max_body_bytes,
        ))
        .with_state(state)
}

/// Serves the API on `addr` until `shutdown` completes.
pub async fn serve(
    state: AppState,
    addr: &str,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("binding {addr}: {e}"))?;
    tracing::info!(addr = %listener.local_addr()?, "API listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
