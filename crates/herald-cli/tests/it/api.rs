//! The management API over real HTTP against the emulator: CRUD and paging,
//! validation, authentication, tenant isolation on every route, idempotency, secret
//! rotation with a real delivery, test pings, history and re-sending, rate limits,
//! changes of one webhook from the API and the consumer side, and the OpenAPI
//! document against the routes.

use std::collections::BTreeSet;
use std::time::Duration;

use herald_core::{Secret, Verifier};
use herald_testing::{wait_until, ApiServer, Receiver, Stack, Worker, ADMIN_KEY};
use serde_json::{json, Value};

fn webhook(url: &str) -> Value {
    json!({"url": url, "events": ["update"], "object_types": ["user"], "description": "d", "headers": {"x-team": "a"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhook_crud_paging_and_validation() {
    let stack = Stack::deploy("api-crud").unwrap();
    let api = ApiServer::start(&stack, &[]).await.unwrap();
    let key_owned = api.app_with_key("shop").await;
    let key = Some(key_owned.as_str());

    let (s, created) = api
        .call(
            "POST",
            "/v1/webhooks",
            key,
            Some(webhook("http://127.0.0.1:9/a")),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(created["events"], json!(["update"]));
    assert_eq!(created["object_types"], json!(["user"]));
    assert_eq!(created["active"], true);
    assert!(created["created_at"].is_string() && created["updated_at"].is_string());

    let (s, got) = api
        .call("GET", &format!("/v1/webhooks/{id}"), key, None)
        .await;
    assert_eq!(s, 200);
    assert!(
        got.get("secret").is_none(),
        "the secret is shown on create only"
    );

    let (s, patched) = api
        .call(
            "PATCH",
            &format!("/v1/webhooks/{id}"),
            key,
            Some(json!({"events": ["*"], "object_types": [], "description": "all"})),
        )
        .await;
    assert_eq!(s, 200, "{patched}");
    assert_eq!(patched["events"], json!(["*"]));
    assert_eq!(patched["object_types"], json!(["*"]));
    assert_eq!(patched["description"], "all");
    assert_eq!(
        patched["url"], "http://127.0.0.1:9/a",
        "untouched fields stay"
    );

    let (s, disabled) = api
        .call("POST", &format!("/v1/webhooks/{id}/disable"), key, None)
        .await;
    assert_eq!((s, &disabled["active"]), (200, &json!(false)));
    assert!(disabled["disabled_reason"].is_string());
    let (s, enabled) = api
        .call("POST", &format!("/v1/webhooks/{id}/enable"), key, None)
        .await;
    assert_eq!(
        (s, &enabled["active"], &enabled["disabled_reason"]),
        (200, &json!(true), &Value::Null)
    );

    // Paging: 7 webhooks, 3 per page.
    for i in 0..6 {
        let (s, _) = api
            .call(
                "POST",
                "/v1/webhooks",
                key,
                Some(webhook(&format!("http://127.0.0.1:9/{i}"))),
            )
            .await;
        assert_eq!(s, 201);
    }
    let mut seen = BTreeSet::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/webhooks?limit=3&cursor={c}"),
            None => "/v1/webhooks?limit=3".to_owned(),
        };
        let (s, page) = api.call("GET", &path, key, None).await;
        assert_eq!(s, 200, "{page}");
        pages += 1;
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= 3);
        for w in data {
            assert!(
                seen.insert(w["id"].as_str().unwrap().to_owned()),
                "no repeats across pages"
            );
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!((seen.len(), pages >= 3), (7, true));

    let (s, _) = api
        .call("DELETE", &format!("/v1/webhooks/{id}"), key, None)
        .await;
    assert_eq!(s, 204);
    let (s, err) = api
        .call("GET", &format!("/v1/webhooks/{id}"), key, None)
        .await;
    assert_eq!((s, err["error"]["code"].as_str()), (404, Some("not_found")));
    let (s, _) = api
        .call("DELETE", &format!("/v1/webhooks/{id}"), key, None)
        .await;
    assert_eq!(s, 404);

    // Validation: each bad input gets its status and a JSON error.
    let long = "x".repeat(2_100);
    let cases: Vec<(Value, u16)> = vec![
        (json!({"url": "ftp://example.com/x", "events": ["*"]}), 422),
        (json!({"url": "not a url", "events": ["*"]}), 422),
        (
            json!({"url": format!("https://example.com/{long}"), "events": ["*"]}),
            422,
        ),
        (
            json!({"url": "https://user:pw@example.com/", "events": ["*"]}),
            422,
        ),
        (json!({"url": "http://10.0.0.1/x", "events": ["*"]}), 422),
        (json!({"url": "http://[::1]/x", "events": ["*"]}), 422),
        (json!({"url": "https://example.com/", "events": []}), 422),
        (
            json!({"url": "https://example.com/", "events": ["bad type"]}),
            422,
        ),
        (
            json!({"url": "https://example.com/", "events": ["*"], "object_types": ["a b"]}),
            422,
        ),
        (
            json!({"url": "https://example.com/", "events": ["*"], "headers": {"webhook-id": "x"}}),
            422,
        ),
        (
            json!({"url": "https://example.com/", "events": ["*"], "headers": {"bad header": "x"}}),
            422,
        ),
        (
            json!({"url": "https://example.com/", "events": ["*"], "description": "d".repeat(2_000)}),
            422,
        ),
        (
            json!({"url": "https://example.com/", "events": ["*"], "surprise": 1}),
            422,
        ),
        (json!({"url": 5, "events": ["*"]}), 422),
        (json!({"events": ["*"]}), 422),
        (json!([1, 2]), 422),
    ];
    // At most 49 event types: each is a route, and a change rewrites them in one
    // DynamoDB transaction. The message says so and names the way out.
    let types = |n: usize| (0..n).map(|i| format!("t{i}")).collect::<Vec<_>>();
    let (s, err) = api
        .call(
            "POST",
            "/v1/webhooks",
            key,
            Some(json!({"url": "https://example.com/", "events": types(50)})),
        )
        .await;
    assert_eq!(s, 422, "{err}");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("49") && message.contains("\"*\""),
        "{message}"
    );
    let (s, ok) = api
        .call(
            "POST",
            "/v1/webhooks",
            key,
            Some(json!({"url": "https://example.com/", "events": types(49)})),
        )
        .await;
    assert_eq!(s, 201, "{ok}");
    let (s, _) = api
        .call(
            "DELETE",
            &format!("/v1/webhooks/{}", ok["id"].as_str().unwrap()),
            key,
            None,
        )
        .await;
    assert_eq!(s, 204);
    for (body, want) in cases {
        let (s, err) = api
            .call("POST", "/v1/webhooks", key, Some(body.clone()))
            .await;
        assert_eq!(s, want, "{body} -> {err}");
        assert!(
            err["error"]["code"].is_string() && err["error"]["message"].is_string(),
            "{err}"
        );
    }
    let raw = api
        .client
        .post(format!("{}/v1/webhooks", api.base))
        .bearer_auth(&key_owned)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    // On a client of its own: the server closes the connection whose body it refused,
    // and the calls below must not pick that connection from the shared pool.
    let huge = reqwest::Client::new()
        .post(format!("{}/v1/events", api.base))
        .bearer_auth(&key_owned)
        .body(vec![b' '; 2 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), 413);
    let (s, _) = api.call("GET", "/v1/webhooks?limit=0", key, None).await;
    assert_eq!(s, 422);
    let (s, _) = api.call("GET", "/v1/webhooks?limit=abc", key, None).await;
    assert_eq!(s, 400);
    let (s, _) = api.call("GET", "/v1/webhooks?cursor=@@@", key, None).await;
    assert_eq!(s, 400);
    let (s, e) = api.call("GET", "/v1/nowhere", key, None).await;
    assert_eq!((s, e["error"]["code"].as_str()), (404, Some("not_found")));
    let (s, e) = api.call("PUT", "/v1/webhooks", key, None).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
    let (s, h) = api.call("GET", "/healthz", None, None).await;
    assert_eq!((s, h["status"].as_str()), (200, Some("ok")));

    // https is required outside development mode.
    let strict = ApiServer::start(
        &stack,
        &[
            ("HERALD_API_ALLOW_HTTP", "false"),
            ("HERALD_ALLOW_PRIVATE_NETWORKS", ""),
        ],
    )
    .await
    .unwrap();
    for private in [
        "https://127.0.0.1/x",
        "https://localhost:8443/x",
        "https://localhost.:8443/x",
        "https://LOCALHOST./x",
        "https://api.localhost/x",
        "https://api.Localhost./x",
        "https://[::ffff:192.168.0.1]/x",
        "https://[::ffff:0:10.0.0.1]/x",
        "https://[64:ff9b::a9fe:a9fe]/x",
        "https://169.254.169.254/latest",
    ] {
        let (s, e) = strict
            .call("POST", "/v1/webhooks", key, Some(webhook(private)))
            .await;
        assert_eq!(s, 422, "{private}: {e}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains("refused"),
            "{e}"
        );
    }
    let (s, e) = strict
        .call(
            "POST",
            "/v1/webhooks",
            key,
            Some(webhook("http://example.com/x")),
        )
        .await;
    assert_eq!(s, 422);
    assert!(e["error"]["message"].as_str().unwrap().contains("https"));
    let (s, _) = strict
        .call(
            "POST",
            "/v1/webhooks",
            key,
            Some(webhook("https://example.com/x")),
        )
        .await;
    assert_eq!(s, 201);

    // A port policy: other ports are refused at creation and on change.
    let ports = ApiServer::start(
        &stack,
        &[
            ("HERALD_API_ALLOW_HTTP", "true"),
            ("HERALD_ALLOWED_PORTS", "443,8000-8999"),
        ],
    )
    .await
    .unwrap();
    for refused in [
        "https://example.com:22/x",
        "https://example.com:9000/x",
        "http://example.com/x",
    ] {
        let (s, e) = ports
            .call("POST", "/v1/webhooks", key, Some(webhook(refused)))
            .await;
        assert_eq!(s, 422, "{refused}: {e}");
        let message = e["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("port") && message.contains("HERALD_ALLOWED_PORTS"),
            "{e}"
        );
    }
    let mut id = String::new();
    for allowed in ["https://example.com/x", "http://example.com:8080/x"] {
        let (s, e) = ports
            .call("POST", "/v1/webhooks", key, Some(webhook(allowed)))
            .await;
        assert_eq!(s, 201, "{allowed}: {e}");
        id = e["id"].as_str().unwrap().to_owned();
    }
    let (s, e) = ports
        .call(
            "PATCH",
            &format!("/v1/webhooks/{id}"),
            key,
            Some(json!({"url": "https://example.com:6379/x"})),
        )
        .await;
    assert_eq!(s, 422, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn authentication_and_tenant_isolation_on_every_route() {
    let stack = Stack::deploy("api-auth").unwrap();
    let api = ApiServer::start(&stack, &[]).await.unwrap();
    let a = api.app_with_key("tenant-a").await;
    let b = api.app_with_key("tenant-b").await;

    // Admin routes.
    let (s, _) = api.call("GET", "/v1/apps", None, None).await;
    assert_eq!(s, 401);
    let (s, _) = api.call("GET", "/v1/apps", Some("nope"), None).await;
    assert_eq!(s, 401);
    let (s, _) = api.call("GET", "/v1/apps", Some(&a), None).await;
    assert_eq!(s, 403, "an app key cannot manage apps");
    let (s, apps) = api.call("GET", "/v1/apps", Some(ADMIN_KEY), None).await;
    assert_eq!(s, 200);
    assert_eq!(apps["data"].as_array().unwrap().len(), 2);
    let (s, _) = api
        .call(
            "POST",
            "/v1/apps",
            Some(ADMIN_KEY),
            Some(json!({"id": "tenant-a", "name": "again"})),
        )
        .await;
    assert_eq!(s, 409);
    let (s, _) = api
        .call("GET", "/v1/apps/missing", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(s, 404);
    let (s, _) = api.call("GET", "/v1/webhooks", Some(ADMIN_KEY), None).await;
    assert_eq!(s, 403, "the admin key does not act as an app");

    // App A's resources.
    let (_, w) = api
        .call(
            "POST",
            "/v1/webhooks",
            Some(&a),
            Some(webhook("http://127.0.0.1:9/a")),
        )
        .await;
    let id = w["id"].as_str().unwrap().to_owned();
    let (s, published) = api
        .call(
            "POST",
            "/v1/events",
            Some(&a),
            Some(json!({"type": "update", "object_type": "user", "data": {}})),
        )
        .await;
    assert_eq!(s, 202, "{published}");
    let event = published["ids"][0].as_str().unwrap().to_owned();

    // B sees none of it, on every route.
    for (method, path, body) in [
        ("GET", format!("/v1/webhooks/{id}"), None),
        (
            "PATCH",
            format!("/v1/webhooks/{id}"),
            Some(json!({"description": "mine"})),
        ),
        ("DELETE", format!("/v1/webhooks/{id}"), None),
        ("POST", format!("/v1/webhooks/{id}/enable"), None),
        ("POST", format!("/v1/webhooks/{id}/disable"), None),
        ("POST", format!("/v1/webhooks/{id}/secret/rotate"), None),
        ("POST", format!("/v1/webhooks/{id}/test"), None),
        ("GET", format!("/v1/webhooks/{id}/deliveries"), None),
        (
            "POST",
            format!("/v1/webhooks/{id}/recover"),
            Some(json!({"since": "2026-01-01T00:00:00Z"})),
        ),
        ("GET", format!("/v1/events/{event}"), None),
        (
            "POST",
            format!("/v1/events/{event}/resend"),
            Some(json!({})),
        ),
        (
            "POST",
            format!("/v1/events/{event}/resend"),
            Some(json!({"subscription_id": id})),
        ),
    ] {
        let (s, e) = api.call(method, &path, Some(&b), body).await;
        assert_eq!(s, 404, "B {method} {path}: {e}");
    }
    let (s, list) = api.call("GET", "/v1/webhooks", Some(&b), None).await;
    assert_eq!((s, list["data"].as_array().unwrap().len()), (200, 0));
    let (s, hist) = api
        .call(
            "GET",
            &format!("/v1/events/{event}/deliveries"),
            Some(&b),
            None,
        )
        .await;
    assert_eq!((s, hist["data"].as_array().unwrap().len()), (200, 0));
    for path in ["/v1/events", "/v1/deliveries"] {
        let (s, list) = api.call("GET", path, Some(&b), None).await;
        assert_eq!(
            (s, list["data"].as_array().unwrap().len()),
            (200, 0),
            "{path}"
        );
    }
    // A still has its webhook, unchanged.
    let (s, still) = api
        .call("GET", &format!("/v1/webhooks/{id}"), Some(&a), None)
        .await;
    assert_eq!((s, still["description"].as_str()), (200, Some("d")));

    // Keys: listing shows metadata only; a revoked key stops working.
    let (s, keys) = api
        .call("GET", "/v1/apps/tenant-b/keys", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(s, 200);
    let key_id = keys["data"][0]["id"].as_str().unwrap().to_owned();
    assert!(keys["data"][0].get("key").is_none());
    assert!(b.starts_with(keys["data"][0]["prefix"].as_str().unwrap()));
    let (s, _) = api
        .call(
            "DELETE",
            &format!("/v1/apps/tenant-a/keys/{key_id}"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(s, 404, "B's key is not A's to delete");
    let (s, _) = api
        .call(
            "DELETE",
            &format!("/v1/apps/tenant-b/keys/{key_id}"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let (s, _) = api.call("GET", "/v1/webhooks", Some(&b), None).await;
    assert_eq!(s, 401);

    // Deleting an app removes its keys and webhooks.
    let (s, _) = api
        .call("DELETE", "/v1/apps/tenant-a", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(s, 204);
    let (s, _) = api.call("GET", "/v1/webhooks", Some(&a), None).await;
    assert_eq!(s, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deleted_app_id_is_never_reused_and_its_keys_stop_at_once() {
    let stack = Stack::deploy("api-tombstone").unwrap();
    let api = ApiServer::start(&stack, &[]).await.unwrap();
    let key = api.app_with_key("gone").await;
    let (s, _) = api
        .call(
            "POST",
            "/v1/webhooks",
            Some(&key),
            Some(webhook("http://127.0.0.1:9/a")),
        )
        .await;
    assert_eq!(s, 201);

    let (s, _) = api
        .call("DELETE", "/v1/apps/gone", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(s, 204);
    // The key of the deleted app authenticates nothing.
    let (s, e) = api.call("GET", "/v1/webhooks", Some(&key), None).await;
    assert_eq!(s, 401, "{e}");
    // The id stays taken: a new tenant under it would see what the old one left in
    // the delivery history until it expires.
    let (s, e) = api
        .call(
            "POST",
            "/v1/apps",
            Some(ADMIN_KEY),
            Some(json!({"id": "gone", "name": "a new tenant"})),
        )
        .await;
    assert_eq!(s, 409, "{e}");
    assert!(is_error_shape(&e), "{e}");
    // It is gone for the admin too: no keys for it, not listed, a second delete is 404.
    for (method, path) in [
        ("GET", "/v1/apps/gone"),
        ("POST", "/v1/apps/gone/keys"),
        ("GET", "/v1/apps/gone/keys"),
        ("DELETE", "/v1/apps/gone"),
    ] {
        let (s, e) = api.call(method, path, Some(ADMIN_KEY), None).await;
        assert_eq!(s, 404, "{method} {path}: {e}");
    }
    let (s, apps) = api.call("GET", "/v1/apps", Some(ADMIN_KEY), None).await;
    assert_eq!(s, 200);
    assert!(
        apps["data"].as_array().unwrap().is_empty(),
        "a deleted app is not listed: {apps}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_admin_key_can_come_from_an_ssm_secure_string() {
    let stack = Stack::deploy("api-ssm").unwrap();
    let ssm = aws_sdk_ssm::Client::new(&herald_testing::aws().await);
    let name = format!("/herald/{}/admin-key", stack.stage);
    let from_ssm = "ssm-admin-key-0123456789abcdef";
    ssm.put_parameter()
        .name(&name)
        .value(from_ssm)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    let api = ApiServer::start(
        &stack,
        &[
            ("HERALD_ADMIN_KEY", ""),
            ("HERALD_ADMIN_KEY_PARAMETER", &name),
        ],
    )
    .await
    .unwrap();
    let (s, e) = api.call("GET", "/v1/apps", Some(from_ssm), None).await;
    assert_eq!(s, 200, "{e}");
    let (s, _) = api.call("GET", "/v1/apps", Some(ADMIN_KEY), None).await;
    assert_eq!(s, 401, "only the key from SSM is the admin key");

    // A parameter that does not exist stops the API at start, naming it.
    let missing = format!("{name}-missing");
    let err = ApiServer::start(
        &stack,
        &[
            ("HERALD_ADMIN_KEY", ""),
            ("HERALD_ADMIN_KEY_PARAMETER", &missing),
        ],
    )
    .await
    .err()
    .expect("a missing parameter is refused");
    assert!(format!("{err:#}").contains(&missing), "{err:#}");
    // Both settings at once is a configuration error.
    let err = ApiServer::start(&stack, &[("HERALD_ADMIN_KEY_PARAMETER", &name)])
        .await
        .err()
        .expect("both settings are refused");
    assert!(
        format!("{err:#}").contains("HERALD_ADMIN_KEY_PARAMETER"),
        "{err:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotent_publishing() {
    let stack = Stack::deploy("api-idem").unwrap();
    let api = ApiServer::start(&stack, &[]).await.unwrap();
    let key = api.app_with_key("shop").await;
    let body = json!({"events": [
        {"type": "create", "object_type": "user", "data": {"id": 1}},
        {"type": "invoice.paid", "object_type": "invoice", "data": {"id": 2}}
    ]});
    let send = |b: Value, k: &'static str| {
        let req = api
            .client
            .post(format!("{}/v1/events", api.base))
            .bearer_auth(&key)
            .header("Idempotency-Key", k)
            .json(&b);
        async move {
            let r = req.send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or_default(),
            )
        }
    };
    let (s1, first) = send(body.clone(), "k-1").await;
    assert_eq!(s1, 202, "{first}");
    assert_eq!(first["ids"].as_array().unwrap().len(), 2);
    let (s2, second) = send(body.clone(), "k-1").await;
    assert_eq!(
        (s2, &second),
        (202, &first),
        "same key, same body: same ids"
    );
    let (s3, err) = send(
        json!({"type": "create", "object_type": "user", "data": {}}),
        "k-1",
    )
    .await;
    assert_eq!(s3, 409, "{err}");
    let (s4, other) = send(body.clone(), "k-2").await;
    assert_eq!(s4, 202);
    assert_ne!(other["ids"], first["ids"]);

    let sqs = aws_sdk_sqs::Client::new(&herald_testing::aws().await);
    let msgs = herald_testing::drain(&sqs, stack.events_queue())
        .await
        .unwrap();
    assert_eq!(
        msgs.len(),
        4,
        "k-1 published once (2 events), k-2 once (2 events)"
    );

    let (s, e) = api
        .call(
            "POST",
            "/v1/events",
            Some(&key),
            Some(json!({"events": []})),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    let many: Vec<Value> = (0..101)
        .map(|_| json!({"type": "create", "object_type": "u", "data": {}}))
        .collect();
    let (s, _) = api
        .call(
            "POST",
            "/v1/events",
            Some(&key),
            Some(json!({"events": many})),
        )
        .await;
    assert_eq!(s, 422);
    let (s, e) = api
        .call("POST", "/v1/events", Some(&key), Some(json!({"events": [{"type": "ok", "object_type": "u", "data": {}}, {"type": "bad-type", "object_type": "u", "data": {}}]})))
        .await;
    assert_eq!(s, 422);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("events[1].type"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_test_pings_history_and_resend_with_real_deliveries() {
    let stack = Stack::deploy("api-deliver").unwrap();
    let api = ApiServer::start(&stack, &[]).await.unwrap();
    let key = api.app_with_key("shop").await;
    let key = Some(key.as_str());
    let receiver = Receiver::ok().await;
    let (_, w) = api
        .call(
            "POST",
            "/v1/webhooks",
            key,
            Some(json!({"url": receiver.url(), "events": ["*"]})),
        )
        .await;
    let id = w["id"].as_str().unwrap().to_owned();
    let old = Secret::parse(w["secret"].as_str().unwrap()).unwrap();

    // A test ping is delivered signed, and its result returned.
    let (s, ping) = api
        .call("POST", &format!("/v1/webhooks/{id}/test"), key, None)
        .await;
    assert_eq!(s, 200, "{ping}");
    assert_eq!(
        (ping["success"].as_bool(), ping["status_code"].as_u64()),
        (Some(true), Some(200))
    );
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].json()["type"], "webhook.test");
    Verifier::new(vec![old.clone()])
        .verify(
            got[0].header("webhook-id"),
            got[0].header("webhook-timestamp"),
            got[0].header("webhook-signature"),
            &got[0].body,
        )
        .unwrap();

    // Rotate: during the window, receivers holding either secret verify.
    let (s, rotated) = api
        .call(
            "POST",
            &format!("/v1/webhooks/{id}/secret/rotate"),
            key,
            None,
        )
        .await;
    assert_eq!(s, 200, "{rotated}");
    let new = Secret::parse(rotated["secret"].as_str().unwrap()).unwrap();
    assert_ne!(new, old);
    assert!(rotated["previous_secret_expires_at"].is_string());

    let _worker = Worker::spawn(&stack, &[]).unwrap();
    let (s, published) = api
        .call(
            "POST",
            "/v1/events",
            key,
            Some(json!({"type": "update", "object_type": "user", "data": {"n": 1}})),
        )
        .await;
    assert_eq!(s, 202);
    let event = published["ids"][0].as_str().unwrap().to_owned();
    assert!(wait_until(Duration::from_secs(60), || async { receiver.count() == 2 }).await);
    let delivery = receiver.received()[1].clone();
    assert_eq!(
        delivery.header("webhook-signature").split(' ').count(),
        2,
        "both secrets sign"
    );
    for secret in [&old, &new] {
        Verifier::new(vec![secret.clone()])
            .verify(
                delivery.header("webhook-id"),
                delivery.header("webhook-timestamp"),
                delivery.header("webhook-signature"),
                &delivery.body,
            )
            .expect("a receiver holding either secret verifies");
        crate::reference_verify(secret, &delivery)
            .expect("the reference library verifies with either secret");
    }

    // History per event and per webhook, newest first.
    assert!(
        wait_until(Duration::from_secs(30), || async {
            let (_, h) = api
                .call("GET", &format!("/v1/events/{event}/deliveries"), key, None)
                .await;
            h["data"].as_array().is_some_and(|d| !d.is_empty())
        })
        .await
    );
    let (_, by_event) = api
        .call("GET", &format!("/v1/events/{event}/deliveries"), key, None)
        .await;
    assert_eq!(by_event["data"][0]["outcome"], "succeeded");
    assert_eq!(by_event["data"][0]["status_code"], 200);
    assert_eq!(by_event["data"][0]["subscription_id"], id.as_str());
    let (_, by_webhook) = api
        .call(
            "GET",
            &format!("/v1/webhooks/{id}/deliveries?limit=1"),
            key,
            None,
        )
        .await;
    assert_eq!(by_webhook["data"].as_array().unwrap().len(), 1);
    assert!(
        by_webhook["next_cursor"].is_string(),
        "the ping and the event: two records"
    );

    // Cursors are bound to their listing: the next page follows, while the same cursor
    // on another listing, a tampered one or an oversized one is a 400 in the JSON error
    // shape, never a storage error.
    let cursor = by_webhook["next_cursor"].as_str().unwrap().to_owned();
    let (s, next) = api
        .call(
            "GET",
            &format!("/v1/webhooks/{id}/deliveries?limit=1&cursor={cursor}"),
            key,
            None,
        )
        .await;
    assert_eq!(
        (s, next["data"].as_array().unwrap().len()),
        (200, 1),
        "{next}"
    );
    let forged = {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"pk":"someone-else#sub_1","sk":"2026"}"#)
    };
    for path in [
        format!("/v1/events/{event}/deliveries?cursor={cursor}"),
        format!("/v1/webhooks/{id}/deliveries?cursor={forged}"),
        format!("/v1/webhooks/{id}/deliveries?cursor={}", "A".repeat(4000)),
    ] {
        let (s, body) = api.call("GET", &path, key, None).await;
        assert_eq!(s, 400, "{path}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("cursor")),
            "{path}: {body}"
        );
    }

    // Re-send to the webhook: delivered again with the same webhook-id.
    let (s, resent) = api
        .call(
            "POST",
            &format!("/v1/events/{event}/resend"),
            key,
            Some(json!({"subscription_id": id})),
        )
        .await;
    assert_eq!(s, 202, "{resent}");
    assert_eq!(resent["scheduled"], json!([id]));
    assert!(wait_until(Duration::from_secs(60), || async { receiver.count() == 3 }).await);
    let again = receiver.received()[2].clone();
    assert_eq!(again.header("webhook-id"), delivery.header("webhook-id"));
    let (s, all) = api
        .call("POST", &format!("/v1/events/{event}/resend"), key, None)
        .await;
    assert_eq!((s, all["scheduled"].as_array().unwrap().len()), (202, 1));
    let (s, _) = api
        .call("POST", "/v1/events/evt_unknown/resend", key, None)
        .await;
    assert_eq!(s, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn changes_to_a_webhook_from_both_sides_lose_nothing_that_was_acknowledged() {
    let stack = Stack::deploy("api-races").unwrap();
    let api = ApiServer::start(&stack, &[]).await.unwrap();
    let key_owned = api.app_with_key("shop").await;
    let key = Some(key_owned.as_str());
    let (s, created) = api
        .call(
            "POST",
            "/v1/webhooks",
            key,
            Some(webhook("http://127.0.0.1:9/hook")),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/webhooks/{id}");
    let rotate = format!("/v1/webhooks/{id}/secret/rotate");
    // The consumer's side writes through the store, as the worker does.
    let store = stack
        .subscription_store(&herald_testing::aws().await)
        .unwrap();
    let app = herald_core::AppId::parse("shop").unwrap();
    let sub = herald_core::SubscriptionId::new(id.clone());
    let stored = || async { store.get(&app, &sub).await.unwrap().unwrap() };

    for round in 0..8 {
        // A PATCH and the consumer's auto-disable: both hold. The interleavings (the
        // disable landing between the PATCH's read and write) are tested step by step
        // on the store in routing.rs: the emulator does not make concurrent
        // conditional writes atomic as DynamoDB does, so firing them at once here
        // would test moto.
        let description = format!("round {round}");
        let (s, patched) = api
            .call(
                "PATCH",
                &path,
                key,
                Some(json!({ "description": description })),
            )
            .await;
        assert_eq!(s, 200, "{patched}");
        store
            .disable(
                &app,
                &sub,
                "disabled automatically after 5 failed deliveries in a row",
            )
            .await
            .unwrap();
        let now = stored().await;
        assert!(
            !now.active,
            "round {round}: the auto-disable survived the PATCH"
        );
        assert_eq!(now.description, description);
        store.enable(&app, &sub).await.unwrap();

        // PATCHes of different fields: both hold.
        let header = round.to_string();
        let (s1, b1) = api
            .call(
                "PATCH",
                &path,
                key,
                Some(json!({"description": format!("d{round}")})),
            )
            .await;
        let (s2, b2) = api
            .call(
                "PATCH",
                &path,
                key,
                Some(json!({"headers": {"x-round": header}})),
            )
            .await;
        assert_eq!((s1, s2), (200, 200), "{b1} {b2}");
        let now = stored().await;
        assert_eq!(now.description, format!("d{round}"), "round {round}");
        assert_eq!(now.headers.get("x-round"), Some(&header), "round {round}");

        // A rotation that read the webhook before another rotation landed cannot
        // overwrite it: its guarded write is refused and the acknowledged secret stays.
        // (Done step by step: the emulator does not make concurrent conditional writes
        // atomic the way DynamoDB does, so a concurrent version of this would test moto.)
        let read = stored().await;
        let mut stale = read.clone();
        let (s, rotated) = api.call("POST", &rotate, key, None).await;
        assert_eq!(s, 200, "{rotated}");
        stale.rotate_secret(chrono::Utc::now(), chrono::Duration::hours(1));
        assert!(
            store.write_change(&read, &stale).await.unwrap().is_none(),
            "round {round}: the stale write is refused"
        );
        let signing: Vec<String> = stored()
            .await
            .signing_secrets(chrono::Utc::now())
            .iter()
            .map(Secret::expose)
            .collect();
        assert!(
            signing.iter().any(|s| rotated["secret"] == s.as_str()),
            "round {round}: the acknowledged secret signs"
        );
        // And two rotations in a row keep the earlier one's secret as the previous one.
        let (_, again) = api.call("POST", &rotate, key, None).await;
        let now = stored().await;
        let secrets: Vec<String> = now.secrets.iter().map(Secret::expose).collect();
        assert_eq!(
            secrets,
            [
                again["secret"].as_str().unwrap().to_owned(),
                rotated["secret"].as_str().unwrap().to_owned()
            ],
            "round {round}"
        );
    }
}

/// Arrays and objects nested `levels` deep around a number.
fn nested(levels: usize) -> Value {
    (0..levels).fold(json!(1), |inner, i| {
        if i % 2 == 0 {
            json!([inner])
        } else {
            json!({ "k": inner })
        }
    })
}

fn is_error_shape(e: &Value) -> bool {
    e["error"]["code"].is_string() && e["error"]["message"].is_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tenant_input_is_refused_with_4xx_json_errors() {
    let stack = Stack::deploy("api-input").unwrap();
    let api = ApiServer::start(&stack, &[]).await.unwrap();
    let key_owned = api.app_with_key("shop").await;
    let key = Some(key_owned.as_str());
    let event = |data: Value| json!({"type": "update", "object_type": "user", "data": data});

    // Depth: 64 levels of data publish; deeper is a 422, also past serde_json's 128.
    let (s, e) = api
        .call("POST", "/v1/events", key, Some(event(nested(64))))
        .await;
    assert_eq!(s, 202, "{e}");
    for levels in [65, 126, 127, 300] {
        let (s, e) = api
            .call("POST", "/v1/events", key, Some(event(nested(levels))))
            .await;
        assert_eq!(
            (s, e["error"]["code"].as_str()),
            (422, Some("validation_failed")),
            "{levels}: {e}"
        );
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .contains("deeper than 64 levels"),
            "{e}"
        );
        let batch = json!({"events": [event(json!({})), event(nested(levels))]});
        let (s, e) = api.call("POST", "/v1/events", key, Some(batch)).await;
        assert_eq!(s, 422, "batch {levels}: {e}");
        assert!(is_error_shape(&e), "{e}");
    }

    // Characters SQS refuses, in strings and keys, at any depth.
    for (data, code, place) in [
        (json!({"a": "x\u{FFFF}"}), "U+FFFF", "data.a holds"),
        (
            json!({"a": [1, {"b": "\u{FFFE}"}]}),
            "U+FFFE",
            "data.a[1].b holds",
        ),
        (
            json!({"a": {"k\u{FFFF}": 1}}),
            "U+FFFF",
            "data.a has a key holding",
        ),
        (json!("\u{0001}"), "U+0001", "data holds"),
    ] {
        let (s, e) = api
            .call("POST", "/v1/events", key, Some(event(data.clone())))
            .await;
        assert_eq!(s, 422, "{data}: {e}");
        let message = e["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(place) && message.contains(code), "{e}");
    }
    let batch = json!({"events": [event(json!({})), event(json!(["\u{FFFF}"]))]});
    let (s, e) = api.call("POST", "/v1/events", key, Some(batch)).await;
    assert_eq!(s, 422);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("events[1].data[0] holds U+FFFF"),
        "{e}"
    );
    let fine = json!({"tab\t": "line\nfeed\r \u{D7FF}\u{E000}\u{FFFD}\u{10000}\u{10FFFF} 🦀"});
    let (s, e) = api.call("POST", "/v1/events", key, Some(event(fine))).await;
    assert_eq!(s, 202, "{e}");

    // Framework rejections: a body over the limit, a path that is not UTF-8 once decoded.
    // The body on a client of its own: the server closes the connection it refused.
    let huge = reqwest::Client::new()
        .post(format!("{}/v1/events", api.base))
        .bearer_auth(&key_owned)
        .body(vec![b' '; 2 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), 413);
    let e: Value = huge.json().await.expect("a JSON 413");
    assert_eq!(e["error"]["code"], "payload_too_large", "{e}");
    for path in [
        "/v1/webhooks/%FF%FE",
        "/v1/events/%C3/deliveries",
        "/v1/webhooks/%80/enable",
    ] {
        let method = if path.ends_with("enable") {
            "POST"
        } else {
            "GET"
        };
        let r = api
            .client
            .request(method.parse().unwrap(), format!("{}{path}", api.base))
            .bearer_auth(&key_owned)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{path}");
        let e: Value = r.json().await.expect("a JSON 400");
        assert_eq!(e["error"]["code"], "bad_request", "{path}: {e}");
    }

    // The auth scheme is case-insensitive.
    for scheme in ["bearer", "BEARER", "Bearer", "bEaReR"] {
        let get = |path: &str, key: &str| {
            api.client
                .get(format!("{}{path}", api.base))
                .header("Authorization", format!("{scheme} {key}"))
                .send()
        };
        assert_eq!(
            get("/v1/webhooks", &key_owned).await.unwrap().status(),
            200,
            "{scheme}"
        );
        assert_eq!(
            get("/v1/apps", ADMIN_KEY).await.unwrap().status(),
            200,
            "{scheme}"
        );
    }
    for bad in [
        format!("Basic {key_owned}"),
        format!("Bearer{key_owned}"),
        "bearer ".into(),
    ] {
        let r = api
            .client
            .get(format!("{}/v1/webhooks", api.base))
            .header("Authorization", bad.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{bad}");
    }

    // Custom headers: transport, proxy and AWS credential names, and values that are
    // not visible ASCII, are refused on create and on PATCH.
    let (s, created) = api
        .call(
            "POST",
            "/v1/webhooks",
            key,
            Some(webhook("http://127.0.0.1:9/h")),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let with_headers = |headers: Value| json!({"url": "http://127.0.0.1:9/h", "events": ["*"], "headers": headers});
    for name in [
        "Connection",
        "Keep-Alive",
        "Proxy-Authorization",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Expect",
        "Host",
        "Content-Length",
        "Content-Encoding",
        "Forwarded",
        "X-Forwarded-For",
        "X-Forwarded-Host",
        "x-forwarded-proto",
        "X-AMZ-SECURITY-TOKEN",
    ] {
        let (s, e) = api
            .call(
                "POST",
                "/v1/webhooks",
                key,
                Some(with_headers(json!({ name: "x" }))),
            )
            .await;
        assert_eq!((s, is_error_shape(&e)), (422, true), "{name}: {e}");
        let (s, e) = api
            .call(
                "PATCH",
                &format!("/v1/webhooks/{id}"),
                key,
                Some(json!({"headers": { name: "x" }})),
            )
            .await;
        assert_eq!(s, 422, "PATCH {name}: {e}");
    }
    for value in ["caf\u{e9}", "\u{1F980}", "del\u{7f}"] {
        let (s, e) = api
            .call(
                "POST",
                "/v1/webhooks",
                key,
                Some(with_headers(json!({ "x-team": value }))),
            )
            .await;
        assert_eq!(s, 422, "{value:?}: {e}");
        let (s, e) = api
            .call(
                "PATCH",
                &format!("/v1/webhooks/{id}"),
                key,
                Some(json!({"headers": { "x-team": value }})),
            )
            .await;
        assert_eq!(s, 422, "PATCH {value:?}: {e}");
    }
    // Credentials stay allowed (stored sealed, shown masked), and so do spaces and tabs.
    let headers = json!({"Authorization": "Bearer t", "Cookie": "a=b", "x-team": "a b\tc"});
    let (s, e) = api
        .call(
            "PATCH",
            &format!("/v1/webhooks/{id}"),
            key,
            Some(json!({"headers": headers})),
        )
        .await;
    let masked = json!({"Authorization": "Bearer ***", "Cookie": "***", "x-team": "a b\tc"});
    assert_eq!((s, &e["headers"]), (200, &masked), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_app_has_at_most_its_cap_of_webhooks() {
    let stack = Stack::deploy("api-cap").unwrap();
    let api = ApiServer::start(&stack, &[("HERALD_MAX_WEBHOOKS_PER_APP", "2")])
        .await
        .unwrap();
    let key_owned = api.app_with_key("shop").await;
    let key = Some(key_owned.as_str());
    let other_owned = api.app_with_key("other").await;
    let mut ids = Vec::new();
    for n in 0..2 {
        let url = format!("http://127.0.0.1:9/{n}");
        let (s, created) = api
            .call("POST", "/v1/webhooks", key, Some(webhook(&url)))
            .await;
        assert_eq!(s, 201, "{created}");
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    let (s, refused) = api
        .call(
            "POST",
            "/v1/webhooks",
            key,
            Some(webhook("http://127.0.0.1:9/x")),
        )
        .await;
    assert_eq!(s, 422, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("HERALD_MAX_WEBHOOKS_PER_APP")),
        "{refused}"
    );
    // The cap is per app: another app is not affected.
    let (s, _) = api
        .call(
            "POST",
            "/v1/webhooks",
            Some(other_owned.as_str()),
            Some(webhook("http://127.0.0.1:9/o")),
        )
        .await;
    assert_eq!(s, 201);
    // Deleting one makes room again.
    let (s, _) = api
        .call("DELETE", &format!("/v1/webhooks/{}", ids[0]), key, None)
        .await;
    assert_eq!(s, 204);
    let (s, _) = api
        .call(
            "POST",
            "/v1/webhooks",
            key,
            Some(webhook("http://127.0.0.1:9/y")),
        )
        .await;
    assert_eq!(s, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_limits_answer_429() {
    let stack = Stack::deploy("api-rate").unwrap();
    let api = ApiServer::start(&stack, &[("HERALD_API_RATE_LIMIT", "2")])
        .await
        .unwrap();
    let key = api.app_with_key("shop").await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(api.call("GET", "/v1/webhooks", Some(&key), None).await.0);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert_eq!(statuses[0], 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_openapi_document_is_checked_in_and_matches_the_routes() {
    let stack = Stack::deploy("api-openapi").unwrap();
    let api = ApiServer::start(&stack, &[]).await.unwrap();
    let (s, served) = api.call("GET", "/v1/openapi.json", None, None).await;
    assert_eq!(s, 200);
    let generated = serde_json::to_value(herald_api::openapi()).unwrap();
    assert_eq!(
        served, generated,
        "the served document is the generated one"
    );
    let path = herald_testing::root().join("docs/openapi.json");
    let checked_in: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_default())
            .unwrap_or_default();
    if std::env::var("HERALD_UPDATE_OPENAPI").is_ok() {
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&generated).unwrap() + "\n",
        )
        .unwrap();
    } else {
        assert_eq!(
            checked_in, generated,
            "docs/openapi.json is stale: rerun with HERALD_UPDATE_OPENAPI=1"
        );
    }

    // Every documented operation is routed (no 404 route / 405), and the router
    // answers nothing it does not document.
    let key = api.app_with_key("shop").await;
    let paths = served["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            operations += 1;
            let concrete = path.replace("{id}", "x1").replace("{key_id}", "k1");
            let auth = if path.starts_with("/v1/apps") {
                ADMIN_KEY
            } else {
                key.as_str()
            };
            let (s, body) = api
                .call(
                    &method.to_uppercase(),
                    &concrete,
                    Some(auth),
                    Some(json!({})),
                )
                .await;
            assert_ne!(s, 405, "{method} {path} is documented but not routed");
            let route_missing = s == 404
                && body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("route "));
            assert!(
                !route_missing,
                "{method} {path} is documented but not routed"
            );
            assert!(s < 500, "{method} {path} -> {s} {body}");
        }
    }
    assert!(operations >= 22, "all operations documented: {operations}");
    for (method, path) in [
        ("GET", "/v1/keys"),
        ("POST", "/v1/webhooks/x1/purge"),
        ("PUT", "/v1/events"),
    ] {
        let (s, _) = api.call(method, path, Some(&key), None).await;
        assert!(s == 404 || s == 405, "{method} {path} -> {s}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_page_of_webhooks_holds_at_most_100_so_it_fits_a_lambda_response() {
    let stack = Stack::deploy("api-page-bytes").unwrap();
    let api = ApiServer::start(&stack, &[("HERALD_MAX_WEBHOOKS_PER_APP", "1000")])
        .await
        .unwrap();
    let key = api.app_with_key("big").await;
    let store = stack
        .subscription_store(&herald_testing::aws().await)
        .unwrap();
    for n in 0..101 {
        let sub = herald_core::Subscription::new(
            herald_core::AppId::parse("big").unwrap(),
            format!("http://127.0.0.1:9/{n}"),
            herald_core::EventFilter::All,
            herald_core::ObjectTypeFilter::All,
        );
        store.create(&sub).await.unwrap();
    }
    let (s, page) = api
        .call("GET", "/v1/webhooks?limit=250", Some(&key), None)
        .await;
    assert_eq!(s, 200, "{page}");
    assert_eq!(page["data"].as_array().unwrap().len(), 100);
    let cursor = page["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let (s, rest) = api
        .call(
            "GET",
            &format!("/v1/webhooks?limit=250&cursor={cursor}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!((s, rest["data"].as_array().unwrap().len()), (200, 1));
}
