//! Herald's management API.
//!
//! One axum router ([`router`]), JSON in and out, served locally by `herald serve`
//! and on Lambda by `herald-api-lambda` through `lambda_http` — the same code. The
//! OpenAPI document is generated from the handlers (utoipa), served at
//! `/v1/openapi.json` and checked in at `docs/openapi.json`.

pub mod apps;
pub mod callback;
pub mod console;
pub mod deliveries;
pub mod error;
pub mod event_listing;
pub mod event_status;
pub mod event_types;
pub mod events;
pub mod extract;
pub mod formats;
pub mod health;
pub mod ingest;
pub mod recover;
pub mod schemas;
pub mod sources;
pub mod state;
pub mod webhooks;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::ApiError;
pub use state::{ApiConfig, AppState, Backends};

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
        (name = "event types", description = "The app's event-type catalog: descriptions and JSON Schemas of `data`"),
        (name = "deliveries", description = "The delivery history"),
        (name = "sources", description = "Inbound webhooks: sources of the caller's app, and the public ingest `POST /in/{source_id}`"),
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
        .routes(routes!(event_types::create, event_types::list))
        .routes(routes!(
            event_types::get,
            event_types::update,
            event_types::delete
        ))
        .routes(routes!(events::publish, event_listing::list_events))
        .routes(routes!(recover::recover))
        .routes(routes!(deliveries::app_deliveries))
        .routes(routes!(deliveries::webhook_deliveries))
        .routes(routes!(deliveries::event_deliveries))
        .routes(routes!(event_status::get_event))
        .routes(routes!(events::resend))
        .routes(routes!(callback::rotate))
        .routes(routes!(sources::create, sources::list))
        .routes(routes!(sources::get, sources::update, sources::delete))
        .routes(routes!(sources::requests))
}

/// [`documented`] with the ingest of inbound webhooks: what `herald serve` runs.
fn with_ingest() -> OpenApiRouter<AppState> {
    documented().routes(routes!(ingest::ingest))
}

/// The OpenAPI document of the whole API, generated from the handlers.
pub fn openapi() -> utoipa::openapi::OpenApi {
    with_ingest().split_for_parts().1
}

/// The API router with the ingest of inbound webhooks, as `herald serve` runs it.
/// Every route is documented; unknown routes and methods get JSON errors, and so do
/// the framework's own rejections ([`json_errors`]).
pub fn router(state: AppState) -> Router {
    let (router, _) = with_ingest().split_for_parts();
    finish(router.nest("/console", console::router()), state)
}

/// The management API and console alone, for `herald-api-lambda`: on AWS the ingest
/// has its own function and URL ([`ingest_router`]), so `/in/…` answers 404 here.
pub fn management_router(state: AppState) -> Router {
    let (router, _) = documented().split_for_parts();
    finish(router.nest("/console", console::router()), state)
}

/// The ingest of inbound webhooks alone (`POST /in/{source_id}`), for its own Lambda
/// function (`herald-ingest-lambda`), with the same error handling as [`router`].
pub fn ingest_router(state: AppState) -> Router {
    let router = Router::new().route("/in/{source_id}", axum::routing::post(ingest::ingest));
    finish(router, state)
}

/// The fallbacks, the body limit and the JSON error shape, around `router`.
fn finish(router: Router<AppState>, state: AppState) -> Router {
    let limit = state.config.max_body_bytes;
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .layer(axum::middleware::map_response(move |r| {
            json_errors(r, limit)
        }))
        .with_state(state)
}

/// Longest framework rejection text kept as the message of its JSON error.
const MAX_REJECTION_TEXT: usize = 1024;

/// Puts error responses that are not JSON — axum's own rejections, such as a body
/// over `DefaultBodyLimit` (413) or a path segment that is not UTF-8 once decoded
/// (400) — into the API's `{"error": {"code", "message"}}` shape, with the same status.
async fn json_errors(response: Response, max_body_bytes: usize) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if !(status.is_client_error() || status.is_server_error()) || is_json || is_html {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    parts.headers.remove(header::CONTENT_TYPE);
    parts.headers.remove(header::CONTENT_LENGTH);
    let text = axum::body::to_bytes(body, MAX_REJECTION_TEXT)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_owned();
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => format!("request body over {max_body_bytes} bytes"),
        _ if text.is_empty() => status.canonical_reason().unwrap_or("error").to_owned(),
        _ => text,
    };
    let code = match status {
        StatusCode::BAD_REQUEST => "bad_request".to_owned(),
        StatusCode::NOT_FOUND => "not_found".to_owned(),
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed".to_owned(),
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large".to_owned(),
        StatusCode::UNPROCESSABLE_ENTITY => "validation_failed".to_owned(),
        other => other
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase()
            .replace([' ', '-'], "_"),
    };
    let body = error::ErrorBody {
        error: error::ErrorDetail { code, message },
    };
    (parts, Json(body)).into_response()
}

/// The `main` of a Lambda function serving `router` (the API's or the ingest's) with
/// the configuration from the environment, through `lambda_http`.
pub async fn run_lambda(router: fn(AppState) -> Router) -> Result<(), lambda_http::Error> {
    use anyhow::Context as _;
    use herald_runtime::Load as _;
    herald_runtime::init_tracing(true);
    let config = ApiConfig::from_env().context("invalid configuration")?;
    let aws = herald_runtime::aws_config().await;
    let state = AppState::connect(config, &aws).await?;
    lambda_http::run(router(state)).await
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

#[cfg(test)]
mod tests {
    use axum::body::{to_bytes, Body, Bytes};
    use axum::extract::{DefaultBodyLimit, Path};
    use axum::http::Request;
    use axum::routing::post;
    use tower::ServiceExt;

    use super::*;

    /// A router with the same framework extractors and layers as [`router`].
    fn app() -> Router {
        Router::new()
            .route(
                "/x/{id}",
                post(|Path(id): Path<String>, body: Bytes| async move {
                    format!("{id} {}", body.len())
                }),
            )
            .layer(DefaultBodyLimit::max(16))
            .layer(axum::middleware::map_response(|r| json_errors(r, 16)))
    }

    async fn send(uri: &str, body: &'static str) -> (StatusCode, String, serde_json::Value) {
        let request = Request::post(uri).body(Body::from(body)).unwrap();
        let response = app().oneshot(request).await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let bytes = to_bytes(response.into_body(), 1 << 16).await.unwrap();
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (status, content_type, json)
    }

    #[tokio::test]
    async fn framework_rejections_answer_the_json_error_shape_with_their_status() {
        let (status, content_type, e) = send("/x/a", "0123456789abcdefXYZ").await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(content_type, "application/json");
        assert_eq!(e["error"]["code"], "payload_too_large");
        assert_eq!(e["error"]["message"], "request body over 16 bytes");

        let (status, content_type, e) = send("/x/%FF%FE", "").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(content_type, "application/json");
        assert_eq!(e["error"]["code"], "bad_request");
        assert!(e["error"]["message"].as_str().unwrap().len() > 5, "{e}");

        // Successes and other statuses are left alone.
        let (status, _, e) = send("/x/a", "ok").await;
        assert_eq!((status, e), (StatusCode::OK, serde_json::Value::Null));
        let (status, _, e) = send("/nowhere", "").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(
            e["error"]["code"], "not_found",
            "bare 404s get the shape too"
        );
    }
}
