//! Delivery messages: due times, vanished and disabled endpoints.

use super::*;

#[tokio::test]
async fn a_delivery_not_yet_due_is_delayed_again_for_the_remaining_time_without_a_request() {
    let h = Harness::new(
        FakeSubscriptions::with(vec![sub("a", &["*"])]),
        FakeDeliverer::default(),
        FakeOutbox::default(),
    );
    let mut t = task(&event("create"), "a", 3);
    t.not_before = Utc::now() + chrono::TimeDelta::hours(1);

    let response = h.handle(vec![delivery_record("m1", &t)]).await;

    assert!(failures(&response).is_empty());
    assert!(h.deliverer.requests().is_empty());
    let scheduled = h.outbox.scheduled();
    assert_eq!(scheduled.len(), 1);
    let (again, delay) = &scheduled[0];
    assert_eq!(again, &t, "the same task, attempt and due time unchanged");
    assert!(
        *delay <= Duration::from_secs(3600) && *delay > Duration::from_secs(3595),
        "delay {delay:?} is the remaining time"
    );
    assert!(h.history.attempts().is_empty());
    assert!(h.subs.health().is_empty());
}

#[tokio::test]
async fn a_delivery_due_within_the_tolerance_is_attempted_now() {
    let h = Harness::new(
        FakeSubscriptions::with(vec![sub("a", &["*"])]),
        FakeDeliverer::default(),
        FakeOutbox::default(),
    );
    let mut t = task(&event("create"), "a", 2);
    t.not_before = Utc::now() + chrono::TimeDelta::milliseconds(50);

    let response = h.handle(vec![delivery_record("m1", &t)]).await;

    assert!(failures(&response).is_empty());
    assert_eq!(h.deliverer.urls(), vec![url("a")]);
    assert!(h.outbox.scheduled().is_empty());
    let a = &h.history.attempts()[0];
    assert_eq!(a.attempt, 2);
    assert_eq!(a.outcome, AttemptOutcome::Succeeded);
}

#[tokio::test]
async fn re_delaying_a_delivery_that_cannot_be_sent_brings_the_record_back() {
    let h = Harness::new(
        FakeSubscriptions::with(vec![sub("a", &["*"])]),
        FakeDeliverer::default(),
        FakeOutbox::default().failing_schedules(|_| true),
    );
    let mut t = task(&event("create"), "a", 2);
    t.not_before = Utc::now() + chrono::TimeDelta::hours(1);
    let response = h.handle(vec![delivery_record("m1", &t)]).await;
    assert_eq!(failures(&response), vec!["m1"]);
    assert!(h.deliverer.requests().is_empty());
}

#[tokio::test]
async fn a_delivery_for_a_deleted_subscription_is_recorded_as_not_sent() {
    let h = Harness::new(
        FakeSubscriptions::with(vec![sub("other", &["*"])]),
        FakeDeliverer::default(),
        FakeOutbox::default(),
    );
    let e = event("create");
    let t = task(&e, "gone", 2);

    let response = h.handle(vec![delivery_record("m1", &t)]).await;

    assert!(failures(&response).is_empty());
    assert!(h.deliverer.requests().is_empty());
    assert!(h.outbox.scheduled().is_empty() && h.outbox.parked().is_empty());
    assert_eq!(
        h.subs.fresh_reads(),
        vec![SubscriptionId::new("gone")],
        "a subscription missing from the cached list is read fresh before giving up"
    );
    let attempts = h.history.attempts();
    assert_eq!(attempts.len(), 1);
    let a = &attempts[0];
    assert_eq!(a.subscription_id.as_str(), "gone");
    assert_eq!(a.outcome, AttemptOutcome::NotSent);
    assert_eq!(a.error_kind.as_deref(), Some("subscription_deleted"));
    assert_eq!(a.attempt, 0);
    assert_eq!(
        a.webhook_id,
        webhook_id(&e.id, &SubscriptionId::new("gone"))
    );
}

#[tokio::test]
async fn a_delivery_missing_from_a_stale_cache_is_found_by_a_fresh_read_and_attempted() {
    let subs = FakeSubscriptions::default().with_fresh_only(vec![sub("new", &["*"])]);
    let h = Harness::new(subs, FakeDeliverer::default(), FakeOutbox::default());
    let t = task(&event("create"), "new", 2);
    let response = h.handle(vec![delivery_record("m1", &t)]).await;
    assert!(failures(&response).is_empty());
    assert_eq!(h.deliverer.urls(), vec![url("new")]);
    assert_eq!(
        h.history.attempts()[0].outcome,
        AttemptOutcome::Succeeded,
        "delivered, not dropped as deleted"
    );
}

#[tokio::test]
async fn a_waiting_delivery_whose_endpoint_was_disabled_is_parked_with_the_reason() {
    let mut disabled = sub("disabled", &["*"]);
    disabled.active = false;
    disabled.disabled_reason = Some("endpoint answered 410 Gone; it was disabled".into());
    let mut paused = sub("paused", &["*"]);
    paused.active = false;
    let h = Harness::new(
        FakeSubscriptions::with(vec![disabled, paused]),
        FakeDeliverer::default(),
        FakeOutbox::default(),
    );
    let e = event("create");
    let t1 = task(&e, "disabled", 2);
    let t2 = task(&e, "paused", 3);

    let response = h
        .handle(vec![delivery_record("m1", &t1), delivery_record("m2", &t2)])
        .await;

    assert!(failures(&response).is_empty());
    assert!(h.deliverer.requests().is_empty());
    assert!(h.outbox.scheduled().is_empty());
    let parked = h.outbox.parked();
    assert_eq!(parked.len(), 2);
    let by_sub = |id: &str| {
        parked
            .iter()
            .find(|l| failed_letter(l).1.subscription_id.as_str() == id)
            .map(failed_letter)
            .unwrap()
    };
    let (reason, delivery, attempts, last_status, last_error) = by_sub("disabled");
    assert!(reason.starts_with("endpoint disabled"), "{reason}");
    assert_eq!(
        reason,
        "endpoint disabled: endpoint answered 410 Gone; it was disabled"
    );
    assert_eq!(delivery, &t1);
    assert_eq!(attempts, 1, "attempts made so far");
    assert_eq!(last_status, None);
    assert_eq!(last_error, Some("HTTP 500"));
    let (reason, _, attempts, _, _) = by_sub("paused");
    assert_eq!(reason, "endpoint disabled: disabled by its owner");
    assert_eq!(attempts, 2);

    for id in ["disabled", "paused"] {
        let a = &h.history.for_sub(id)[0];
        assert_eq!(a.outcome, AttemptOutcome::NotSent);
        assert_eq!(a.error_kind.as_deref(), Some("endpoint_disabled"));
    }
    assert!(h.subs.health().is_empty());
}

#[tokio::test]
async fn a_delivery_for_a_disabled_endpoint_that_cannot_be_parked_comes_back() {
    let mut disabled = sub("disabled", &["*"]);
    disabled.active = false;
    let h = Harness::new(
        FakeSubscriptions::with(vec![disabled, sub("ok", &["*"])]),
        FakeDeliverer::default(),
        FakeOutbox::default().failing_parks(|_| true),
    );
    let e = event("create");
    let response = h
        .handle(vec![
            delivery_record("m1", &task(&e, "disabled", 2)),
            delivery_record("m2", &task(&e, "ok", 2)),
        ])
        .await;
    assert_eq!(failures(&response), vec!["m1"]);
    assert_eq!(h.deliverer.urls(), vec![url("ok")]);
    assert!(
        h.history.for_sub("disabled").is_empty(),
        "nothing recorded for a delivery that will come back"
    );
}
