//! Inbound webhooks (#15) over real HTTP against the emulator: each preset takes a
//! request signed by its sender's own library (inbound_senders.py, run with the
//! project venv's Python: stripe, standardwebhooks, githubkit) and refuses a wrong
//! secret, a changed body, a stale timestamp, and publishes a replay only once; basic
//! and API-key modes; XML, form, file and multipart bodies reaching a webhook as
//! mapped data; a GitHub-style request entering a source and arriving at a receiver
//! signed and verifiable; the sources routes' tenant isolation, masking and the CLI
//! through `herald serve`; and a property test that no body or header makes the
//! ingest answer 5xx.

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use base64::Engine as _;
use herald_runtime::Load;
use herald_testing::{aws, wait_until, ApiServer, Receiver, Stack, Worker, ADMIN_KEY};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};
use tower::ServiceExt;

const STD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const STD_OTHER: &str = "whsec_ZGlmZmVyZW50LXNlY3JldC0wMTIzNDU2Nzg5YWI=";

/// The signature headers `scheme`'s sender puts on `body`, made by its own library.
fn sign(scheme: &str, secret: &str, body: &str, timestamp: i64, id: &str) -> Vec<(String, String)> {
    use std::io::Write;
    let script = herald_testing::root().join("crates/herald-cli/tests/it/inbound_senders.py");
    let mut child = std::process::Command::new(herald_testing::root().join(".venv/bin/python"))
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the project venv's python (make venv)");
    let input =
        json!({"scheme": scheme, "secret": secret, "body": body, "timestamp": timestamp, "id": id});
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{scheme} signer: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let headers: serde_json::Map<String, Value> = serde_json::from_slice(&out.stdout).unwrap();
    headers
        .into_iter()
        .map(|(k, v)| (k, v.as_str().unwrap().to_owned()))
        .collect()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// POSTs `body` to `path` with `headers`; the status and the JSON answer.
async fn post(
    api: &ApiServer,
    path: &str,
    headers: &[(String, String)],
    body: impl Into<reqwest::Body>,
) -> (u16, Value) {
    let mut req = api.client.post(format!("{}{path}", api.base)).body(body);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let resp = req.send().await.expect("ingest request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn with(mut headers: Vec<(String, String)>, more: &[(&str, &str)]) -> Vec<(String, String)> {
    headers.extend(more.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    headers
}

async fn create_source(api: &ApiServer, key: &str, body: Value) -> (String, String) {
    let (s, created) = api.call("POST", "/v1/sources", Some(key), Some(body)).await;
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["ingest_path"], format!("/in/{id}"));
    (id.clone(), format!("/in/{id}"))
}

/// What a refusal looks like: 401 and nothing about why.
fn assert_refused(case: &str, (status, body): (u16, Value)) {
    assert_eq!(status, 401, "{case}: {body}");
    assert_eq!(
        body["error"]["message"], "unauthorized",
        "{case}: no detail"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn presets_take_their_senders_signatures_and_refuse_tampering_and_stale_replays() {
    let stack = Stack::deploy("inbound-presets").unwrap();
    let api = ApiServer::start(&stack, &[]).await.unwrap();
    let key = api.app_with_key("shop").await;

    let presets = [
        (
            "github",
            json!({"mode": "github", "secret": "gh-secret"}),
            "gh-secret",
            "wrong",
            false,
        ),
        (
            "shopify",
            json!({"mode": "shopify", "secret": "shp-secret"}),
            "shp-secret",
            "wrong",
            false,
        ),
        (
            "stripe",
            json!({"mode": "stripe", "secret": "whsec_stripe"}),
            "whsec_stripe",
            "whsec_other",
            true,
        ),
        (
            "standard_webhooks",
            json!({"mode": "standard_webhooks", "secret": STD_SECRET}),
            STD_SECRET,
            STD_OTHER,
            true,
        ),
    ];
    for (scheme, auth, secret, wrong, timestamped) in presets {
        let (id, path) = create_source(&api, &key, json!({"name": scheme, "auth": auth})).await;
        let body =
            json!({"id": format!("evt_{scheme}"), "type": "invoice.paid", "n": 1}).to_string();
        let extra: &[(&str, &str)] = match scheme {
            "github" => &[("X-GitHub-Event", "push")],
            "shopify" => &[("X-Shopify-Topic", "orders/create")],
            _ => &[],
        };
        let json_type = [("content-type", "application/json")];
        let signed = with(
            with(
                sign(scheme, secret, &body, now(), &format!("d-{scheme}")),
                extra,
            ),
            &json_type,
        );

        let (s, first) = post(&api, &path, &signed, body.clone()).await;
        assert_eq!(s, 202, "{scheme}: {first}");
        let event = first["event_id"].as_str().unwrap().to_owned();
        assert_eq!(first["duplicate"], false);

        // The same delivery again (a sender's retry, or a replay within the
        // tolerance): answered, not published again.
        let (s, again) = post(&api, &path, &signed, body.clone()).await;
        assert_eq!(
            (s, again["event_id"].as_str(), again["duplicate"].as_bool()),
            (200, Some(event.as_str()), Some(true)),
            "{scheme}"
        );

        let other = with(
            with(sign(scheme, wrong, &body, now(), "d-wrong"), extra),
            &json_type,
        );
        assert_refused(
            &format!("{scheme} wrong secret"),
            post(&api, &path, &other, body.clone()).await,
        );
        let changed = body.replace("\"n\":1", "\"n\":2");
        assert_refused(
            &format!("{scheme} changed body"),
            post(&api, &path, &signed, changed).await,
        );
        assert_refused(
            &format!("{scheme} no signature"),
            post(&api, &path, &with(vec![], &json_type), body.clone()).await,
        );
        if timestamped {
            let stale = with(
                sign(
                    scheme,
                    secret,
                    &body,
                    now() - 600,
                    &format!("d-stale-{scheme}"),
                ),
                &json_type,
            );
            assert_refused(
                &format!("{scheme} stale"),
                post(&api, &path, &stale, body.clone()).await,
            );
        }

        // The log, newest first: what was refused and why, without any secret.
        let (s, log) = api
            .call(
                "GET",
                &format!("/v1/sources/{id}/requests"),
                Some(&key),
                None,
            )
            .await;
        assert_eq!(s, 200);
        let entries = log["data"].as_array().unwrap();
        let outcomes: Vec<&str> = entries
            .iter()
            .map(|e| e["outcome"].as_str().unwrap())
            .collect();
        let expected_rejections = if timestamped { 4 } else { 3 };
        assert_eq!(
            outcomes.last(),
            Some(&"accepted"),
            "{scheme}: oldest last: {log}"
        );
        assert_eq!(outcomes[outcomes.len() - 2], "duplicate", "{log}");
        assert_eq!(
            outcomes.iter().filter(|o| **o == "rejected").count(),
            expected_rejections,
            "{log}"
        );
        assert_eq!(entries.last().unwrap()["event_id"], event.as_str());
        if timestamped {
            assert!(
                entries[0]["reason"].as_str().unwrap().contains("timestamp"),
                "{log}"
            );
        }
        let text = log.to_string();
        assert!(!text.contains(secret), "{scheme}: the log shows no secret");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn basic_and_api_key_modes() {
    let stack = Stack::deploy("inbound-modes").unwrap();
    let api = ApiServer::start(&stack, &[]).await.unwrap();
    let key = api.app_with_key("shop").await;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let json_type = ("content-type".to_owned(), "application/json".to_owned());
    let fixed = json!({"from": "fixed", "value": "order.created"});

    let (_, basic) = create_source(
        &api,
        &key,
        json!({"name": "erp", "event_type": fixed,
        "auth": {"mode": "basic", "username": "erp", "password": "pa55word"}}),
    )
    .await;
    let auth = |v: String| vec![("authorization".to_owned(), v), json_type.clone()];
    assert_eq!(
        post(
            &api,
            &basic,
            &auth(format!("Basic {}", b64("erp:pa55word"))),
            "{}"
        )
        .await
        .0,
        202
    );
    assert_refused(
        "basic wrong password",
        post(
            &api,
            &basic,
            &auth(format!("Basic {}", b64("erp:pa55wore"))),
            "{}",
        )
        .await,
    );
    assert_refused(
        "basic wrong user",
        post(
            &api,
            &basic,
            &auth(format!("Basic {}", b64("erq:pa55word"))),
            "{}",
        )
        .await,
    );
    assert_refused(
        "basic missing",
        post(&api, &basic, std::slice::from_ref(&json_type), "{}").await,
    );

    let (_, header) = create_source(
        &api,
        &key,
        json!({"name": "ci", "event_type": fixed,
        "auth": {"mode": "api_key", "in": "header", "name": "X-Api-Key", "key": "k-123"}}),
    )
    .await;
    let h = |v: &str| vec![("x-api-key".to_owned(), v.to_owned()), json_type.clone()];
    assert_eq!(post(&api, &header, &h("k-123"), "{}").await.0, 202);
    assert_refused(
        "header key wrong",
        post(&api, &header, &h("k-124"), "{}").await,
    );

    let (_, query) = create_source(
        &api,
        &key,
        json!({"name": "q", "event_type": fixed,
        "auth": {"mode": "api_key", "in": "query", "name": "token", "key": "t 1/2"}}),
    )
    .await;
    assert_eq!(
        post(
            &api,
            &format!("{query}?token=t%201%2F2"),
            std::slice::from_ref(&json_type),
            "{}"
        )
        .await
        .0,
        202
    );
    assert_refused(
        "query key wrong",
        post(
            &api,
            &format!("{query}?token=t"),
            std::slice::from_ref(&json_type),
            "{}",
        )
        .await,
    );
    assert_refused(
        "query key missing",
        post(&api, &query, std::slice::from_ref(&json_type), "{}").await,
    );

    // A generic HMAC (SHA-1, base64, with a prefix), as a legacy sender computes it.
    let (_, hmac) = create_source(&api, &key, json!({"name": "legacy", "event_type": {"from": "json_pointer", "pointer": "/event"},
        "auth": {"mode": "hmac", "header": "X-Signature", "algorithm": "sha1", "encoding": "base64", "prefix": "sha1=", "secret": "s3"}})).await;
    let body = r#"{"event":"stock.low"}"#;
    let sig = {
        use hmac::Mac;
        let mut m =
            <hmac::Hmac<sha1::Sha1> as hmac::digest::KeyInit>::new_from_slice(b"s3").unwrap();
        m.update(body.as_bytes());
        b64s(&m.finalize().into_bytes())
    };
    let hs = vec![
        ("x-signature".to_owned(), format!("sha1={sig}")),
        json_type.clone(),
    ];
    assert_eq!(post(&api, &hmac, &hs, body).await.0, 202);
    assert_refused(
        "hmac changed body",
        post(&api, &hmac, &hs, r#"{"event":"stock.high"}"#).await,
    );

    // Unknown and malformed source ids: 404 (a path that is not UTF-8: 400, as on
    // every route), the JSON error shape.
    for (path, status, code) in [
        ("/in/src_00000000000000000000000000000000", 404, "not_found"),
        ("/in/nope", 404, "not_found"),
        ("/in/%FF", 400, "bad_request"),
    ] {
        let (s, e) = post(&api, path, std::slice::from_ref(&json_type), "{}").await;
        assert_eq!(
            (s, e["error"]["code"].as_str()),
            (status, Some(code)),
            "{path}: {e}"
        );
    }
}

fn b64s(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn xml_form_file_and_multipart_bodies_reach_a_webhook_as_mapped_data() {
    let stack = Stack::deploy("inbound-bodies").unwrap();
    let api = ApiServer::start(&stack, &[]).await.unwrap();
    let key = api.app_with_key("shop").await;
    let receiver = Receiver::ok().await;
    api.create_webhook(
        &key,
        json!({"url": receiver.url(), "events": ["doc.received"], "object_types": ["doc"]}),
    )
    .await;
    let (_, path) = create_source(
        &api,
        &key,
        json!({"name": "docs", "auth": {"mode": "none"},
        "event_type": {"from": "fixed", "value": "doc.received"}, "object_type": "doc"}),
    )
    .await;
    let _worker = Worker::spawn(&stack, &[]).unwrap();
    let ct = |v: &str| vec![("content-type".to_owned(), v.to_owned())];

    let xml = r#"<?xml version="1.0"?><order id="7"><item sku="a">One &amp; two</item><item>Three</item><note/></order>"#;
    let (s, e) = post(&api, &path, &ct("application/xml"), xml).await;
    assert_eq!(s, 202, "{e}");
    let (s, e) = post(
        &api,
        &path,
        &ct("application/x-www-form-urlencoded"),
        "a=1&b=x+y&a=2",
    )
    .await;
    assert_eq!(s, 202, "{e}");
    let pdf = b"%PDF-1.4 \x00\x01\xff".to_vec();
    let file_headers = with(
        ct("application/pdf"),
        &[("content-disposition", "attachment; filename=\"r.pdf\"")],
    );
    let (s, e) = post(&api, &path, &file_headers, pdf.clone()).await;
    assert_eq!(s, 202, "{e}");
    let multipart = "--XX\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--XX\r\nContent-Disposition: form-data; name=\"doc\"; filename=\"a.csv\"\r\nContent-Type: text/csv\r\n\r\na,b\r\n--XX--\r\n";
    let (s, e) = post(
        &api,
        &path,
        &ct("multipart/form-data; boundary=XX"),
        multipart,
    )
    .await;
    assert_eq!(s, 202, "{e}");

    // Refused before anything is queued: no content type, a body unlike its type.
    let (s, e) = post(&api, &path, &[], "x").await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (415, Some("unsupported_media_type")),
        "{e}"
    );
    let (s, e) = post(&api, &path, &ct("text/xml"), "<a><b></a>").await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (400, Some("bad_request")),
        "{e}"
    );
    let (s, e) = post(&api, &path, &ct("application/json"), "{").await;
    assert_eq!(s, 400, "{e}");

    assert!(
        wait_until(Duration::from_secs(60), || async { receiver.count() >= 4 }).await,
        "got {}",
        receiver.count()
    );
    let datas: Vec<Value> = receiver
        .received()
        .iter()
        .map(|r| r.json()["data"].clone())
        .collect();
    let has = |v: Value| datas.contains(&v);
    assert!(
        has(
            json!({"order": {"@id": "7", "item": [{"@sku": "a", "#text": "One & two"}, "Three"], "note": ""}})
        ),
        "{datas:?}"
    );
    assert!(has(json!({"a": ["1", "2"], "b": "x y"})), "{datas:?}");
    assert!(
        has(
            json!({"file": {"content_type": "application/pdf", "file_name": "r.pdf", "size": pdf.len(), "base64": b64s(&pdf)}})
        ),
        "{datas:?}"
    );
    assert!(
        has(
            json!({"fields": {"note": "hello"}, "files": [{"field": "doc", "file_name": "a.csv", "content_type": "text/csv", "size": 3, "base64": "YSxi"}]})
        ),
        "{datas:?}"
    );
    assert_eq!(receiver.count(), 4, "the refused requests queued nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_github_request_enters_a_source_and_arrives_at_a_webhook_signed_and_verifiable() {
    let stack = Stack::deploy("inbound-e2e").unwrap();
    let api = ApiServer::start(&stack, &[]).await.unwrap();
    let key = api.app_with_key("shop").await;
    let pushes = Receiver::ok().await;
    let issues = Receiver::ok().await;
    let hook = api
        .create_webhook(
            &key,
            json!({"url": pushes.url(), "events": ["push"], "object_types": ["repository"]}),
        )
        .await;
    api.create_webhook(&key, json!({"url": issues.url(), "events": ["issues"]}))
        .await;
    let (source, path) = create_source(
        &api,
        &key,
        json!({"name": "github", "object_type": "repository",
        "auth": {"mode": "github", "secret": "gh-e2e"}}),
    )
    .await;
    let _worker = Worker::spawn(&stack, &[]).unwrap();

    let body =
        json!({"ref": "refs/heads/main", "after": "abc123", "repository": {"full_name": "o/r"}})
            .to_string();
    let headers = with(
        sign(
            "github",
            "gh-e2e",
            &body,
            now(),
            "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        ),
        &[
            ("X-GitHub-Event", "push"),
            ("content-type", "application/json"),
            ("User-Agent", "GitHub-Hookshot/044aadd"),
        ],
    );
    let (s, accepted) = post(&api, &path, &headers, body.clone()).await;
    assert_eq!(s, 202, "{accepted}");
    let event = accepted["event_id"].as_str().unwrap().to_owned();

    assert!(wait_until(Duration::from_secs(60), || async { pushes.count() == 1 }).await);
    let delivered = pushes.received()[0].clone();
    let secret = herald_core::Secret::parse(hook["secret"].as_str().unwrap()).unwrap();
    crate::reference_verify(&secret, &delivered)
        .expect("the delivery verifies with the standardwebhooks crate");
    let envelope = delivered.json();
    assert_eq!(envelope["id"], event.as_str());
    assert_eq!(
        (envelope["type"].as_str(), envelope["object_type"].as_str()),
        (Some("push"), Some("repository"))
    );
    assert_eq!(
        envelope["data"],
        serde_json::from_str::<Value>(&body).unwrap()
    );
    assert_eq!(
        envelope["source"],
        source.as_str(),
        "the payload names the source it came in through"
    );
    assert_eq!(issues.count(), 0, "a webhook of another type gets nothing");

    // The event, as the API shows it, names the source it came in through.
    let (s, shown) = api
        .call("GET", &format!("/v1/events/{event}"), Some(&key), None)
        .await;
    assert_eq!(
        (s, shown["source"].as_str()),
        (200, Some(source.as_str())),
        "{shown}"
    );
    let (_, listed) = api.call("GET", "/v1/events", Some(&key), None).await;
    assert_eq!(listed["data"][0]["source"], source.as_str(), "{listed}");

    // The source's log names the sender's delivery id and the event it became.
    let (s, log) = api
        .call(
            "GET",
            &format!("/v1/sources/{source}/requests"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        log["data"][0]["delivery_id"],
        "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    );
    assert_eq!(log["data"][0]["event_id"], event.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sources_crud_masks_credentials_and_isolates_tenants() {
    let stack = Stack::deploy("inbound-crud").unwrap();
    let api = ApiServer::start(&stack, &[]).await.unwrap();
    let a = api.app_with_key("tenant-a").await;
    let b = api.app_with_key("tenant-b").await;

    let (id, path) = create_source(
        &api,
        &a,
        json!({"name": "gh", "auth": {"mode": "github", "secret": "top-secret"}}),
    )
    .await;
    assert!(id.starts_with("src_") && id.len() == 36, "{id}");
    let (s, got) = api
        .call("GET", &format!("/v1/sources/{id}"), Some(&a), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(got["auth"], json!({"mode": "github", "secret": "***"}));
    assert_eq!(
        got["event_type"],
        json!({"from": "header", "name": "x-github-event"})
    );
    assert_eq!(got["object_type"], "inbound");

    // A PATCH that echoes the masked auth keeps the secret: requests still verify.
    let (s, patched) = api
        .call(
            "PATCH",
            &format!("/v1/sources/{id}"),
            Some(&a),
            Some(json!({"name": "github", "auth": got["auth"].clone()})),
        )
        .await;
    assert_eq!(
        (s, patched["name"].as_str()),
        (200, Some("github")),
        "{patched}"
    );
    let body = r#"{"zen":"hi"}"#;
    let headers = with(
        sign("github", "top-secret", body, now(), "p1"),
        &[
            ("X-GitHub-Event", "ping"),
            ("content-type", "application/json"),
        ],
    );
    assert_eq!(post(&api, &path, &headers, body).await.0, 202);

    // Validation: 422 in the JSON error shape.
    for bad in [
        json!({"name": "", "auth": {"mode": "none"}, "event_type": {"from": "fixed", "value": "a"}}),
        json!({"name": "x", "auth": {"mode": "none"}}),
        json!({"name": "x", "auth": {"mode": "teleport"}}),
        json!({"name": "x", "auth": {"mode": "github", "secret": ""}}),
        json!({"name": "x", "auth": {"mode": "github", "secret": "***"}}),
        json!({"name": "x", "auth": {"mode": "standard_webhooks", "secret": "not base64!"}}),
        json!({"name": "x", "auth": {"mode": "stripe", "secret": "s", "tolerance_secs": 0}}),
        json!({"name": "x", "auth": {"mode": "hmac", "header": "bad header", "algorithm": "sha256", "encoding": "hex", "secret": "s"}}),
        json!({"name": "x", "auth": {"mode": "none"}, "event_type": {"from": "json_pointer", "pointer": "type"}}),
        json!({"name": "x", "auth": {"mode": "none"}, "event_type": {"from": "fixed", "value": "a..b"}}),
    ] {
        let (s, e) = api
            .call("POST", "/v1/sources", Some(&a), Some(bad.clone()))
            .await;
        assert_eq!(
            (s, e["error"]["code"].as_str()),
            (422, Some("validation_failed")),
            "{bad}: {e}"
        );
    }

    // B sees none of it, on every route.
    for (method, p, body) in [
        ("GET", format!("/v1/sources/{id}"), None),
        (
            "PATCH",
            format!("/v1/sources/{id}"),
            Some(json!({"name": "mine"})),
        ),
        ("DELETE", format!("/v1/sources/{id}"), None),
        ("GET", format!("/v1/sources/{id}/requests"), None),
    ] {
        let (s, e) = api.call(method, &p, Some(&b), body).await;
        assert_eq!(s, 404, "B {method} {p}: {e}");
    }
    let (s, list) = api.call("GET", "/v1/sources", Some(&b), None).await;
    assert_eq!((s, list["data"].as_array().unwrap().len()), (200, 0));
    let (s, _) = api.call("GET", "/v1/sources", Some(ADMIN_KEY), None).await;
    assert_eq!(s, 403, "the admin key does not act as an app");
    let (s, _) = api.call("GET", "/v1/sources", None, None).await;
    assert_eq!(s, 401);
    let (s, list) = api.call("GET", "/v1/sources", Some(&a), None).await;
    assert_eq!((s, list["data"].as_array().unwrap().len()), (200, 1));
    assert!(!list.to_string().contains("top-secret"));
    let (s, e) = api
        .call("GET", "/v1/sources?cursor=bm9wZQ", Some(&a), None)
        .await;
    assert_eq!(s, 400, "a cursor this listing did not hand out: {e}");

    // At most 100 sources per app (checked at creation).
    for i in 1..100 {
        let body = json!({"name": format!("s{i}"), "auth": {"mode": "none"}, "event_type": {"from": "fixed", "value": "x"}});
        let (s, e) = api.call("POST", "/v1/sources", Some(&a), Some(body)).await;
        assert_eq!(s, 201, "source {i}: {e}");
    }
    let (s, e) = api
        .call(
            "POST",
            "/v1/sources",
            Some(&a),
            Some(json!({"name": "one more",
        "auth": {"mode": "none"}, "event_type": {"from": "fixed", "value": "x"}})),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (422, Some("validation_failed")),
        "{e}"
    );
    let (s, page) = api
        .call("GET", "/v1/sources?limit=60", Some(&a), None)
        .await;
    assert_eq!((s, page["data"].as_array().unwrap().len()), (200, 60));
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = api
        .call(
            "GET",
            &format!("/v1/sources?limit=60&cursor={cursor}"),
            Some(&a),
            None,
        )
        .await;
    assert_eq!(rest["data"].as_array().unwrap().len(), 40, "paged through");

    // Deleting an app deletes its sources: their URLs answer 404.
    let (_, b_path) = create_source(
        &api,
        &b,
        json!({"name": "b", "auth": {"mode": "none"},
        "event_type": {"from": "fixed", "value": "x"}}),
    )
    .await;
    let json_type = [("content-type".to_owned(), "application/json".to_owned())];
    assert_eq!(post(&api, &b_path, &json_type, "{}").await.0, 202);
    let (s, _) = api
        .call("DELETE", "/v1/apps/tenant-b", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(s, 204);
    assert_eq!(post(&api, &b_path, &json_type, "{}").await.0, 404);

    // Deleted: gone from the API, and its URL answers 404.
    let (s, _) = api
        .call("DELETE", &format!("/v1/sources/{id}"), Some(&a), None)
        .await;
    assert_eq!(s, 204);
    let (s, _) = api
        .call("GET", &format!("/v1/sources/{id}"), Some(&a), None)
        .await;
    assert_eq!(s, 404);
    assert_eq!(post(&api, &path, &headers, body).await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oversized_bodies_get_413_and_floods_429() {
    let stack = Stack::deploy("inbound-limits").unwrap();
    let api = ApiServer::start(&stack, &[]).await.unwrap();
    let key = api.app_with_key("shop").await;
    let (_, path) = create_source(
        &api,
        &key,
        json!({"name": "n", "auth": {"mode": "none"},
        "event_type": {"from": "fixed", "value": "big"}}),
    )
    .await;
    let json_type = [("content-type".to_owned(), "application/json".to_owned())];
    // Within the request limit (1 MiB), over what one queue message carries: a
    // file's base64 is a third larger than the file.
    let file = [(
        "content-type".to_owned(),
        "application/octet-stream".to_owned(),
    )];
    let (s, e) = post(&api, &path, &file, vec![7u8; 900 * 1024]).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (413, Some("payload_too_large")),
        "{e}"
    );
    assert_eq!(post(&api, &path, &file, vec![7u8; 300 * 1024]).await.0, 202);

    // Over HERALD_API_MAX_BODY_BYTES: 413 before anything is read further; and the
    // app's rate limit (1 a second, bursts of 2) counts inbound requests too.
    let limited = ApiServer::start(
        &stack,
        &[
            ("HERALD_API_MAX_BODY_BYTES", "2048"),
            ("HERALD_API_RATE_LIMIT", "1"),
        ],
    )
    .await
    .unwrap();
    let (s, e) = post(
        &limited,
        &path,
        &json_type,
        json!({"a": "x".repeat(4096)}).to_string(),
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (413, Some("payload_too_large")),
        "{e}"
    );
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(post(&limited, &path, &json_type, "{}").await);
    }
    let limited_ones: Vec<&(u16, Value)> = statuses.iter().filter(|(s, _)| *s == 429).collect();
    assert!(!limited_ones.is_empty(), "{statuses:?}");
    assert_eq!(limited_ones[0].1["error"]["code"], "rate_limited");
    assert!(
        statuses.iter().all(|(s, _)| [202, 429].contains(s)),
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cli_manages_sources_and_herald_serve_ingests() {
    let (_stack, _scratch, serve, herald) = crate::cli::api_setup("inbound-cli").await.unwrap();
    let added = herald
        .run(&[
            "--json",
            "sources",
            "add",
            "--name",
            "ci",
            "--auth",
            "api-key",
            "--key-in",
            "header",
            "--key-name",
            "X-Token",
            "--key",
            "cli-key",
            "--event-type",
            "build.done",
        ])
        .await
        .ok()
        .json();
    let id = added["id"].as_str().unwrap().to_owned();
    assert_eq!(added["auth"]["key"], "***");
    let text = herald.run(&["sources", "get", &id]).await.ok().stdout;
    assert!(
        text.contains(&format!("{}/in/{id}", serve.url)) && !text.contains("cli-key"),
        "{text}"
    );
    let listed = herald.run(&["sources", "list"]).await.ok().stdout;
    assert!(
        listed.contains(&id) && listed.contains("api_key"),
        "{listed}"
    );

    let client = reqwest::Client::new();
    let ingest = format!("{}/in/{id}", serve.url);
    let send = |token: &'static str| {
        client
            .post(&ingest)
            .header("x-token", token)
            .header("content-type", "application/json")
            .body("{}")
            .send()
    };
    assert_eq!(send("cli-key").await.unwrap().status().as_u16(), 202);
    assert_eq!(send("nope").await.unwrap().status().as_u16(), 401);
    let log = herald.run(&["sources", "requests", &id]).await.ok().stdout;
    assert!(
        log.contains("202 accepted") && log.contains("401 rejected"),
        "{log}"
    );

    let updated = herald
        .run(&["--json", "sources", "update", &id, "--name", "builds"])
        .await
        .ok()
        .json();
    assert_eq!(updated["name"], "builds");
    assert_eq!(
        send("cli-key").await.unwrap().status().as_u16(),
        202,
        "the key survives a rename"
    );
    assert_ne!(
        herald.run(&["sources", "update", &id]).await.code,
        0,
        "nothing to change"
    );
    herald.run(&["sources", "rm", &id]).await.ok();
    assert_eq!(send("cli-key").await.unwrap().status().as_u16(), 404);
}

#[test]
fn no_body_or_header_makes_the_ingest_answer_5xx() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let stack = Stack::deploy("inbound-fuzz").unwrap();
    let (router, paths) = rt.block_on(async {
        let mut vars: std::collections::HashMap<String, String> = stack.env.clone();
        vars.insert("HERALD_ADMIN_KEY".into(), ADMIN_KEY.into());
        vars.insert("HERALD_API_RATE_LIMIT".into(), "0".into());
        let config = herald_api::ApiConfig::from_vars(vars).unwrap();
        let state = herald_api::AppState::connect(config, &aws().await).await.unwrap();
        let app = herald_api::router(state.clone());
        let call = |method: &str, path: &str, key: &str, body: Value| {
            Request::builder()
                .method(method)
                .uri(path)
                .header("authorization", format!("Bearer {key}"))
                .body(Body::from(body.to_string()))
                .unwrap()
        };
        let r = app.clone().oneshot(call("POST", "/v1/apps", ADMIN_KEY, json!({"id": "fuzz", "name": "fuzz"}))).await.unwrap();
        assert_eq!(r.status(), 201);
        let r = app.clone().oneshot(call("POST", "/v1/apps/fuzz/keys", ADMIN_KEY, Value::Null)).await.unwrap();
        let key: Value = serde_json::from_slice(&axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap()).unwrap();
        let key = key["key"].as_str().unwrap().to_owned();
        let mut paths = Vec::new();
        for auth in [
            json!({"mode": "none"}),
            json!({"mode": "github", "secret": "s"}),
            json!({"mode": "stripe", "secret": "whsec_s"}),
            json!({"mode": "standard_webhooks", "secret": STD_SECRET}),
            json!({"mode": "shopify", "secret": "s"}),
            json!({"mode": "basic", "username": "u", "password": "p"}),
            json!({"mode": "api_key", "in": "query", "name": "k", "key": "k"}),
        ] {
            let body = json!({"name": "f", "auth": auth, "event_type": {"from": "json_pointer", "pointer": "/type"}});
            let r = app.clone().oneshot(call("POST", "/v1/sources", &key, body)).await.unwrap();
            let out: Value = serde_json::from_slice(&axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap()).unwrap();
            paths.push(out["ingest_path"].as_str().unwrap().to_owned());
        }
        // The ingest's own router, as its Lambda serves it.
        (herald_api::ingest_router(state), paths)
    });

    let cases = std::env::var("HERALD_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let names = prop::sample::select(vec![
        "content-type",
        "authorization",
        "x-hub-signature-256",
        "x-github-event",
        "x-github-delivery",
        "stripe-signature",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "x-shopify-hmac-sha256",
        "x-shopify-webhook-id",
        "content-disposition",
    ]);
    let value = prop_oneof![
        Just("application/json".to_owned()),
        Just("text/xml".to_owned()),
        Just("multipart/form-data; boundary=b".to_owned()),
        Just("application/x-www-form-urlencoded".to_owned()),
        Just("t=1,v1=00".to_owned()),
        Just("v1,AAAA".to_owned()),
        "[ -~]{0,60}",
    ];
    let strategy = (
        prop::sample::select(paths),
        prop::option::of("[a-z]{1,3}=[a-z0-9%]{0,8}"),
        prop::collection::vec((names, value), 0..6),
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..400),
            ".{0,200}".prop_map(String::into_bytes),
            Just(br#"{"type":"a.b","id":"x"}"#.to_vec()),
            Just(b"<a b='1'><c>t</c></a>".to_vec()),
            Just(b"--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\n\r\nzz\r\n--b--\r\n".to_vec()),
        ],
    );
    runner
        .run(&strategy, |(path, query, headers, body)| {
            let uri = match &query {
                Some(q) => format!("{path}?{q}"),
                None => path.clone(),
            };
            let mut req = Request::post(&uri);
            for (k, v) in &headers {
                if let Ok(v) = axum::http::HeaderValue::from_str(v) {
                    req = req.header(*k, v);
                }
            }
            let req = req.body(Body::from(body.clone())).unwrap();
            let resp = rt.block_on(router.clone().oneshot(req)).unwrap();
            let status = resp.status();
            let bytes = rt
                .block_on(axum::body::to_bytes(resp.into_body(), 1 << 20))
                .unwrap();
            prop_assert!(
                !status.is_server_error(),
                "{status} for {uri} {headers:?}: {}",
                String::from_utf8_lossy(&bytes)
            );
            let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            prop_assert!(
                json.is_object(),
                "{status}: not JSON: {}",
                String::from_utf8_lossy(&bytes)
            );
            Ok(())
        })
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delivery_id_claimed_by_a_request_that_never_queued_is_freed_when_its_lease_runs_out() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let stack = Stack::deploy("inbound-lease").unwrap();
    let api = ApiServer::start(&stack, &[]).await.unwrap();
    let key = api.app_with_key("shop").await;
    let (id, path) = create_source(
        &api,
        &key,
        json!({"name": "gh", "auth": {"mode": "github", "secret": "s"}}),
    )
    .await;
    // A request that claimed delivery id d-crash and died before queueing its event
    // (the item is what the ingest writes at claim time: docs/inbound.md, Storage).
    let dynamo = aws_sdk_dynamodb::Client::new(&aws().await);
    let table = stack.var("HERALD_IDEMPOTENCY_TABLE");
    let pk = format!("#in#{id}#d-crash");
    let n = |v: i64| AttributeValue::N(v.to_string());
    dynamo
        .put_item()
        .table_name(table)
        .item("pk", AttributeValue::S(pk.clone()))
        .item("event_id", AttributeValue::S("evt_lost".into()))
        .item("expires_at", n(now() + 86_400))
        .item("lease_until", n(now() + 60))
        .item("queued", AttributeValue::Bool(false))
        .send()
        .await
        .unwrap();
    let body = r#"{"zen":"x"}"#;
    let headers = with(
        sign("github", "s", body, now(), "d-crash"),
        &[
            ("X-GitHub-Event", "ping"),
            ("content-type", "application/json"),
        ],
    );
    let (s, e) = post(&api, &path, &headers, body).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("conflict")),
        "under way: retry later: {e}"
    );

    // The lease ran out: the sender's retry takes the id over and is published.
    dynamo
        .update_item()
        .table_name(table)
        .key("pk", AttributeValue::S(pk))
        .update_expression("SET lease_until = :past")
        .expression_attribute_values(":past", n(now() - 1))
        .send()
        .await
        .unwrap();
    let (s, first) = post(&api, &path, &headers, body).await;
    assert_eq!(
        (s, first["duplicate"].as_bool()),
        (202, Some(false)),
        "{first}"
    );
    let (s, again) = post(&api, &path, &headers, body).await;
    assert_eq!(
        (s, again["event_id"].clone()),
        (200, first["event_id"].clone()),
        "queued now: a duplicate"
    );
}
