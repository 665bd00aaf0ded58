//! Subscriptions (webhooks) and the filters that decide which events they receive.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::{AppId, Event, EventType, ObjectType, ValidationError};
use crate::signing::Secret;

/// Unique id of a subscription (`sub_` followed by a time-ordered UUID).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SubscriptionId(String);

impl SubscriptionId {
    /// A fresh subscription id.
    pub fn generate() -> Self {
        Self(crate::new_id("sub_"))
    }

    /// Wraps an id read back from storage or a request path. Ids are opaque; an unknown
    /// one simply matches nothing.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SubscriptionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which event types a subscription receives. Serialized as a list of types, where
/// `["*"]` means every type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventFilter {
    All,
    Only(BTreeSet<EventType>),
}

impl EventFilter {
    pub fn matches(&self, event_type: &EventType) -> bool {
        match self {
            Self::All => true,
            Self::Only(types) => types.contains(event_type),
        }
    }

    /// Parses a list of event types; `*` anywhere in it means all. An empty list is an
    /// error: a webhook that can receive nothing is a mistake, not a setting.
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Self, ValidationError> {
        if items.is_empty() {
            return Err(ValidationError::Empty {
                what: "event filter",
            });
        }
        if items.iter().any(|s| s.as_ref().trim() == "*") {
            return Ok(Self::All);
        }
        items
            .iter()
            .map(|s| EventType::parse(s.as_ref().trim()))
            .collect::<Result<_, _>>()
            .map(Self::Only)
    }

    /// The filter as a list of strings (`["*"]` for all).
    pub fn to_strings(&self) -> Vec<String> {
        match self {
            Self::All => vec!["*".to_owned()],
            Self::Only(types) => types.iter().map(|t| t.to_string()).collect(),
        }
    }
}

/// Which object types a subscription receives (Para's `typeFilter`). Serialized as a
/// list; an empty list, a blank entry or `*` means every object type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectTypeFilter {
    All,
    Only(BTreeSet<ObjectType>),
}

impl ObjectTypeFilter {
    pub fn matches(&self, object_type: &ObjectType) -> bool {
        match self {
            Self::All => true,
            Self::Only(types) => types.contains(object_type),
        }
    }

    /// Parses a list of object types; empty, blank or `*` means all.
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Self, ValidationError> {
        if items.is_empty() || items.iter().any(|s| matches!(s.as_ref().trim(), "" | "*")) {
            return Ok(Self::All);
        }
        items
            .iter()
            .map(|s| ObjectType::parse(s.as_ref().trim()))
            .collect::<Result<_, _>>()
            .map(Self::Only)
    }

    /// The filter as a list of strings (`["*"]` for all).
    pub fn to_strings(&self) -> Vec<String> {
        match self {
            Self::All => vec!["*".to_owned()],
            Self::Only(types) => types.iter().map(|t| t.to_string()).collect(),
        }
    }
}

macro_rules! list_serde {
    ($ty:ident) => {
        impl Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.to_strings().serialize(s)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let items = Vec::<String>::deserialize(d)?;
                Self::parse(&items).map_err(serde::de::Error::custom)
            }
        }
    };
}
list_serde!(EventFilter);
list_serde!(ObjectTypeFilter);

/// A webhook: where to POST which events of one app, and how to sign them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: SubscriptionId,
    pub app_id: AppId,
    pub url: String,
    pub events: EventFilter,
    pub object_types: ObjectTypeFilter,
    pub active: bool,
    #[serde(default)]
    pub description: String,
    /// Extra headers sent with every delivery (they never replace the signature headers).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Signing secrets; the first is current. Every listed secret signs each delivery, so
    /// a receiver holding any of them verifies it.
    pub secrets: Vec<Secret>,
    /// Why the endpoint was disabled, when it was disabled by Herald rather than a user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    /// Until when the secrets after the first (rotated out) keep signing; `None` when
    /// there is only one secret or the old ones never expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secrets_expire_at: Option<DateTime<Utc>>,
    /// Deliveries in a row that failed for good (every attempt failed); any
    /// successful delivery resets it. Drives the auto-disable rule.
    #[serde(default)]
    pub consecutive_failures: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Bumped by every change made through the API, so a read-modify-write (a secret
    /// rotation) can tell that the item changed under it.
    #[serde(default)]
    pub version: u64,
}

impl Subscription {
    /// A new active subscription with a fresh id and a freshly generated secret.
    pub fn new(
        app_id: AppId,
        url: impl Into<String>,
        events: EventFilter,
        object_types: ObjectTypeFilter,
    ) -> Self {
        let now = Utc::now();
        Self {
            id: SubscriptionId::generate(),
            app_id,
            url: url.into(),
            events,
            object_types,
            active: true,
            description: String::new(),
            headers: BTreeMap::new(),
            secrets: vec![Secret::generate()],
            disabled_reason: None,
            previous_secrets_expire_at: None,
            consecutive_failures: 0,
            created_at: now,
            updated_at: now,
            version: 0,
        }
    }

    /// Whether this subscription wants `event`: it is active, belongs to the event's app,
    /// and both its event filter and its object-type filter admit the event.
    pub fn matches(&self, event: &Event) -> bool {
        self.active && self.filters_admit(event)
    }

