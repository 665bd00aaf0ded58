//! Payload filters: which events a webhook receives, judged on their content.
//!
//! A webhook's `filter` is checked after its event-type and object-type filters. It is a
//! tree of conditions on JSON pointers (RFC 6901) into the event as published, combined
//! with `all` and `any`:
//!
//! ```json
//! {"all": [
//!   {"path": "/data/status", "eq": "paid"},
//!   {"any": [
//!     {"path": "/data/currency", "in": ["EUR", "USD"]},
//!     {"path": "/data/priority", "exists": true}
//!   ]},
//!   {"path": "/actor/id", "prefix": "admin_"}
//! ]}
//! ```
//!
//! Pointers are rooted at the event as published: `/data/…` reaches into `data`,
//! `/type` and `/object_type` are the event's types, `/actor/…` and `/changes/…` its
//! actor and changes. A condition holds when the pointer leads to a value that is
//! `eq` to a scalar (numbers by value: 1 equals 1.0), equal to one of `in`, a string
//! starting with `prefix`, or (`exists`) when the pointer leads to a value at all
//! (`null` included) — or to none, with `"exists": false`. A pointer that leads nowhere
//! makes `eq`, `in` and `prefix` false.
//!
//! Filters are bounded ([`MAX_FILTER_DEPTH`], [`MAX_FILTER_CONDITIONS`],
//! [`MAX_FILTER_BYTES`], …): each one travels in every route item of its webhook, and is
//! evaluated once per event the webhook's type filters admit.

use std::cell::OnceCell;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::event::Event;

mod parse;

use parse::parse_node;

/// Deepest nesting of `all` and `any` (a bare condition is depth 0).
pub const MAX_FILTER_DEPTH: usize = 4;
/// Most conditions (leaves) in one filter.
pub const MAX_FILTER_CONDITIONS: usize = 20;
/// Most entries of one `all`, `any` or `in` list.
pub const MAX_FILTER_LIST: usize = 20;
/// Longest pointer, `eq`/`in` string or `prefix`, in bytes.
pub const MAX_FILTER_TEXT: usize = 256;
/// Largest filter, as compact JSON, in bytes: it is stored in each of its webhook's
/// route items, which the consumer reads for every lookup.
pub const MAX_FILTER_BYTES: usize = 1024;

/// The event fields a pointer may start with.
pub const FILTER_ROOTS: [&str; 5] = ["data", "type", "object_type", "actor", "changes"];

/// Why a filter was refused: where in it (`.all[1].path`, empty for the whole filter),
/// and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("filter{path}: {message}")]
pub struct FilterError {
    /// The place of the bad part, from the filter's root (`.any[0].eq`).
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

impl FilterError {
    fn at(path: &str, message: impl Into<String>) -> Self {
        Self {
            path: path.to_owned(),
            message: message.into(),
        }
    }
}

/// A payload filter: conditions on the event's content, combined with `all`/`any`.
#[derive(Debug, Clone, PartialEq)]
pub enum PayloadFilter {
    /// Every one of them holds.
    All(Vec<PayloadFilter>),
    /// At least one of them holds.
    Any(Vec<PayloadFilter>),
    /// One condition.
    Condition(Condition),
}

/// A test of the value a pointer leads to.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// The pointer, as given.
    pub path: String,
    /// Its root field and the segments after it (unescaped).
    root: Root,
    segments: Vec<String>,
    /// The test.
    pub test: Test,
}

/// What a condition checks of the value at its pointer.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    /// Equal to this scalar (numbers by value).
    Eq(Value),
    /// Equal to one of these scalars.
    In(Vec<Value>),
    /// The pointer leads to a value (`true`) or to none (`false`).
    Exists(bool),
    /// A string starting with this.
    Prefix(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Root {
    Data,
    Type,
    ObjectType,
    Actor,
    Changes,
}

/// An event as filters see it: its `data`, actor and changes are parsed into JSON
/// values the first time a condition needs them, once for all the webhooks whose
/// filters read them (an event's `data` is otherwise carried as text).
pub struct EventView<'a> {
    event: &'a Event,
    data: OnceCell<Value>,
    actor: OnceCell<Value>,
    changes: OnceCell<Value>,
    type_value: OnceCell<Value>,
    object_type_value: OnceCell<Value>,
}

impl<'a> EventView<'a> {
    /// A view of `event`; nothing is parsed yet.
    pub fn new(event: &'a Event) -> Self {
        Self {
            event,
            data: OnceCell::new(),
            actor: OnceCell::new(),
            changes: OnceCell::new(),
            type_value: OnceCell::new(),
            object_type_value: OnceCell::new(),
        }
    }

