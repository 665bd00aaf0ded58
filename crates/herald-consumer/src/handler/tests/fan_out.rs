//! Fan-out: an event goes to every matching active subscription, each delivery on its
//! own, signed.

use super::*;

#[tokio::test]
async fn a_fanned_out_event_retries_only_the_failing_endpoint() {
    let h = Harness::new(
        FakeSubscriptions::with(vec![sub("healthy", &["create"]), sub("broken", &["*"])]),
        FakeDeliverer::answering(&[
            (&url("healthy"), status(200)),
            (&url("broken"), status(500)),
        ]),
        FakeOutbox::default(),
    );
    let e = event("create");
    let before = Utc::now();

    let response = h.handle(vec![event_record("m1", &e)]).await;

    assert_eq!(failures(&response), Vec::<String>::new());
    assert_eq!(h.deliverer.urls(), vec![url("broken"), url("healthy")]);

    let scheduled = h.outbox.scheduled();
    assert_eq!(scheduled.len(), 1, "only the failing delivery is scheduled");
    let (next, delay) = &scheduled[0];
    assert_eq!(next.subscription_id.as_str(), "broken");
    assert_eq!(next.event, e);
    assert_eq!(next.attempt, 2);
    assert_eq!(*delay, Duration::from_secs(10), "the schedule's delay");
    assert_near(
        next.not_before,
        before + chrono::TimeDelta::seconds(10),
        "not_before",
    );
    assert_eq!(next.last_result.as_deref(), Some("HTTP 500"));
    assert!(next.first_attempt_at <= Utc::now() && next.first_attempt_at >= before);
    assert!(h.outbox.parked().is_empty());

    let attempts = h.history.attempts();
    assert_eq!(attempts.len(), 2);
    let ok = &h.history.for_sub("healthy")[0];
    assert_eq!(ok.outcome, AttemptOutcome::Succeeded);
    assert_eq!(ok.attempt, 1);
    assert_eq!(ok.status_code, Some(200));
    assert_eq!(ok.error_kind, None);
    assert_eq!(ok.next_attempt_at, None);
    assert_eq!(ok.response_body, "body of 200");
    assert_eq!(
        ok.webhook_id,
        webhook_id(&e.id, &SubscriptionId::new("healthy"))
    );
    let failed = &h.history.for_sub("broken")[0];
    assert_eq!(failed.outcome, AttemptOutcome::Failed);
    assert_eq!(failed.attempt, 1);
    assert_eq!(failed.status_code, Some(500));
    assert_eq!(failed.error_kind.as_deref(), Some("http_status"));
    assert_eq!(failed.next_attempt_at, Some(next.not_before));

    assert!(
        h.subs.health().is_empty(),
        "no health writes: no failures so far"
    );
}

#[tokio::test]
async fn requests_are_signed_with_the_stable_webhook_id_and_keep_custom_headers_below_them() {
    let mut s = sub("a", &["*"]);
    s.headers.insert("x-team".into(), "billing".into());
    s.headers.insert("Webhook-Id".into(), "forged".into());
    s.headers.insert("content-type".into(), "text/plain".into());
    let h = Harness::new(
        FakeSubscriptions::with(vec![s]),
        FakeDeliverer::default(),
        FakeOutbox::default(),
    );
    let e = event("create");
    h.handle(vec![event_record("m1", &e)]).await;

    let requests = h.deliverer.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.url(), url("a"));
    assert_eq!(
        header(r, "webhook-id"),
        vec![webhook_id(&e.id, &SubscriptionId::new("a")).as_str()]
    );
    assert_eq!(header(r, "webhook-timestamp").len(), 1);
    assert!(header(r, "webhook-signature")[0].starts_with("v1,"));
    assert_eq!(header(r, "x-team"), vec!["billing"]);
    assert_eq!(
        header(r, "content-type"),
        vec!["application/json"],
        "reserved custom headers are dropped"
    );
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["id"], e.id.as_str());
    assert_eq!(body["type"], "create");
}

