//! Who made a change and what it changed: an event's optional context (the PHP deck's
//! "the user that made the action" and "changeset"), carried to every receiver in
//! both payload formats.
//!
//! Both are bounded: an actor's fields hold at most [`MAX_ACTOR_FIELD_LEN`] bytes each,
//! and `changes` names at most [`MAX_CHANGES`] fields of at most
//! [`MAX_CHANGE_FIELD_LEN`] bytes; their values count towards the event's size, which
//! the publisher holds to the events queue's message size.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::{check_json, check_text, is_queue_safe_char, key_segment, ValidationError};

/// Longest `id`, `type` or `name` of an actor, in bytes.
pub const MAX_ACTOR_FIELD_LEN: usize = 256;
/// Most fields one event's `changes` may name.
pub const MAX_CHANGES: usize = 100;
/// Longest field name in `changes`, in bytes.
pub const MAX_CHANGE_FIELD_LEN: usize = 256;

/// Who made the change an event reports: an id, and optionally its kind (`user`,
/// `service`, …) and a display name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ActorFields")]
pub struct Actor {
    /// The actor's id in the publisher's system.
    pub id: String,
    /// What kind of actor it is.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub actor_type: Option<String>,
    /// A name to show.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// An actor as read, before its checks.
#[derive(Deserialize)]
struct ActorFields {
    id: String,
    #[serde(rename = "type", default)]
    actor_type: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

impl TryFrom<ActorFields> for Actor {
    type Error = ValidationError;

    fn try_from(f: ActorFields) -> Result<Self, Self::Error> {
        Self::new(f.id, f.actor_type, f.name)
    }
}

/// Checks one of an actor's fields: not empty, at most [`MAX_ACTOR_FIELD_LEN`] bytes,
/// characters the queue carries.
fn check_field(what: &'static str, value: &str) -> Result<(), ValidationError> {
    check_text(
        what,
        value,
        MAX_ACTOR_FIELD_LEN,
        "characters SQS carries (no control characters but tab and line breaks)",
        is_queue_safe_char,
    )
}

impl Actor {
    /// An actor, its fields checked.
    pub fn new(
        id: String,
        actor_type: Option<String>,
        name: Option<String>,
    ) -> Result<Self, ValidationError> {
        check_field("actor.id", &id)?;
        if let Some(t) = &actor_type {
            check_field("actor.type", t)?;
        }
        if let Some(n) = &name {
            check_field("actor.name", n)?;
        }
        Ok(Self {
            id,
            actor_type,
            name,
        })
    }

    /// Reads an actor from a request's JSON, naming the field at fault: an object with
    /// a string `id` and optional string (or null) `type` and `name`, nothing else.
    pub fn from_json(value: &Value) -> Result<Self, ValidationError> {
        let Value::Object(map) = value else {
            return Err(shape("actor", "an object with id, type and name"));
        };
        if let Some(other) = map
            .keys()
            .find(|k| !matches!(k.as_str(), "id" | "type" | "name"))
        {
            return Err(shape(
                &format!("actor{}", key_segment(other)),
                "absent: an actor has id, type and name only",
            ));
        }
        let text = |name: &'static str, what: &str| match map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(shape(what, "a string")),
        };
        let id = text("id", "actor.id")?.ok_or(ValidationError::Empty { what: "actor.id" })?;
        Self::new(id, text("type", "actor.type")?, text("name", "actor.name")?)
    }
}

fn too_many_changes() -> ValidationError {
    ValidationError::TooMany {
        what: "changes",
        max: MAX_CHANGES,
        hint: "name the fields that matter and put the rest in data",
    }
}

fn shape(what: &str, expected: &'static str) -> ValidationError {
    ValidationError::WrongShape {
        what: what.to_owned(),
        expected,
    }
}

/// What a change changed: field name → `[before, after]`, each any JSON value (`null`
/// for a field that was absent before or after), at most [`MAX_CHANGES`] fields, in
/// name order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "BTreeMap<String, [Value; 2]>")]
pub struct Changes(BTreeMap<String, [Value; 2]>);

impl TryFrom<BTreeMap<String, [Value; 2]>> for Changes {
    type Error = ValidationError;

    fn try_from(fields: BTreeMap<String, [Value; 2]>) -> Result<Self, Self::Error> {
        Self::new(fields)
    }
}

impl Changes {
    /// Changes of `fields`, checked: at most [`MAX_CHANGES`] of them, each name 1 to
    /// [`MAX_CHANGE_FIELD_LEN`] bytes, names and values as the queue carries them.
    pub fn new(fields: BTreeMap<String, [Value; 2]>) -> Result<Self, ValidationError> {
        if fields.len() > MAX_CHANGES {
            return Err(too_many_changes());
        }
        for (name, pair) in &fields {
            if name.is_empty() {
                return Err(ValidationError::Empty {
                    what: "a field name in changes",
                });
            }
            if name.len() > MAX_CHANGE_FIELD_LEN {
                return Err(ValidationError::TooLong {
                    what: "a field name in changes",
                    max: MAX_CHANGE_FIELD_LEN,
                });
            }
            let at = format!("changes{}", key_segment(name));
            for value in pair {
                check_json("changes", value).map_err(|e| {
                    // Name the field: check_json sees the value alone.
                    ValidationError::WrongShape {
                        what: at.clone(),
                        expected: match e {
                            crate::DataError::TooDeep { .. } => {
                                "values nested at most 62 levels (data's limit of 64, less the two of changes)"
                            }
                            crate::DataError::UnsupportedCharacter { .. } => {
                                "values holding only characters SQS carries (no control characters but tab and line breaks)"
                            }
                        },
                    }
                })?;
            }
        }
        let changes = Self(fields);
        // The whole, as the queue carries it: names included, at the depth they travel.
        check_json(
            "changes",
            &serde_json::to_value(&changes).expect("JSON values serialize"),
        )?;
        Ok(changes)
    }

