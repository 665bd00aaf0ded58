//! Endpoint health: failure counts.

use super::*;

#[tokio::test]
async fn a_success_resets_the_failure_count_only_when_there_is_one() {
    let mut recovering = sub("recovering", &["*"]);
    recovering.consecutive_failures = 3;
    let h = Harness::new(
        FakeSubscriptions::with(vec![recovering, sub("healthy", &["*"])]),
        FakeDeliverer::default(),
        FakeOutbox::default(),
    );
    let response = h.handle(vec![event_record("m1", &event("create"))]).await;
    assert!(failures(&response).is_empty());
    assert_eq!(h.deliverer.urls(), vec![url("healthy"), url("recovering")]);
    assert_eq!(
        h.subs.health(),
        vec![HealthCall::Reset(SubscriptionId::new("recovering"))]
    );
}

#[tokio::test]
async fn a_failed_attempt_does_not_reset_the_failure_count() {
    let mut recovering = sub("recovering", &["*"]);
    recovering.consecutive_failures = 3;
    let h = Harness::new(
        FakeSubscriptions::with(vec![recovering]),
        FakeDeliverer::answering(&[(&url("recovering"), status(502))]),
        FakeOutbox::default(),
    );
    h.handle(vec![event_record("m1", &event("create"))]).await;
    assert!(h.subs.health().is_empty());
    assert_eq!(h.outbox.scheduled().len(), 1);
}
