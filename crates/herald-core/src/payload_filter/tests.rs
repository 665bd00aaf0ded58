//! The payload filter's unit tests (the property test against a reference is in
//! tests/payload_filter_props.rs).

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
    let back: PayloadFilter = serde_json::from_value(serde_json::to_value(&f).unwrap()).unwrap();
    assert_eq!(back, f);
}
