//! Subscriptions (webhooks) and the filters that decide which events they receive.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::{AppId, Event, EventType, ObjectType, ValidationError};
use crate::format::{ContentType, PayloadFormat};
use crate::para;
use crate::payload_filter::{EventView, PayloadFilter};
use crate::rate::RateLimit;
use crate::signing::{Secret, Signer, SigningKey};

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

/// Most distinct event types one webhook may list. Each listed type is one route item
/// in the store, and a change of the webhook is one DynamoDB transaction (at most 100
/// items) holding the subscription item, the app's routing version item, and the
/// routes it deletes and writes: 2 + 49 + 49 = 100 when every type changes.
pub const MAX_EVENT_TYPES: usize = 49;

/// Which event types a subscription receives. Serialized as a list of types, where
/// `["*"]` means every type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventFilter {
    All,
    Only(BTreeSet<EventType>),
}

impl EventFilter {
    /// Whether the filter takes `event_type`. `*` takes every type but Herald's own
    /// operational ones (`herald.…`), which a webhook receives only by listing them.
    pub fn matches(&self, event_type: &EventType) -> bool {
        match self {
            Self::All => !event_type.is_operational(),
            Self::Only(types) => types.contains(event_type),
        }
    }

    /// Parses a list of event types; `*` anywhere in it means all (but the operational
    /// `herald.*` types, which `*` cannot be listed with). An empty list is an
    /// error: a webhook that can receive nothing is a mistake, not a setting; so is a
    /// list of more than [`MAX_EVENT_TYPES`] distinct types.
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Self, ValidationError> {
        if items.is_empty() {
            return Err(ValidationError::Empty {
                what: "event filter",
            });
        }
        if items.iter().any(|s| s.as_ref().trim() == "*") {
            if items
                .iter()
                .any(|s| s.as_ref().trim().starts_with(crate::operational::PREFIX))
            {
                return Err(ValidationError::Conflicting {
                    what: "event filter",
                    hint: "\"*\" takes every type but Herald's operational ones (herald.*), \
                           which a webhook receives only by listing them: list the types \
                           you want, or use a second webhook for the herald.* events",
                });
            }
            return Ok(Self::All);
        }
        let types: BTreeSet<EventType> = items
            .iter()
            .map(|s| EventType::parse(s.as_ref().trim()))
            .collect::<Result<_, _>>()?;
        if types.len() > MAX_EVENT_TYPES {
            return Err(ValidationError::TooMany {
                what: "event filter",
                max: MAX_EVENT_TYPES,
                hint: "subscribe to \"*\" to receive every type",
            });
        }
        Ok(Self::Only(types))
    }

    /// The event types a webhook with this filter is routed by: each listed type, or
    /// `None` alone for a webhook that takes every type.
    pub fn route_types(&self) -> Vec<Option<&EventType>> {
        match self {
            Self::All => vec![None],
            Self::Only(types) => types.iter().map(Some).collect(),
        }
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
    /// At most this many deliveries start per second (`None`: no limit); the excess
    /// waits on the queue ([`crate::rate`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// The payload format of its deliveries (left out when standard).
    #[serde(default, skip_serializing_if = "PayloadFormat::is_standard")]
    pub format: PayloadFormat,
    /// How the payload travels in the body (left out when JSON).
    #[serde(default, skip_serializing_if = "ContentType::is_json")]
    pub content_type: ContentType,
    /// Conditions on the event's content, checked after the type filters
    /// ([`crate::payload_filter`]); `None`: every event the type filters admit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<PayloadFilter>,
    /// Deliveries of one `ordering_key` are made in publish order, one at a time
    /// (docs/delivery.md, "Ordered delivery"; left out when false).
    #[serde(default, skip_serializing_if = "is_false")]
    pub ordered: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Bumped by every change made through the API, so a read-modify-write (a secret
    /// rotation) can tell that the item changed under it.
    #[serde(default)]
    pub version: u64,
}

/// What delivering to a webhook needs, and nothing else (no description, timestamps or
/// health counters): the consumer looks these up by (app, event type). A
/// [`Subscription`] gives its route with [`Subscription::route`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    /// The webhook's id.
    pub id: SubscriptionId,
    /// The webhook's app.
    pub app_id: AppId,
    /// Where deliveries go.
    pub url: String,
    /// The event types it takes.
    pub events: EventFilter,
    /// The object types it takes.
    pub object_types: ObjectTypeFilter,
    /// Whether deliveries are made (a disabled webhook's events are recorded as not sent).
    pub active: bool,
    /// Extra headers sent with every delivery.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Signing secrets; the first is current.
    pub secrets: Vec<Secret>,
    /// Why Herald disabled the endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    /// Until when the rotated-out secrets keep signing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secrets_expire_at: Option<DateTime<Utc>>,
    /// Whether the endpoint's failure count was above zero when this route was last
    /// written: a success then resets the count. Written only when the count leaves or
    /// returns to zero, so a success costs no write in the common case.
    #[serde(default)]
    pub failing: bool,
    /// At most this many deliveries start per second (`None`: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// The payload format (left out when standard, so a standard route item is as
    /// small as before).
    #[serde(default, skip_serializing_if = "PayloadFormat::is_standard")]
    pub format: PayloadFormat,
    /// How the payload travels (left out when JSON).
    #[serde(default, skip_serializing_if = "ContentType::is_json")]
    pub content_type: ContentType,
    /// The webhook's payload filter (left out when it has none, so a route without
    /// one is as small as before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<PayloadFilter>,
    /// Whether its deliveries of one ordering key go through the FIFO queue, in
    /// order (left out when false).
    #[serde(default, skip_serializing_if = "is_false")]
    pub ordered: bool,
}

/// For `skip_serializing_if`: a flag left out of the item when off.
fn is_false(b: &bool) -> bool {
    !b
}

impl Route {
    /// Whether this route wants `event`: it is active and its filters admit the event.
    pub fn matches(&self, event: &Event) -> bool {
        self.active && self.filters_admit(event)
    }

