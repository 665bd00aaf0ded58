//! Payload formats end to end (issue #16, items 1 and 2): one published event, with
//! an actor and changes, reaches a Para webhook with a form body, a Para JSON one, a
//! standard form one and a standard JSON one, and each receiver checks it the way its
//! receivers do: Para's by recomputing `Base64(HmacSHA256(payload, secret))` over the
//! payload JSON (the `payload` form field URL-decoded, or the body), as Para's
//! documentation tells them; the standard ones with the reference `standardwebhooks`
//! crate over the raw body. The actor and changes survive the queue, the history (a
//! re-send carries them) and the event listings; a PATCH switches a webhook's format;
//! bad formats, actors and changes are refused with 422.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use herald_core::{webhook_id, EventId, Secret, SubscriptionId};
use herald_testing::{
    console_session, wait_until, ApiServer, Herald, Received, Receiver, Stack, Worker,
};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::HERALD;

/// What Para's documentation tells a receiver to do, written here without Herald's
/// code: take the payload (the `payload` field of a form body, URL-decoded; else the
/// body), compute `Base64(HmacSHA256(payload, secret))` with the secret's text as the
/// key, and compare it with `X-Webhook-Signature`. Returns the payload.
fn para_verify(secret: &str, r: &Received) -> Vec<u8> {
    let payload = if r.header("content-type") == "application/x-www-form-urlencoded" {
        let fields: BTreeMap<String, String> =
            url::form_urlencoded::parse(&r.body).into_owned().collect();
        assert_eq!(fields.len(), 1, "one form field");
        fields["payload"].clone().into_bytes()
    } else {
        r.body.to_vec()
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&payload);
    let expected = BASE64.encode(mac.finalize().into_bytes());
    assert_eq!(
        r.header("x-webhook-signature"),
        expected,
        "X-Webhook-Signature is Base64(HmacSHA256(payload, secret))"
    );
    payload
}

/// The envelope of a standard delivery: the body, or the `payload` form field.
fn standard_envelope(r: &Received) -> Value {
    if r.header("content-type") == "application/x-www-form-urlencoded" {
        let fields: BTreeMap<String, String> =
            url::form_urlencoded::parse(&r.body).into_owned().collect();
        assert_eq!(fields.len(), 1, "one form field");
        serde_json::from_str(&fields["payload"]).unwrap()
    } else {
        r.json()
    }
}