#[tokio::test]
async fn only_matching_active_subscriptions_are_sent_and_disabled_ones_are_recorded_as_not_sent() {
    let mut disabled = sub("disabled", &["create"]);
    disabled.active = false;
    disabled.disabled_reason = Some("5 deliveries in a row failed".into());
    let mut invoices_only = sub("invoices", &["create"]);
    invoices_only.object_types = ObjectTypeFilter::parse(&["invoice"]).unwrap();
    let mut foreign = sub("foreign", &["*"]);
    foreign.app_id = AppId::parse("other").unwrap();
    // Even a source that returns other apps' subscriptions must not leak events.
    let subs = FakeSubscriptions::with(vec![
        sub("match", &["create"]),
        sub("updates", &["update"]),
        invoices_only,
        foreign,
        disabled,
    ])
    .leaking_other_apps();
    let h = Harness::new(subs, FakeDeliverer::default(), FakeOutbox::default());
    let e = event("create");

    let response = h.handle(vec![event_record("m1", &e)]).await;

    assert!(failures(&response).is_empty());
    assert_eq!(h.deliverer.urls(), vec![url("match")]);
    assert!(h.outbox.scheduled().is_empty());
    assert!(h.outbox.parked().is_empty());

    let mut recorded: Vec<String> = h
        .history
        .attempts()
        .iter()
        .map(|a| a.subscription_id.to_string())
        .collect();
    recorded.sort();
    assert_eq!(recorded, vec!["disabled", "match"]);
    let not_sent = &h.history.for_sub("disabled")[0];
    assert_eq!(not_sent.outcome, AttemptOutcome::NotSent);
    assert_eq!(not_sent.attempt, 0);
    assert_eq!(not_sent.error_kind.as_deref(), Some("endpoint_disabled"));
    assert_eq!(
        not_sent.error.as_deref(),
        Some("5 deliveries in a row failed")
    );
    assert_eq!(not_sent.status_code, None);
    assert_eq!(
        not_sent.webhook_id,
        webhook_id(&e.id, &SubscriptionId::new("disabled"))
    );
    assert_eq!(
        h.history.for_sub("match")[0].outcome,
        AttemptOutcome::Succeeded
    );
}

#[tokio::test]
async fn an_event_no_subscription_wants_is_simply_done() {
    let h = Harness::new(
        FakeSubscriptions::with(vec![sub("updates", &["update"])]),
        FakeDeliverer::default(),
        FakeOutbox::default(),
    );
    let response = h.handle(vec![event_record("m1", &event("create"))]).await;
    assert!(failures(&response).is_empty());
    assert!(h.deliverer.requests().is_empty());
    assert!(h.history.attempts().is_empty());
    assert!(h.outbox.scheduled().is_empty() && h.outbox.parked().is_empty());
}

#[tokio::test]
async fn a_payload_filter_is_checked_after_the_type_filters_and_a_refused_event_is_not_sent_nor_recorded(
) {
    let filtered = |id: &str, filter: serde_json::Value| {
        let mut s = sub(id, &["create"]);
        s.filter = Some(herald_core::PayloadFilter::parse(&filter).unwrap());
        s
    };
    let mut disabled = filtered(
        "disabled-us",
        serde_json::json!({"path": "/data/region", "eq": "us"}),
    );
    disabled.active = false;
    let subs = FakeSubscriptions::with(vec![
        filtered(
            "eu",
            serde_json::json!({"path": "/data/region", "eq": "eu"}),
        ),
        filtered(
            "us",
            serde_json::json!({"path": "/data/region", "eq": "us"}),
        ),
        filtered(
            "both",
            serde_json::json!({"any": [{"path": "/object_type", "eq": "user"}, {"path": "/data/x", "exists": true}]}),
        ),
        disabled,
    ]);
    let h = Harness::new(subs, FakeDeliverer::default(), FakeOutbox::default());
    let mut e = event("create");
    e.data = herald_core::EventData::from_value(&serde_json::json!({"region": "eu"}));

    let response = h.handle(vec![event_record("m1", &e)]).await;

    assert!(failures(&response).is_empty());
    let mut sent = h.deliverer.urls();
    sent.sort();
    assert_eq!(sent, vec![url("both"), url("eu")]);
    // The filtered-out webhooks have nothing in the history: not even "not sent" for
    // the disabled one, whose filter refuses the event as its type filter would.
    let mut recorded: Vec<String> = h
        .history
        .attempts()
        .iter()
        .map(|a| a.subscription_id.to_string())
        .collect();
    recorded.sort();
    assert_eq!(recorded, vec!["both", "eu"]);
    assert!(h.outbox.scheduled().is_empty() && h.outbox.parked().is_empty());
}
