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

fn parse_node(
    value: &Value,
    at: &str,
    depth: usize,
    conditions: &mut usize,
) -> Result<PayloadFilter, FilterError> {
    let Value::Object(map) = value else {
        return Err(FilterError::at(
            at,
            "must be an object: {\"all\": [...]}, {\"any\": [...]} or a condition {\"path\": \"/data/...\", \"eq\"|\"in\"|\"exists\"|\"prefix\": ...}",
        ));
    };
    for combinator in ["all", "any"] {
        if let Some(items) = map.get(combinator) {
            if map.len() != 1 {
                return Err(FilterError::at(
                    at,
                    format!("an object with \"{combinator}\" holds nothing else"),
                ));
            }
            let here = format!("{at}.{combinator}");
            if depth >= MAX_FILTER_DEPTH {
                return Err(FilterError::at(
                    &here,
                    format!("\"all\" and \"any\" nest at most {MAX_FILTER_DEPTH} levels deep"),
                ));
            }
            let Value::Array(items) = items else {
                return Err(FilterError::at(&here, "must be a list of filters"));
            };
            if items.is_empty() || items.len() > MAX_FILTER_LIST {
                return Err(FilterError::at(
                    &here,
                    format!("must hold 1 to {MAX_FILTER_LIST} filters"),
                ));
            }
            let parsed = items
                .iter()
                .enumerate()
                .map(|(i, item)| parse_node(item, &format!("{here}[{i}]"), depth + 1, conditions))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(if combinator == "all" {
                PayloadFilter::All(parsed)
            } else {
                PayloadFilter::Any(parsed)
            });
        }
    }
    *conditions += 1;
    if *conditions > MAX_FILTER_CONDITIONS {
        return Err(FilterError::at(
            at,
            format!("a filter holds at most {MAX_FILTER_CONDITIONS} conditions"),
        ));
    }
    parse_condition(map, at).map(PayloadFilter::Condition)
}

fn parse_condition(map: &Map<String, Value>, at: &str) -> Result<Condition, FilterError> {
    for key in map.keys() {
        if !matches!(key.as_str(), "path" | "eq" | "in" | "exists" | "prefix") {
            return Err(FilterError::at(
                &format!("{at}.{key}"),
                "is not a filter field (all, any, path, eq, in, exists, prefix)",
            ));
        }
    }
    let path_at = format!("{at}.path");
    let path = match map.get("path") {
        Some(Value::String(p)) => p,
        Some(_) => return Err(FilterError::at(&path_at, "must be a string")),
        None => {
            return Err(FilterError::at(
                at,
                "a condition needs a \"path\" (a JSON pointer such as /data/status)",
            ))
        }
    };
    let (root, segments) = parse_pointer(path).map_err(|m| FilterError::at(&path_at, m))?;
    let tests: Vec<&String> = map.keys().filter(|k| *k != "path").collect();
    let [name] = tests[..] else {
        return Err(FilterError::at(
            at,
            "a condition has exactly one test: eq, in, exists or prefix",
        ));
    };
    let here = format!("{at}.{name}");
    let value = &map[name.as_str()];
    let test = match name.as_str() {
        "eq" => Test::Eq(scalar(value, &here)?),
        "in" => {
            let Value::Array(items) = value else {
                return Err(FilterError::at(
                    &here,
                    "must be a list of strings, numbers, booleans or null",
                ));
            };
            if items.is_empty() || items.len() > MAX_FILTER_LIST {
                return Err(FilterError::at(
                    &here,
                    format!("must hold 1 to {MAX_FILTER_LIST} values"),
                ));
            }
            Test::In(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| scalar(v, &format!("{here}[{i}]")))
                    .collect::<Result<_, _>>()?,
            )
        }
        "exists" => match value {
            Value::Bool(b) => Test::Exists(*b),
            _ => return Err(FilterError::at(&here, "must be true or false")),
        },
        _ => match value {
            Value::String(p) if p.len() <= MAX_FILTER_TEXT => Test::Prefix(p.clone()),
            Value::String(_) => {
                return Err(FilterError::at(
                    &here,
                    format!("is longer than {MAX_FILTER_TEXT} bytes"),
                ))
            }
            _ => return Err(FilterError::at(&here, "must be a string")),
        },
    };
    Ok(Condition {
        path: path.clone(),
        root,
        segments,
        test,
    })
}

