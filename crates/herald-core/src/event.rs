//! Events: what applications publish.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::actor::{Actor, Changes};
use crate::ordering::OrderingKey;

/// Longest accepted event type, object type or app id, in bytes.
pub const MAX_NAME_LEN: usize = 128;

/// Why a name, an identifier or a setting's value was rejected.
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
    /// A list whose entries contradict each other.
    #[error("{what}: {hint}")]
    Conflicting {
        what: &'static str,
        hint: &'static str,
    },
    /// A list longer than allowed.
    #[error("{what} lists more than {max} entries; {hint}")]
    TooMany {
        what: &'static str,
        max: usize,
        hint: &'static str,
    },
    /// A number outside its range.
    #[error("{what} must be a whole number from {min} to {max}")]
    OutOfRange {
        what: &'static str,
        min: u64,
        max: u64,
    },
    /// A value of the wrong kind (a number where a string belongs, say).
    #[error("{what} must be {expected}")]
    WrongShape {
        what: String,
        expected: &'static str,
    },
    /// A JSON value the queue cannot carry.
    #[error(transparent)]
    Data(#[from] DataError),
}

fn check_name(
    what: &'static str,
    value: &str,
    allowed: &'static str,
    ok: impl Fn(char) -> bool,
) -> Result<(), ValidationError> {
    check_text(what, value, MAX_NAME_LEN, allowed, ok)
}

/// Checks a piece of text: not empty, at most `max` bytes, every character `ok`
/// (`allowed` says which in the error).
pub(crate) fn check_text(
    what: &'static str,
    value: &str,
    max: usize,
    allowed: &'static str,
    ok: impl Fn(char) -> bool,
) -> Result<(), ValidationError> {
    if value.is_empty() {
        return Err(ValidationError::Empty { what });
    }
    if value.len() > max {
        return Err(ValidationError::TooLong { what, max });
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

/// Deepest nesting of arrays and objects accepted in an event's `data`. The queue
/// message wraps the event in two more levels and the consumer decodes it with
/// serde_json, which stops at 128; 64 leaves room and is plenty for real payloads.
pub const MAX_DATA_DEPTH: usize = 64;

/// Why an event's `data` (or another JSON value of it, such as its `changes`) was
/// refused. Displayed with its place, starting with the field's name (`root`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    #[error("{root}{path} nests arrays and objects deeper than {max} levels")]
    TooDeep {
        root: &'static str,
        path: String,
        max: usize,
    },
    #[error(
        "{root}{path} {} {code}, a character the queue (SQS) cannot carry; strings and keys may \
         hold tab, line feed, carriage return and U+0020–U+D7FF, U+E000–U+FFFD, U+10000–U+10FFFF",
        if *.in_key { "has a key holding" } else { "holds" }
    )]
    UnsupportedCharacter {
        root: &'static str,
        path: String,
        in_key: bool,
        code: String,
    },
}

/// Whether SQS accepts `c` in a message body: the XML 1.0 character set,
/// `#x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]`.
pub fn is_queue_safe_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

fn unsafe_char(s: &str) -> Option<String> {
    s.chars()
        .find(|c| !is_queue_safe_char(*c))
        .map(|c| format!("U+{:04X}", u32::from(c)))
}

/// Checks an event's `data` before it is queued: arrays and objects nest at most
/// [`MAX_DATA_DEPTH`] levels (a scalar is 0, `{"a": 1}` is 1), and every string and
/// key holds only characters SQS accepts ([`is_queue_safe_char`]).
pub fn check_data(data: &serde_json::Value) -> Result<(), DataError> {
    check_json("data", data)
}

/// Checks a JSON value that travels with an event, named `root` in errors, as
/// [`check_data`] checks `data`.
pub fn check_json(root: &'static str, value: &serde_json::Value) -> Result<(), DataError> {
    walk(value, 0).map_err(|(mut e, segments)| {
        let path: String = segments.into_iter().rev().collect();
        match &mut e {
            DataError::TooDeep {
                root: r, path: p, ..
            }
            | DataError::UnsupportedCharacter {
                root: r, path: p, ..
            } => (*r, *p) = (root, path),
        }
        e
    })
}

/// The path of a failure is collected on the way out, innermost segment first.
type Failure = (DataError, Vec<String>);

