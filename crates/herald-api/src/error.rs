//! API errors: every failure is JSON `{"error": {"code", "message"}}` with its status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// A machine-readable code and a human-readable message.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable code, e.g. `validation_failed`, `not_found`, `unauthorized`.
    pub code: String,
    pub message: String,
}

/// The 503 of a publish request that queued only some of its events: the error, and
/// which events did reach the queue. Retrying with the same `Idempotency-Key` publishes
/// the rest under the same ids.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PartlyPublished {
    pub error: ErrorDetail,
    /// Every event of the request, in request order.
    pub ids: Vec<String>,
    /// Those on the queue.
    pub queued: Vec<String>,
    /// Those not, with the reason.
    pub failed: Vec<NotPublished>,
}

/// An event that did not reach the queue.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NotPublished {
    pub id: String,
    pub reason: String,
}

/// An API error.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Some events of a publish request reached the queue, some did not (503).
    #[error("{message}")]
    PartlyPublished {
        message: String,
        ids: Vec<String>,
        queued: Vec<String>,
        failed: Vec<NotPublished>,
    },
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    /// A body without a usable `Content-Type` (415; the ingest of inbound webhooks).
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    RateLimited(String),
    #[error("{0}")]
    Unavailable(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) | Self::PartlyPublished { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::Conflict(_) => "conflict",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::Validation(_) => "validation_failed",
            Self::RateLimited(_) => "rate_limited",
            Self::Unavailable(_) => "unavailable",
            Self::PartlyPublished { .. } => "partly_published",
        }
    }
}

impl From<herald_store::StoreError> for ApiError {
    fn from(e: herald_store::StoreError) -> Self {
        use herald_store::{ItemKind, StoreError as E};
        // The API calls subscriptions webhooks.
        let name = |kind: ItemKind| match kind {
            ItemKind::Subscription => "webhook".to_owned(),
            other => other.to_string(),
        };
        match e {
            E::NotFound { kind, id } => Self::NotFound(format!("{} {id}", name(kind))),
            E::AlreadyExists { kind, id } => {
                Self::Conflict(format!("{} {id} already exists", name(kind)))
            }
            E::Changed { kind, id } => Self::Conflict(format!(
                "{} {id} was changed by another request at the same time; try again",
                name(kind)
            )),
            E::BadCursor => Self::BadRequest(E::BadCursor.to_string()),
            e @ E::TooMany { .. } => Self::Validation(e.to_string()),
            e @ E::Unsupported { .. } => Self::Unavailable(e.to_string()),
            other => {
                // Storage trouble is the service's, not the caller's: report it as
                // temporarily unavailable (retryable) and log the detail.
                tracing::error!(error = %other, "storage error");
                Self::Unavailable("storage is temporarily unavailable; retry later".into())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = (self.status(), self.code().to_owned());
        if let Self::PartlyPublished {
            message,
            ids,
            queued,
            failed,
        } = self
        {
            let body = PartlyPublished {
                error: ErrorDetail { code, message },
                ids,
                queued,
                failed,
            };
            return (status, axum::Json(body)).into_response();
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code().to_owned(),
                message: self.to_string(),
            },
        };
        (self.status(), axum::Json(body)).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use herald_store::{ItemKind, StoreError};

    use super::*;

    #[test]
    fn store_errors_reach_clients_as_before() {
        let cases = [
            (
                StoreError::not_found(ItemKind::Subscription, "sub_1"),
                StatusCode::NOT_FOUND,
                "webhook sub_1 not found",
            ),
            (
                StoreError::already_exists(ItemKind::Subscription, "sub_1"),
                StatusCode::CONFLICT,
                "webhook sub_1 already exists",
            ),
            (
                StoreError::not_found(ItemKind::App, "shop"),
                StatusCode::NOT_FOUND,
                "app shop not found",
            ),
            (
                StoreError::already_exists(ItemKind::App, "shop"),
                StatusCode::CONFLICT,
                "app shop already exists",
            ),
            (
                StoreError::BadCursor,
                StatusCode::BAD_REQUEST,
                "invalid pagination cursor",
            ),
            (
                StoreError::Dynamo {
                    operation: "Query",
                    message: "throttled".into(),
                },
                StatusCode::SERVICE_UNAVAILABLE,
                "storage is temporarily unavailable; retry later",
            ),
        ];
        for (store, status, message) in cases {
            let api = ApiError::from(store);
            assert_eq!((api.status(), api.to_string().as_str()), (status, message));
        }
    }
}
