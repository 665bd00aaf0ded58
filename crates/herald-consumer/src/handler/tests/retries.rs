//! After a failed attempt that is not the last: retries on schedule, `Retry-After`.

use super::*;

#[tokio::test]
async fn a_transport_failure_before_the_last_attempt_is_retried_on_schedule() {
    let h = Harness::new(
        FakeSubscriptions::with(vec![sub("a", &["*"])]),
        FakeDeliverer::answering(&[(&url("a"), error(DeliveryError::Connect("refused".into())))]),
        FakeOutbox::default(),
    );
    let t = task(&event("create"), "a", 2);
    h.handle(vec![delivery_record("m1", &t)]).await;
    let scheduled = h.outbox.scheduled();
    assert_eq!(scheduled.len(), 1);
    assert_eq!(scheduled[0].0.attempt, 3);
    assert_eq!(scheduled[0].1, Duration::from_secs(20));
    assert_eq!(
        scheduled[0].0.last_result.as_deref(),
        Some("could not connect: refused")
    );
    assert_eq!(scheduled[0].0.first_attempt_at, t.first_attempt_at);
    assert!(h.outbox.parked().is_empty());
    assert!(h.subs.health().is_empty());
}

#[tokio::test]
async fn too_many_requests_with_retry_after_is_retried_after_it_within_bounds() {
    let h = Harness::new(
        FakeSubscriptions::with(vec![
            sub("within", &["*"]),
            sub("beyond", &["*"]),
            sub("sooner", &["*"]),
            sub("plain500", &["*"]),
        ]),
        FakeDeliverer::answering(&[
            (&url("within"), status_retry_after(429, 15)),
            (&url("beyond"), status_retry_after(429, 600)),
            (&url("sooner"), status_retry_after(503, 1)),
            (&url("plain500"), status_retry_after(500, 15)),
        ]),
        FakeOutbox::default(),
    );
    let before = Utc::now();
    let response = h.handle(vec![event_record("m1", &event("create"))]).await;
    assert!(failures(&response).is_empty());

    let scheduled = h.outbox.scheduled();
    let delay_of = |id: &str| {
        scheduled
            .iter()
            .find(|(t, _)| t.subscription_id.as_str() == id)
            .map(|(t, d)| {
                assert_eq!(t.attempt, 2);
                *d
            })
            .unwrap()
    };
    assert_eq!(delay_of("within"), Duration::from_secs(15), "as asked");
    assert_eq!(
        delay_of("beyond"),
        Duration::from_secs(20),
        "at most twice the schedule"
    );
    assert_eq!(
        delay_of("sooner"),
        Duration::from_secs(10),
        "never sooner than the schedule"
    );
    assert_eq!(
        delay_of("plain500"),
        Duration::from_secs(10),
        "only 429 and 503"
    );
    let within = &h.history.for_sub("within")[0];
    assert_near(
        within.next_attempt_at.unwrap(),
        before + chrono::TimeDelta::seconds(15),
        "next_attempt_at",
    );
    assert!(h.outbox.parked().is_empty());
}