    /// Whether the event belongs to this route's app and passes its filters (event
    /// type, object type, then payload), active or not.
    pub fn filters_admit(&self, event: &Event) -> bool {
        self.admits_view(&EventView::new(event))
    }

    /// [`Route::filters_admit`] on a view of the event, which parses the event's
    /// content once for all the routes whose payload filters read it.
    pub fn admits_view(&self, view: &EventView<'_>) -> bool {
        admits(
            &self.app_id,
            &self.events,
            &self.object_types,
            self.filter.as_ref(),
            view,
        )
    }

    /// The secrets that sign deliveries at `now` (see [`Subscription::signing_secrets`]).
    pub fn signing_secrets(&self, now: DateTime<Utc>) -> &[Secret] {
        signing_secrets(&self.secrets, self.previous_secrets_expire_at, now)
    }

    /// The route's secrets keyed once, for signing many deliveries.
    pub fn signing_keys(&self) -> SigningKeys {
        SigningKeys {
            keys: self.secrets.iter().map(SigningKey::new).collect(),
            previous_expire_at: self.previous_secrets_expire_at,
        }
    }

    /// The route's secrets keyed once as Para keys them (their text,
    /// [`para::key_of`]), for Para's `X-Webhook-Signature`.
    pub fn para_keys(&self) -> SigningKeys {
        SigningKeys {
            keys: self.secrets.iter().map(para::key_of).collect(),
            previous_expire_at: self.previous_secrets_expire_at,
        }
    }
}

/// A route's signing keys, each keyed once ([`SigningKey`]), with the end of the
/// rotation window: what signs every delivery to the route.
#[derive(Debug, Clone)]
pub struct SigningKeys {
    keys: Vec<SigningKey>,
    previous_expire_at: Option<DateTime<Utc>>,
}

impl SigningKeys {
    /// The keys that sign at `now`, as [`Route::signing_secrets`] chooses the secrets.
    pub fn at(&self, now: DateTime<Utc>) -> &[SigningKey] {
        signing_secrets(&self.keys, self.previous_expire_at, now)
    }

    /// The `webhook-signature` value of `msg_id` sent at `now` with `body`.
    pub fn sign(&self, msg_id: &str, now: DateTime<Utc>, body: &[u8]) -> String {
        Signer::signature(self.at(now), msg_id, now.timestamp(), body)
    }

    /// Para's `X-Webhook-Signature` of `payload` at `now`, keys made by
    /// [`Route::para_keys`]. Para sends one signature, so one key signs: the oldest
    /// that still signs at `now`, which is the secret receivers hold until a
    /// rotation's window closes, and the new one after.
    pub fn para_sign(&self, now: DateTime<Utc>, payload: &[u8]) -> String {
        self.at(now)
            .last()
            .map(|key| para::signature(key, payload))
            .unwrap_or_default()
    }
}

/// Whether an event of `app` passes the type filters and then the payload filter (the
/// event's content is parsed only when the type filters admit it and a payload filter
/// reads it).
fn admits(
    app: &AppId,
    events: &EventFilter,
    objects: &ObjectTypeFilter,
    payload: Option<&PayloadFilter>,
    view: &EventView<'_>,
) -> bool {
    let event = view.event();
    *app == event.app_id
        && events.matches(&event.event_type)
        && objects.matches(&event.object_type)
        && payload.is_none_or(|f| f.matches(view))
}

/// The secrets that sign at `now`: all of them while the rotation window lasts, then
/// the current one only.
fn signing_secrets<T>(secrets: &[T], until: Option<DateTime<Utc>>, now: DateTime<Utc>) -> &[T] {
    match until {
        Some(until) if now >= until => &secrets[..secrets.len().min(1)],
        _ => secrets,
    }
}

impl Subscription {
    /// What delivering to this webhook needs: its route.
    pub fn route(&self) -> Route {
        Route {
            id: self.id.clone(),
            app_id: self.app_id.clone(),
            url: self.url.clone(),
            events: self.events.clone(),
            object_types: self.object_types.clone(),
            active: self.active,
            headers: self.headers.clone(),
            secrets: self.secrets.clone(),
            disabled_reason: self.disabled_reason.clone(),
            previous_secrets_expire_at: self.previous_secrets_expire_at,
            failing: self.consecutive_failures > 0,
            rate_limit: self.rate_limit,
            format: self.format,
            content_type: self.content_type,
            filter: self.filter.clone(),
            ordered: self.ordered,
        }
    }

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
            rate_limit: None,
            format: PayloadFormat::Standard,
            content_type: ContentType::Json,
            filter: None,
            ordered: false,
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
        signing_secrets(&self.secrets, self.previous_secrets_expire_at, now)
    }