/// A value `eq` and `in` compare with: a string (of at most [`MAX_FILTER_TEXT`] bytes),
/// a number, a boolean or null.
fn scalar(value: &Value, at: &str) -> Result<Value, FilterError> {
    match value {
        Value::String(s) if s.len() > MAX_FILTER_TEXT => Err(FilterError::at(
            at,
            format!("is longer than {MAX_FILTER_TEXT} bytes"),
        )),
        Value::Array(_) | Value::Object(_) => Err(FilterError::at(
            at,
            "must be a string, a number, a boolean or null (objects and lists are not compared)",
        )),
        v => Ok(v.clone()),
    }
}

/// Splits a JSON pointer into its root field and the unescaped segments after it.
fn parse_pointer(path: &str) -> Result<(Root, Vec<String>), String> {
    if path.len() > MAX_FILTER_TEXT {
        return Err(format!("is longer than {MAX_FILTER_TEXT} bytes"));
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(format!(
            "{path:?} is not a JSON pointer: it starts with / and an event field ({})",
            roots_list()
        ));
    };
    let mut segments = Vec::new();
    for raw in rest.split('/') {
        segments.push(unescape(raw).ok_or_else(|| {
            format!("{path:?}: \"~\" is written ~0 and \"/\" ~1 in a JSON pointer segment")
        })?);
    }
    let root = match segments.remove(0).as_str() {
        "data" => Root::Data,
        "type" => Root::Type,
        "object_type" => Root::ObjectType,
        "actor" => Root::Actor,
        "changes" => Root::Changes,
        other => {
            return Err(format!(
            "{path:?} starts with {other:?}, not an event field: pointers start at the event ({})",
            roots_list()
        ))
        }
    };
    if matches!(root, Root::Type | Root::ObjectType) && !segments.is_empty() {
        return Err(format!(
            "{path:?}: the event's type is a string, with nothing under it"
        ));
    }
    Ok((root, segments))
}

