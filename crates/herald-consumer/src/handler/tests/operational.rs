//! Operational events: what the consumer announces, and how they fan out.

use herald_core::operational::{self, DELIVERY_EXHAUSTED, DELIVERY_RECOVERED, WEBHOOK_DISABLED};

use super::*;

fn types(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.event_type.as_str()).collect()
}

#[tokio::test]
async fn a_parked_delivery_is_announced_and_so_is_the_endpoint_it_disabled() {
    let h = Harness::new(
        FakeSubscriptions::with(vec![sub("a", &["*"])]).disabling_after(1),
        FakeDeliverer::answering(&[(&url("a"), status(500))]),
        FakeOutbox::default(),
    );
    let t = task(&event("create"), "a", 3);
    h.handle(vec![delivery_record("m1", &t)]).await;

    let published = h.outbox.published();
    assert_eq!(
        types(&published),
        vec![DELIVERY_EXHAUSTED, WEBHOOK_DISABLED]
    );
    let exhausted = published[0].data.to_value();
    assert_eq!(exhausted["webhook_id"], "a");
    assert_eq!(exhausted["url"], url("a"));
    assert_eq!(exhausted["event_id"], t.event.id.as_str());
    assert_eq!(exhausted["event_type"], "create");
    assert_eq!(exhausted["attempts"], 3);
    assert_eq!(exhausted["last_status"], 500);
    assert_eq!(exhausted["reason"], "all 3 attempts failed");
    assert_eq!(
        exhausted["webhook_message_id"],
        webhook_id(&t.event.id, &SubscriptionId::new("a")).to_string()
    );
    assert!(published.iter().all(|e| e.app_id == app()));
    let disabled = published[1].data.to_value();
    assert_eq!(disabled["webhook_id"], "a");
    assert!(disabled["reason"]
        .as_str()
        .unwrap()
        .contains("failed deliveries"));
}

#[tokio::test]
async fn a_410_announces_the_park_and_the_disable_with_its_reason() {
    let h = Harness::new(
        FakeSubscriptions::with(vec![sub("gone", &["*"])]),
        FakeDeliverer::answering(&[(&url("gone"), status(410))]),
        FakeOutbox::default(),
    );
    h.handle(vec![event_record("m1", &event("create"))]).await;
    let published = h.outbox.published();
    assert_eq!(
        types(&published),
        vec![DELIVERY_EXHAUSTED, WEBHOOK_DISABLED]
    );
    let reason = published[1].data.to_value()["reason"].clone();
    assert_eq!(reason, published[0].data.to_value()["reason"], "{reason}");
}

#[tokio::test]
async fn an_endpoint_that_succeeds_again_after_failing_for_good_is_announced_recovered() {
    let mut recovering = sub("recovering", &["*"]);
    recovering.consecutive_failures = 2;
    let h = Harness::new(
        FakeSubscriptions::with(vec![recovering, sub("healthy", &["*"])]),
        FakeDeliverer::default(),
        FakeOutbox::default(),
    );
    h.handle(vec![event_record("m1", &event("create"))]).await;
    let published = h.outbox.published();
    assert_eq!(types(&published), vec![DELIVERY_RECOVERED]);
    assert_eq!(published[0].data.to_value()["webhook_id"], "recovering");
}

#[tokio::test]
async fn operational_events_go_only_to_webhooks_listing_them_never_about_themselves() {
    let h = Harness::new(
        FakeSubscriptions::with(vec![
            sub("everything", &["*"]),
            sub("ops", &[WEBHOOK_DISABLED, DELIVERY_EXHAUSTED]),
            sub("also_ops", &[WEBHOOK_DISABLED]),
        ]),
        FakeDeliverer::default(),
        FakeOutbox::default(),
    );
    // About `ops` itself: `also_ops` gets it; `ops` does not, nor does `*`.
    let about_ops =
        operational::webhook_disabled(&app(), &SubscriptionId::new("ops"), &url("ops"), "410 Gone");
    h.handle(vec![event_record("m1", &about_ops)]).await;
    assert_eq!(h.deliverer.urls(), vec![url("also_ops")]);
}

#[tokio::test]
async fn the_failures_of_operational_deliveries_announce_nothing_further() {
    let h = Harness::new(
        FakeSubscriptions::with(vec![sub("ops", &[DELIVERY_EXHAUSTED])]),
        FakeDeliverer::answering(&[(&url("ops"), status(500))]),
        FakeOutbox::default(),
    );
    let about_other = operational::delivery_exhausted(&operational::Exhausted {
        event: &event("create"),
        webhook: &SubscriptionId::new("other"),
        url: "https://other.example.com/hook",
        webhook_message_id: "msg_1",
        attempts: 3,
        reason: "all 3 attempts failed",
        last_status: Some(500),
        last_error: None,
    });
    let t = task(&about_other, "ops", 3);
    h.handle(vec![delivery_record("m1", &t)]).await;
    assert_eq!(h.outbox.parked().len(), 1, "parked as any delivery is");
    assert!(
        h.outbox.published().is_empty(),
        "no exhausted about an exhausted: {:?}",
        types(&h.outbox.published())
    );
}
