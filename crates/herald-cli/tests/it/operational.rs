//! Operational webhooks end to end: an endpoint answering 410 is parked and disabled,
//! and a webhook listing `herald.*` types receives both events, signed and verifiable
//! by the reference Standard Webhooks library; enabling it again through the API is
//! announced too. Applications cannot publish `herald.*` types, and `*` cannot be
//! listed with them.

use std::sync::Arc;
use std::time::Duration;

use herald_core::Secret;
use herald_testing::{wait_until, ApiServer, Receiver, Reply, Stack, Worker};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_disabled_endpoint_is_announced_signed_to_the_webhooks_that_listen() {
    let stack = Stack::deploy("operational").unwrap();
    let api = ApiServer::start(&stack, &[]).await.unwrap();
    let app_key = api.app_with_key("shop").await;
    let key = Some(app_key.as_str());
    let gone = Receiver::start(Arc::new(|_| Reply::status(410))).await;
    let ops = Receiver::ok().await;
    let dead = api
        .create_webhook(&app_key, json!({"url": gone.url(), "events": ["*"]}))
        .await;
    let listener = api
        .create_webhook(
            &app_key,
            json!({"url": ops.url(), "events": [
                "herald.webhook.disabled", "herald.webhook.enabled", "herald.delivery.exhausted"
            ]}),
        )
        .await;
    let dead_id = dead["id"].as_str().unwrap();
    let secret = Secret::parse(listener["secret"].as_str().unwrap()).unwrap();
    let _worker = Worker::spawn(&stack, &[]).unwrap();

    let (s, published) = api
        .call(
            "POST",
            "/v1/events",
            key,
            Some(json!({"type": "update", "object_type": "user", "data": {"id": "7"}})),
        )
        .await;
    assert_eq!(s, 202, "{published}");
    let event_id = published["ids"][0].as_str().unwrap();
    assert!(
        wait_until(Duration::from_secs(60), || async { ops.count() >= 2 }).await,
        "the listener got the operational events: {}",
        ops.count()
    );

    let mut by_type = std::collections::BTreeMap::new();
    for r in ops.received() {
        crate::reference_verify(&secret, &r)
            .expect("the reference library verifies an operational event");
        let body = r.json();
        by_type.insert(
            body["type"].as_str().unwrap().to_owned(),
            body["data"].clone(),
        );
    }
    let exhausted = &by_type["herald.delivery.exhausted"];
    assert_eq!(exhausted["webhook_id"], dead_id);
    assert_eq!(exhausted["event_id"], event_id);
    assert_eq!(exhausted["last_status"], 410);
    let disabled = &by_type["herald.webhook.disabled"];
    assert_eq!(disabled["webhook_id"], dead_id);
    assert_eq!(disabled["url"], gone.url());
    assert!(
        disabled["reason"]
            .as_str()
            .is_some_and(|r| r.contains("410")),
        "{disabled}"
    );
    assert_eq!(
        gone.count(),
        1,
        "the 410 endpoint got its one request, nothing about itself"
    );
    let (_, status) = api
        .call("GET", &format!("/v1/events/{event_id}"), key, None)
        .await;
    assert_eq!(status["webhooks"][0]["webhook_id"], dead_id, "{status}");
    assert_eq!(status["webhooks"][0]["status"], "parked", "{status}");

    // Enabling it through the API is announced as well.
    let (s, _) = api
        .call("POST", &format!("/v1/webhooks/{dead_id}/enable"), key, None)
        .await;
    assert_eq!(s, 200);
    assert!(
        wait_until(Duration::from_secs(60), || async {
            ops.received()
                .iter()
                .any(|r| r.json()["type"] == "herald.webhook.enabled")
        })
        .await,
        "enabled announced"
    );
    assert_eq!(gone.count(), 1, "a `*` webhook takes no operational event");

    // The herald.* types are Herald's: not publishable, not listable beside `*`.
    let (s, e) = api
        .call(
            "POST",
            "/v1/events",
            key,
            Some(json!({"type": "herald.webhook.disabled", "object_type": "webhook", "data": {}})),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("reserved"),
        "{e}"
    );
    let (s, e) = api
        .call(
            "POST",
            "/v1/webhooks",
            key,
            Some(json!({"url": ops.url(), "events": ["*", "herald.webhook.disabled"]})),
        )
        .await;
    assert_eq!(s, 422, "{e}");
}