fn roots_list() -> String {
    FILTER_ROOTS
        .iter()
        .map(|r| format!("/{r}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// RFC 6901 unescaping: `~1` is `/`, `~0` is `~`; any other `~` is an error.
fn unescape(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Actor, AppId, EventType, ObjectType};
    use serde_json::json;

    fn event(data: Value) -> Event {
        Event::new(
            AppId::parse("app").unwrap(),
            EventType::parse("invoice.paid").unwrap(),
            ObjectType::parse("invoice").unwrap(),
            data,
        )
    }

    fn passes(filter: Value, e: &Event) -> bool {
        PayloadFilter::parse(&filter)
            .unwrap()
            .matches(&EventView::new(e))
    }

    fn refused(filter: Value) -> FilterError {
        PayloadFilter::parse(&filter).unwrap_err()
    }

    #[test]
    fn each_test_on_data() {
        let e = event(
            json!({"status": "paid", "amount": 12, "tags": ["a", "b"], "note": null, "email": "ops@example.com"}),
        );
        assert!(passes(json!({"path": "/data/status", "eq": "paid"}), &e));
        assert!(!passes(json!({"path": "/data/status", "eq": "open"}), &e));
        assert!(
            passes(json!({"path": "/data/amount", "eq": 12.0}), &e),
            "numbers by value"
        );
        assert!(
            !passes(json!({"path": "/data/amount", "eq": "12"}), &e),
            "no coercion"
        );
        assert!(passes(
            json!({"path": "/data/status", "in": ["open", "paid"]}),
            &e
        ));
        assert!(!passes(json!({"path": "/data/status", "in": ["open"]}), &e));
        assert!(passes(json!({"path": "/data/tags/1", "eq": "b"}), &e));
        assert!(
            !passes(json!({"path": "/data/tags/01", "eq": "b"}), &e),
            "RFC 6901 indexes"
        );
        assert!(
            passes(json!({"path": "/data/note", "exists": true}), &e),
            "null exists"
        );
        assert!(passes(
            json!({"path": "/data/missing", "exists": false}),
            &e
        ));
        assert!(!passes(json!({"path": "/data/missing", "eq": null}), &e));
        assert!(passes(json!({"path": "/data/email", "prefix": "ops@"}), &e));
        assert!(
            !passes(json!({"path": "/data/amount", "prefix": "1"}), &e),
            "prefix is for strings"
        );
    }

    #[test]
    fn all_and_any_combine_and_nest() {
        let e = event(json!({"status": "paid", "currency": "EUR"}));
        let f = json!({"all": [
            {"path": "/data/status", "eq": "paid"},
            {"any": [{"path": "/data/currency", "eq": "USD"}, {"path": "/data/currency", "eq": "EUR"}]}
        ]});
        assert!(passes(f, &e));
        let f = json!({"all": [{"path": "/data/status", "eq": "paid"}, {"path": "/data/currency", "eq": "USD"}]});
        assert!(!passes(f, &e));
        let f = json!({"any": [{"path": "/data/status", "eq": "void"}, {"path": "/data/x", "exists": true}]});
        assert!(!passes(f, &e));
    }

    #[test]
    fn pointers_reach_the_types_actor_and_changes() {
        let mut e = event(json!({}));
        assert!(passes(json!({"path": "/type", "prefix": "invoice."}), &e));
        assert!(passes(json!({"path": "/object_type", "eq": "invoice"}), &e));
        assert!(passes(json!({"path": "/actor", "exists": false}), &e));
        e.actor = Some(Actor::from_json(&json!({"id": "admin_1", "type": "user"})).unwrap());
        assert!(passes(json!({"path": "/actor/id", "prefix": "admin_"}), &e));
        e.changes = crate::Changes::from_json(&json!({"a/b": ["x", "y"], "m~n": [1, 2]})).unwrap();
        assert!(passes(json!({"path": "/changes/a~1b/1", "eq": "y"}), &e));
        assert!(passes(json!({"path": "/changes/m~0n/0", "eq": 1}), &e));
    }

    #[test]
    fn bad_filters_are_refused_naming_the_bad_part() {
        let cases = [
            (json!([]), ""),
            (json!({"all": []}), ".all"),
            (
                json!({"all": [{"path": "/data/a", "eq": 1}], "any": []}),
                "",
            ),
            (
                json!({"any": [{"path": "/data/a", "eq": 1}, {"path": "data/a", "eq": 1}]}),
                ".any[1].path",
            ),
            (json!({"path": "/amount", "eq": 1}), ".path"),
            (json!({"path": "/type/x", "eq": 1}), ".path"),
            (json!({"path": "/data/a~2", "eq": 1}), ".path"),
            (json!({"path": "/data/a", "eq": {"x": 1}}), ".eq"),
            (json!({"path": "/data/a", "in": [1, [2]]}), ".in[1]"),
            (json!({"path": "/data/a", "in": []}), ".in"),
            (json!({"path": "/data/a", "exists": "yes"}), ".exists"),
            (json!({"path": "/data/a", "prefix": 1}), ".prefix"),
            (json!({"path": "/data/a", "eq": 1, "prefix": "x"}), ""),
            (json!({"path": "/data/a"}), ""),
            (json!({"path": "/data/a", "equals": 1}), ".equals"),
            (json!({"eq": 1}), ""),
        ];
        for (filter, path) in cases {
            let err = refused(filter.clone());
            assert_eq!(err.path, path, "{filter}: {err}");
        }
    }

    #[test]
    fn filters_are_bounded() {
        let mut deep = json!({"path": "/data/a", "eq": 1});
        for _ in 0..MAX_FILTER_DEPTH {
            deep = json!({"all": [deep]});
        }
        assert!(PayloadFilter::parse(&deep).is_ok());
        let err = refused(json!({"any": [deep]}));
        assert!(err.message.contains("nest"), "{err}");
        let many: Vec<Value> = (0..=MAX_FILTER_CONDITIONS)
            .map(|i| json!({"path": format!("/data/{i}"), "exists": true}))
            .collect();
        let err = refused(json!({"all": [{"all": many[..10]}, {"all": many[10..]}]}));
        assert!(err.message.contains("conditions"), "{err}");
        let long = "x".repeat(MAX_FILTER_TEXT + 1);
        assert_eq!(refused(json!({"path": "/data/a", "eq": long})).path, ".eq");
        let big: Vec<Value> = (0..MAX_FILTER_LIST)
            .map(|_| Value::from("y".repeat(60)))
            .collect();
        let err = refused(json!({"path": "/data/a", "in": big}));
        assert!(err.message.contains("bytes"), "{err}");
    }

    #[test]
    fn a_filter_round_trips_through_json() {
        let v = json!({"any": [{"path": "/data/a~1b", "in": [1, "x", null]}, {"path": "/type", "exists": true}]});
        let f = PayloadFilter::parse(&v).unwrap();
        assert_eq!(f.to_value(), v);
        let back: PayloadFilter =
            serde_json::from_value(serde_json::to_value(&f).unwrap()).unwrap();
        assert_eq!(back, f);
    }
}
