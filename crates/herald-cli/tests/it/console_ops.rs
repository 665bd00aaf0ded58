//! The operator's console pages in a real browser (headless Chromium over WebDriver):
//! sign in with the admin key, see the queues' depths, create an app and a key (shown
//! once, in no URL), revoke the key and delete the app after the confirmation step; see
//! a parked delivery on the DLQ page, dry-run and re-drive it to the receiver, now up,
//! and see it delivered. A tenant's session gets 403 on the operator's pages, the
//! operator's on a tenant's. Screenshots go to target/console-screenshots/operator/.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fantoccini::Locator;
use herald_testing::{
    aws, browser_or_skip, console_session, queue_counts, root, wait_until, ApiServer, Browser,
    Receiver, Stack, Worker, ADMIN_KEY,
};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_operator_pages_in_a_browser() {
    if !browser_or_skip() {
        return;
    }
    let stack = Stack::deploy("console-ops").unwrap();
    let api = ApiServer::start(&stack, &[]).await.unwrap();
    let key = api.app_with_key("shop").await;
    let down = Arc::new(AtomicBool::new(true));
    let receiver = Receiver::with_outage(Arc::clone(&down)).await;
    let hook = api
        .create_webhook(&key, json!({"url": receiver.url(), "events": ["update"]}))
        .await;
    let hook = hook["id"].as_str().unwrap().to_owned();
    // One attempt a delivery: the failure is parked on the DLQ at once.
    let _worker = Worker::spawn(&stack, &[("HERALD_RETRY_SCHEDULE", "0s")]).unwrap();
    let (s, _) = api
        .call(
            "POST",
            "/v1/events",
            Some(&key),
            Some(json!({"type": "update", "object_type": "user", "data": {"id": "7"}})),
        )
        .await;
    assert_eq!(s, 202);
    let sqs = aws_sdk_sqs::Client::new(&aws().await);
    let parked = wait_until(Duration::from_secs(40), || async {
        queue_counts(&sqs, stack.dlq())
            .await
            .is_ok_and(|c| c.visible == 1)
    })
    .await;
    assert!(parked, "the failed delivery is parked");

    let shots = root().join("target/console-screenshots/operator");
    let mut b = Browser::start(&shots).await.unwrap();
    let base = format!("{}/console", api.base);

    // Sign in with the admin key: the system status.
    b.sign_in(&base, ADMIN_KEY).await.unwrap();
    assert_eq!(b.text("h1").await.unwrap(), "System status");
    assert_eq!(b.text("#queue-dlq td.visible").await.unwrap(), "1");
    assert_eq!(b.text("#queue-events td.visible").await.unwrap(), "0");
    b.shot("status").await.unwrap();

    // The operator sees no tenant page.
    b.client.goto(&format!("{base}/webhooks")).await.unwrap();
    assert_eq!(b.text("h1").await.unwrap(), "403 Forbidden");

    // Apps: create one, then a key, shown once and in no URL.
    b.client.goto(&format!("{base}/ops/apps")).await.unwrap();
    assert!(b.text("#apps").await.unwrap().contains("shop"));
    let form = b.client.form(Locator::Css("main form")).await.unwrap();
    form.set_by_name("id", "acme").await.unwrap();
    form.set_by_name("name", "<b>Acme</b>").await.unwrap();
    b.follow("main form button[type=submit]").await.unwrap();
    let path = b.path().await.unwrap();
    assert!(
        path.ends_with("/console/ops/apps/acme"),
        "{path}: {}",
        b.text("main").await.unwrap()
    );
    assert_eq!(b.text("dl.props dd").await.unwrap(), "<b>Acme</b>");
    b.follow("form[action$='/keys'] button").await.unwrap();
    let new_key = b.text("#secret-value").await.unwrap();
    assert!(new_key.starts_with("hk_"), "{new_key}");
    b.shot("key-created").await.unwrap();
    let url = b.client.current_url().await.unwrap();
    assert!(!url.as_str().contains(&new_key), "{url}");
    let (s, _) = api.call("GET", "/v1/webhooks", Some(&new_key), None).await;
    assert_eq!(s, 200, "the new key works");
    b.follow("main a[href='/console/ops/apps/acme']")
        .await
        .unwrap();
    assert!(
        !b.client.source().await.unwrap().contains(&new_key),
        "shown once"
    );
    assert_eq!(b.count("#keys tbody tr form").await, 1);
    b.shot("app").await.unwrap();
    b.follow("#keys form button").await.unwrap();
    assert!(b.text("p.notice").await.unwrap().starts_with("Key revoked"));
    let (s, _) = api.call("GET", "/v1/webhooks", Some(&new_key), None).await;
    assert_eq!(s, 401, "the revoked key no longer works");
    b.follow("a[href='/console/ops/apps/acme/delete']")
        .await
        .unwrap();
    b.shot("delete-app").await.unwrap();
    b.follow("form[action$='/delete'] button").await.unwrap();
    assert!(b.text("p.notice").await.unwrap().starts_with("App deleted"));
    assert!(!b.text("#apps").await.unwrap().contains("acme"));
    b.shot("apps").await.unwrap();

    // The DLQ: the parked delivery, decoded.
    b.follow("nav a[href='/console/ops/dlq']").await.unwrap();
    assert_eq!(b.text("#examined").await.unwrap(), "1");
    assert!(b.text("#by-app").await.unwrap().contains("shop"));
    let items = b.text("#dlq-items").await.unwrap();
    assert!(items.contains(&hook) && items.contains("update"), "{items}");
    assert!(b.text("#bound").await.unwrap().contains("no more than 100"));
    b.shot("dlq").await.unwrap();
    assert_eq!(
        queue_counts(&sqs, stack.dlq()).await.unwrap().visible,
        1,
        "reading the DLQ lost nothing"
    );

    // Dry run, then re-drive: the receiver, up again, gets it.
    down.store(false, Ordering::SeqCst);
    let form = b.client.form(Locator::Css("form.filters")).await.unwrap();
    form.set_by_name("app", "shop").await.unwrap();
    form.set_by_name("webhook", &hook).await.unwrap();
    b.follow("form.filters button[type=submit]").await.unwrap();
    assert_eq!(b.text("#would-move").await.unwrap(), "1");
    b.shot("dry-run").await.unwrap();
    assert_eq!(queue_counts(&sqs, stack.dlq()).await.unwrap().visible, 1);
    b.follow("#confirm-redrive").await.unwrap();
    let done = b.text("#redriven").await.unwrap();
    assert!(done.contains("1 moved"), "{done}");
    b.shot("redriven").await.unwrap();
    let delivered = wait_until(Duration::from_secs(40), || async {
        receiver.received().iter().any(|r| r.status_is_success())
    })
    .await;
    assert!(delivered, "the re-driven delivery reached the receiver");
    b.client.goto(&format!("{base}/ops")).await.unwrap();
    assert_eq!(b.text("#queue-dlq td.visible").await.unwrap(), "0");
    b.close().await;

    // A tenant's session gets 403 on every operator page.
    let cookie = console_session(&base, &key).await.unwrap().cookie;
    let raw = reqwest::Client::new();
    for page in [
        "ops",
        "ops/apps",
        "ops/apps/shop",
        "ops/dlq",
        "ops/dlq/redrive",
    ] {
        let r = raw
            .get(format!("{base}/{page}"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{page}");
    }
}
