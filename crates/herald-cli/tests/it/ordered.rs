//! Ordered delivery per key end to end (docs/delivery.md, "Ordered delivery"): events
//! of four keys published interleaved reach a webhook with `ordered: true` whose
//! receiver fails some first attempts; each key's deliveries arrive in publish order,
//! a failed one retried before anything after it of its key is tried, and every
//! delivery succeeds exactly once. Events without a key and webhooks that are not
//! ordered are delivered as before. The API and the CLI set and show `ordered` and
//! `ordering_key`, and refuse bad keys with a 422 JSON error.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use herald_testing::{
    queue_counts, wait_for, wait_until, ApiServer, Herald, Receiver, Reply, Stack, Worker,
};
use serde_json::{json, Value};

use crate::HERALD;

const KEYS: [&str; 4] = ["inv_a", "inv_b", "inv_c", "inv_d"];
/// Events per key.
const PER_KEY: usize = 6;

/// The (key, sequence number) a delivery carries in its data.
fn key_and_seq(body: &Value) -> (String, u64) {
    let data = &body["data"];
    (
        data["key"].as_str().unwrap_or_default().to_owned(),
        data["seq"].as_u64().unwrap_or(u64::MAX),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn interleaved_keys_reach_an_ordered_webhook_in_publish_order_despite_failures() {
    let stack = Stack::deploy("ordered").unwrap();
    let api = ApiServer::start(&stack, &[]).await.unwrap();
    let app_key = api.app_with_key("shop").await;
    let key = Some(app_key.as_str());
    // Every third request that is a delivery's first attempt fails: a retry of it
    // must come before the next delivery of its key.
    let flaky = Receiver::start(Arc::new(|seen: herald_testing::Seen| {
        if seen.for_id == 1 && seen.total % 3 == 1 {
            Reply::status(503)
        } else {
            Reply::status(200)
        }
    }))
    .await;
    let plain = Receiver::ok().await;

    // The CLI registers the ordered webhook and shows it.
    let scratch = herald_testing::scratch_dir("ordered-cli").unwrap();
    let herald = Herald::new(HERALD, &stack, &scratch)
        .with("HERALD_API_URL", &api.base)
        .with("HERALD_API_KEY", &app_key);
    let added = herald
        .run(&[
            "--json",
            "webhooks",
            "add",
            "--url",
            &flaky.url(),
            "--events",
            "*",
            "--ordered",
        ])
        .await
        .ok()
        .json();
    assert_eq!(added["ordered"], true, "{added}");
    let ordered_id = added["id"].as_str().unwrap().to_owned();
    crate::assert_webhook_shows(
        &herald,
        &ordered_id,
        "ordered:      per ordering key",
        "  ordered",
    )
    .await;
    let unordered = api
        .create_webhook(&app_key, json!({"url": plain.url(), "events": ["*"]}))
        .await;
    assert_eq!(unordered["ordered"], false, "{unordered}");

    // Short retries, so the test spends seconds, not minutes, on them.
    let env = [
        ("HERALD_RETRY_SCHEDULE", "0s,1s,1s,1s,1s,1s"),
        ("HERALD_RETRY_JITTER", "0"),
    ];
    let _worker = Worker::spawn(&stack, &env).unwrap();

    // Interleaved: seq 0 of every key, then seq 1 of every key, ...; in requests of
    // one key-round each, one after the other (publish order).
    for seq in 0..PER_KEY {
        let events: Vec<Value> = KEYS
            .iter()
            .map(|k| {
                json!({"type": "update", "object_type": "invoice", "ordering_key": k,
                       "data": {"key": k, "seq": seq}})
            })
            .collect();
        let (s, out) = api
            .call("POST", "/v1/events", key, Some(json!({"events": events})))
            .await;
        assert_eq!(s, 202, "{out}");
    }
    // One through the CLI, after all of them, and one without a key.
    let cli = herald
        .run(&[
            "publish",
            "--type",
            "update",
            "--object-type",
            "invoice",
            "--data",
            &json!({"key": KEYS[0], "seq": PER_KEY}).to_string(),
            "--ordering-key",
            KEYS[0],
        ])
        .await;
    let cli = cli.ok();
    assert!(cli.stdout.contains("evt_"), "{}", cli.stdout);
    let (s, out) = api
        .call(
            "POST",
            "/v1/events",
            key,
            Some(json!({"type": "update", "object_type": "invoice", "data": {"key": "none", "seq": 0}})),
        )
        .await;
    assert_eq!(s, 202, "{out}");
    let total = KEYS.len() * PER_KEY + 2;

    let succeeded = || {
        flaky
            .received()
            .into_iter()
            .filter(|r| r.status_is_success())
            .count()
    };
    assert!(
        wait_until(Duration::from_secs(120), || async { succeeded() >= total }).await,
        "the ordered webhook got {} of {total} deliveries",
        succeeded()
    );
    assert!(
        wait_until(Duration::from_secs(60), || async { plain.count() >= total }).await,
        "the unordered webhook got {} of {total}",
        plain.count()
    );
    let sqs = aws_sdk_sqs::Client::new(&herald_testing::aws().await);
    assert!(
        wait_until(Duration::from_secs(60), || async {
            let ordered = queue_counts(&sqs, stack.var("HERALD_ORDERED_QUEUE_URL")).await;
            let events = queue_counts(&sqs, stack.events_queue()).await;
            ordered.is_ok_and(|c| c.total() == 0) && events.is_ok_and(|c| c.total() == 0)
        })
        .await,
        "both queues drain"
    );

    // Every delivery succeeded exactly once; some failed first.
    let received = flaky.received();
    let mut successes: HashMap<String, usize> = HashMap::new();
    for r in received.iter().filter(|r| r.status_is_success()) {
        *successes
            .entry(r.header("webhook-id").to_owned())
            .or_default() += 1;
    }
    assert_eq!(successes.len(), total, "distinct deliveries");
    assert!(
        successes.values().all(|n| *n == 1),
        "each delivered once: {successes:?}"
    );
    let failures = received.iter().filter(|r| !r.status_is_success()).count();
    assert!(failures > 0, "the receiver failed some first attempts");

    // Per key, in arrival order: sequence numbers never go back, and no delivery of a
    // key is tried before the one before it succeeded.
    let mut per_key: BTreeMap<String, Vec<(u64, bool)>> = BTreeMap::new();
    let mut arrivals = received.clone();
    arrivals.sort_by_key(|r| r.at);
    for r in &arrivals {
        let (k, seq) = key_and_seq(&r.json());
        per_key
            .entry(k)
            .or_default()
            .push((seq, r.status_is_success()));
    }
    for k in KEYS {
        let seen = &per_key[k];
        let expected = if k == KEYS[0] { PER_KEY + 1 } else { PER_KEY };
        let mut next = 0;
        for (seq, ok) in seen {
            assert_eq!(
                *seq, next,
                "key {k}: attempts in arrival order {seen:?}: {seq} came while {next} was owed"
            );
            if *ok {
                next += 1;
            }
        }
        assert_eq!(next, expected as u64, "key {k}: {seen:?}");
        println!("{k}: {seen:?}");
    }
    println!("{failures} failed first attempts retried in order");

    // The history has every attempt, the failed ones and their retries.
    assert!(
        wait_until(Duration::from_secs(30), || async {
            let (_, page) = api
                .call(
                    "GET",
                    &format!("/v1/webhooks/{ordered_id}/deliveries?limit=250"),
                    key,
                    None,
                )
                .await;
            page["data"].as_array().map_or(0, Vec::len) == received.len()
        })
        .await,
        "every attempt is recorded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordering_keys_are_bounded_shown_and_refused_without_an_ordered_queue() {
    let stack = Stack::deploy("ordered-api").unwrap();
    let api = ApiServer::start(&stack, &[]).await.unwrap();
    let app_key = api.app_with_key("shop").await;
    let key = Some(app_key.as_str());
    let event = |k: Value| json!({"type": "update", "object_type": "invoice", "data": {}, "ordering_key": k});
    for (bad, says) in [
        (json!(""), "must not be empty"),
        (json!("k".repeat(257)), "longer than 256 bytes"),
        (json!("a\u{1}b"), "printable"),
    ] {
        let (s, e) = api.call("POST", "/v1/events", key, Some(event(bad))).await;
        assert_eq!(s, 422, "{e}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(says),
            "{e}"
        );
    }
    let (s, out) = api
        .call("POST", "/v1/events", key, Some(event(json!("inv_1"))))
        .await;
    assert_eq!(s, 202, "{out}");
    let id = out["ids"][0].as_str().unwrap().to_owned();
    // The event as published shows its key once the worker has kept it.
    let _worker = Worker::spawn(&stack, &[]).unwrap();
    let hook = Receiver::ok().await;
    let w = api
        .create_webhook(
            &app_key,
            json!({"url": hook.url(), "events": ["*"], "ordered": true}),
        )
        .await;
    assert_eq!(w["ordered"], true, "{w}");
    let (s, patched) = api
        .call(
            "PATCH",
            &format!("/v1/webhooks/{}", w["id"].as_str().unwrap()),
            key,
            Some(json!({"ordered": false})),
        )
        .await;
    assert_eq!((s, &patched["ordered"]), (200, &json!(false)), "{patched}");
    let (s, out) = api
        .call("POST", "/v1/events", key, Some(event(json!("inv_1"))))
        .await;
    assert_eq!(s, 202, "{out}");
    let id2 = out["ids"][0].as_str().unwrap().to_owned();
    assert!(
        wait_until(Duration::from_secs(30), || async { hook.count() >= 1 }).await,
        "an unordered webhook gets keyed events too"
    );
    let shown = wait_for(Duration::from_secs(30), || async {
        let (s, e) = api
            .call("GET", &format!("/v1/events/{id2}"), key, None)
            .await;
        (s == 200).then_some(e)
    })
    .await
    .expect("the event is kept");
    assert_eq!(shown["ordering_key"], "inv_1", "{shown}");
    let _ = id;

    // Without an ordered queue, a key is refused rather than silently unordered.
    let no_fifo = ApiServer::start(&stack, &[("HERALD_ORDERED_QUEUE_URL", "")])
        .await
        .unwrap();
    let app_key = no_fifo.app_with_key("other").await;
    let (s, e) = no_fifo
        .call(
            "POST",
            "/v1/events",
            Some(&app_key),
            Some(event(json!("inv_1"))),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no ordered queue"),
        "{e}"
    );
}
