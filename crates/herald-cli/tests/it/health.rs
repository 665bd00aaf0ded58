//! Endpoint health end to end: a receiver answers a known run of failures and
//! successes, and the health on `GET /v1/webhooks/{id}`, `GET /v1/webhooks` and
//! `herald webhooks get/list` matches what it counted: attempts, successes, failures,
//! failed attempts since the last success (back to 0 after one), the last times and
//! the bucketed latency percentiles of the attempts the history holds. Another app
//! sees none of it.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use herald_core::health::LATENCY_BUCKETS_MS;
use herald_core::LatencyHistogram;
use herald_testing::{wait_for, ApiServer, Herald, Receiver, Reply, Stack, Worker};
use serde_json::{json, Value};

/// Requests 1-3 fail, 4-8 succeed after 60 ms, the rest fail.
fn answer(total: usize) -> Reply {
    match total {
        1..=3 => Reply::status(500),
        4..=8 => Reply::status(200).after(Duration::from_millis(60)),
        _ => Reply::status(503),
    }
}

/// The bucket bound of the nearest-rank `p`th percentile of `latencies`.
fn bucketed_percentile(latencies: &[u64], p: f64) -> u64 {
    let mut sorted = latencies.to_vec();
    sorted.sort_unstable();
    let rank = ((p / 100.0 * sorted.len() as f64).ceil() as usize).max(1);
    LATENCY_BUCKETS_MS[LatencyHistogram::bucket_of(sorted[rank - 1])]
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .unwrap_or_else(|| panic!("a time: {v}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_matches_what_the_receiver_counted() {
    let stack = Stack::deploy("health").unwrap();
    let api = ApiServer::start(&stack, &[]).await.unwrap();
    let app_key = api.app_with_key("shop").await;
    let key = Some(app_key.as_str());
    let receiver = Receiver::start(Arc::new(|seen| answer(seen.total))).await;
    let w = api
        .create_webhook(&app_key, json!({"url": receiver.url(), "events": ["*"]}))
        .await;
    let id = w["id"].as_str().unwrap().to_owned();
    assert!(w.get("health").is_none(), "creating shows no health: {w}");
    let started = Utc::now();
    // Three attempts a delivery, a second apart.
    let _worker = Worker::spawn(&stack, &[("HERALD_RETRY_SCHEDULE", "0s,1s,1s")]).unwrap();

    let publish = |n: usize| {
        let api = &api;
        async move {
            let events: Vec<Value> = (0..n)
                .map(|i| json!({"type": "update", "object_type": "user", "data": {"i": i}}))
                .collect();
            let (s, out) = api
                .call("POST", "/v1/events", key, Some(json!({"events": events})))
                .await;
            assert_eq!(s, 202, "{out}");
        }
    };
    let path = format!("/v1/webhooks/{id}");
    // The health once `attempts` are counted and the auto-disable count is `in_a_row`.
    let health_after = |attempts: u64, in_a_row: u64| {
        let (api, path) = (&api, &path);
        async move {
            let health = wait_for(Duration::from_secs(60), || async {
                let (s, w) = api.call("GET", path, key, None).await;
                assert_eq!(s, 200, "{w}");
                let h = w["health"].clone();
                (h["last_24h"]["attempts"] == attempts
                    && h["failed_deliveries_in_a_row"] == in_a_row)
                    .then_some(h)
            })
            .await;
            health.unwrap_or_else(|| {
                panic!("{attempts} attempts counted, {in_a_row} failed deliveries")
            })
        }
    };
    let counted = || {
        let received = receiver.received();
        let ok = received.iter().filter(|r| r.status_is_success()).count() as u64;
        (received.len() as u64, ok, received.len() as u64 - ok)
    };

    // The first delivery fails three times and is parked.
    publish(1).await;
    let h = health_after(3, 1).await;
    assert_eq!(counted(), (3, 0, 3));
    assert_eq!(h["last_24h"]["successes"], 0);
    assert_eq!(h["last_24h"]["failures"], 3);
    assert_eq!(h["last_24h"]["success_rate"], 0.0);
    assert_eq!(h["consecutive_failures"], 3, "{h}");
    assert_eq!(h["last_success_at"], Value::Null);
    let first_failure = time(&h["last_failure_at"]);
    assert!(
        first_failure >= started && first_failure <= Utc::now(),
        "{h}"
    );

    // Five deliveries succeed: the failures since the last success are back to 0.
    publish(5).await;
    let h = health_after(8, 0).await;
    assert_eq!(counted(), (8, 5, 3));
    assert_eq!(h["consecutive_failures"], 0, "{h}");
    let last_success = time(&h["last_success_at"]);
    assert!(last_success > first_failure, "{h}");
    assert_eq!(time(&h["last_failure_at"]), first_failure);

    // Then one more fails three times.
    publish(1).await;
    let h = health_after(11, 1).await;
    let (attempts, successes, failures) = counted();
    assert_eq!((attempts, successes, failures), (11, 5, 6));
    assert_eq!(h["last_24h"]["successes"], successes);
    assert_eq!(h["last_24h"]["failures"], failures);
    let rate = h["last_24h"]["success_rate"].as_f64().unwrap();
    assert!((rate - 5.0 / 11.0).abs() < 1e-9, "{h}");
    assert_eq!(h["consecutive_failures"], 3, "{h}");
    assert_eq!(time(&h["last_success_at"]), last_success);
    assert!(time(&h["last_failure_at"]) > last_success, "{h}");

    // The latency percentiles are those of the attempts in the history, bucketed.
    let (s, listing) = api
        .call("GET", &format!("{path}/deliveries?limit=100"), key, None)
        .await;
    assert_eq!(s, 200, "{listing}");
    let latencies: Vec<u64> = listing["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["latency_ms"].as_u64().unwrap())
        .collect();
    assert_eq!(latencies.len(), 11);
    assert_eq!(
        h["last_24h"]["latency_p50_ms"],
        bucketed_percentile(&latencies, 50.0)
    );
    let p95 = bucketed_percentile(&latencies, 95.0);
    assert_eq!(h["last_24h"]["latency_p95_ms"], p95);
    assert!(p95 >= 60, "the slowest attempts waited 60 ms: {h}");

    // The listing carries the same health; so do the CLI's get and list.
    let (s, list) = api.call("GET", "/v1/webhooks", key, None).await;
    assert_eq!(s, 200);
    assert_eq!(list["data"][0]["health"], h);
    let herald = Herald::bare(crate::HERALD)
        .with("HERALD_API_URL", &api.base)
        .with("HERALD_API_KEY", &app_key);
    let got = herald.run(&["--json", "webhooks", "get", &id]).await.ok();
    assert_eq!(got.json()["health"], h);
    let listed = herald.run(&["--json", "webhooks", "list"]).await.ok();
    assert_eq!(listed.json()["data"][0]["health"], h);
    let text = herald.run(&["webhooks", "get", &id]).await.ok();
    assert!(
        text.stdout
            .contains("last 24 h:    11 attempts, 45.5% succeeded (5 ok, 6 failed)")
            && text.stdout.contains("3 attempts since the last success"),
        "{text:#?}"
    );
    let text = herald.run(&["webhooks", "list"]).await.ok();
    assert!(
        text.stdout
            .contains(&format!("24h=45.5% of 11 p95={p95}ms failing=3")),
        "{text:#?}"
    );

    // Another app sees none of it, and its own webhook's health is its own.
    let other_key = api.app_with_key("other").await;
    let other = Some(other_key.as_str());
    let (s, e) = api.call("GET", &path, other, None).await;
    assert_eq!(s, 404, "{e}");
    let (s, list) = api.call("GET", "/v1/webhooks", other, None).await;
    assert_eq!((s, list["data"].as_array().unwrap().len()), (200, 0));
    let mine = api
        .create_webhook(&other_key, json!({"url": receiver.url(), "events": ["*"]}))
        .await;
    let (s, mine) = api
        .call(
            "GET",
            &format!("/v1/webhooks/{}", mine["id"].as_str().unwrap()),
            other,
            None,
        )
        .await;
    assert_eq!(s, 200, "{mine}");
    assert_eq!(mine["health"]["last_24h"]["attempts"], 0, "{mine}");
    assert_eq!(mine["health"]["last_success_at"], Value::Null);
}
