//! Delivery listings filtered by outcome, time and event type, through the API and the
//! CLI: each filter keeps exactly the attempts it names, cursors stay bound to their
//! filter, and bad filter values are 4xx JSON errors. An event's own page says where
//! it stands at each webhook.

use std::sync::Arc;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use herald_testing::{wait_until, ApiServer, Herald, Receiver, Reply, Stack, Worker};
use serde_json::{json, Value};

/// `(event_type, outcome)` of every attempt of a listing.
fn kinds(page: &Value) -> Vec<(String, String)> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["event_type"].as_str().unwrap().to_owned(),
                a["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delivery_listings_filter_by_outcome_time_and_event_type() {
    let stack = Stack::deploy("deliveries-filter").unwrap();
    let api = ApiServer::start(&stack, &[]).await.unwrap();
    let app_key = api.app_with_key("shop").await;
    let key = Some(app_key.as_str());
    // The first two requests fail (their retries are an hour away), the rest succeed.
    let receiver = Receiver::start(Arc::new(|seen| {
        Reply::status(if seen.total <= 2 { 500 } else { 200 })
    }))
    .await;
    let w = api
        .create_webhook(&app_key, json!({"url": receiver.url(), "events": ["*"]}))
        .await;
    let id = w["id"].as_str().unwrap().to_owned();
    let _worker = Worker::spawn(&stack, &[("HERALD_RETRY_SCHEDULE", "0s,1h")]).unwrap();
    let publish = |event_type: &'static str, n: usize| {
        let api = &api;
        async move {
            let events: Vec<Value> = (0..n)
                .map(|i| json!({"type": event_type, "object_type": "invoice", "data": {"i": i}}))
                .collect();
            let (s, out) = api
                .call("POST", "/v1/events", key, Some(json!({"events": events})))
                .await;
            assert_eq!(s, 202, "{out}");
            out["ids"].as_array().unwrap().clone()
        }
    };
    let listing = |query: String| {
        let api = &api;
        let id = id.clone();
        async move {
            let (s, page) = api
                .call(
                    "GET",
                    &format!("/v1/webhooks/{id}/deliveries?{query}"),
                    key,
                    None,
                )
                .await;
            assert_eq!(s, 200, "{query}: {page}");
            page
        }
    };
    let recorded = |n: usize| {
        let listing = &listing;
        async move {
            wait_until(Duration::from_secs(60), || async {
                listing("limit=100".into()).await["data"]
                    .as_array()
                    .is_some_and(|d| d.len() == n)
            })
            .await
        }
    };

    let failing = publish("invoice.paid", 2).await;
    assert!(wait_until(Duration::from_secs(60), || async { receiver.count() == 2 }).await);
    publish("update", 3).await;
    assert!(recorded(5).await, "five attempts recorded");
    let between = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
    // Batches after `between` start after it.
    publish("update", 1).await;
    assert!(recorded(6).await, "six attempts recorded");

    let failed = listing("outcome=failed".into()).await;
    assert_eq!(
        kinds(&failed),
        vec![("invoice.paid".to_owned(), "failed".to_owned()); 2]
    );
    assert!(failed["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["next_attempt_at"].is_string()));
    let updates = listing("outcome=succeeded&event_type=update".into()).await;
    assert_eq!(kinds(&updates).len(), 4, "{updates}");
    assert!(listing("event_type=invoice.sent".into()).await["data"]
        .as_array()
        .unwrap()
        .is_empty());
    let since = listing(format!("since={}", urlencode(&between))).await;
    assert_eq!(
        kinds(&since),
        vec![("update".to_owned(), "succeeded".to_owned())]
    );
    let until = listing(format!("until={}", urlencode(&between))).await;
    assert_eq!(kinds(&until).len(), 5, "{until}");

    // Pages of a filtered listing: every page keeps only what the filter names, and
    // the cursor resumes only that filter.
    let first = listing("outcome=failed&limit=1".into()).await;
    assert_eq!(kinds(&first).len(), 1);
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a second page")
        .to_owned();
    let second = listing(format!("outcome=failed&limit=1&cursor={cursor}")).await;
    assert_eq!(kinds(&second), kinds(&first), "the other failure");
    assert_ne!(second["data"][0]["event_id"], first["data"][0]["event_id"]);
    let (s, e) = api
        .call(
            "GET",
            &format!("/v1/webhooks/{id}/deliveries?cursor={cursor}"),
            key,
            None,
        )
        .await;
    assert_eq!(
        s, 400,
        "a filtered listing's cursor on the unfiltered one: {e}"
    );

    // An event's attempts, filtered too.
    let event = failing[0].as_str().unwrap();
    let path = |q: &str| format!("/v1/events/{event}/deliveries?{q}");
    let (_, none) = api.call("GET", &path("outcome=succeeded"), key, None).await;
    assert_eq!(kinds(&none), vec![]);
    let (_, one) = api.call("GET", &path("outcome=failed"), key, None).await;
    assert_eq!(kinds(&one).len(), 1);

    // The CLI: the same filters as flags, times as RFC 3339 or a duration ago.
    let herald = Herald::bare(crate::HERALD)
        .with("HERALD_API_URL", &api.base)
        .with("HERALD_API_KEY", &app_key);
    let out = herald
        .run(&[
            "--json",
            "deliveries",
            "--webhook",
            &id,
            "--outcome",
            "failed",
            "--since",
            "1h",
            "--event-type",
            "invoice.paid",
        ])
        .await
        .ok();
    assert_eq!(kinds(&out.json()).len(), 2, "{out:#?}");
    let out = herald
        .run(&[
            "--json",
            "deliveries",
            "--webhook",
            &id,
            "--since",
            &between,
        ])
        .await
        .ok();
    assert_eq!(kinds(&out.json()).len(), 1, "{out:#?}");
    let shown = herald.run(&["events", "get", event]).await.ok();
    assert!(
        shown.stdout.contains("failing") && shown.stdout.contains(&id),
        "{shown:#?}"
    );
    let shown = herald.run(&["--json", "events", "get", event]).await.ok();
    assert_eq!(shown.json()["webhooks"][0]["status"], "failing");
    let bad = herald
        .run(&["deliveries", "--webhook", &id, "--since", "last week"])
        .await;
    assert!(bad.stderr.contains("--since"), "{bad:#?}");

    // The event itself: its data as published, and where it stands at the webhook.
    let (s, got) = api
        .call("GET", &format!("/v1/events/{event}"), key, None)
        .await;
    assert_eq!(s, 200, "{got}");
    assert_eq!(got["type"], "invoice.paid");
    assert_eq!(got["data"], json!({"i": 0}));
    let at = &got["webhooks"][0];
    assert_eq!(got["webhooks"].as_array().unwrap().len(), 1, "{got}");
    assert_eq!(
        (
            at["webhook_id"].as_str(),
            at["status"].as_str(),
            at["attempts"].as_u64()
        ),
        (Some(id.as_str()), Some("failing"), Some(1)),
        "{got}"
    );
    assert!(at["next_attempt_at"].is_string(), "{got}");
    assert_eq!(at["last_status_code"], 500);
    let ok_event = since["data"][0]["event_id"].as_str().unwrap();
    let (_, ok) = api
        .call("GET", &format!("/v1/events/{ok_event}"), key, None)
        .await;
    assert_eq!(ok["webhooks"][0]["status"], "succeeded", "{ok}");
    // Another app's key finds nothing; neither does an unknown id.
    let other = api.app_with_key("other-shop").await;
    let (s, _) = api
        .call("GET", &format!("/v1/events/{event}"), Some(&other), None)
        .await;
    assert_eq!(s, 404);
    let (s, e) = api.call("GET", "/v1/events/evt_unknown", key, None).await;
    assert_eq!(s, 404, "{e}");

    // Bad values are 422s in the JSON error shape, naming the parameter.
    for (query, word) in [
        ("outcome=maybe", "outcome"),
        ("since=yesterday", "since"),
        ("until=2026-13-01T00:00:00Z", "until"),
        (
            "since=2026-12-02T00:00:00Z&until=2026-12-01T00:00:00Z",
            "since",
        ),
        ("event_type=a..b", "event_type"),
    ] {
        let (s, e) = api
            .call(
                "GET",
                &format!("/v1/webhooks/{id}/deliveries?{query}"),
                key,
                None,
            )
            .await;
        assert_eq!(s, 422, "{query}: {e}");
        assert!(
            e["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(word)),
            "{query}: {e}"
        );
    }
}

/// `text` with the characters a query value cannot hold as they are escaped.
fn urlencode(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}
