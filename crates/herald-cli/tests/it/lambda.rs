//! The Lambda binaries as they run on AWS: each `bootstrap` runs as its own process
//! against the Lambda Runtime API that `cargo lambda watch --only-lambda-apis` emulates,
//! and is invoked with `cargo lambda invoke` with the events AWS would send it: an SQS
//! batch from the event source mapping for the consumer, function-URL (HTTP API 2.0)
//! requests for the API. Under `make test` the bootstraps come out of the zips
//! cargo-lambda built (`target/lambda-debug`, see `HERALD_LAMBDA_DIR`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use herald_core::{
    webhook_id, AppId, DeadLetter, Event, EventFilter, EventType, ObjectType, ObjectTypeFilter,
    QueueMessage, Subscription, Verifier,
};
use herald_testing::{
    aws, http_event, queue_counts, root, sqs_event, wait_until, LambdaFunction, Receiver, Reply,
    Stack,
};

fn event(app: &AppId, event_type: &str, data: serde_json::Value) -> Event {
    Event::new(
        app.clone(),
        EventType::parse(event_type).unwrap(),
        ObjectType::parse("user").unwrap(),
        data,
    )
}

fn encode(event: &Event) -> String {
    QueueMessage::Event {
        event: event.clone(),
    }
    .encode()
}

