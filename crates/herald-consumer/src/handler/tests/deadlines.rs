//! The start deadline: deliveries not started in time are handed back.

use super::*;

fn slow_policy() -> DeliveryPolicy {
    DeliveryPolicy {
        concurrency: 1,
        start_deadline: Duration::from_millis(50),
        ..policy()
    }
}

fn slow_deliverer() -> FakeDeliverer {
    FakeDeliverer::default().taking(Duration::from_millis(100))
}

#[tokio::test]
async fn deliveries_not_started_by_the_deadline_are_handed_back_with_the_same_attempt() {
    let h = Harness::with_policy(
        FakeSubscriptions::with(vec![sub("a", &["*"]), sub("b", &["*"]), sub("c", &["*"])]),
        slow_deliverer(),
        FakeOutbox::default(),
        FakeHistory::default(),
        slow_policy(),
    );
    let e = event("create");

    let response = h.handle(vec![event_record("m1", &e)]).await;

    assert!(failures(&response).is_empty());
    let requests = h.deliverer.requests();
    assert_eq!(requests.len(), 1, "only the first delivery started in time");
    let first = requests[0].url().to_owned();
    let scheduled = h.outbox.scheduled();
    assert_eq!(scheduled.len(), 2);
    for (t, delay) in &scheduled {
        assert_eq!(*delay, Duration::ZERO, "handed back for at once");
        assert_eq!(t.attempt, 1, "the attempt is not counted");
        assert_eq!(t.event, e);
        assert_eq!(t.last_result, None);
        assert_ne!(url(t.subscription_id.as_str()), first);
    }
    let mut handed_back: Vec<&str> = scheduled
        .iter()
        .map(|(t, _)| t.subscription_id.as_str())
        .collect();
    handed_back.sort();
    handed_back.dedup();
    assert_eq!(handed_back.len(), 2);
    let attempts = h.history.attempts();
    assert_eq!(
        attempts.len(),
        1,
        "no attempt recorded for those handed back"
    );
    assert_eq!(attempts[0].outcome, AttemptOutcome::Succeeded);
}

#[tokio::test]
async fn retries_not_started_by_the_deadline_keep_their_attempt_number_and_due_time() {
    let h = Harness::with_policy(
        FakeSubscriptions::with(vec![sub("a", &["*"]), sub("b", &["*"])]),
        slow_deliverer(),
        FakeOutbox::default(),
        FakeHistory::default(),
        slow_policy(),
    );
    let e = event("create");
    let (ta, tb) = (task(&e, "a", 2), task(&e, "b", 2));

    let response = h
        .handle(vec![delivery_record("m1", &ta), delivery_record("m2", &tb)])
        .await;

    assert!(failures(&response).is_empty());
    assert_eq!(h.deliverer.requests().len(), 1);
    let scheduled = h.outbox.scheduled();
    assert_eq!(scheduled.len(), 1);
    let (back, delay) = &scheduled[0];
    assert_eq!(*delay, Duration::ZERO);
    let original = if back.subscription_id.as_str() == "a" {
        &ta
    } else {
        &tb
    };
    assert_eq!(back, original, "handed back unchanged");
}

#[tokio::test]
async fn a_hand_back_that_cannot_be_sent_brings_its_record_back() {
    let h = Harness::with_policy(
        FakeSubscriptions::with(vec![sub("a", &["*"]), sub("b", &["*"])]),
        slow_deliverer(),
        FakeOutbox::default().failing_schedules(|_| true),
        FakeHistory::default(),
        slow_policy(),
    );
    let e = event("create");
    let response = h
        .handle(vec![
            delivery_record("m1", &task(&e, "a", 2)),
            delivery_record("m2", &task(&e, "b", 2)),
        ])
        .await;
    // Exactly one was delivered (and succeeded); the other could not be handed back.
    assert_eq!(h.deliverer.requests().len(), 1);
    let delivered = h.deliverer.requests()[0].url().to_owned();
    let expected = if delivered == url("a") { "m2" } else { "m1" };
    assert_eq!(failures(&response), vec![expected]);
}

#[tokio::test]
async fn deliveries_waiting_for_room_under_the_bound_are_handed_back_at_the_start_deadline() {
    // One delivery at a time across the consumer: the second of two concurrent
    // batches waits for the first's delivery, which outlasts the start deadline.
    let h = Harness::with_policy(
        FakeSubscriptions::with(vec![sub("a", &["*"])]),
        slow_deliverer(),
        FakeOutbox::default(),
        FakeHistory::default(),
        slow_policy(),
    );
    let (e1, e2) = (event("create"), event("update"));
    let (r1, r2) = tokio::join!(
        h.handle(vec![event_record("m1", &e1)]),
        h.handle(vec![event_record("m2", &e2)]),
    );

    assert!(failures(&r1).is_empty() && failures(&r2).is_empty());
    assert_eq!(
        h.deliverer.requests().len(),
        1,
        "one delivery started in time"
    );
    let scheduled = h.outbox.scheduled();
    assert_eq!(scheduled.len(), 1, "the other was handed back");
    let (back, delay) = &scheduled[0];
    assert_eq!((back.attempt, *delay), (1, Duration::ZERO));
    let delivered = h.history.attempts();
    assert_eq!(delivered.len(), 1);
    assert_ne!(delivered[0].event_id, back.event.id, "each went one way");
}