fn walk(value: &serde_json::Value, depth: usize) -> Result<(), Failure> {
    use serde_json::Value;
    let character = |code, in_key| {
        (
            DataError::UnsupportedCharacter {
                root: "",
                path: String::new(),
                in_key,
                code,
            },
            Vec::new(),
        )
    };
    match value {
        Value::Array(_) | Value::Object(_) if depth == MAX_DATA_DEPTH => Err((
            DataError::TooDeep {
                root: "",
                path: String::new(),
                max: MAX_DATA_DEPTH,
            },
            Vec::new(),
        )),
        Value::String(s) => unsafe_char(s).map_or(Ok(()), |code| Err(character(code, false))),
        Value::Array(items) => items.iter().enumerate().try_for_each(|(i, item)| {
            walk(item, depth + 1).map_err(|(e, mut path)| {
                path.push(format!("[{i}]"));
                (e, path)
            })
        }),
        Value::Object(map) => map.iter().try_for_each(|(key, item)| {
            let segment = key_segment(key);
            if let Some(code) = unsafe_char(key) {
                return Err(character(code, true));
            }
            walk(item, depth + 1).map_err(|(e, mut path)| {
                path.push(segment);
                (e, path)
            })
        }),
        _ => Ok(()),
    }
}

/// `.name` for plain keys, `["…"]` (cut at 40 characters) for the others.
pub(crate) fn key_segment(key: &str) -> String {
    if !key.is_empty()
        && key.len() <= 40
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return format!(".{key}");
    }
    let shown: String = key
        .chars()
        .take(40)
        .filter(|c| is_queue_safe_char(*c))
        .collect();
    let ellipsis = if key.chars().count() > 40 { "…" } else { "" };
    format!("[{}{ellipsis}]", serde_json::Value::from(shown))
}

/// Something that happened in an application, to be delivered to every matching webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: EventId,
    pub app_id: AppId,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub object_type: ObjectType,
    #[serde(deserialize_with = "rfc3339")]
    pub timestamp: DateTime<Utc>,
    pub data: EventData,
    /// Who made the change, when the publisher said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
    /// What the change changed, field by field, when the publisher said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<Changes>,
    /// What orders it for ordered webhooks (docs/delivery.md, "Ordered delivery").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordering_key: Option<OrderingKey>,
    /// Where the event is also delivered, signed with its app's callback secret, when
    /// the publisher said (docs/security.md, "Callback URLs").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    /// The inbound source the event came in through (`src_…`), for events made from
    /// inbound webhooks; absent for published ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// An RFC 3339 time (as serde writes a `DateTime<Utc>`), read by chrono's RFC 3339
/// parser: the default `Deserialize` goes through its general format-driven parser,
/// several times the work, on every event the consumer decodes. Other forms chrono
/// reads (a space for the `T`) still parse, the slow way.
fn rfc3339<'de, D: serde::Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
    match DateTime::parse_from_rfc3339(&text) {
        Ok(t) => Ok(t.with_timezone(&Utc)),
        Err(_) => text.parse().map_err(serde::de::Error::custom),
    }
}

/// An event's `data`: its JSON text as published, carried as text from the queue to
/// every receiver. Decoding a queue message checks that it is JSON without building a
/// tree of it, and each envelope copies the text as it is, so an event's payload is
/// never parsed into values and serialized back on the delivery path.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventData(Box<serde_json::value::RawValue>);

impl EventData {
    /// The data of a JSON value.
    pub fn from_value(value: &serde_json::Value) -> Self {
        // A `Value` always serializes.
        Self(serde_json::value::to_raw_value(value).expect("a JSON value serializes"))
    }

    /// The data as a JSON value (parsed on every call).
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(self.0.get()).expect("event data holds valid JSON")
    }

    /// The JSON text.
    pub fn as_json(&self) -> &str {
        self.0.get()
    }
}

impl From<serde_json::Value> for EventData {
    fn from(value: serde_json::Value) -> Self {
        Self::from_value(&value)
    }
}

/// The same text (whitespace and key order included).
impl PartialEq for EventData {
    fn eq(&self, other: &Self) -> bool {
        self.as_json() == other.as_json()
    }
}

