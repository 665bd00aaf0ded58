//! Callback URLs on the fly (docs/security.md, "Callback URLs"): an event published
//! with a `callback_url` is also delivered there, signed with the app's callback
//! secret (verified here with the reference Standard Webhooks library), retried after a
//! failure and recorded under the webhook id `callback`; the secret is created and
//! rotated through the API and the CLI (shown once; after a rotation both sign for the
//! window); a URL refused by the address policy, or a publish before the app has a
//! secret, is a 422 JSON error, and one app's secret does not serve another app.

use std::sync::Arc;
use std::time::Duration;

use herald_core::{webhook_id, EventId, Secret, SubscriptionId, CALLBACK_ID};
use herald_testing::{wait_until, ApiServer, Herald, Receiver, Reply, Stack, Worker};
use serde_json::{json, Value};

use crate::{reference_verify, HERALD};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_events_callback_url_gets_it_signed_with_the_app_callback_secret_and_retried() {
    let stack = Stack::deploy("callbacks").unwrap();
    let api = ApiServer::start(&stack, &[]).await.unwrap();
    let app_key = api.app_with_key("shop").await;
    let key = Some(app_key.as_str());
    // The first attempt of each delivery fails; the retry succeeds.
    let receiver = Receiver::start(Arc::new(|seen: herald_testing::Seen| {
        Reply::status(if seen.for_id == 1 { 503 } else { 200 })
    }))
    .await;
    let event = |url: &str| {
        json!({"type": "order.shipped", "object_type": "order", "data": {"id": "o_1"},
               "callback_url": url})
    };

    // No secret yet: refused, saying how to make one.
    let (s, e) = api
        .call("POST", "/v1/events", key, Some(event(&receiver.url())))
        .await;
    assert_eq!(s, 422, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/v1/app/callback-secret/rotate"),
        "{e}"
    );

    // The CLI creates it (shown once).
    let scratch = herald_testing::scratch_dir("callbacks-cli").unwrap();
    let herald = Herald::new(HERALD, &stack, &scratch)
        .with("HERALD_API_URL", &api.base)
        .with("HERALD_API_KEY", &app_key);
    let rotated = herald
        .run(&["--json", "callback-secret", "rotate"])
        .await
        .ok()
        .json();
    let first = Secret::parse(rotated["secret"].as_str().unwrap()).unwrap();

    // The address policy of webhook URLs applies.
    // (a private address such as the cloud metadata endpoint included).
    for bad in [
        "ftp://example.com/cb",
        "not a url",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.5/cb",
    ] {
        let (s, e) = api.call("POST", "/v1/events", key, Some(event(bad))).await;
        assert_eq!(s, 422, "{bad}: {e}");
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("callback_url"),
            "{e}"
        );
    }

    let env = [
        ("HERALD_RETRY_SCHEDULE", "0s,1s,1s"),
        ("HERALD_RETRY_JITTER", "0"),
    ];
    let _worker = Worker::spawn(&stack, &env).unwrap();
    let (s, out) = api
        .call("POST", "/v1/events", key, Some(event(&receiver.url())))
        .await;
    assert_eq!(s, 202, "{out}");
    let id = out["ids"][0].as_str().unwrap().to_owned();
    let success = || {
        receiver
            .received()
            .into_iter()
            .filter(|r| r.status_is_success())
            .collect::<Vec<_>>()
    };
    assert!(
        wait_until(Duration::from_secs(60), || async { !success().is_empty() }).await,
        "the callback URL got the event ({} requests)",
        receiver.count()
    );
    let got = receiver.received();
    assert_eq!(got.len(), 2, "one failed attempt, one retry");
    let expected_id = webhook_id(
        &EventId::parse(&id).unwrap(),
        &SubscriptionId::new(CALLBACK_ID),
    );
    for r in &got {
        assert_eq!(r.header("webhook-id"), expected_id.to_string());
        reference_verify(&first, r).expect("signed with the app's callback secret");
        assert_eq!(r.json()["data"], json!({"id": "o_1"}));
    }

    // The history has both attempts, under the webhook id `callback`.
    assert!(
        wait_until(Duration::from_secs(30), || async {
            let (_, page) = api
                .call("GET", &format!("/v1/events/{id}/deliveries"), key, None)
                .await;
            let attempts = page["data"].as_array().cloned().unwrap_or_default();
            attempts.len() == 2 && attempts.iter().all(|a| a["subscription_id"] == CALLBACK_ID)
        })
        .await,
        "both attempts are recorded"
    );

    // Rotated through the API: the new secret signs, and the old one still does for
    // the rotation window.
    let (s, rotated) = api
        .call("POST", "/v1/app/callback-secret/rotate", key, None)
        .await;
    assert_eq!(s, 200, "{rotated}");
    let second = Secret::parse(rotated["secret"].as_str().unwrap()).unwrap();
    let cli = herald
        .run(&[
            "publish",
            "--type",
            "order.shipped",
            "--object-type",
            "order",
            "--callback-url",
            &receiver.url(),
        ])
        .await
        .ok();
    assert!(cli.stdout.contains("evt_"), "{}", cli.stdout);
    assert!(
        wait_until(Duration::from_secs(60), || async { success().len() >= 2 }).await,
        "the second event reached the callback URL"
    );
    let last = success().pop().unwrap();
    reference_verify(&second, &last).expect("signed with the new secret");
    reference_verify(&first, &last).expect("and with the previous one, in its window");

    // The route needs an app key: none is a 401, the admin key (no app) a 403.
    let (s, e) = api
        .call("POST", "/v1/app/callback-secret/rotate", None, None)
        .await;
    assert_eq!(s, 401, "{e}");
    let (s, e) = api
        .call(
            "POST",
            "/v1/app/callback-secret/rotate",
            Some(herald_testing::ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(s, 403, "{e}");

    // Another app's publish needs its own secret.
    let other_key = api.app_with_key("other").await;
    let (s, e) = api
        .call(
            "POST",
            "/v1/events",
            Some(&other_key),
            Some(event(&receiver.url())),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    let _: Value = e;
}
