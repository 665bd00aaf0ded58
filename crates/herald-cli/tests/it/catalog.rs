//! The event-type catalog (issue #16, item 6) over real HTTP against the emulator:
//! create, list, get, update and delete with their validation; JSON Schemas checked as
//! schemas when written and against each event's `data` when published (422 naming
//! the failing place); webhooks that name types missing from a non-empty catalog
//! refused; tenant isolation on every route; and the `herald event-types` commands.

use herald_testing::{ApiServer, Herald, Stack};
use serde_json::{json, Value};

use crate::HERALD;

fn invoice_schema() -> Value {
    json!({
        "type": "object",
        "required": ["id", "amount"],
        "properties": {
            "id": {"type": "string"},
            "amount": {"type": "integer", "minimum": 0},
            "lines": {"type": "array", "items": {"type": "object", "properties": {"sku": {"type": "string"}}}}
        }
    })
}

/// Publishes one event of `event_type` with `data`; the status and the answer.
async fn publish(api: &ApiServer, key: &str, event_type: &str, data: Value) -> (u16, Value) {
    api.call(
        "POST",
        "/v1/events",
        Some(key),
        Some(json!({"type": event_type, "object_type": "invoice", "data": data})),
    )
    .await
}

fn message(e: &Value) -> &str {
    e["error"]["message"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_catalog_checks_schemas_events_and_webhook_filters() {
    let stack = Stack::deploy("catalog").unwrap();
    let api = ApiServer::start(&stack, &[]).await.unwrap();
    let key = api.app_with_key("shop").await;
    let k = Some(key.as_str());

    // No catalog: any type goes in a webhook, and events are not checked.
    let (s, list) = api.call("GET", "/v1/event-types", k, None).await;
    assert_eq!((s, list["data"].as_array().unwrap().len()), (200, 0));
    api.create_webhook(
        &key,
        json!({"url": "http://127.0.0.1:9/a", "events": ["anything.goes"]}),
    )
    .await;

    // Bad entries are refused with 422 naming what is wrong.
    for (body, says) in [
        (json!({"name": "bad type!"}), "name"),
        (json!({"name": "herald.webhook.disabled"}), "reserved"),
        (
            json!({"name": "x", "schema": {"type": "objec"}}),
            "schema/type",
        ),
        (
            json!({"name": "x", "schema": {"minimum": "0"}}),
            "schema/minimum",
        ),
        (
            json!({"name": "x", "schema": {"$ref": "https://example.com/s.json"}}),
            "not a valid JSON Schema",
        ),
        (json!({"name": "x", "schema": [1]}), "schema"),
        (
            json!({"name": "x", "description": "d".repeat(1025)}),
            "description",
        ),
        (json!({"name": "x", "extra": 1}), "extra"),
    ] {
        let (s, e) = api
            .call("POST", "/v1/event-types", k, Some(body.clone()))
            .await;
        assert_eq!(s, 422, "{body}: {e}");
        assert_eq!(e["error"]["code"], "validation_failed", "{e}");
        assert!(message(&e).contains(says), "{body}: {e}");
    }

    // A type with a schema.
    let (s, t) = api
        .call(
            "POST",
            "/v1/event-types",
            k,
            Some(
                json!({"name": "invoice.paid", "description": "Paid", "schema": invoice_schema()}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    assert_eq!(
        (&t["name"], &t["description"], &t["schema"]),
        (&json!("invoice.paid"), &json!("Paid"), &invoice_schema())
    );
    let (s, e) = api
        .call(
            "POST",
            "/v1/event-types",
            k,
            Some(json!({"name": "invoice.paid"})),
        )
        .await;
    assert_eq!(s, 409, "{e}");
    let (s, t) = api
        .call(
            "POST",
            "/v1/event-types",
            k,
            Some(json!({"name": "invoice.voided"})),
        )
        .await;
    assert_eq!((s, &t["schema"]), (201, &Value::Null), "{t}");

    let (s, list) = api.call("GET", "/v1/event-types", k, None).await;
    assert_eq!(s, 200);
    let names: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["invoice.paid", "invoice.voided"]);
    let (s, page) = api.call("GET", "/v1/event-types?limit=1", k, None).await;
    assert_eq!(s, 200);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (s, rest) = api
        .call("GET", &format!("/v1/event-types?cursor={cursor}"), k, None)
        .await;
    assert_eq!(
        (s, rest["data"][0]["name"].as_str()),
        (200, Some("invoice.voided"))
    );
    let (s, e) = api.call("GET", "/v1/event-types?cursor=!!", k, None).await;
    assert_eq!(s, 400, "{e}");

    // Publishing checks data against the schema, naming the failing place.
    let (s, e) = publish(
        &api,
        &key,
        "invoice.paid",
        json!({"id": "inv_1", "amount": 5}),
    )
    .await;
    assert_eq!(s, 202, "{e}");
    let (s, e) = publish(
        &api,
        &key,
        "invoice.paid",
        json!({"id": "inv_1", "amount": "5"}),
    )
    .await;
    assert_eq!(s, 422, "{e}");
    assert_eq!(e["error"]["code"], "validation_failed");
    assert!(
        message(&e)
            .starts_with("data does not match the schema of event type invoice.paid: at /amount:"),
        "{e}"
    );
    let (s, e) = publish(
        &api,
        &key,
        "invoice.paid",
        json!({"id": "inv_1", "amount": 1, "lines": [{"sku": "a"}, {"sku": 7}]}),
    )
    .await;
    assert_eq!(s, 422);
    assert!(message(&e).contains("at /lines/1/sku"), "{e}");
    let (s, e) = publish(&api, &key, "invoice.paid", json!({"id": "inv_1"})).await;
    assert_eq!(s, 422);
    assert!(
        message(&e).contains("at /:") && message(&e).contains("amount"),
        "{e}"
    );
    let (s, e) = api
        .call(
            "POST",
            "/v1/events",
            k,
            Some(json!({"events": [
                {"type": "invoice.paid", "object_type": "invoice", "data": {"id": "a", "amount": 1}},
                {"type": "invoice.paid", "object_type": "invoice", "data": {"id": "b", "amount": -1}}
            ]})),
        )
        .await;
    assert_eq!(s, 422);
    assert!(
        message(&e).starts_with("events[1].data does not match"),
        "{e}"
    );
    assert!(message(&e).contains("at /amount"), "{e}");
    // Types without a schema, and types not in the catalog, are not checked.
    for t in ["invoice.voided", "not.listed"] {
        let (s, e) = publish(&api, &key, t, json!(["anything"])).await;
        assert_eq!(s, 202, "{t}: {e}");
    }

    // Updates: description alone, the schema removed (at once on this instance),
    // and put back.
    let path = "/v1/event-types/invoice.paid";
    let (s, t) = api
        .call(
            "PATCH",
            path,
            k,
            Some(json!({"description": "Paid in full"})),
        )
        .await;
    assert_eq!(
        (s, &t["description"], &t["schema"]),
        (200, &json!("Paid in full"), &invoice_schema())
    );
    let (s, t) = api
        .call("PATCH", path, k, Some(json!({"schema": null})))
        .await;
    assert_eq!((s, &t["schema"]), (200, &Value::Null), "{t}");
    let (s, e) = publish(&api, &key, "invoice.paid", json!({"amount": "x"})).await;
    assert_eq!(s, 202, "no schema, no check: {e}");
    let (s, e) = api
        .call("PATCH", path, k, Some(json!({"schema": {"type": 1}})))
        .await;
    assert_eq!(s, 422, "{e}");
    let (s, t) = api
        .call("PATCH", path, k, Some(json!({"schema": invoice_schema()})))
        .await;
    assert_eq!((s, &t["schema"]), (200, &invoice_schema()));
    let (s, _) = publish(&api, &key, "invoice.paid", json!({"amount": "x"})).await;
    assert_eq!(s, 422, "the schema applies again at once");
    let (s, t) = api.call("GET", path, k, None).await;
    assert_eq!((s, &t["description"]), (200, &json!("Paid in full")));
    for (method, missing) in [
        ("GET", "nope"),
        ("PATCH", "nope"),
        ("DELETE", "nope"),
        ("GET", "bad%20name"),
    ] {
        let body = (method == "PATCH").then(|| json!({"description": "x"}));
        let (s, e) = api
            .call(method, &format!("/v1/event-types/{missing}"), k, body)
            .await;
        assert_eq!(s, 404, "{method} {missing}: {e}");
    }

    // With a catalog, webhooks may only name types in it (or "*", or Herald's own).
    let (s, e) = api
        .call(
            "POST",
            "/v1/webhooks",
            k,
            Some(json!({"url": "http://127.0.0.1:9/b", "events": ["invoice.paid", "invoice.refunded"]})),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    assert!(
        message(&e).contains("invoice.refunded is not in this app's event-type catalog"),
        "{e}"
    );
    assert!(!message(&e).contains("invoice.paid,"), "{e}");
    let w = api
        .create_webhook(
            &key,
            json!({"url": "http://127.0.0.1:9/b", "events": ["invoice.paid", "herald.webhook.disabled"]}),
        )
        .await;
    api.create_webhook(
        &key,
        json!({"url": "http://127.0.0.1:9/c", "events": ["*"]}),
    )
    .await;
    let webhook = format!("/v1/webhooks/{}", w["id"].as_str().unwrap());
    let (s, e) = api
        .call(
            "PATCH",
            &webhook,
            k,
            Some(json!({"events": ["invoice.gone", "invoice.lost"]})),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    assert!(
        message(&e).contains("invoice.gone, invoice.lost are not"),
        "{e}"
    );
    let (s, _) = api
        .call(
            "PATCH",
            &webhook,
            k,
            Some(json!({"events": ["invoice.voided"]})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = api
        .call(
            "PATCH",
            &webhook,
            k,
            Some(json!({"description": "no events named"})),
        )
        .await;
    assert_eq!(s, 200, "a PATCH without events is not checked");

    // Delete: gone from the catalog; webhooks listing it keep it; data unchecked.
    let (s, _) = api.call("DELETE", path, k, None).await;
    assert_eq!(s, 204);
    let (s, _) = api.call("DELETE", path, k, None).await;
    assert_eq!(s, 404);
    let (s, _) = api.call("GET", path, k, None).await;
    assert_eq!(s, 404);
    let (s, e) = publish(&api, &key, "invoice.paid", json!({"amount": "x"})).await;
    assert_eq!(s, 202, "{e}");
    let (s, w) = api.call("GET", &webhook, k, None).await;
    assert_eq!((s, &w["events"]), (200, &json!(["invoice.voided"])));
    // Deleting the last type empties the catalog: any type goes again.
    let (s, _) = api
        .call("DELETE", "/v1/event-types/invoice.voided", k, None)
        .await;
    assert_eq!(s, 204);
    api.create_webhook(
        &key,
        json!({"url": "http://127.0.0.1:9/d", "events": ["invoice.refunded"]}),
    )
    .await;

    // The CLI.
    let scratch = herald_testing::scratch_dir("catalog-cli").unwrap();
    let herald = Herald::new(HERALD, &stack, &scratch)
        .with("HERALD_API_URL", &api.base)
        .with("HERALD_API_KEY", &key);
    let empty = herald.run(&["event-types", "list"]).await.ok();
    assert!(empty.stdout.contains("no event types"), "{}", empty.stdout);
    let schema_file = scratch.join("order.schema.json");
    std::fs::write(
        &schema_file,
        json!({"type": "object", "required": ["id"]}).to_string(),
    )
    .unwrap();
    let at_file = format!("@{}", schema_file.display());
    let added = herald
        .run(&[
            "--json",
            "event-types",
            "add",
            "order.created",
            "--description",
            "An order",
            "--schema",
            &at_file,
        ])
        .await
        .ok()
        .json();
    assert_eq!(added["schema"]["required"], json!(["id"]));
    herald
        .run(&["event-types", "add", "order.shipped"])
        .await
        .ok();
    let listed = herald.run(&["event-types", "list"]).await.ok();
    let lines: Vec<&str> = listed.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", listed.stdout);
    assert!(
        lines[0].starts_with("order.created")
            && lines[0].contains("schema")
            && lines[0].contains("An order"),
        "{}",
        listed.stdout
    );
    assert!(
        lines[1].starts_with("order.shipped") && lines[1].contains("no schema"),
        "{}",
        listed.stdout
    );
    let shown = herald
        .run(&["event-types", "get", "order.created"])
        .await
        .ok();
    assert!(shown.stdout.contains("\"required\""), "{}", shown.stdout);
    let (s, e) = api
        .call(
            "POST",
            "/v1/events",
            k,
            Some(json!({"type": "order.created", "object_type": "order", "data": {}})),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    let bad = herald
        .run(&["event-types", "add", "order.lost", "--schema", "{not json"])
        .await;
    assert_ne!(bad.code, 0);
    assert!(
        bad.stderr.contains("--schema is not valid JSON"),
        "{}",
        bad.stderr
    );
    let updated = herald
        .run(&[
            "--json",
            "event-types",
            "update",
            "order.created",
            "--no-schema",
        ])
        .await
        .ok()
        .json();
    assert_eq!(updated["schema"], Value::Null);
    let refused = herald
        .run(&[
            "webhooks",
            "add",
            "--url",
            "http://127.0.0.1:9/e",
            "--events",
            "order.lost",
        ])
        .await;
    assert_ne!(refused.code, 0);
    assert!(
        refused
            .stderr
            .contains("order.lost is not in this app's event-type catalog"),
        "{}",
        refused.stderr
    );
    herald
        .run(&["event-types", "rm", "order.created"])
        .await
        .ok();
    let listed = herald
        .run(&["--json", "event-types", "list", "--all"])
        .await
        .ok()
        .json();
    assert_eq!(listed["data"].as_array().unwrap().len(), 1, "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tenant_isolation_on_every_event_type_route() {
    let stack = Stack::deploy("catalog-auth").unwrap();
    let api = ApiServer::start(&stack, &[]).await.unwrap();
    let a = api.app_with_key("tenant-a").await;
    let b = api.app_with_key("tenant-b").await;
    let (s, t) = api
        .call(
            "POST",
            "/v1/event-types",
            Some(&a),
            Some(json!({"name": "invoice.paid", "description": "A's", "schema": invoice_schema()})),
        )
        .await;
    assert_eq!(s, 201, "{t}");

    // B sees none of A's catalog, on every route.
    let path = "/v1/event-types/invoice.paid";
    for (method, body) in [
        ("GET", None),
        ("PATCH", Some(json!({"description": "mine"}))),
        ("DELETE", None),
    ] {
        let (s, e) = api.call(method, path, Some(&b), body).await;
        assert_eq!(s, 404, "B {method} {path}: {e}");
    }
    let (s, list) = api.call("GET", "/v1/event-types", Some(&b), None).await;
    assert_eq!((s, list["data"].as_array().unwrap().len()), (200, 0));
    // A's schema does not check B's events, and A's catalog does not bind B's webhooks.
    let (s, e) = publish(&api, &b, "invoice.paid", json!({"amount": "x"})).await;
    assert_eq!(s, 202, "{e}");
    api.create_webhook(
        &b,
        json!({"url": "http://127.0.0.1:9/b", "events": ["invoice.unknown"]}),
    )
    .await;
    // B's own entry of the same name is B's.
    let (s, t) = api
        .call(
            "POST",
            "/v1/event-types",
            Some(&b),
            Some(json!({"name": "invoice.paid", "description": "B's"})),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let (s, e) = publish(&api, &b, "invoice.paid", json!({"amount": "x"})).await;
    assert_eq!(s, 202, "B's type has no schema: {e}");
    let (s, e) = publish(&api, &a, "invoice.paid", json!({"amount": "x"})).await;
    assert_eq!(s, 422, "A's still has: {e}");
    let (s, t) = api.call("GET", path, Some(&a), None).await;
    assert_eq!(
        (s, &t["description"], &t["schema"]),
        (200, &json!("A's"), &invoice_schema())
    );
    let (s, _) = api.call("DELETE", path, Some(&b), None).await;
    assert_eq!(s, 204);
    let (s, _) = api.call("GET", path, Some(&a), None).await;
    assert_eq!(s, 200, "B's delete took only B's entry");

    // Deleting an app deletes its catalog (and only its).
    let (s, _) = api
        .call(
            "DELETE",
            "/v1/apps/tenant-a",
            Some(herald_testing::ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let store = herald_store::SubscriptionStore::new(
        aws_sdk_dynamodb::Client::new(&herald_testing::aws().await),
        stack.subscriptions_table(),
        stack.sealer().unwrap(),
    );
    let tenant_a = herald_core::AppId::parse("tenant-a").unwrap();
    let left = store.list_event_types(&tenant_a, 10, None).await.unwrap();
    assert!(left.items.is_empty(), "{:?}", left.items);
    assert_eq!(store.count_event_types(&tenant_a).await.unwrap(), 0);
    let (s, _) = api
        .call(
            "POST",
            "/v1/event-types",
            Some(&b),
            Some(json!({"name": "b.kept"})),
        )
        .await;
    assert_eq!(s, 201);

    // The admin key is not an app; no key, no catalog.
    let (s, _) = api
        .call(
            "GET",
            "/v1/event-types",
            Some(herald_testing::ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(s, 403);
    let (s, _) = api.call("GET", "/v1/event-types", None, None).await;
    assert_eq!(s, 401);
}
