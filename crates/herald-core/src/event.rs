//! Events: what applications publish.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Longest accepted event type, object type or app id, in bytes.
pub const MAX_NAME_LEN: usize = 128;

/// Why a name or identifier was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("{what} must not be empty")]
    Empty { what: &'static str },
    #[error("{what} is longer than {max} bytes")]
    TooLong { what: &'static str, max: usize },
    #[error("{what} {value:?} may only contain {allowed}")]
    BadCharacters {
        what: &'static str,
        value: String,
        allowed: &'static str,
    },
    #[error("{what} {value:?} must not start or end with '.', nor contain '..'")]
    BadDots { what: &'static str, value: String },
}

fn check_name(
    what: &'static str,
    value: &str,
    allowed: &'static str,
    ok: impl Fn(char) -> bool,
) -> Result<(), ValidationError> {
    if value.is_empty() {
        return Err(ValidationError::Empty { what });
    }
    if value.len() > MAX_NAME_LEN {
        return Err(ValidationError::TooLong {
            what,
            max: MAX_NAME_LEN,
        });
    }
    if !value.chars().all(ok) {
        return Err(ValidationError::BadCharacters {
            what,
            value: value.to_owned(),
            allowed,
        });
    }
    Ok(())
}

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The identifier as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValidationError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_newtype!(
    /// A tenant. Every subscription, event and attempt belongs to exactly one app.
    AppId
);
string_newtype!(
    /// Unique id of a published event (`evt_` followed by a time-ordered UUID).
    EventId
);
string_newtype!(
    /// An event type: one of Para's six kinds or a custom dotted name such as `invoice.paid`.
    EventType
);
string_newtype!(
    /// The kind of object an event is about (`user`, `invoice`, ...).
    ObjectType
);

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

impl AppId {
    /// Validates an app id: 1–128 characters of `[a-zA-Z0-9_-]`.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        check_name("app id", s, "[a-zA-Z0-9_-]", is_ident_char)?;
        Ok(Self(s.to_owned()))
    }
}

impl EventId {
    /// A fresh, time-ordered event id.
    pub fn generate() -> Self {
        Self(crate::new_id("evt_"))
    }

    /// Validates an event id supplied from outside: 1–128 characters of `[a-zA-Z0-9_-]`.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        check_name("event id", s, "[a-zA-Z0-9_-]", is_ident_char)?;
        Ok(Self(s.to_owned()))
    }
}

impl EventType {
    /// Para's built-in kinds, triggered by the matching mutating operations.
    pub const BUILT_IN: [&'static str; 6] = [
        "create",
        "update",
        "delete",
        "createAll",
        "updateAll",
        "deleteAll",
    ];

    /// Validates an event type: a built-in kind or a dotted name of `[a-zA-Z0-9_.]`
    /// that neither starts nor ends with a dot and has no empty segment.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        check_name("event type", s, "[a-zA-Z0-9_.]", |c| {
            c.is_ascii_alphanumeric() || c == '_' || c == '.'
        })?;
        if s.starts_with('.') || s.ends_with('.') || s.contains("..") {
            return Err(ValidationError::BadDots {
                what: "event type",
                value: s.to_owned(),
            });
        }
        Ok(Self(s.to_owned()))
    }

    /// Whether this is one of Para's six built-in kinds.
    pub fn is_built_in(&self) -> bool {
        Self::BUILT_IN.contains(&self.0.as_str())
    }
}

impl ObjectType {
    /// Validates an object type: 1–128 characters of `[a-zA-Z0-9_.-]`.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        check_name("object type", s, "[a-zA-Z0-9_.-]", |c| {
            is_ident_char(c) || c == '.'
        })?;
        Ok(Self(s.to_owned()))
    }
}

/// Something that happened in an application, to be delivered to every matching webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: EventId,
    pub app_id: AppId,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub object_type: ObjectType,
    pub timestamp: DateTime<Utc>,
    pub data: serde_json::Value,
}

impl Event {
    /// A new event with a fresh id, stamped now.
    pub fn new(
        app_id: AppId,
        event_type: EventType,
        object_type: ObjectType,
        data: serde_json::Value,
    ) -> Self {
        Self {
            id: EventId::generate(),
            app_id,
            event_type,
            object_type,
            timestamp: Utc::now(),
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_kinds_and_dotted_custom_types_are_valid() {
        for t in EventType::BUILT_IN {
            assert!(EventType::parse(t).unwrap().is_built_in());
        }
        for t in ["invoice.paid", "a.b_c.D9", "custom"] {
            let parsed = EventType::parse(t).unwrap();
            assert_eq!(parsed.as_str(), t);
        }
        assert!(!EventType::parse("invoice.paid").unwrap().is_built_in());
    }

    #[test]
    fn bad_event_types_are_rejected_with_reasons() {
        assert_eq!(
            EventType::parse(""),
            Err(ValidationError::Empty { what: "event type" })
        );
        assert!(matches!(
            EventType::parse("invoice-paid"),
            Err(ValidationError::BadCharacters { .. })
        ));
        assert!(matches!(
            EventType::parse("has space"),
            Err(ValidationError::BadCharacters { .. })
        ));
        for bad in [".x", "x.", "a..b"] {
            assert!(matches!(
                EventType::parse(bad),
                Err(ValidationError::BadDots { .. })
            ));
        }
        assert!(matches!(
            EventType::parse(&"a".repeat(MAX_NAME_LEN + 1)),
            Err(ValidationError::TooLong { .. })
        ));
        assert!(
            EventType::parse("*").is_err(),
            "'*' is a filter, not a type"
        );
    }

    #[test]
    fn event_round_trips_through_json_and_validates_on_the_way_in() {
        let event = Event::new(
            AppId::parse("app_1").unwrap(),
            EventType::parse("update").unwrap(),
            ObjectType::parse("user").unwrap(),
            serde_json::json!({"id": "42"}),
        );
        let json = serde_json::to_string(&event).unwrap();
        assert!(json.contains(r#""type":"update""#));
        let back: Event = serde_json::from_str(&json).unwrap();
        assert_eq!(back, event);

        let bad = json.replace(r#""type":"update""#, r#""type":"up date""#);
        assert!(serde_json::from_str::<Event>(&bad).is_err());
    }

    #[test]
    fn generated_event_ids_are_unique_and_prefixed() {
        let a = EventId::generate();
        let b = EventId::generate();
        assert_ne!(a, b);
        assert!(a.as_str().starts_with("evt_"));
        assert!(EventId::parse(a.as_str()).is_ok());
    }
}