    /// Disables the webhook, recording why, and stamps `updated_at`.
    pub fn disable(&mut self, reason: &str) {
        self.active = false;
        self.disabled_reason = Some(reason.to_owned());
        self.updated_at = Utc::now();
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

    /// Whether the event belongs to this subscription's app and passes its filters,
    /// active or not (a disabled endpoint records such events as not sent).
    pub fn filters_admit(&self, event: &Event) -> bool {
        admits(
            &self.app_id,
            &self.events,
            &self.object_types,
            self.filter.as_ref(),
            &EventView::new(event),
        )
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
    fn an_event_filter_lists_at_most_the_types_one_transaction_can_route() {
        let types: Vec<String> = (0..=MAX_EVENT_TYPES).map(|i| format!("t{i}")).collect();
        let err = EventFilter::parse(&types).unwrap_err().to_string();
        assert!(err.contains(&MAX_EVENT_TYPES.to_string()), "{err}");
        assert!(EventFilter::parse(&types[..MAX_EVENT_TYPES]).is_ok());
        // Repeats count once.
        let repeated = vec!["create"; MAX_EVENT_TYPES + 5];
        assert!(EventFilter::parse(&repeated).is_ok());
    }

    #[test]
    fn a_route_carries_what_delivery_needs_and_whether_the_endpoint_is_failing() {
        let mut s = sub(&["update"], &["user"]);
        assert!(!s.route().failing);
        assert_eq!(s.route().rate_limit, None);
        s.consecutive_failures = 2;
        s.rate_limit = Some(crate::RateLimit::new(5).unwrap());
        let route = s.route();
        assert!(route.failing);
        assert_eq!(route.rate_limit, s.rate_limit);
        assert!(route.matches(&event("app", "update", "user")));
        assert!(!route.matches(&event("app", "update", "invoice")));
        assert_eq!(
            route.signing_secrets(Utc::now()),
            s.signing_secrets(Utc::now())
        );
        assert_eq!(
            EventFilter::parse(&["b", "a"]).unwrap().route_types(),
            vec![
                Some(&EventType::parse("a").unwrap()),
                Some(&EventType::parse("b").unwrap())
            ]
        );
        assert_eq!(EventFilter::All.route_types(), vec![None]);
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
        // The keyed secrets sign as the secrets do, in and after the window.
        let route = s.route();
        let keys = route.signing_keys();
        for at in [t0, t0 + chrono::Duration::hours(2)] {
            assert_eq!(
                keys.sign("msg_1", at, b"{}"),
                crate::signing::Signer::headers(
                    route.signing_secrets(at),
                    "msg_1",
                    at.timestamp(),
                    b"{}"
                )
                .signature
            );
            assert_eq!(keys.at(at).len(), route.signing_secrets(at).len());
        }
    }

    #[test]
    fn a_route_carries_its_format_and_leaves_the_defaults_out() {
        let mut s = sub(&["update"], &["user"]);
        let json = serde_json::to_value(s.route()).unwrap();
        assert!(json.get("format").is_none() && json.get("content_type").is_none());
        s.format = PayloadFormat::Para;
        s.content_type = ContentType::Form;
        let route = s.route();
        let json = serde_json::to_value(&route).unwrap();
        assert_eq!(json["format"], "para");
        assert_eq!(json["content_type"], "form");
        assert_eq!(serde_json::from_value::<Route>(json).unwrap(), route);
        let back: Subscription = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn para_signs_with_one_key_the_one_receivers_hold_through_a_rotation() {
        let mut s = sub(&["*"], &[]);
        let old = s.secrets[0].clone();
        let t0 = Utc::now();
        let new = s.rotate_secret(t0, chrono::Duration::hours(1));
        let keys = s.route().para_keys();
        let payload = br#"{"appid":"app"}"#;
        assert_eq!(keys.para_sign(t0, payload), para::sign(&old, payload));
        assert_eq!(
            keys.para_sign(t0 + chrono::Duration::hours(1), payload),
            para::sign(&new, payload)
        );
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