/// An event whose queue message is just under the queue's size limit, so the record
/// is one SQS could have delivered, while the retry message that wraps it (the event
/// plus the subscription, attempt and times) cannot be sent.
fn oversized_event(app: &AppId, event_type: &str, max_message_bytes: usize) -> Event {
    let mut e = event(app, event_type, serde_json::json!({ "pad": "" }));
    let base = encode(&e).len();
    let pad = max_message_bytes - base - 64;
    e.data = serde_json::json!({ "pad": "x".repeat(pad) }).into();
    assert_eq!(encode(&e).len(), max_message_bytes - 64);
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_consumer_bootstrap_answers_an_sqs_batch_with_the_documented_partial_batch_response() {
    let stack = Stack::deploy("lambda-consumer").expect("deploy the stack");
    let aws = aws().await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let store = stack.subscription_store(&aws).unwrap();
    let queue_attrs = sqs
        .get_queue_attributes()
        .queue_url(stack.events_queue())
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::MaximumMessageSize)
        .send()
        .await
        .expect("events queue attributes");
    let attr = |name: aws_sdk_sqs::types::QueueAttributeName| {
        queue_attrs
            .attributes()
            .and_then(|a| a.get(&name))
            .cloned()
            .expect("queue attribute")
    };
    let queue_arn = attr(aws_sdk_sqs::types::QueueAttributeName::QueueArn);
    let max_message_bytes: usize = attr(aws_sdk_sqs::types::QueueAttributeName::MaximumMessageSize)
        .parse()
        .unwrap();

    // `create` events go to a healthy endpoint, `delete` events to one answering 500.
    let app = AppId::parse("shop").unwrap();
    let healthy = Receiver::ok().await;
    let failing = Receiver::start(Arc::new(|_| Reply::status(500))).await;
    let sub_ok = Subscription::new(
        app.clone(),
        healthy.url(),
        EventFilter::parse(&["create"]).unwrap(),
        ObjectTypeFilter::parse::<&str>(&[]).unwrap(),
    );
    let sub_failing = Subscription::new(
        app.clone(),
        failing.url(),
        EventFilter::parse(&["delete"]).unwrap(),
        ObjectTypeFilter::parse::<&str>(&[]).unwrap(),
    );
    store.create(&sub_ok).await.expect("create subscription");
    store
        .create(&sub_failing)
        .await
        .expect("create subscription");

    let good = event(&app, "create", serde_json::json!({ "id": "good" }));
    let failed = event(&app, "delete", serde_json::json!({ "id": "failed" }));
    let oversized = oversized_event(&app, "delete", max_message_bytes);
    let garbage = "this is not json {";
    let (good_body, failed_body, oversized_body) =
        (encode(&good), encode(&failed), encode(&oversized));
    let batch = sqs_event(
        &queue_arn,
        &[
            ("m-good", &good_body),
            ("m-failed", &failed_body),
            ("m-garbage", garbage),
            ("m-oversized", &oversized_body),
        ],
    );

    let mut env: HashMap<String, String> = stack.env.clone();
    env.insert(
        "HERALD_ALLOW_PRIVATE_NETWORKS".into(),
        "127.0.0.1/32".into(),
    );
    // Two attempts, the second one second after the first, so the retry can be read
    // back from the queue.
    env.insert("HERALD_RETRY_SCHEDULE".into(), "0s,1s".into());
    env.insert("HERALD_RETRY_JITTER".into(), "0".into());
    // As infra/herald.yaml sets it: one EMF metrics line per batch on stdout.
    env.insert("HERALD_METRICS".into(), "emf".into());
    let mut consumer = LambdaFunction::start("herald-consumer-lambda", &env)
        .await
        .expect("start the consumer function");
    let response = consumer.invoke(&batch).await.expect("invoke the consumer");
    println!("[lambda-consumer] response: {response}");
    // What the function logged beyond the routine (its JSON log lines, shortened).
    for line in consumer.log().lines() {
        if line.contains("\"WARN\"") || line.contains("\"ERROR\"") {
            let short: String = line.chars().take(400).collect();
            println!("[lambda-consumer] log: {short}");
        }
    }

    // docs/delivery.md: the response lists only the records that must come back. A
    // failed delivery is handed to the queue as a retry and its record is done; garbage
    // is parked at first sight, and so is an event too large to be retried or parked
    // whole (within the queue's limit, over it less the room a retry needs): nothing
    // comes back.
    assert_eq!(
        response,
        serde_json::json!({ "batchItemFailures": [] }),
        "function log:\n{}",
        consumer.log()
    );

    // The batch's metrics line: what CloudWatch Logs would turn into metrics.
    let log = consumer.log();
    let emf: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l.get("_aws").is_some())
        .collect();
    assert_eq!(emf.len(), 1, "one EMF line for the batch; log:\n{log}");
    let m = &emf[0];
    assert_eq!(m["Service"], "herald-consumer");
    assert_eq!(
        m["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Herald",
        "{m}"
    );
    assert_eq!(
        (
            &m["Records"],
            &m["Attempts"],
            &m["Succeeded"],
            &m["Retried"],
            &m["Failed.http_status"]
        ),
        (
            &serde_json::json!(4),
            &serde_json::json!(2),
            &serde_json::json!(1),
            &serde_json::json!(1),
            &serde_json::json!(1)
        ),
        "{m}"
    );

    // The healthy endpoint got the good event once, signed with its secret.
    let got = healthy.received();
    assert_eq!(got.len(), 1, "healthy endpoint requests");
    let r = &got[0];
    assert_eq!(r.header("webhook-id"), webhook_id(&good.id, &sub_ok.id));
    assert_eq!(r.json()["id"], good.id.to_string());
    assert_eq!(r.json()["data"]["id"], "good");
    Verifier::new(sub_ok.secrets.clone())
        .verify(
            r.header("webhook-id"),
            r.header("webhook-timestamp"),
            r.header("webhook-signature"),
            &r.body,
        )
        .expect("the signature verifies");

    // The failing endpoint got one attempt of its event; the oversized one was never
    // sent, since it could not have been retried.
    let ids: Vec<String> = failing
        .received()
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect();
    assert_eq!(
        ids,
        [webhook_id(&failed.id, &sub_failing.id).to_string()],
        "failing endpoint requests"
    );

    // The failed delivery's retry is on the events queue: attempt 2 of the event to the
    // failing subscription, after one second.
    // Everything the function sent was on the queue when it answered; once nothing
    // there is delayed (or in flight), one drain takes all of it.
    let settled = wait_until(Duration::from_secs(15), || async {
        queue_counts(&sqs, stack.events_queue())
            .await
            .is_ok_and(|c| c.delayed == 0 && c.in_flight == 0)
    })
    .await;
    assert!(settled, "the retry's delay did not pass");
    let retries = herald_testing::drain(&sqs, stack.events_queue())
        .await
        .expect("drain the events queue");
    let retries: Vec<String> = retries
        .into_iter()
        .map(|m| m.body.unwrap_or_default())
        .collect();
    assert_eq!(
        retries.len(),
        1,
        "messages on the events queue: {retries:?}"
    );
    match QueueMessage::decode(&retries[0]).expect("a queue message") {
        QueueMessage::Delivery { delivery } => {
            assert_eq!(delivery.event.id, failed.id);
            assert_eq!(delivery.subscription_id, sub_failing.id);
            assert_eq!(delivery.attempt, 2);
            assert_eq!(delivery.last_result.as_deref(), Some("HTTP 500"));
        }
        other => panic!("expected a delivery retry, got {other:?}"),
    }

    // The garbage and the oversized event are parked on the DLQ with their reasons;
    // nothing else is.
    let parked = herald_testing::drain(&sqs, stack.dlq()).await.unwrap();
    let mut letters: Vec<(String, String, String)> = parked
        .iter()
        .map(
            |m| match DeadLetter::decode(m.body().unwrap_or_default()).expect("a dead letter") {
                DeadLetter::Undecodable {
                    reason,
                    body,
                    original_message_id,
                    ..
                } => (original_message_id.unwrap_or_default(), reason, body),
                other => panic!("expected an undecodable dead letter, got {other:?}"),
            },
        )
        .collect();
    letters.sort();
    assert_eq!(letters.len(), 2, "messages on the DLQ: {letters:?}");
    assert_eq!(letters[0].0, "m-garbage");
    assert_eq!(letters[0].2, garbage);
    assert_eq!(letters[1].0, "m-oversized");
    assert!(
        letters[1].1.contains("over the limit"),
        "the oversized event's reason: {}",
        letters[1].1
    );
    println!(
        "[lambda-consumer] good delivered, failed scheduled for attempt 2, garbage and \
         oversized parked with their reasons"
    );
}

