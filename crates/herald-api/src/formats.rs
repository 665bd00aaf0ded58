//! What the API says of payload formats, content types and an event's context (actor
//! and changes): their names in requests and responses, their schemas, and the checks
//! that turn request fields into domain values (422 naming the field otherwise).

use herald_core::{Actor, Changes, ContentType, PayloadFormat};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};

/// A webhook's payload format: `standard`, the Standard Webhooks envelope signed in
/// `webhook-signature`; or `para`, what Para's dispatcher sends (`appid`, `event`,
/// `items`, `timestamp`) signed in `X-Webhook-Signature`, with `X-Para-Event`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FormatName {
    Standard,
    Para,
}

/// How the payload travels: `json`, as the body (`application/json`); or `form`,
/// as `payload=` and the payload URL-encoded (`application/x-www-form-urlencoded`;
/// Para's `urlEncoded: true`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ContentTypeName {
    Json,
    Form,
}

/// Who made the change an event reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ActorOut {
    /// The actor's id (1 to 256 bytes).
    pub id: String,
    /// What kind of actor (`user`, `service`, …; at most 256 bytes).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub actor_type: Option<String>,
    /// A name to show (at most 256 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl From<&Actor> for ActorOut {
    fn from(a: &Actor) -> Self {
        Self {
            id: a.id.clone(),
            actor_type: a.actor_type.clone(),
            name: a.name.clone(),
        }
    }
}

/// The changes of an event as the API shows them: field → `[before, after]`.
pub fn changes_out(changes: Option<&Changes>) -> Option<serde_json::Value> {
    changes.map(Changes::to_value)
}

/// Reads a `format` field.
pub fn parse_format(value: &str) -> ApiResult<PayloadFormat> {
    value.parse().map_err(ApiError::Validation)
}

/// Reads a `content_type` field.
pub fn parse_content_type(value: &str) -> ApiResult<ContentType> {
    value.parse().map_err(ApiError::Validation)
}

/// The format and content type a request asks for: each as given, a missing content
/// type being the format's default whenever the format is given (Para's: `form`). For
/// a PATCH, `None` leaves a setting as it is.
pub fn shape_of(
    format: Option<&str>,
    content_type: Option<&str>,
) -> ApiResult<(Option<PayloadFormat>, Option<ContentType>)> {
    let format = format.map(parse_format).transpose()?;
    let content_type = match content_type {
        Some(c) => Some(parse_content_type(c)?),
        None => format.map(PayloadFormat::default_content_type),
    };
    Ok((format, content_type))
}

/// Reads an event's `actor` and `changes` (at `at`, e.g. `events[2].`, in errors).
pub fn context_of(
    actor: Option<&serde_json::Value>,
    changes: Option<&serde_json::Value>,
    at: &str,
) -> ApiResult<(Option<Actor>, Option<Changes>)> {
    let invalid = |e: herald_core::ValidationError| ApiError::Validation(format!("{at}{e}"));
    let actor = match actor {
        None | Some(serde_json::Value::Null) => None,
        Some(a) => Some(Actor::from_json(a).map_err(invalid)?),
    };
    let changes = match changes {
        None | Some(serde_json::Value::Null) => None,
        Some(c) => Changes::from_json(c).map_err(invalid)?,
    };
    Ok((actor, changes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_format_without_a_content_type_takes_its_default() {
        assert_eq!(
            shape_of(Some("para"), None).unwrap(),
            (Some(PayloadFormat::Para), Some(ContentType::Form))
        );
        assert_eq!(
            shape_of(Some("para"), Some("json")).unwrap(),
            (Some(PayloadFormat::Para), Some(ContentType::Json))
        );
        assert_eq!(
            shape_of(Some("standard"), None).unwrap(),
            (Some(PayloadFormat::Standard), Some(ContentType::Json))
        );
        assert_eq!(
            shape_of(None, Some("form")).unwrap(),
            (None, Some(ContentType::Form))
        );
        assert_eq!(shape_of(None, None).unwrap(), (None, None));
        let err = shape_of(Some("xml"), None).unwrap_err();
        assert_eq!(err.status(), axum::http::StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            err.to_string().contains("\"standard\" or \"para\""),
            "{err}"
        );
        assert!(shape_of(None, Some("yaml")).is_err());
    }

    #[test]
    fn context_errors_name_the_event() {
        let err = context_of(Some(&serde_json::json!({"id": 1})), None, "events[3].")
            .unwrap_err()
            .to_string();
        assert!(err.contains("events[3].actor.id must be a string"), "{err}");
        let (a, c) = context_of(None, Some(&serde_json::json!({})), "").unwrap();
        assert_eq!((a, c), (None, None));
    }
}
