use herald_core::health::{hourly_counts, HourCounts, LATENCY_BUCKETS_MS};
use herald_core::testing::{timed_attempt as made, utc as at};
use herald_core::{Attempt, AttemptOutcome, WebhookHealth};

use super::*;
use crate::history::items::{item_size, write_units};

/// The one update a batch of `attempts` (all of one webhook and hour) makes.
fn update_of(attempts: &[Attempt]) -> CounterUpdate {
    let counts = hourly_counts(attempts);
    assert_eq!(counts.len(), 1);
    let ((app, sub, hour), counts) = counts.into_iter().next().unwrap();
    CounterUpdate::of(&app, &sub, hour, &counts)
}

/// What DynamoDB does with the update's expression: reads it back through its
/// placeholders, then sets and adds.
fn apply(item: &mut Item, update: &CounterUpdate) {
    let (expression, names, values) = update.expression();
    let (sets, adds) = expression
        .strip_prefix("SET ")
        .and_then(|e| e.split_once(" ADD "))
        .expect("SET … ADD …");
    item.insert("pk".into(), AttributeValue::S(update.key.pk.clone()));
    item.insert("sk".into(), AttributeValue::S(update.key.sk.clone()));
    for clause in sets.split(", ") {
        let (name, value) = clause.split_once(" = ").unwrap();
        item.insert(names[name].clone(), values[value].clone());
    }
    for clause in adds.split(", ") {
        let (name, value) = clause.split_once(' ').unwrap();
        let add: u64 = values[value].as_n().unwrap().parse().unwrap();
        let old: u64 = item
            .get(&names[name])
            .map_or(0, |v| v.as_n().unwrap().parse().unwrap());
        item.insert(
            names[name].clone(),
            AttributeValue::N((old + add).to_string()),
        );
    }
}

#[test]
fn batches_add_up_in_one_item_per_webhook_and_hour() {
    use AttemptOutcome::{Failed, NotSent, Succeeded};
    let batches = [
        vec![
            made(Failed, "2026-12-02T11:00:01Z", 4),
            made(Failed, "2026-12-02T11:00:02Z", 40),
            made(NotSent, "2026-12-02T11:00:02Z", 0),
        ],
        vec![
            made(Succeeded, "2026-12-02T11:10:00Z", 120),
            made(Failed, "2026-12-02T11:10:01Z", 15_000),
        ],
        vec![
            made(Failed, "2026-12-02T11:20:00Z", 40),
            made(Failed, "2026-12-02T11:20:01Z", 40),
        ],
    ];
    let mut item = Item::new();
    for b in &batches {
        apply(&mut item, &update_of(b));
    }
    assert_eq!(item["pk"], AttributeValue::S("H#shop#sub_1".into()));
    assert_eq!(item["sk"], AttributeValue::S("2026-12-02T11".into()));
    assert_eq!(
        item["expires_at"],
        AttributeValue::N(at("2026-12-04T12:00:00Z").timestamp().to_string()),
        "49 hours after the hour began"
    );
    let (hour, counts) = counts_of(&item).unwrap();
    assert_eq!(hour, at("2026-12-02T11:00:00Z"));
    let all: Vec<Attempt> = batches.concat();
    let expected = HourCounts {
        // The failures after the last success: the second batch's one and the third's two.
        failures_since_success: 3,
        ..HourCounts::of(&all)
    };
    assert_eq!(counts, expected);
    assert_eq!(
        (counts.attempts, counts.successes, counts.failures),
        (6, 1, 5)
    );
    assert_eq!(
        counts.latency.buckets().collect::<Vec<_>>(),
        vec![(5, 1), (50, 3), (130, 1), (20_000, 1)]
    );

    // Read back as a health: the failures since the success, the last times.
    let h = WebhookHealth::of(at("2026-12-02T11:30:00Z"), [(hour, counts)]);
    assert_eq!(h.consecutive_failures, 3);
    assert_eq!(h.last_success_at, Some(at("2026-12-02T11:10:00Z")));
    assert_eq!(h.last_failure_at, Some(at("2026-12-02T11:20:01Z")));
    assert_eq!(h.last_24h.latency_p50_ms(), Some(50));
    assert_eq!(h.last_24h.latency_p95_ms(), Some(20_000));
}

#[test]
fn a_batch_with_a_success_sets_the_failures_after_it_and_one_without_adds_them() {
    let ok = update_of(&[
        made(AttemptOutcome::Failed, "2026-12-02T11:00:01Z", 4),
        made(AttemptOutcome::Succeeded, "2026-12-02T11:00:02Z", 4),
        made(AttemptOutcome::Failed, "2026-12-02T11:00:03Z", 4),
    ]);
    let set = |u: &CounterUpdate, name: &str| {
        u.set
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let added =
        |u: &CounterUpdate, name: &str| u.add.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
    assert_eq!(
        set(&ok, "failures_since_success"),
        Some(AttributeValue::N("1".into()))
    );
    assert_eq!(added(&ok, "failures_since_success"), None);
    assert!(set(&ok, "last_success_at").is_some() && set(&ok, "last_failure_at").is_some());
    let failing = update_of(&[made(AttemptOutcome::Failed, "2026-12-02T11:00:01Z", 4)]);
    assert_eq!(set(&failing, "failures_since_success"), None);
    assert_eq!(added(&failing, "failures_since_success"), Some(1));
    assert_eq!(set(&failing, "last_success_at"), None);
    // Only the buckets that counted something are written.
    assert_eq!(added(&failing, "ms5"), Some(1));
    assert_eq!(
        failing
            .add
            .iter()
            .filter(|(n, _)| n.starts_with("ms"))
            .count(),
        1
    );
}

#[test]
fn a_counter_item_stays_under_one_write_unit() {
    // Long ids, every bucket counting, both times: the largest a counter item gets.
    let app = AppId::parse(&"a".repeat(64)).unwrap();
    let sub = SubscriptionId::new(format!("sub_{}", "f".repeat(32)));
    let mut counts = HourCounts {
        attempts: u64::from(u32::MAX),
        successes: u64::from(u32::MAX),
        failures: u64::from(u32::MAX),
        failures_since_success: u64::from(u32::MAX),
        last_success_at: Some(at("2026-12-02T11:59:59.999999Z")),
        last_failure_at: Some(at("2026-12-02T11:59:59.999999Z")),
        ..HourCounts::default()
    };
    for bound in LATENCY_BUCKETS_MS {
        counts.latency.add_to_bucket(bound, u64::from(u32::MAX));
    }
    let mut item = Item::new();
    apply(
        &mut item,
        &CounterUpdate::of(&app, &sub, at("2026-12-02T11:00:00Z"), &counts),
    );
    assert_eq!(counts_of(&item).unwrap().1, counts);
    let size = item_size(&item);
    assert!(size < 1024, "{size} bytes");
    assert_eq!(write_units(&item), 1);
}

#[test]
fn a_counter_item_that_does_not_decode_is_corrupt() {
    let mut item = Item::new();
    apply(
        &mut item,
        &update_of(&[made(AttemptOutcome::Failed, "2026-12-02T11:00:01Z", 4)]),
    );
    for (name, value) in [
        ("sk", AttributeValue::S("2026-12-02".into())),
        ("attempts", AttributeValue::S("one".into())),
        ("ms5", AttributeValue::N("-1".into())),
        ("last_failure_at", AttributeValue::S("yesterday".into())),
    ] {
        let mut bad = item.clone();
        bad.insert(name.into(), value);
        assert!(
            matches!(counts_of(&bad), Err(StoreError::Corrupt { .. })),
            "{name}"
        );
    }
}