    /// The event viewed.
    pub fn event(&self) -> &'a Event {
        self.event
    }

    /// The value of a root field, `None` for an absent actor or changes.
    fn root(&self, root: Root) -> Option<&Value> {
        let e = self.event;
        match root {
            Root::Data => Some(self.data.get_or_init(|| e.data.to_value())),
            Root::Type => Some(
                self.type_value
                    .get_or_init(|| Value::from(e.event_type.as_str())),
            ),
            Root::ObjectType => Some(
                self.object_type_value
                    .get_or_init(|| Value::from(e.object_type.as_str())),
            ),
            Root::Actor => e.actor.as_ref().map(|a| {
                self.actor
                    .get_or_init(|| serde_json::to_value(a).expect("an actor serializes"))
            }),
            Root::Changes => e
                .changes
                .as_ref()
                .map(|c| self.changes.get_or_init(|| c.to_value())),
        }
    }
}

impl PayloadFilter {
    /// Whether the event passes the filter.
    pub fn matches(&self, view: &EventView<'_>) -> bool {
        match self {
            Self::All(items) => items.iter().all(|f| f.matches(view)),
            Self::Any(items) => items.iter().any(|f| f.matches(view)),
            Self::Condition(c) => c.holds(view),
        }
    }

    /// Reads a filter from its JSON form, checking its shape and bounds; the error
    /// names the bad part's place.
    pub fn parse(value: &Value) -> Result<Self, FilterError> {
        let size = serde_json::to_string(value).map_or(usize::MAX, |s| s.len());
        if size > MAX_FILTER_BYTES {
            return Err(FilterError::at(
                "",
                format!("is {size} bytes as compact JSON, over the limit of {MAX_FILTER_BYTES}"),
            ));
        }
        let mut conditions = 0;
        parse_node(value, "", 0, &mut conditions)
    }

    /// The filter's JSON form (what [`PayloadFilter::parse`] reads).
    pub fn to_value(&self) -> Value {
        match self {
            Self::All(items) => single(
                "all",
                Value::Array(items.iter().map(Self::to_value).collect()),
            ),
            Self::Any(items) => single(
                "any",
                Value::Array(items.iter().map(Self::to_value).collect()),
            ),
            Self::Condition(c) => {
                let (name, value) = match &c.test {
                    Test::Eq(v) => ("eq", v.clone()),
                    Test::In(vs) => ("in", Value::Array(vs.clone())),
                    Test::Exists(b) => ("exists", Value::Bool(*b)),
                    Test::Prefix(p) => ("prefix", Value::from(p.as_str())),
                };
                let mut map = Map::new();
                map.insert("path".to_owned(), Value::from(c.path.as_str()));
                map.insert(name.to_owned(), value);
                Value::Object(map)
            }
        }
    }
}

fn single(key: &str, value: Value) -> Value {
    Value::Object(Map::from_iter([(key.to_owned(), value)]))
}

impl Serialize for PayloadFilter {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(s)
    }
}

impl<'de> Deserialize<'de> for PayloadFilter {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        Self::parse(&value).map_err(serde::de::Error::custom)
    }
}

impl Condition {
    fn holds(&self, view: &EventView<'_>) -> bool {
        let found = view
            .root(self.root)
            .and_then(|v| resolve(v, &self.segments));
        match (&self.test, found) {
            (Test::Exists(want), found) => found.is_some() == *want,
            (_, None) => false,
            (Test::Eq(want), Some(v)) => scalar_eq(v, want),
            (Test::In(wants), Some(v)) => wants.iter().any(|w| scalar_eq(v, w)),
            (Test::Prefix(p), Some(v)) => v.as_str().is_some_and(|s| s.starts_with(p.as_str())),
        }
    }
}

/// Follows pointer segments from `value` (array indexes as RFC 6901 writes them:
/// digits without a leading zero).
fn resolve<'v>(mut value: &'v Value, segments: &[String]) -> Option<&'v Value> {
    for seg in segments {
        value = match value {
            Value::Object(map) => map.get(seg)?,
            Value::Array(items) => {
                if seg.is_empty()
                    || (seg.len() > 1 && seg.starts_with('0'))
                    || !seg.bytes().all(|b| b.is_ascii_digit())
                {
                    return None;
                }
                items.get(seg.parse::<usize>().ok()?)?
            }
            _ => return None,
        };
    }
    Some(value)
}

/// Whether `found` equals the scalar `want`: numbers by value, the rest as JSON.
fn scalar_eq(found: &Value, want: &Value) -> bool {
    match (found, want) {
        (Value::Number(a), Value::Number(b)) => {
            match (a.as_i64(), b.as_i64(), a.as_u64(), b.as_u64()) {
                (Some(x), Some(y), _, _) => x == y,
                (_, _, Some(x), Some(y)) => x == y,
                _ => a.as_f64() == b.as_f64(),
            }
        }
        _ => found == want,
    }
}

#[cfg(test)]
mod tests;
