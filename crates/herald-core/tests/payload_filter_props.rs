//! The payload filter evaluator against a straightforward reference: the event written
//! out as one JSON document, pointers followed with `serde_json::Value::pointer`, and
//! the tests spelled out again, on random events and random filters.

use herald_core::{Actor, AppId, Changes, Event, EventType, EventView, ObjectType, PayloadFilter};
use proptest::prelude::*;
use serde_json::{json, Value};

/// The reference: the event as one document, rooted where filter pointers are.
fn document(e: &Event) -> Value {
    let mut doc = json!({
        "type": e.event_type.as_str(),
        "object_type": e.object_type.as_str(),
        "data": e.data.to_value(),
    });
    if let Some(a) = &e.actor {
        doc["actor"] = serde_json::to_value(a).unwrap();
    }
    if let Some(c) = &e.changes {
        doc["changes"] = c.to_value();
    }
    doc
}

/// Equality as filters define it: numbers by value.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// The reference evaluator, on the filter's JSON form.
fn reference(filter: &Value, doc: &Value) -> bool {
    if let Some(items) = filter.get("all") {
        return items.as_array().unwrap().iter().all(|f| reference(f, doc));
    }
    if let Some(items) = filter.get("any") {
        return items.as_array().unwrap().iter().any(|f| reference(f, doc));
    }
    let found = doc.pointer(filter["path"].as_str().unwrap());
    if let Some(want) = filter.get("exists") {
        return found.is_some() == want.as_bool().unwrap();
    }
    let Some(found) = found else { return false };
    if let Some(want) = filter.get("eq") {
        return same(found, want);
    }
    if let Some(wants) = filter.get("in") {
        return wants.as_array().unwrap().iter().any(|w| same(found, w));
    }
    let prefix = filter["prefix"].as_str().unwrap();
    found.as_str().is_some_and(|s| s.starts_with(prefix))
}

/// Small scalars, so that random filters often hit random data.
fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (0i64..4).prop_map(Value::from),
        (0i64..4).prop_map(|n| Value::from(n as f64)),
        Just(Value::from(1.5)),
        prop::sample::select(vec!["", "a", "ab", "abc", "b", "a/b", "~"]).prop_map(Value::from),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "a/b", "m~n", "0", "1", ""]).prop_map(str::to_owned)
}

fn data() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

fn pointer() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        key().prop_map(|k| escape(&k)),
        Just("00".to_owned()),
        Just("2".to_owned())
    ];
    prop_oneof![
        4 => prop::collection::vec(segment.clone(), 0..3)
            .prop_map(|s| s.iter().fold("/data".to_owned(), |p, s| format!("{p}/{s}"))),
        1 => Just("/type".to_owned()),
        1 => Just("/object_type".to_owned()),
        1 => prop::sample::select(vec!["/actor", "/actor/id", "/actor/type", "/actor/x"])
            .prop_map(str::to_owned),
        1 => prop::collection::vec(segment, 0..2)
            .prop_map(|s| s.iter().fold("/changes".to_owned(), |p, s| format!("{p}/{s}"))),
    ]
}

fn condition() -> impl Strategy<Value = Value> {
    let prefix = prop::sample::select(vec!["", "a", "ab", "up", "x"]);
    (
        pointer(),
        0..4usize,
        scalar(),
        prop::collection::vec(scalar(), 1..4),
        any::<bool>(),
        prefix,
    )
        .prop_map(|(path, which, eq, within, exists, prefix)| match which {
            0 => json!({"path": path, "eq": eq}),
            1 => json!({"path": path, "in": within}),
            2 => json!({"path": path, "exists": exists}),
            _ => json!({"path": path, "prefix": prefix}),
        })
}

fn filter() -> impl Strategy<Value = Value> {
    condition().prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(|v| json!({"all": v})),
            prop::collection::vec(inner, 1..4).prop_map(|v| json!({"any": v})),
        ]
    })
}

fn event() -> impl Strategy<Value = Event> {
    let types = prop::sample::select(vec!["update", "upgrade", "a"]);
    let actor = prop::option::of(prop::sample::select(vec!["a", "ab", "up"]));
    let changes = prop::option::of(prop::collection::btree_map(
        key(),
        (scalar(), scalar()),
        0..3,
    ));
    (data(), types, actor, changes).prop_map(|(data, t, actor, changes)| {
        let mut e = Event::new(
            AppId::parse("app").unwrap(),
            EventType::parse(t).unwrap(),
            ObjectType::parse("ab").unwrap(),
            data,
        );
        e.actor = actor.map(|id| Actor::from_json(&json!({"id": id, "type": "user"})).unwrap());
        e.changes = changes.and_then(|c| {
            let fields = c
                .into_iter()
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, (a, b))| (k, [a, b]))
                .collect();
            Changes::new(fields).ok()
        });
        e
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_evaluator_agrees_with_the_reference(e in event(), f in filter()) {
        // A filter over a bound (its size) is not one a webhook can hold.
        prop_assume!(PayloadFilter::parse(&f).is_ok());
        let parsed = PayloadFilter::parse(&f).unwrap();
        let doc = document(&e);
        let view = EventView::new(&e);
        prop_assert_eq!(parsed.matches(&view), reference(&f, &doc), "filter {} on {}", f, doc);
        // Again on the same view, its parsed parts now cached.
        prop_assert_eq!(parsed.matches(&view), reference(&f, &doc));
    }
}
