//! `herald dev --in-memory`: with no emulator anywhere (no `AWS_ENDPOINT_URL`), one
//! process serves the API and the console and its worker delivers a published event,
//! signed, to a real receiver; SIGINT stops it and it exits 0.

use std::process::Stdio;
use std::time::Duration;

use herald_core::Secret;
use herald_testing::{free_port, wait_until, Receiver};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::dev::{field, interrupt};
use crate::HERALD;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herald_dev_in_memory_serves_the_api_and_delivers_with_no_emulator() {
    let port = free_port().unwrap();
    let mut child = tokio::process::Command::new(HERALD)
        .args(["dev", "--in-memory", "--addr", &format!("127.0.0.1:{port}")])
        .env_remove("AWS_ENDPOINT_URL")
        // Nothing to reach: any AWS call would fail rather than find an emulator.
        .env("AWS_ENDPOINT_URL_SQS", "http://127.0.0.1:9")
        .env("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (console, key, storage) = tokio::time::timeout(Duration::from_secs(60), async {
        let (mut console, mut key, mut storage) = (None, None, None);
        while let Some(line) = lines.next_line().await.unwrap() {
            console = console.or_else(|| field(&line, "console"));
            key = key.or_else(|| field(&line, "admin key"));
            if line.trim_start().starts_with("storage") {
                storage = Some(line.clone());
            }
            if line.starts_with("Ctrl-C stops everything") {
                break;
            }
        }
        (console, key, storage)
    })
    .await
    .expect("herald dev --in-memory printed its banner within a minute");
    let base = format!("http://127.0.0.1:{port}");
    assert_eq!(console.as_deref(), Some(format!("{base}/console").as_str()));
    let key = key.expect("the admin key");
    assert!(key.starts_with("dev-admin-"), "{key}");
    let storage = storage.expect("the banner names the storage");
    assert!(
        storage.contains("lost"),
        "says data is lost on exit: {storage}"
    );

    let http = reqwest::Client::new();
    let call =
        |method: reqwest::Method, path: &str, bearer: &str, body: Option<serde_json::Value>| {
            let mut req = http
                .request(method, format!("{base}{path}"))
                .bearer_auth(bearer);
            if let Some(body) = body {
                req = req.json(&body);
            }
            async move {
                let resp = req.send().await.unwrap();
                let status = resp.status().as_u16();
                (
                    status,
                    resp.json::<serde_json::Value>().await.unwrap_or_default(),
                )
            }
        };
    use reqwest::Method;
    let (s, _) = call(
        Method::POST,
        "/v1/apps",
        &key,
        Some(json!({"id": "shop", "name": "Shop"})),
    )
    .await;
    assert_eq!(s, 201);
    let (s, app_key) = call(Method::POST, "/v1/apps/shop/keys", &key, None).await;
    assert_eq!(s, 201, "{app_key}");
    let app_key = app_key["key"].as_str().unwrap().to_owned();

    let receiver = Receiver::ok().await;
    let (s, hook) = call(
        Method::POST,
        "/v1/webhooks",
        &app_key,
        Some(json!({"url": receiver.url(), "events": ["update"]})),
    )
    .await;
    assert_eq!(s, 201, "{hook}");
    let secret = Secret::parse(hook["secret"].as_str().unwrap()).unwrap();
    let (s, published) = call(
        Method::POST,
        "/v1/events",
        &app_key,
        Some(json!({"type": "update", "object_type": "user", "data": {"n": 1}})),
    )
    .await;
    assert_eq!(s, 202, "{published}");
    let event_id = published["ids"][0].as_str().unwrap().to_owned();

    assert!(
        wait_until(Duration::from_secs(30), || async { receiver.count() >= 1 }).await,
        "the event was delivered"
    );
    let got = &receiver.received()[0];
    assert_eq!(got.json()["id"], event_id.as_str());
    assert_eq!(got.json()["data"], json!({"n": 1}));
    crate::reference_verify(&secret, got).expect("signed with the webhook's secret");

    // The history records the delivery, read back through the API.
    let delivered = wait_until(Duration::from_secs(10), || async {
        let (s, list) = call(Method::GET, "/v1/deliveries", &app_key, None).await;
        s == 200 && list["data"].as_array().is_some_and(|d| !d.is_empty())
    })
    .await;
    assert!(delivered, "the delivery is in the history");

    // What memory mode does not keep answers 503 naming it (docs/configuration.md,
    // "In-memory mode"), never a 5xx of another kind; reads see an empty catalog.
    for (method, path, body) in [
        (
            Method::POST,
            "/v1/sources",
            json!({"name": "gh", "auth": {"mode": "none"}, "event_type": {"from": "fixed", "value": "update"}}),
        ),
        (Method::GET, "/v1/sources", json!(null)),
        (Method::POST, "/v1/event-types", json!({"name": "update"})),
        (Method::POST, "/v1/app/callback-secret/rotate", json!(null)),
    ] {
        let body = (!body.is_null()).then_some(body);
        let (s, e) = call(method.clone(), path, &app_key, body).await;
        assert_eq!(s, 503, "{method} {path}: {e}");
        assert!(
            e["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("memory mode")),
            "{method} {path}: {e}"
        );
    }
    let (s, catalog) = call(Method::GET, "/v1/event-types", &app_key, None).await;
    assert_eq!((s, &catalog["data"]), (200, &json!([])), "{catalog}");
    // No FIFO queue and no callback secret: the 422s of a deployment without them.
    for extra in [
        json!({"ordering_key": "order-1"}),
        json!({"callback_url": "http://127.0.0.1:9/cb"}),
    ] {
        let mut event = json!({"type": "update", "object_type": "user", "data": {}});
        event
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (s, e) = call(Method::POST, "/v1/events", &app_key, Some(event)).await;
        assert_eq!(s, 422, "{extra}: {e}");
    }

    let status = interrupt(&mut child, Duration::from_secs(30)).await;
    assert!(status.success(), "{status}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the API is gone"
    );
}