impl fmt::Debug for EventData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_json())
    }
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
            data: EventData::from_value(&data),
            actor: None,
            changes: None,
            ordering_key: None,
            callback_url: None,
            source: None,
        }
    }

    /// The event with an ordering key.
    pub fn with_ordering_key(mut self, key: Option<OrderingKey>) -> Self {
        self.ordering_key = key;
        self
    }

    /// The event with who made it and what it changed.
    pub fn with_context(mut self, actor: Option<Actor>, changes: Option<Changes>) -> Self {
        self.actor = actor;
        self.changes = changes;
        self
    }

    /// The same event, marked as coming in through inbound source `source`.
    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
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
    fn timestamps_read_as_chronos_own_deserializer_reads_them() {
        let event = Event::new(
            AppId::parse("app_1").unwrap(),
            EventType::parse("update").unwrap(),
            ObjectType::parse("user").unwrap(),
            serde_json::json!({}),
        );
        let json = serde_json::to_string(&event).unwrap();
        let written = serde_json::to_value(event.timestamp).unwrap();
        let written = written.as_str().unwrap();
        for text in [
            written,
            "2026-12-02T17:51:31Z",
            "2026-12-02T17:51:31.123456789Z",
            "2026-12-02T18:51:31.5+01:00",
            "2026-12-02 17:51:31Z",
            "not a time",
        ] {
            let with = json.replace(written, text);
            let ours = serde_json::from_str::<Event>(&with).map(|e| e.timestamp);
            let chronos = serde_json::from_value::<DateTime<Utc>>(text.into());
            assert_eq!(ours.ok(), chronos.ok(), "{text}");
        }
    }

    #[test]
    fn generated_event_ids_are_unique_and_prefixed() {
        let a = EventId::generate();
        let b = EventId::generate();
        assert_ne!(a, b);
        assert!(a.as_str().starts_with("evt_"));
        assert!(EventId::parse(a.as_str()).is_ok());
    }

    fn nested(levels: usize) -> serde_json::Value {
        (0..levels).fold(serde_json::json!(1), |inner, i| {
            if i % 2 == 0 {
                serde_json::json!([inner])
            } else {
                serde_json::json!({ "k": inner })
            }
        })
    }

    #[test]
    fn data_nests_at_most_max_data_depth_levels() {
        assert_eq!(check_data(&serde_json::json!(null)), Ok(()));
        assert_eq!(check_data(&nested(MAX_DATA_DEPTH)), Ok(()));
        let err = check_data(&nested(MAX_DATA_DEPTH + 1)).unwrap_err();
        assert!(matches!(
            err,
            DataError::TooDeep {
                max: MAX_DATA_DEPTH,
                ..
            }
        ));
        assert!(err.to_string().starts_with("data[0].k[0].k"), "{err}");
        assert!(
            check_data(&nested(126)).is_err(),
            "what the consumer cannot decode"
        );
        // Wide is fine; only depth counts.
        let wide = serde_json::json!({"a": [[1, 2], {"b": [3]}], "c": vec![nested(10); 100]});
        assert_eq!(check_data(&wide), Ok(()));
    }

    #[test]
    fn data_strings_and_keys_hold_only_characters_sqs_accepts() {
        for ok in [
            "",
            "plain",
            "tab\t nl\n cr\r",
            "\u{20}\u{D7FF}\u{E000}\u{FFFD}",
            "\u{10000}\u{10FFFF} ☃ 🦀",
        ] {
            assert_eq!(
                check_data(&serde_json::json!({ ok: [ok] })),
                Ok(()),
                "{ok:?}"
            );
        }
        for (bad, code) in [
            ("\u{FFFE}", "U+FFFE"),
            ("a\u{FFFF}", "U+FFFF"),
            ("\u{0}", "U+0000"),
            ("\u{8}", "U+0008"),
            ("\u{B}", "U+000B"),
            ("\u{1F}", "U+001F"),
        ] {
            let err = check_data(&serde_json::json!({"a": {"list": [1, bad]}})).unwrap_err();
            assert_eq!(
                err,
                DataError::UnsupportedCharacter {
                    root: "data",
                    path: ".a.list[1]".into(),
                    in_key: false,
                    code: code.into()
                }
            );
            assert!(
                err.to_string()
                    .starts_with(&format!("data.a.list[1] holds {code}")),
                "{err}"
            );
            let err = check_data(&serde_json::json!({"a": { bad: 1 }})).unwrap_err();
            assert!(
                err.to_string()
                    .starts_with(&format!("data.a has a key holding {code}")),
                "{err}"
            );
            assert!(check_data(&serde_json::json!(bad)).is_err());
        }
        assert!(!is_queue_safe_char('\u{7}') && is_queue_safe_char('\u{7F}'));
    }
}