    /// Reads changes from a request's JSON, naming the field at fault: an object whose
    /// values are `[before, after]` arrays. An empty object is no changes (`None`).
    pub fn from_json(value: &Value) -> Result<Option<Self>, ValidationError> {
        let Value::Object(map) = value else {
            return Err(shape(
                "changes",
                "an object of field names to [before, after] pairs",
            ));
        };
        if map.len() > MAX_CHANGES {
            return Err(too_many_changes());
        }
        let mut fields = BTreeMap::new();
        for (name, pair) in map {
            let [before, after] = match pair {
                Value::Array(items) if items.len() == 2 => [items[0].clone(), items[1].clone()],
                _ => {
                    return Err(shape(
                        &format!("changes{}", key_segment(name)),
                        "a [before, after] array of two values",
                    ))
                }
            };
            fields.insert(name.clone(), [before, after]);
        }
        if fields.is_empty() {
            return Ok(None);
        }
        Self::new(fields).map(Some)
    }

    /// The changed fields and their `[before, after]`, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value, &Value)> {
        self.0.iter().map(|(k, [b, a])| (k.as_str(), b, a))
    }

    /// How many fields changed.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no field changed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The changes as JSON (`{"field": [before, after], …}`).
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("JSON values serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_actor_reads_from_json_and_names_what_is_wrong() {
        let a = Actor::from_json(&json!({"id": "u_1", "type": "user", "name": "Ada"})).unwrap();
        assert_eq!(a.id, "u_1");
        assert_eq!(a.actor_type.as_deref(), Some("user"));
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            json!({"id": "u_1", "type": "user", "name": "Ada"})
        );
        let bare = Actor::from_json(&json!({"id": "svc", "name": null})).unwrap();
        assert_eq!(serde_json::to_value(&bare).unwrap(), json!({"id": "svc"}));
        for (bad, says) in [
            (json!("ada"), "actor must be an object"),
            (json!({}), "actor.id must not be empty"),
            (json!({"id": ""}), "actor.id must not be empty"),
            (json!({"id": 7}), "actor.id must be a string"),
            (
                json!({"id": "a", "name": ["x"]}),
                "actor.name must be a string",
            ),
            (
                json!({"id": "a", "email": "x"}),
                "actor.email must be absent",
            ),
            (
                json!({"id": "a", "type": "t".repeat(MAX_ACTOR_FIELD_LEN + 1)}),
                "actor.type is longer than 256 bytes",
            ),
            (json!({"id": "a\u{0}"}), "actor.id"),
        ] {
            let err = Actor::from_json(&bad).unwrap_err().to_string();
            assert!(err.starts_with(says), "{bad}: {err}");
        }
        assert!(Actor::from_json(&json!({"id": "é".repeat(128)})).is_ok());
    }

    #[test]
    fn changes_read_from_json_bounded_and_in_name_order() {
        let c = Changes::from_json(&json!({"status": ["draft", "paid"], "amount": [null, 3]}))
            .unwrap()
            .unwrap();
        assert_eq!(c.len(), 2);
        let names: Vec<&str> = c.iter().map(|(k, _, _)| k).collect();
        assert_eq!(names, ["amount", "status"]);
        assert_eq!(
            c.to_value(),
            json!({"amount": [null, 3], "status": ["draft", "paid"]})
        );
        assert_eq!(Changes::from_json(&json!({})).unwrap(), None);

        let many: serde_json::Map<String, Value> = (0..=MAX_CHANGES)
            .map(|i| (format!("f{i}"), json!([i, i + 1])))
            .collect();
        let err = Changes::from_json(&Value::Object(many.clone())).unwrap_err();
        assert!(
            err.to_string().starts_with("changes lists more than 100"),
            "{err}"
        );
        let fits: serde_json::Map<String, Value> = many.into_iter().take(MAX_CHANGES).collect();
        assert!(Changes::from_json(&Value::Object(fits)).is_ok());

        for (bad, says) in [
            (json!(["a", "b"]), "changes must be an object"),
            (
                json!({"status": "paid"}),
                "changes.status must be a [before, after]",
            ),
            (
                json!({"status": ["a"]}),
                "changes.status must be a [before, after]",
            ),
            (
                json!({"status": [1, 2, 3]}),
                "changes.status must be a [before, after]",
            ),
            (
                json!({"": [1, 2]}),
                "a field name in changes must not be empty",
            ),
            (
                json!({ "f".repeat(MAX_CHANGE_FIELD_LEN + 1): [1, 2] }),
                "a field name in changes is longer than 256 bytes",
            ),
            (
                json!({"s": ["\u{FFFE}", 1]}),
                "changes.s must be values holding only",
            ),
        ] {
            let err = Changes::from_json(&bad).unwrap_err().to_string();
            assert!(err.starts_with(says), "{bad}: {err}");
        }
        let err = Changes::from_json(&json!({"a\u{1}": [1, 2]})).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("changes has a key holding U+0001"),
            "{err}"
        );
    }

    #[test]
    fn actor_and_changes_check_themselves_when_decoded() {
        assert!(serde_json::from_value::<Actor>(json!({"id": ""})).is_err());
        assert!(serde_json::from_value::<Actor>(json!({"id": "a", "type": "user"})).is_ok());
        let many: BTreeMap<String, [Value; 2]> = (0..=MAX_CHANGES)
            .map(|i| (format!("f{i}"), [json!(0), json!(1)]))
            .collect();
        assert!(serde_json::from_value::<Changes>(serde_json::to_value(&many).unwrap()).is_err());
        assert!(serde_json::from_value::<Changes>(json!({"a": [1]})).is_err());
    }
}
