//! Ordered delivery (docs/delivery.md, "Ordered delivery"): keyed events queue the
//! deliveries of ordered webhooks on the FIFO queue; a FIFO record's failed attempt is
//! held on the queue (never queued again) and stops the rest of its group; the last
//! attempt parks it, which frees the group.

use super::*;
use herald_core::OrderingKey;

fn keyed(key: &str) -> Event {
    event("update").with_ordering_key(Some(OrderingKey::parse(key).unwrap()))
}

fn ordered_sub(id: &str) -> Subscription {
    let mut s = sub(id, &["*"]);
    s.ordered = true;
    s
}

/// A record of the FIFO queue: in message group `group`, received `receives` times.
fn fifo_record(message_id: &str, task: &DeliveryTask, group: &str, receives: u32) -> SqsMessage {
    let mut r = delivery_record(message_id, task);
    r.receipt_handle = Some(format!("rh-{message_id}"));
    r.attributes
        .insert("MessageGroupId".into(), group.to_owned());
    r.attributes
        .insert("ApproximateReceiveCount".into(), receives.to_string());
    r
}

#[tokio::test]
async fn a_keyed_event_queues_its_ordered_deliveries_and_attempts_the_others() {
    let h = Harness::new(
        FakeSubscriptions::with(vec![ordered_sub("a"), sub("b", &["*"])]),
        FakeDeliverer::answering(&[]),
        FakeOutbox::default().ordering(),
    );
    let e = keyed("inv_1");
    let response = h.handle(vec![event_record("m1", &e)]).await;
    assert!(failures(&response).is_empty());
    let ordered = h.outbox.ordered();
    assert_eq!(ordered.len(), 1);
    assert_eq!(ordered[0].subscription_id, SubscriptionId::new("a"));
    assert_eq!(ordered[0].event.id, e.id);
    assert_eq!(ordered[0].attempt, 1);
    assert_eq!(
        h.deliverer.urls(),
        vec![url("b")],
        "only b is attempted now"
    );

    // Without a key, or without an ordered queue, the ordered webhook is delivered
    // at once like any other.
    let h = Harness::new(
        FakeSubscriptions::with(vec![ordered_sub("a")]),
        FakeDeliverer::answering(&[]),
        FakeOutbox::default().ordering(),
    );
    h.handle(vec![event_record("m1", &event("update"))]).await;
    assert!(h.outbox.ordered().is_empty());
    assert_eq!(h.deliverer.urls(), vec![url("a")]);
    let h = Harness::new(
        FakeSubscriptions::with(vec![ordered_sub("a")]),
        FakeDeliverer::answering(&[]),
        FakeOutbox::default(),
    );
    h.handle(vec![event_record("m1", &keyed("inv_1"))]).await;
    assert_eq!(h.deliverer.urls(), vec![url("a")]);
}

#[tokio::test]
async fn a_failed_ordered_attempt_is_held_and_stops_its_group_only() {
    let h = Harness::new(
        FakeSubscriptions::with(vec![ordered_sub("a"), ordered_sub("b")]),
        FakeDeliverer::answering(&[(&url("a"), status(500)), (&url("b"), status(200))]),
        FakeOutbox::default().ordering(),
    );
    let first = DeliveryTask::first(keyed("k"), SubscriptionId::new("a"));
    let second = DeliveryTask::first(keyed("k"), SubscriptionId::new("a"));
    let other = DeliveryTask::first(keyed("k"), SubscriptionId::new("b"));
    // m1 is on its second receive: its second attempt.
    let response = h
        .handle(vec![
            fifo_record("m1", &first, "g-a", 2),
            fifo_record("m2", &second, "g-a", 1),
            fifo_record("m3", &other, "g-b", 1),
        ])
        .await;
    assert_eq!(failures(&response), vec!["m1", "m2"]);
    assert_eq!(
        h.outbox.held(),
        vec![
            // The retry after attempt 2 of "0s,10s,20s".
            ("rh-m1".to_owned(), Duration::from_secs(20)),
            // Released at once, unattempted, behind the blocked one.
            ("rh-m2".to_owned(), Duration::ZERO),
        ]
    );
    assert!(h.outbox.scheduled().is_empty(), "never queued again");
    assert!(h.outbox.parked().is_empty());
    let mut urls = h.deliverer.urls();
    urls.sort();
    assert_eq!(urls, vec![url("a"), url("b")], "m2 was not attempted");
    let attempts = h.history.attempts();
    let a = attempts
        .iter()
        .find(|a| a.subscription_id == SubscriptionId::new("a"))
        .unwrap();
    assert_eq!(a.attempt, 2, "the attempt number is the receive count");
    assert!(a.next_attempt_at.is_some());
}

#[tokio::test]
async fn the_last_ordered_attempt_parks_the_delivery_which_frees_its_group() {
    let h = Harness::new(
        FakeSubscriptions::with(vec![ordered_sub("a")]),
        FakeDeliverer::answering(&[(&url("a"), status(500))]),
        FakeOutbox::default().ordering(),
    );
    let t = DeliveryTask::first(keyed("k"), SubscriptionId::new("a"));
    let response = h.handle(vec![fifo_record("m1", &t, "g-a", 3)]).await;
    assert!(
        failures(&response).is_empty(),
        "deleted: the group moves on"
    );
    assert!(h.outbox.held().is_empty());
    let parked = h.outbox.parked();
    assert_eq!(parked.len(), 1);
    let (_, delivery, attempts, last_status, _) = failed_letter(&parked[0]);
    assert_eq!((attempts, last_status), (3, Some(500)));
    assert_eq!(delivery.subscription_id, SubscriptionId::new("a"));
}
