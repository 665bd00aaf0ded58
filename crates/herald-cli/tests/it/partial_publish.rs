//! Publishing when SQS takes only part of a request: the API says which events are on
//! the queue, and a retry under the same `Idempotency-Key` publishes the rest under the
//! same ids, so every event is on the queue exactly once. A try that crashed mid-way
//! gives its key up after the claim's lease.

use std::collections::BTreeSet;

use aws_sdk_dynamodb::types::AttributeValue;
use herald_core::{AppId, EventId};
use herald_store::{Claim, IdempotencyStore, PlannedEvent};
use herald_testing::{aws, aws_at, drain, ApiServer, Fault, FaultProxy, Stack};
use serde_json::{json, Value};

/// 20 events: SQS takes them in two batches of 10; the second batch is "poisoned".
fn twenty_events() -> Value {
    let events: Vec<Value> = (0..20)
        .map(|i| {
            let data = if i < 10 {
                json!({"n": i})
            } else {
                json!({"n": i, "poison": true})
            };
            json!({"type": "update", "object_type": "user", "data": data})
        })
        .collect();
    json!({ "events": events })
}

async fn publish(api: &ApiServer, key: &str, idempotency_key: Option<&str>) -> (u16, Value) {
    let mut req = api
        .client
        .post(format!("{}/v1/events", api.base))
        .bearer_auth(key)
        .json(&twenty_events());
    if let Some(k) = idempotency_key {
        req = req.header("Idempotency-Key", k);
    }
    let r = req.send().await.expect("publish request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_publish_that_fails_part_way_says_what_was_queued_and_resumes_under_the_same_ids() {
    let stack = Stack::deploy("partial-publish").unwrap();
    let emulator = std::env::var("AWS_ENDPOINT_URL").expect("the emulator's endpoint");
    let proxy = FaultProxy::start(&emulator).await.unwrap();
    let api = ApiServer::start_with(&stack, &[], &aws_at(&proxy.url).await)
        .await
        .unwrap();
    let key = api.app_with_key("shop").await;
    proxy.set_rule(|target, body| {
        (target == "AmazonSQS.SendMessageBatch" && String::from_utf8_lossy(body).contains("poison"))
            .then_some(Fault::Fail)
    });

    // First try: the first batch of 10 reaches the queue, the second does not.
    let (s, first) = publish(&api, &key, Some("order-42")).await;
    assert_eq!(s, 503, "{first}");
    assert_eq!(first["error"]["code"], "partly_published", "{first}");
    let ids = strings(&first["ids"]);
    let queued = strings(&first["queued"]);
    assert_eq!((ids.len(), queued.len()), (20, 10), "{first}");
    assert_eq!(queued, ids[..10].to_vec(), "the unpoisoned batch is queued");
    let failed: Vec<String> = first["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(failed, ids[10..].to_vec());
    assert!(first["failed"][0]["reason"]
        .as_str()
        .is_some_and(|r| !r.is_empty()));

    // A retry while SQS still refuses: the same ids, nothing queued twice.
    let (s, second) = publish(&api, &key, Some("order-42")).await;
    assert_eq!(s, 503, "{second}");
    assert_eq!(strings(&second["ids"]), ids, "a retry keeps the ids");
    assert_eq!(strings(&second["queued"]), queued);

    // SQS recovers: the retry publishes the other 10, under the ids it announced.
    proxy.clear_rule();
    let (s, third) = publish(&api, &key, Some("order-42")).await;
    assert_eq!(s, 202, "{third}");
    assert_eq!(strings(&third["ids"]), ids);
    let (s, fourth) = publish(&api, &key, Some("order-42")).await;
    assert_eq!((s, &fourth), (202, &third), "then the response is replayed");

    let sqs = aws_sdk_sqs::Client::new(&aws().await);
    let on_queue: Vec<String> = drain(&sqs, stack.events_queue())
        .await
        .unwrap()
        .iter()
        .map(|m| {
            let body: Value = serde_json::from_str(m.body().unwrap()).unwrap();
            body["event"]["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(on_queue.len(), 20, "each event once: {on_queue:?}");
    assert_eq!(
        on_queue.iter().cloned().collect::<BTreeSet<_>>(),
        ids.iter().cloned().collect::<BTreeSet<_>>()
    );

    // Without a key the response still says what was queued, and how to retry safely.
    proxy.set_rule(|target, body| {
        (target == "AmazonSQS.SendMessageBatch" && String::from_utf8_lossy(body).contains("poison"))
            .then_some(Fault::Fail)
    });
    let (s, keyless) = publish(&api, &key, None).await;
    assert_eq!(s, 503, "{keyless}");
    assert_eq!(strings(&keyless["queued"]).len(), 10);
    assert!(
        keyless["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Idempotency-Key"),
        "{keyless}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_claim_left_pending_by_a_crash_is_resumed_once_its_lease_ends() {
    let stack = Stack::deploy("idem-lease").unwrap();
    let dynamo = aws_sdk_dynamodb::Client::new(&aws().await);
    let table = stack.var("HERALD_IDEMPOTENCY_TABLE").to_owned();
    let store = IdempotencyStore::new(dynamo.clone(), &table);
    let app = AppId::parse("shop").unwrap();
    let planned = vec![PlannedEvent {
        id: EventId::generate(),
        timestamp: chrono::Utc::now(),
    }];

    assert_eq!(
        store.claim(&app, "k", "hash", &planned).await.unwrap(),
        Claim::New
    );
    // The request that claimed it is still within its lease.
    assert_eq!(
        store.claim(&app, "k", "hash", &[]).await.unwrap(),
        Claim::InProgress
    );
    // It crashed: nobody completes the claim. Once the lease has run out (moved into
    // the past here, rather than waiting a minute), the next try takes it over, with
    // the first try's events.
    dynamo
        .update_item()
        .table_name(&table)
        .key("pk", AttributeValue::S("shop#k".into()))
        .update_expression("SET lease_until = :past")
        .expression_attribute_values(":past", AttributeValue::N("1".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        store.claim(&app, "k", "hash", &[]).await.unwrap(),
        Claim::Resume {
            planned: planned.clone(),
            queued: Vec::new()
        }
    );
    // And holds it: a third try is in progress, not a second take-over.
    assert_eq!(
        store.claim(&app, "k", "hash", &[]).await.unwrap(),
        Claim::InProgress
    );
    assert_eq!(
        store.claim(&app, "k", "other body", &[]).await.unwrap(),
        Claim::Mismatch
    );
}
