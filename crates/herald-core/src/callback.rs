//! Callback URLs on the fly (docs/security.md, "Callback URLs"): an event published
//! with a `callback_url` is also delivered there, signed with its app's callback
//! secret, and retried and recorded like a webhook's delivery under the pseudo-webhook
//! id [`CALLBACK_ID`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::AppId;
use crate::format::{ContentType, PayloadFormat};
use crate::signing::Secret;
use crate::subscription::{EventFilter, ObjectTypeFilter, Route, SubscriptionId};

/// The webhook id an event's callback delivery is signed, retried and recorded under.
pub const CALLBACK_ID: &str = "callback";

/// Whether `id` is the callback pseudo-webhook's.
pub fn is_callback(id: &SubscriptionId) -> bool {
    id.as_str() == CALLBACK_ID
}

/// An app's callback signing secrets: the current one first, then the rotated-out one
/// while its window lasts (both sign, as a webhook's do).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallbackSecrets {
    pub app_id: AppId,
    /// Always [`CALLBACK_ID`] (the secrets are sealed under `{app}/callback`).
    pub id: SubscriptionId,
    pub secrets: Vec<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secrets_expire_at: Option<DateTime<Utc>>,
    /// Bumped by every rotation (guards concurrent ones).
    #[serde(default)]
    pub version: u64,
}

impl CallbackSecrets {
    /// `current` (the app's secrets, if it has any) with a fresh secret first; the
    /// previous one keeps signing for `window`. Returns the new secrets and the new
    /// secret.
    pub fn rotated(
        current: Option<&Self>,
        app: &AppId,
        now: DateTime<Utc>,
        window: chrono::Duration,
    ) -> (Self, Secret) {
        let new = Secret::generate();
        let previous = current.and_then(|c| c.secrets.first().cloned());
        let next = Self {
            app_id: app.clone(),
            id: SubscriptionId::new(CALLBACK_ID),
            previous_secrets_expire_at: previous.as_ref().map(|_| now + window),
            secrets: std::iter::once(new.clone()).chain(previous).collect(),
            version: current.map_or(0, |c| c.version) + 1,
        };
        (next, new)
    }

    /// The route of a callback delivery to `url`: every event, JSON in the standard
    /// format, signed with these secrets.
    pub fn route(&self, url: &str) -> Route {
        Route {
            id: SubscriptionId::new(CALLBACK_ID),
            app_id: self.app_id.clone(),
            url: url.to_owned(),
            events: EventFilter::All,
            object_types: ObjectTypeFilter::All,
            active: true,
            headers: Default::default(),
            secrets: self.secrets.clone(),
            disabled_reason: None,
            previous_secrets_expire_at: self.previous_secrets_expire_at,
            failing: false,
            rate_limit: None,
            format: PayloadFormat::Standard,
            content_type: ContentType::Json,
            filter: None,
            ordered: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotation_keeps_the_previous_secret_for_the_window() {
        let app = AppId::parse("shop").unwrap();
        let now = Utc::now();
        let (first, s1) = CallbackSecrets::rotated(None, &app, now, chrono::Duration::hours(1));
        assert_eq!(first.secrets, vec![s1.clone()]);
        assert_eq!(first.previous_secrets_expire_at, None);
        let (second, s2) =
            CallbackSecrets::rotated(Some(&first), &app, now, chrono::Duration::hours(1));
        assert_eq!(second.secrets, vec![s2, s1]);
        assert_eq!(second.version, 2);
        assert_eq!(
            second.previous_secrets_expire_at,
            Some(now + chrono::Duration::hours(1))
        );
        let route = second.route("https://example.com/cb");
        assert!(is_callback(&route.id));
        assert_eq!(route.url, "https://example.com/cb");
        assert_eq!(route.secrets, second.secrets);
    }
}
