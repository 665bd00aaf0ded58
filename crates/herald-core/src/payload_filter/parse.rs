//! Reading a payload filter from its JSON form: its shape, its bounds, and where a bad
//! part is.

use serde_json::{Map, Value};

use super::{
    Condition, FilterError, PayloadFilter, Root, Test, FILTER_ROOTS, MAX_FILTER_CONDITIONS,
    MAX_FILTER_DEPTH, MAX_FILTER_LIST, MAX_FILTER_TEXT,
};

pub(super) fn parse_node(
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