/// Creates app `shop` and a key of it through the API function; returns the key.
async fn shop_key(api: &mut LambdaFunction) -> String {
    let (status, app) = call(
        api,
        "POST",
        "/v1/apps",
        Some(ADMIN),
        Some(serde_json::json!({ "id": "shop", "name": "Shop" })),
    )
    .await;
    assert_eq!(status, 201, "create app: {app}");
    assert_eq!(app["id"], "shop");
    let (status, key) = call(api, "POST", "/v1/apps/shop/keys", Some(ADMIN), None).await;
    assert_eq!(status, 201, "create key: {key}");
    key["key"].as_str().expect("the key, shown once").to_owned()
}

/// The admin key the API function is started with.
const ADMIN: &str = "lambda-test-admin-key-0123456789";

/// Invokes the API function with one HTTP request; returns the status and the JSON body.
async fn call(
    api: &mut LambdaFunction,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u64, serde_json::Value) {
    let response = api
        .invoke(&http_event(method, path, key, body.as_ref()))
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e:#}"));
    assert_ne!(
        response["isBase64Encoded"],
        serde_json::json!(true),
        "{method} {path}: a JSON answer is not base64-encoded: {response}"
    );
    let status = response["statusCode"]
        .as_u64()
        .unwrap_or_else(|| panic!("{method} {path}: no statusCode in {response}"));
    let json = response["body"]
        .as_str()
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(serde_json::Value::Null);
    (status, json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_bootstrap_creates_and_lists_webhooks_from_function_url_requests() {
    if !root().join("crates/herald-api/Cargo.toml").exists() {
        println!(
            "SKIPPED the_api_bootstrap_creates_and_lists_webhooks_from_function_url_requests: \
             crates/herald-api does not exist yet, so there is no herald-api-lambda to run"
        );
        return;
    }
    let stack = Stack::deploy("lambda-api").expect("deploy the stack");
    let mut env: HashMap<String, String> = stack.env.clone();
    env.insert("HERALD_ADMIN_KEY".into(), ADMIN.into());
    let mut api = LambdaFunction::start("herald-api-lambda", &env)
        .await
        .expect("start the API function");

    let key = shop_key(&mut api).await;

    let (status, none) = call(&mut api, "GET", "/v1/webhooks", None, None).await;
    assert_eq!(status, 401, "list without a key: {none}");

    let (status, created) = call(
        &mut api,
        "POST",
        "/v1/webhooks",
        Some(&key),
        Some(serde_json::json!({
            "url": "https://hooks.example.com/herald",
            "events": ["create", "update"],
            "object_types": ["user"],
            "description": "from the Lambda test",
        })),
    )
    .await;
    assert_eq!(status, 201, "create webhook: {created}");
    let id = created["id"].as_str().expect("webhook id").to_owned();
    assert!(
        created["secret"]
            .as_str()
            .is_some_and(|s| s.starts_with("whsec_")),
        "the secret is shown on creation: {created}"
    );

    let (status, list) = call(&mut api, "GET", "/v1/webhooks", Some(&key), None).await;
    assert_eq!(status, 200, "list webhooks: {list}");
    let data = list["data"].as_array().expect("a page of webhooks");
    assert_eq!(data.len(), 1, "{list}");
    assert_eq!(data[0]["id"], id.as_str());
    assert_eq!(data[0]["url"], "https://hooks.example.com/herald");
    assert_eq!(data[0]["events"], serde_json::json!(["create", "update"]));
    assert!(
        data[0].get("secret").is_none(),
        "no secret in lists: {list}"
    );

    // The function wrote to the stack's table, where the consumer reads it.
    let aws = aws().await;
    let store = stack.subscription_store(&aws).unwrap();
    let stored = store
        .get(
            &AppId::parse("shop").unwrap(),
            &herald_core::SubscriptionId::new(id.clone()),
        )
        .await
        .expect("read the subscription")
        .expect("the subscription is stored");
    assert_eq!(stored.url, "https://hooks.example.com/herald");
    println!("[lambda-api] app, key and webhook {id} created and listed through the function");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingest_bootstrap_queues_an_inbound_webhook_the_api_bootstrap_does_not_take() {
    let stack = Stack::deploy("lambda-ingest").expect("deploy the stack");
    let mut env: HashMap<String, String> = stack.env.clone();
    env.insert("HERALD_ADMIN_KEY".into(), ADMIN.into());
    let mut api = LambdaFunction::start("herald-api-lambda", &env)
        .await
        .expect("start the API function");
    let key = shop_key(&mut api).await;
    let (status, source) = call(
        &mut api,
        "POST",
        "/v1/sources",
        Some(&key),
        Some(serde_json::json!({
            "name": "ci",
            "auth": {"mode": "api_key", "in": "query", "name": "token", "key": "t0ken"},
            "event_type": {"from": "fixed", "value": "build.done"},
        })),
    )
    .await;
    assert_eq!(status, 201, "{source}");
    let path = source["ingest_path"].as_str().unwrap().to_owned();
    let body = serde_json::json!({"build": 7});
    // The management API's function leaves the ingest to its own.
    let (status, _) = call(
        &mut api,
        "POST",
        &format!("{path}?token=t0ken"),
        None,
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, 404, "the API function does not serve /in/");

    // The ingest function takes it: the environment is the API's, without the admin key.
    env.remove("HERALD_ADMIN_KEY");
    let mut ingest = LambdaFunction::start("herald-ingest-lambda", &env)
        .await
        .expect("start the ingest function");
    let (status, refused) = call(
        &mut ingest,
        "POST",
        &format!("{path}?token=nope"),
        None,
        Some(body.clone()),
    )
    .await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, accepted) = call(
        &mut ingest,
        "POST",
        &format!("{path}?token=t0ken"),
        None,
        Some(body),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let (status, _) = call(&mut ingest, "GET", "/v1/sources", Some(&key), None).await;
    assert_eq!(status, 404, "the ingest function serves nothing else");
    let aws = aws().await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let depth = herald_testing::queue_depth(&sqs, stack.events_queue())
        .await
        .unwrap();
    assert_eq!(depth, 1, "the inbound event is on the events queue");
    // As an event of the source's app and type, carrying the source's id.
    let received = sqs
        .receive_message()
        .queue_url(stack.events_queue())
        .send()
        .await
        .unwrap();
    let body = received.messages()[0].body().unwrap();
    let QueueMessage::Event { event } = QueueMessage::decode(body).unwrap() else {
        panic!("not an event message: {body}");
    };
    assert_eq!(event.id.as_str(), accepted["event_id"].as_str().unwrap());
    assert_eq!(event.source.as_deref(), source["id"].as_str());
    assert_eq!(
        (event.app_id.as_str(), event.event_type.as_str()),
        ("shop", "build.done")
    );
    assert_eq!(event.data.to_value(), serde_json::json!({"build": 7}));
    println!(
        "[lambda-ingest] {} queued through the ingest function",
        accepted["event_id"]
    );
}
