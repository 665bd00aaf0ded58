//! Parking on the DLQ: the last attempt, 410 Gone, refused destinations, and parks
//! that cannot be made.

use super::*;

#[tokio::test]
async fn the_last_failed_attempt_parks_the_delivery_and_counts_against_the_endpoint() {
    let subs = FakeSubscriptions::with(vec![sub("a", &["*"])]).disabling_after(1);
    let h = Harness::new(
        subs,
        FakeDeliverer::answering(&[(&url("a"), status(500))]),
        FakeOutbox::default(),
    );
    let t = task(&event("create"), "a", 3);

    let response = h.handle(vec![delivery_record("m1", &t)]).await;

    assert!(failures(&response).is_empty());
    assert_eq!(h.deliverer.urls(), vec![url("a")]);
    assert!(h.outbox.scheduled().is_empty(), "no fourth attempt");
    let parked = h.outbox.parked();
    assert_eq!(parked.len(), 1);
    let (reason, delivery, attempts, last_status, last_error) = failed_letter(&parked[0]);
    assert_eq!(reason, "all 3 attempts failed");
    assert_eq!(delivery, &t);
    assert_eq!(attempts, 3);
    assert_eq!(last_status, Some(500));
    assert_eq!(last_error, None);
    assert_eq!(
        h.subs.health(),
        vec![HealthCall::RecordFailed(SubscriptionId::new("a"))]
    );
    assert_eq!(
        h.subs.disabled_by_count(),
        vec![SubscriptionId::new("a")],
        "the threshold was reached"
    );
    let a = &h.history.attempts()[0];
    assert_eq!(a.attempt, 3);
    assert_eq!(a.outcome, AttemptOutcome::Failed);
    assert_eq!(a.next_attempt_at, None);
}

#[tokio::test]
async fn a_last_attempt_that_times_out_is_parked_with_the_error() {
    let h = Harness::new(
        FakeSubscriptions::with(vec![sub("a", &["*"])]),
        FakeDeliverer::answering(&[(&url("a"), error(DeliveryError::Timeout))]),
        FakeOutbox::default(),
    );
    let t = task(&event("create"), "a", 3);
    let response = h.handle(vec![delivery_record("m1", &t)]).await;
    assert!(failures(&response).is_empty());
    let parked = h.outbox.parked();
    let (reason, _, attempts, last_status, last_error) = failed_letter(&parked[0]);
    assert_eq!(reason, "all 3 attempts failed");
    assert_eq!(attempts, 3);
    assert_eq!(last_status, None);
    assert_eq!(last_error, Some("timed out"));
    assert_eq!(
        h.history.attempts()[0].error_kind.as_deref(),
        Some("timeout")
    );
    assert_eq!(
        h.subs.health(),
        vec![HealthCall::RecordFailed(SubscriptionId::new("a"))]
    );
}

#[tokio::test]
async fn gone_disables_the_endpoint_and_parks_without_a_retry() {
    let h = Harness::new(
        FakeSubscriptions::with(vec![sub("a", &["*"])]),
        FakeDeliverer::answering(&[(&url("a"), status(410))]),
        FakeOutbox::default(),
    );
    let e = event("create");
    let response = h.handle(vec![event_record("m1", &e)]).await;

    assert!(failures(&response).is_empty());
    assert!(h.outbox.scheduled().is_empty());
    let parked = h.outbox.parked();
    assert_eq!(parked.len(), 1);
    let (reason, delivery, attempts, last_status, _) = failed_letter(&parked[0]);
    assert_eq!(reason, "endpoint answered 410 Gone; it was disabled");
    assert_eq!(delivery.attempt, 1);
    assert_eq!(attempts, 1);
    assert_eq!(last_status, Some(410));
    assert_eq!(
        h.subs.health(),
        vec![HealthCall::Disable(
            SubscriptionId::new("a"),
            "endpoint answered 410 Gone; it was disabled".into()
        )]
    );
    let a = &h.history.attempts()[0];
    assert_eq!(a.status_code, Some(410));
    assert_eq!(a.next_attempt_at, None);
}

#[tokio::test]
async fn a_refused_destination_is_parked_at_once() {
    let subs = FakeSubscriptions::with(vec![sub("private", &["*"])]).disabling_after(5);
    let h = Harness::new(
        subs,
        FakeDeliverer::answering(&[(
            &url("private"),
            error(DeliveryError::Refused("10.0.0.1 is private".into())),
        )]),
        FakeOutbox::default(),
    );
    let response = h.handle(vec![event_record("m1", &event("create"))]).await;

    assert!(failures(&response).is_empty());
    assert!(
        h.outbox.scheduled().is_empty(),
        "not retried on the first attempt"
    );
    let parked = h.outbox.parked();
    assert_eq!(parked.len(), 1);
    let (reason, delivery, attempts, last_status, last_error) = failed_letter(&parked[0]);
    assert_eq!(reason, "destination refused by the address policy");
    assert_eq!(delivery.attempt, 1);
    assert_eq!(attempts, 1);
    assert_eq!(last_status, None);
    assert_eq!(last_error, Some("destination refused: 10.0.0.1 is private"));
    assert_eq!(
        h.history.attempts()[0].error_kind.as_deref(),
        Some("refused_address")
    );
    assert_eq!(
        h.subs.health(),
        vec![HealthCall::RecordFailed(SubscriptionId::new("private"))],
        "a refused address counts towards auto-disable"
    );
    assert!(h.subs.disabled_by_count().is_empty());
}

#[tokio::test]
async fn an_invalid_url_is_parked_at_once_too() {
    let h = Harness::new(
        FakeSubscriptions::with(vec![sub("ftp", &["*"])]),
        FakeDeliverer::answering(&[(
            &url("ftp"),
            error(DeliveryError::Invalid("scheme ftp is not http(s)".into())),
        )]),
        FakeOutbox::default(),
    );
    h.handle(vec![event_record("m1", &event("create"))]).await;
    assert!(h.outbox.scheduled().is_empty());
    assert_eq!(h.outbox.parked().len(), 1);
}

#[tokio::test]
async fn a_last_attempt_that_cannot_be_parked_comes_back_and_is_not_counted() {
    let h = Harness::new(
        FakeSubscriptions::with(vec![sub("a", &["*"])]),
        FakeDeliverer::answering(&[(&url("a"), status(500))]),
        FakeOutbox::default().failing_parks(|_| true),
    );
    let response = h
        .handle(vec![delivery_record("m1", &task(&event("create"), "a", 3))])
        .await;
    assert_eq!(failures(&response), vec!["m1"]);
    assert!(
        h.subs.health().is_empty(),
        "counted only once it is durably parked"
    );
}