    /// The secrets that sign deliveries at `now`: the current one, plus the rotated-out
    /// one while its window lasts.
    pub fn signing_secrets(&self, now: DateTime<Utc>) -> &[Secret] {
        match self.previous_secrets_expire_at {
            Some(until) if now >= until => &self.secrets[..self.secrets.len().min(1)],
            _ => &self.secrets,
        }
    }

    /// Replaces the current secret with a fresh one; the old one keeps signing for
    /// `window` (both signatures are sent). Returns the new secret.
    pub fn rotate_secret(&mut self, now: DateTime<Utc>, window: chrono::Duration) -> Secret {
        let new = Secret::generate();
        let previous = self.secrets.first().cloned();
        self.secrets = std::iter::once(new.clone()).chain(previous).collect();
        self.previous_secrets_expire_at = Some(now + window);
        self.updated_at = now;
        new
    }

    /// Whether the event belongs to this subscription's app and passes both filters,
    /// active or not (a disabled endpoint records such events as not sent).
    pub fn filters_admit(&self, event: &Event) -> bool {
        self.app_id == event.app_id
            && self.events.matches(&event.event_type)
            && self.object_types.matches(&event.object_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(app: &str, t: &str, o: &str) -> Event {
        Event::new(
            AppId::parse(app).unwrap(),
            EventType::parse(t).unwrap(),
            ObjectType::parse(o).unwrap(),
            serde_json::json!({}),
        )
    }

    fn sub(events: &[&str], objects: &[&str]) -> Subscription {
        Subscription::new(
            AppId::parse("app").unwrap(),
            "https://example.com/hook",
            EventFilter::parse(events).unwrap(),
            ObjectTypeFilter::parse(objects).unwrap(),
        )
    }

    #[test]
    fn update_on_user_matches_only_user_updates() {
        let s = sub(&["update"], &["user"]);
        assert!(s.matches(&event("app", "update", "user")));
        assert!(!s.matches(&event("app", "create", "user")));
        assert!(!s.matches(&event("app", "update", "invoice")));
        assert!(!s.matches(&event("app", "updateAll", "user")));
    }

    #[test]
    fn star_and_blank_object_filters_match_every_object_type() {
        for objects in [&[][..], &[""][..], &["*"][..], &["user", "*"][..]] {
            let s = sub(&["create"], objects);
            assert_eq!(s.object_types, ObjectTypeFilter::All);
            assert!(s.matches(&event("app", "create", "anything")));
            assert!(!s.matches(&event("app", "delete", "anything")));
        }
    }

    #[test]
    fn star_event_filter_matches_every_type_including_custom() {
        let s = sub(&["*"], &[]);
        for t in ["create", "deleteAll", "invoice.paid"] {
            assert!(s.matches(&event("app", t, "x")));
        }
    }

    #[test]
    fn several_types_in_a_filter() {
        let s = sub(&["create", "invoice.paid"], &["user", "invoice"]);
        assert!(s.matches(&event("app", "create", "user")));
        assert!(s.matches(&event("app", "invoice.paid", "invoice")));
        assert!(!s.matches(&event("app", "delete", "invoice")));
        assert!(!s.matches(&event("app", "create", "order")));
    }

    #[test]
    fn matching_is_case_sensitive() {
        let s = sub(&["createAll"], &["User"]);
        assert!(s.matches(&event("app", "createAll", "User")));
        assert!(!s.matches(&event("app", "createall", "User")));
        assert!(!s.matches(&event("app", "createAll", "user")));
    }

    #[test]
    fn inactive_or_foreign_subscriptions_never_match() {
        let mut s = sub(&["*"], &[]);
        assert!(!s.matches(&event("other_app", "create", "user")));
        s.active = false;
        assert!(!s.matches(&event("app", "create", "user")));
    }

    #[test]
    fn empty_event_filter_is_an_error_and_bad_types_are_reported() {
        assert!(EventFilter::parse::<&str>(&[]).is_err());
        assert!(EventFilter::parse(&["bad type"]).is_err());
        assert!(ObjectTypeFilter::parse(&["bad type"]).is_err());
    }

    #[test]
    fn a_rotated_secret_signs_beside_the_new_one_until_its_window_closes() {
        let mut s = sub(&["*"], &[]);
        let old = s.secrets[0].clone();
        let t0 = Utc::now();
        let new = s.rotate_secret(t0, chrono::Duration::hours(24));
        assert_eq!(s.signing_secrets(t0), &[new.clone(), old.clone()]);
        assert_eq!(s.signing_secrets(t0 + chrono::Duration::hours(23)).len(), 2);
        assert_eq!(
            s.signing_secrets(t0 + chrono::Duration::hours(24)),
            std::slice::from_ref(&new)
        );
        // Rotating again drops the oldest: at most two secrets sign.
        let newer = s.rotate_secret(t0, chrono::Duration::hours(1));
        assert_eq!(s.signing_secrets(t0), &[newer, new]);
    }

    #[test]
    fn subscription_round_trips_through_json() {
        let mut s = sub(&["update"], &["user"]);
        s.headers.insert("x-team".into(), "billing".into());
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["events"], serde_json::json!(["update"]));
        assert_eq!(json["object_types"], serde_json::json!(["user"]));
        let back: Subscription = serde_json::from_value(json).unwrap();
        assert_eq!(back, s);
        let all = sub(&["*"], &[]);
        let json = serde_json::to_value(&all).unwrap();
        assert_eq!(json["events"], serde_json::json!(["*"]));
        assert_eq!(json["object_types"], serde_json::json!(["*"]));
    }
}