/// One of the four webhooks under test.
struct Hook {
    name: &'static str,
    receiver: Receiver,
    id: String,
    secret: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_format_delivers_the_same_event_and_verifies_as_its_receivers_verify() {
    let stack = Stack::deploy("formats").unwrap();
    let api = ApiServer::start(&stack, &[]).await.unwrap();
    let app_key = api.app_with_key("shop").await;
    let key = Some(app_key.as_str());
    let _worker = Worker::spawn(&stack, &[]).unwrap();

    let shapes = [
        ("para-form", json!({"format": "para"}), ("para", "form")),
        (
            "para-json",
            json!({"format": "para", "content_type": "json"}),
            ("para", "json"),
        ),
        (
            "standard-form",
            json!({"content_type": "form"}),
            ("standard", "form"),
        ),
        ("standard-json", json!({}), ("standard", "json")),
    ];
    let mut hooks = Vec::new();
    for (name, shape, (format, content_type)) in shapes {
        let receiver = Receiver::ok().await;
        let mut body = json!({"url": receiver.url(), "events": ["update", "create"]});
        body.as_object_mut()
            .unwrap()
            .extend(shape.as_object().unwrap().clone());
        let w = api.create_webhook(&app_key, body).await;
        assert_eq!(
            (w["format"].as_str(), w["content_type"].as_str()),
            (Some(format), Some(content_type)),
            "{name}: {w}"
        );
        hooks.push(Hook {
            name,
            receiver,
            id: w["id"].as_str().unwrap().to_owned(),
            secret: w["secret"].as_str().unwrap().to_owned(),
        });
    }

    // Characters every encoding must carry: spaces, '&', '=', '+', '%', quotes, non-ASCII.
    let data = json!({"id": "tag:acpi", "type": "tag", "name": "Ada & Bob = 100% \"ü\" + ☃"});
    let actor = json!({"id": "u_42", "type": "user", "name": "Ada Lovelace"});
    let changes = json!({"name": ["Ada", "Ada & Bob = 100% \"ü\" + ☃"], "count": [null, 1]});
    let (s, published) = api
        .call(
            "POST",
            "/v1/events",
            key,
            Some(json!({"type": "update", "object_type": "tag", "data": data,
                        "actor": actor, "changes": changes})),
        )
        .await;
    assert_eq!(s, 202, "{published}");
    let event_id = published["ids"][0].as_str().unwrap().to_owned();
    assert!(
        wait_until(Duration::from_secs(60), || async {
            hooks.iter().all(|h| h.receiver.count() >= 1)
        })
        .await,
        "every receiver got the event"
    );

    let mut para_payloads = Vec::new();
    for h in &hooks {
        let got = h.receiver.received();
        assert_eq!(got.len(), 1, "{}: one delivery", h.name);
        let r = &got[0];
        assert_eq!(
            r.header("webhook-id"),
            webhook_id(
                &EventId::parse(&event_id).unwrap(),
                &SubscriptionId::new(h.id.as_str())
            )
            .as_str(),
            "{}: webhook-id, for dedupe",
            h.name
        );
        let form = h.name.ends_with("form");
        assert_eq!(
            r.header("content-type"),
            if form {
                "application/x-www-form-urlencoded"
            } else {
                "application/json"
            },
            "{}",
            h.name
        );
        if form {
            assert!(r.body.starts_with(b"payload="), "{}", h.name);
        }
        if h.name.starts_with("para") {
            assert_eq!(r.header("x-para-event"), "update");
            assert_eq!(r.header("webhook-signature"), "", "no standard signature");
            let payload = para_verify(&h.secret, r);
            let p: Value = serde_json::from_slice(&payload).unwrap();
            assert_eq!(p["appid"], "shop");
            assert_eq!(p["event"], "update");
            assert_eq!(p["items"], json!([data]), "one object, as a list");
            assert!(p["timestamp"].as_i64().unwrap() > 1_700_000_000_000, "ms");
            assert_eq!(p["actor"], actor);
            assert_eq!(
                p["changes"],
                json!({"count": [null, 1], "name": changes["name"]})
            );
            let keys: Vec<&String> = p.as_object().unwrap().keys().collect();
            assert_eq!(
                keys.len(),
                6,
                "Para's four keys, actor and changes: {keys:?}"
            );
            para_payloads.push(payload);
        } else {
            assert_eq!(r.header("x-webhook-signature"), "");
            let secret = Secret::parse(&h.secret).unwrap();
            crate::reference_verify(&secret, r)
                .unwrap_or_else(|e| panic!("{}: the standardwebhooks crate: {e:?}", h.name));
            let e = standard_envelope(r);
            assert_eq!(e["id"], event_id.as_str());
            assert_eq!(e["type"], "update");
            assert_eq!(e["object_type"], "tag");
            assert_eq!(e["data"], data);
            assert_eq!(e["actor"], actor);
            assert_eq!(e["changes"]["name"], changes["name"]);
        }
    }
    assert_eq!(
        para_payloads[0], para_payloads[1],
        "the same Para payload, in the form and as JSON"
    );

    // `herald verify` checks each shape's capture in the scheme its headers say, and
    // names the secret; another secret, or a changed body, does not verify.
    let scratch = herald_testing::scratch_dir("formats-verify").unwrap();
    let herald = Herald::new(HERALD, &stack, &scratch);
    let other_secret = Secret::generate().expose();
    for h in &hooks {
        let r = &h.receiver.received()[0];
        let capture = |body: &str| {
            let path = scratch.join(format!("{}-{}.json", h.name, body.len()));
            let doc = json!({"headers": r.headers, "body": body});
            std::fs::write(&path, doc.to_string()).unwrap();
            path.to_string_lossy().into_owned()
        };
        let body = std::str::from_utf8(&r.body).unwrap();
        let file = capture(body);
        let args = |secrets: &[&str], file: &str| {
            let mut a = vec!["--json", "verify", "--no-tolerance", "--file"];
            a.push(file);
            for s in secrets {
                a.extend(["--secret", s]);
            }
            a.into_iter().map(str::to_owned).collect::<Vec<_>>()
        };
        let run = |a: Vec<String>| {
            let herald = &herald;
            async move {
                let refs: Vec<&str> = a.iter().map(String::as_str).collect();
                herald.run(&refs).await
            }
        };
        let good = run(args(&[&other_secret, &h.secret], &file)).await;
        assert_eq!(good.code, 0, "{}: {good:#?}", h.name);
        assert_eq!(good.json()["secret"], 2, "{}", h.name);
        let wrong = run(args(&[&other_secret], &file)).await;
        assert_eq!(wrong.code, 1, "{}: {wrong:#?}", h.name);
        let changed = capture(&body.replacen("tag", "tab", 1));
        let changed = run(args(&[&h.secret], &changed)).await;
        assert_eq!(changed.code, 1, "{}: {changed:#?}", h.name);
    }

    // The console's attempt page shows the headers each shape was sent with, as its
    // receiver got them (the HTTP client's own left out), the signature hidden.
    let console = format!("{}/console", api.base);
    let cookie = console_session(&console, &app_key).await.unwrap().cookie;
    let http = reqwest::Client::new();
    for h in &hooks {
        let url = format!("{console}/events/{event_id}/attempts/{}/1", h.id);
        let get = || http.get(&url).header("cookie", &cookie).send();
        assert!(
            wait_until(Duration::from_secs(30), || async {
                get().await.unwrap().status() == 200
            })
            .await,
            "{}: the attempt is in the history",
            h.name
        );
        let page = get().await.unwrap().text().await.unwrap();
        let block = page
            .split("<pre id=\"request-headers\">")
            .nth(1)
            .and_then(|rest| rest.split("</pre>").next())
            .unwrap_or_else(|| panic!("{}: no request headers in {page}", h.name));
        let shown: BTreeMap<&str, &str> = block
            .lines()
            .skip(1)
            .filter_map(|line| line.split_once(": "))
            .collect();
        let r = &h.receiver.received()[0];
        let sent: BTreeMap<&str, &str> = r
            .headers
            .iter()
            .filter(|(name, _)| {
                !["host", "content-length", "user-agent", "accept"].contains(&name.as_str())
            })
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        assert_eq!(
            shown.keys().collect::<Vec<_>>(),
            sent.keys().collect::<Vec<_>>(),
            "{}: {block}",
            h.name
        );
        for (name, value) in &shown {
            if value.contains("(not shown)") {
                assert!(!block.contains(sent[name]), "{}: {name} shown", h.name);
            } else {
                assert_eq!(sent[name], *value, "{}: {name}", h.name);
            }
        }
    }

    // The event as the API keeps it, listed and alone.
    let (_, got) = api
        .call("GET", &format!("/v1/events/{event_id}"), key, None)
        .await;
    assert_eq!(got["actor"], actor, "{got}");
    assert_eq!(got["changes"]["count"], json!([null, 1]), "{got}");
    let (_, listed) = api.call("GET", "/v1/events", key, None).await;
    assert_eq!(listed["data"][0]["id"], event_id.as_str());
    assert_eq!(listed["data"][0]["actor"]["name"], "Ada Lovelace");
    assert_eq!(listed["data"][0]["changes"], got["changes"]);

    // A re-send reads the event back from the history: actor and changes included.
    let para_form = &hooks[0];
    let (s, resent) = api
        .call(
            "POST",
            &format!("/v1/events/{event_id}/resend"),
            key,
            Some(json!({"subscription_id": para_form.id})),
        )
        .await;
    assert_eq!(s, 202, "{resent}");
    assert!(
        wait_until(Duration::from_secs(60), || async {
            para_form.receiver.count() >= 2
        })
        .await,
        "the re-send arrived"
    );
    let again = &para_form.receiver.received()[1];
    assert_eq!(
        para_verify(&para_form.secret, again),
        para_payloads[0],
        "the same payload"
    );

    // PATCH switches the standard JSON webhook to Para: the content type becomes
    // Para's default, the form; then to JSON alone.
    let std_json = &hooks[3];
    let path = format!("/v1/webhooks/{}", std_json.id);
    let (s, w) = api
        .call("PATCH", &path, key, Some(json!({"format": "para"})))
        .await;
    assert_eq!(
        (s, &w["format"], &w["content_type"]),
        (200, &json!("para"), &json!("form")),
        "{w}"
    );
    let (_, w) = api.call("GET", &path, key, None).await;
    assert_eq!(
        (&w["format"], &w["content_type"]),
        (&json!("para"), &json!("form"))
    );
    let (s, _) = api
        .call(
            "POST",
            "/v1/events",
            key,
            Some(json!({"type": "create", "object_type": "tag", "data": [{"id": "t1"}, {"id": "t2"}]})),
        )
        .await;
    assert_eq!(s, 202);
    assert!(
        wait_until(Duration::from_secs(60), || async {
            std_json.receiver.count() >= 2
        })
        .await,
        "the second event arrived"
    );
    let r = &std_json.receiver.received()[1];
    assert_eq!(
        r.header("content-type"),
        "application/x-www-form-urlencoded"
    );
    assert_eq!(r.header("x-para-event"), "create");
    let p: Value = serde_json::from_slice(&para_verify(&std_json.secret, r)).unwrap();
    assert_eq!(
        p["items"],
        json!([{"id": "t1"}, {"id": "t2"}]),
        "a list as it is"
    );
    assert!(
        p.get("actor").is_none() && p.get("changes").is_none(),
        "{p}"
    );
    let (s, w) = api
        .call("PATCH", &path, key, Some(json!({"content_type": "json"})))
        .await;
    assert_eq!(
        (s, &w["format"], &w["content_type"]),
        (200, &json!("para"), &json!("json")),
        "{w}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_formats_actors_and_changes_are_refused_and_the_cli_sets_and_shows_formats() {
    let stack = Stack::deploy("formats-api").unwrap();
    // Request bodies up to 2 MiB, so that the event's own limit (the queue's) is the
    // one an oversized event meets.
    let api = ApiServer::start(&stack, &[("HERALD_API_MAX_BODY_BYTES", "2097152")])
        .await
        .unwrap();
    let app_key = api.app_with_key("shop").await;
    let key = Some(app_key.as_str());
    let url = "http://127.0.0.1:9/hook";

    for (shape, says) in [
        (
            json!({"format": "xml"}),
            "format must be \"standard\" or \"para\"",
        ),
        (json!({"format": "Para"}), "format must be"),
        (
            json!({"content_type": "yaml"}),
            "content_type must be \"json\" or \"form\"",
        ),
        (json!({"format": 5}), "invalid type"),
        (json!({"content_type": true}), "invalid type"),
        (json!({"url_encoded": true}), "unknown field"),
    ] {
        let mut body = json!({"url": url, "events": ["*"]});
        body.as_object_mut()
            .unwrap()
            .extend(shape.as_object().unwrap().clone());
        let (s, e) = api.call("POST", "/v1/webhooks", key, Some(body)).await;
        assert_eq!(s, 422, "{shape}: {e}");
        assert_eq!(e["error"]["code"], "validation_failed", "{shape}: {e}");
        let message = e["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{shape}: {message}");
    }
    let w = api
        .create_webhook(&app_key, json!({"url": url, "events": ["*"]}))
        .await;
    assert_eq!(
        (&w["format"], &w["content_type"]),
        (&json!("standard"), &json!("json"))
    );
    let path = format!("/v1/webhooks/{}", w["id"].as_str().unwrap());
    for bad in [json!({"format": "xml"}), json!({"content_type": "csv"})] {
        let (s, e) = api.call("PATCH", &path, key, Some(bad.clone())).await;
        assert_eq!(
            (s, &e["error"]["code"]),
            (422, &json!("validation_failed")),
            "{bad}: {e}"
        );
    }

    let many: serde_json::Map<String, Value> = (0..101)
        .map(|i| (format!("f{i}"), json!([i, i + 1])))
        .collect();
    let event = |extra: Value| {
        let mut e = json!({"type": "update", "object_type": "user", "data": {}});
        e.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        e
    };
    for (extra, says) in [
        (
            json!({"actor": {"id": "a".repeat(257)}}),
            "actor.id is longer than 256 bytes",
        ),
        (
            json!({"actor": {"id": "u", "name": "n".repeat(300)}}),
            "actor.name is longer than 256",
        ),
        (
            json!({"actor": {"name": "Ada"}}),
            "actor.id must not be empty",
        ),
        (json!({"actor": {"id": 42}}), "actor.id must be a string"),
        (json!({"actor": "u_42"}), "actor must be an object"),
        (
            json!({"actor": {"id": "u", "email": "x"}}),
            "actor.email must be absent",
        ),
        (
            json!({"changes": Value::Object(many)}),
            "changes lists more than 100",
        ),
        (
            json!({"changes": {"status": "paid"}}),
            "changes.status must be a [before, after]",
        ),
        (
            json!({"changes": {"status": [1, 2, 3]}}),
            "changes.status must be a [before, after]",
        ),
        (json!({"changes": ["status"]}), "changes must be an object"),
        (
            json!({"changes": {"f".repeat(257): [1, 2]}}),
            "a field name in changes is longer",
        ),
    ] {
        let (s, e) = api
            .call("POST", "/v1/events", key, Some(event(extra.clone())))
            .await;
        assert_eq!(s, 422, "{extra}: {e}");
        assert_eq!(e["error"]["code"], "validation_failed");
        let message = e["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(says), "{extra}: {message}");
    }
    // In a batch, the error names the event.
    let (s, e) = api
        .call(
            "POST",
            "/v1/events",
            key,
            Some(json!({"events": [event(json!({})), event(json!({"actor": {"id": ""}}))]})),
        )
        .await;
    assert_eq!(s, 422);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("events[1].actor.id"),
        "{e}"
    );
    // Changes count within the event's size limit (the queue's message size less the
    // room kept for retries): 100 fields of 11 KB are too large an event.
    let big: serde_json::Map<String, Value> = (0..100)
        .map(|i| (format!("f{i}"), json!(["x".repeat(5600), "y".repeat(5600)])))
        .collect();
    let (s, e) = api
        .call(
            "POST",
            "/v1/events",
            key,
            Some(event(json!({"changes": Value::Object(big)}))),
        )
        .await;
    assert_eq!(s, 413, "{e}");
    assert_eq!(e["error"]["code"], "payload_too_large", "{e}");
    println!("an event with 1.1 MB of changes: {e}");

    // The CLI: --format and --content-type on add and update, shown by get and list.
    let scratch = herald_testing::scratch_dir("formats-cli").unwrap();
    let herald = Herald::new(HERALD, &stack, &scratch)
        .with("HERALD_API_URL", &api.base)
        .with("HERALD_API_KEY", &app_key);
    let added = herald
        .run(&[
            "--json", "webhooks", "add", "--url", url, "--format", "para",
        ])
        .await
        .ok()
        .json();
    assert_eq!(
        (&added["format"], &added["content_type"]),
        (&json!("para"), &json!("form"))
    );
    let id = added["id"].as_str().unwrap();
    crate::assert_webhook_shows(&herald, id, "format:       para, form", "format=para/form").await;
    let updated = herald
        .run(&["--json", "webhooks", "update", id, "--content-type", "json"])
        .await
        .ok()
        .json();
    assert_eq!(
        (&updated["format"], &updated["content_type"]),
        (&json!("para"), &json!("json"))
    );
    let updated = herald
        .run(&[
            "--json",
            "webhooks",
            "update",
            id,
            "--format",
            "standard",
            "--content-type",
            "form",
        ])
        .await
        .ok()
        .json();
    assert_eq!(
        (&updated["format"], &updated["content_type"]),
        (&json!("standard"), &json!("form"))
    );
    let usage = herald
        .run(&["webhooks", "update", id, "--format", "xml"])
        .await;
    assert_eq!(usage.code, 2, "{usage:#?}");

    // The CLI publishes an actor and changes, and the API checks them.
    let published = herald
        .run(&[
            "--json",
            "publish",
            "--type",
            "update",
            "--object-type",
            "user",
            "--data",
            "{}",
            "--actor-id",
            "u_1",
            "--actor-type",
            "user",
            "--actor-name",
            "Ada",
            "--changes",
            r#"{"status":["draft","paid"]}"#,
        ])
        .await
        .ok()
        .json();
    assert!(published["ids"][0].is_string(), "{published}");
    let refused = herald
        .run(&[
            "publish",
            "--type",
            "update",
            "--object-type",
            "user",
            "--actor-id",
            "u_1",
            "--changes",
            r#"{"status":"paid"}"#,
        ])
        .await;
    assert_eq!(refused.code, 1, "{refused:#?}");
    assert!(refused.stderr.contains("changes.status"), "{refused:#?}");
    std::fs::remove_dir_all(&scratch).ok();
}
