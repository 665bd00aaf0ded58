//! Rate-limited webhooks: slots reserved once per webhook per batch, near slots waited
//! for, far ones deferred on the queue carrying their slot (not an attempt, not a
//! failure), and unlimited webhooks untouched.

use std::time::Instant;

use chrono::TimeDelta;
use herald_core::RateLimit;

use super::*;

/// `sub(id)` limited to `per_second` deliveries per second.
fn limited(id: &str, per_second: u64) -> Subscription {
    let mut s = sub(id, &["*"]);
    s.rate_limit = Some(RateLimit::new(per_second).unwrap());
    s
}

/// A harness whose one webhook, `slow`, is limited to 5 deliveries per second.
fn five_per_second() -> Harness {
    Harness::new(
        FakeSubscriptions::with(vec![limited("slow", 5)]),
        FakeDeliverer::default(),
        FakeOutbox::default(),
    )
}

/// A first delivery to `slow` that its rate limit deferred to `slot`.
fn deferred_to(slot: DateTime<Utc>) -> DeliveryTask {
    DeliveryTask {
        not_before: slot,
        rate_slot: Some(slot),
        ..task(&event("update"), "slow", 1)
    }
}

fn events(n: usize) -> Vec<SqsMessage> {
    (0..n)
        .map(|i| event_record(&format!("m{i}"), &event("update")))
        .collect()
}

#[tokio::test]
async fn deliveries_beyond_the_near_slots_go_back_on_the_queue_carrying_their_slots() {
    let h = Harness::new(
        FakeSubscriptions::with(vec![limited("slow", 5), sub("fast", &["*"])]),
        FakeDeliverer::default(),
        FakeOutbox::default(),
    );
    // Other instances have reserved the next 10 s already.
    let ahead = Utc::now() + TimeDelta::seconds(10);
    h.subs.schedule_ends(&SubscriptionId::new("slow"), ahead);
    let response = h.handle(events(12)).await;
    assert!(failures(&response).is_empty(), "nothing comes back");

    // One reservation for the batch's 12 deliveries to the limited webhook.
    assert_eq!(
        h.subs.reservations(),
        vec![(SubscriptionId::new("slow"), 12)]
    );
    // The unlimited webhook got all 12 at once; the limited one none yet.
    let urls = h.deliverer.urls();
    assert_eq!(urls.len(), 12);
    assert!(urls.iter().all(|u| *u == url("fast")), "{urls:?}");
    let scheduled = h.outbox.scheduled();
    assert_eq!(scheduled.len(), 12);
    let mut slots: Vec<_> = scheduled
        .iter()
        .map(|(t, delay)| {
            assert_eq!(t.subscription_id.as_str(), "slow");
            assert_eq!(t.attempt, 1, "deferring is not an attempt");
            assert_eq!(t.last_result, None);
            let slot = t.rate_slot.expect("a deferred delivery carries its slot");
            assert_eq!(t.not_before, slot);
            // Comes back one to two seconds before its slot.
            assert_eq!(delay.subsec_nanos(), 0);
            let early = slot - (t.first_attempt_at + TimeDelta::from_std(*delay).unwrap());
            assert!(
                early >= TimeDelta::seconds(1) && early <= TimeDelta::seconds(2),
                "{early}"
            );
            slot
        })
        .collect();
    slots.sort();
    assert_eq!(slots[0], ahead, "queued behind what is reserved");
    for pair in slots.windows(2) {
        assert_eq!(pair[1] - pair[0], TimeDelta::milliseconds(200));
    }
    // Only the 12 deliveries to the unlimited webhook were attempts; deferring is not
    // a failure.
    let attempts = h.history.attempts();
    assert_eq!(attempts.len(), 12);
    assert!(attempts
        .iter()
        .all(|a| a.subscription_id.as_str() == "fast"));
    assert!(h.subs.health().is_empty());
    assert!(h.outbox.parked().is_empty());
}

#[tokio::test]
async fn near_slots_are_waited_for_in_the_batch_one_interval_apart() {
    let h = Harness::new(
        FakeSubscriptions::with(vec![limited("slow", 10)]),
        FakeDeliverer::default(),
        FakeOutbox::default(),
    );
    let started = Instant::now();
    h.handle(events(5)).await;
    // Slots now, +100, +200, +300, +400 ms: all within the wait, none deferred.
    assert_eq!(h.deliverer.requests().len(), 5);
    assert!(h.outbox.scheduled().is_empty());
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        h.subs.reservations(),
        vec![(SubscriptionId::new("slow"), 5)]
    );
    // The next batch queues behind the first.
    let again = Instant::now();
    h.handle(events(1)).await;
    assert!(again.elapsed() >= Duration::from_millis(50));
}

