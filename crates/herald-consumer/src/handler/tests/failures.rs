//! Lookup failures and the history writes.

use super::*;

#[tokio::test]
async fn a_failed_subscription_lookup_brings_the_record_back() {
    let h = Harness::new(
        FakeSubscriptions::with(vec![sub("a", &["*"])]).failing_lookups(),
        FakeDeliverer::default(),
        FakeOutbox::default(),
    );
    let e = event("create");
    let response = h
        .handle(vec![
            event_record("event", &e),
            delivery_record("delivery", &task(&e, "a", 2)),
            record("garbage", "not json"),
        ])
        .await;
    assert_eq!(failures(&response), vec!["delivery", "event"]);
    assert!(h.deliverer.requests().is_empty());
    assert!(h.history.attempts().is_empty());
    assert_eq!(h.outbox.parked().len(), 1, "the garbage is still parked");
}

#[tokio::test]
async fn a_failed_fresh_read_of_a_missing_subscription_brings_the_record_back() {
    let h = Harness::new(
        FakeSubscriptions::default().failing_fresh_reads(),
        FakeDeliverer::default(),
        FakeOutbox::default(),
    );
    let response = h
        .handle(vec![delivery_record(
            "m1",
            &task(&event("create"), "maybe", 2),
        )])
        .await;
    assert_eq!(failures(&response), vec!["m1"]);
    assert!(
        h.history.attempts().is_empty(),
        "not recorded as deleted on a failed read"
    );
}

#[tokio::test]
async fn a_history_write_failure_does_not_fail_deliveries_that_were_made() {
    let h = Harness::with_policy(
        FakeSubscriptions::with(vec![sub("a", &["*"]), sub("b", &["*"])]),
        FakeDeliverer::answering(&[(&url("b"), status(500))]),
        FakeOutbox::default(),
        FakeHistory::default().failing(),
        policy(),
    );
    let response = h.handle(vec![event_record("m1", &event("create"))]).await;
    assert!(failures(&response).is_empty());
    assert_eq!(h.outbox.scheduled().len(), 1);
}

#[tokio::test]
async fn fresh_events_are_kept_in_the_history_beside_their_attempts() {
    let mut disabled = sub("off", &["*"]);
    disabled.active = false;
    let h = Harness::new(
        FakeSubscriptions::with(vec![sub("a", &["*"]), disabled]),
        FakeDeliverer::default(),
        FakeOutbox::default(),
    );
    let fresh = event("create");
    let retried = event("update");
    let response = h
        .handle(vec![
            event_record("m1", &fresh),
            delivery_record("m2", &task(&retried, "a", 2)),
            delivery_record("m3", &task(&retried, "off", 3)),
        ])
        .await;
    assert!(failures(&response).is_empty());
    let batches = h.history.batches();
    assert_eq!(batches.len(), 1, "one write per batch");
    let batch = &batches[0];
    assert!(batch.id.starts_with("b_") && batch.shard < herald_store::SHARDS);
    assert_eq!(
        batch.events,
        vec![fresh.clone()],
        "a fresh event is kept (so it can be re-sent); a retried one was kept already"
    );
    let mut tagged: Vec<(String, String, u32, bool)> = batch
        .attempts
        .iter()
        .map(|a| {
            (
                a.attempt.event_id.to_string(),
                a.attempt.subscription_id.to_string(),
                a.attempt.attempt,
                a.first_fan_out,
            )
        })
        .collect();
    tagged.sort();
    let mut expected = vec![
        (fresh.id.to_string(), "a".to_owned(), 1, true),
        (fresh.id.to_string(), "off".to_owned(), 0, true),
        (retried.id.to_string(), "a".to_owned(), 2, false),
        (retried.id.to_string(), "off".to_owned(), 0, false),
    ];
    expected.sort();
    assert_eq!(
        tagged, expected,
        "attempts from an Event message are its first fan-out; from a Delivery message, not"
    );
}

#[tokio::test]
async fn an_event_no_webhook_wants_is_not_kept_and_a_disabled_match_is() {
    let mut disabled = sub("b", &["delete"]);
    disabled.active = false;
    let h = Harness::new(
        FakeSubscriptions::with(vec![sub("a", &["create"]), disabled]),
        FakeDeliverer::default(),
        FakeOutbox::default(),
    );
    let unwanted = event("update");
    let for_disabled = event("delete");
    let response = h
        .handle(vec![
            event_record("m1", &unwanted),
            event_record("m2", &for_disabled),
        ])
        .await;
    assert!(failures(&response).is_empty());
    assert_eq!(
        h.history.events(),
        vec![for_disabled],
        "only the event some webhook wanted is kept (the disabled one can recover it)"
    );
    assert_eq!(h.history.attempts().len(), 1, "its not-sent record");
}