#[tokio::test]
async fn a_deferred_delivery_is_attempted_at_its_slot_without_reserving_again() {
    let h = five_per_second();
    let slot = Utc::now() + TimeDelta::milliseconds(300);
    let t = deferred_to(slot);
    h.handle(vec![delivery_record("m1", &t)]).await;
    assert_eq!(h.deliverer.requests().len(), 1);
    assert!(Utc::now() >= slot, "not before its slot");
    assert!(h.subs.reservations().is_empty());
    assert_eq!(h.history.attempts()[0].attempt, 1);
    assert_eq!(h.history.attempts()[0].outcome, AttemptOutcome::Succeeded);
}

#[tokio::test]
async fn a_deferred_delivery_still_far_from_its_slot_hops_again_keeping_it() {
    let h = five_per_second();
    let slot = Utc::now() + TimeDelta::milliseconds(3_600_500);
    let t = deferred_to(slot);
    h.handle(vec![delivery_record("m1", &t)]).await;
    assert!(h.deliverer.requests().is_empty());
    assert!(h.subs.reservations().is_empty());
    let scheduled = h.outbox.scheduled();
    assert_eq!(scheduled.len(), 1);
    assert_eq!(scheduled[0].0, t, "the same task, slot and all");
    assert_eq!(
        scheduled[0].1,
        Duration::from_secs(3_599),
        "rounded down, less the lead"
    );
}

#[tokio::test]
async fn a_delivery_back_long_after_its_slot_reserves_a_new_one() {
    let h = five_per_second();
    // An outage: the slot is a minute gone, and the schedule is 10 s ahead.
    let slot = Utc::now() - TimeDelta::seconds(60);
    h.subs.schedule_ends(
        &SubscriptionId::new("slow"),
        Utc::now() + TimeDelta::seconds(10),
    );
    let t = deferred_to(slot);
    h.handle(vec![delivery_record("m1", &t)]).await;
    assert!(
        h.deliverer.requests().is_empty(),
        "not in a burst of late ones"
    );
    assert_eq!(
        h.subs.reservations(),
        vec![(SubscriptionId::new("slow"), 1)]
    );
    let scheduled = h.outbox.scheduled();
    assert_eq!(scheduled.len(), 1);
    assert!(scheduled[0].0.rate_slot.unwrap() > Utc::now() + TimeDelta::seconds(9));
}

#[tokio::test]
async fn when_the_schedule_cannot_be_reached_deliveries_wait_on_the_queue_without_a_slot() {
    let h = Harness::new(
        FakeSubscriptions::with(vec![limited("slow", 5)]).failing_reservations(),
        FakeDeliverer::default(),
        FakeOutbox::default(),
    );
    let response = h.handle(events(2)).await;
    assert!(failures(&response).is_empty());
    assert!(
        h.deliverer.requests().is_empty(),
        "the limit is never exceeded"
    );
    let scheduled = h.outbox.scheduled();
    assert_eq!(scheduled.len(), 2);
    for (t, delay) in &scheduled {
        assert_eq!((t.attempt, t.rate_slot), (1, None));
        assert_eq!(*delay, super::super::pace::UNRESERVED_DELAY);
    }
    assert!(h.history.attempts().is_empty());
}

#[tokio::test]
async fn a_failed_attempt_of_a_limited_webhook_is_retried_without_its_old_slot() {
    let h = Harness::new(
        FakeSubscriptions::with(vec![limited("slow", 5)]),
        FakeDeliverer::answering(&[(&url("slow"), status(500))]),
        FakeOutbox::default(),
    );
    h.handle(events(1)).await;
    let scheduled = h.outbox.scheduled();
    assert_eq!(scheduled.len(), 1);
    assert_eq!(scheduled[0].0.attempt, 2);
    assert_eq!(scheduled[0].0.rate_slot, None, "it reserves when it is due");
    assert_eq!(
        scheduled[0].1,
        Duration::from_secs(10),
        "the retry schedule"
    );
}

#[tokio::test]
async fn deferred_deliveries_are_counted_apart_from_attempts_and_failures() {
    let mut h = Harness::new(
        FakeSubscriptions::with(vec![limited("slow", 1), sub("fast", &["*"])]),
        FakeDeliverer::default(),
        FakeOutbox::default(),
    );
    let (metrics, lines) = emf_lines();
    h.consumer = h.consumer.with_metrics(metrics);
    // At 1/s, behind a schedule already 5 s ahead: the limited webhook's three wait on
    // the queue; the unlimited one's are attempted.
    h.subs.schedule_ends(
        &SubscriptionId::new("slow"),
        Utc::now() + TimeDelta::seconds(5),
    );
    h.handle(events(3)).await;
    let doc: serde_json::Value = serde_json::from_str(&lines.lock().unwrap()[0]).unwrap();
    assert_eq!(doc["Attempts"], 3);
    assert_eq!(doc["Succeeded"], 3);
    assert_eq!(doc["Deferred"], 3);
    assert_eq!(doc["Failed"], 0);
}
