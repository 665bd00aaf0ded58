//! Payload filters end to end (issue #16, item 7): two webhooks, each on its own real
//! receiver, with filters on the events' content; events that match a webhook's filter
//! arrive there and the others do not, counted once the queue is empty. A filtered-out
//! delivery is not a failure: no attempt, no failure count, no history record. Bad
//! filters are refused with 422 naming the bad part; a PATCH removes a filter; the CLI
//! sets, shows and removes one.

use std::collections::BTreeSet;
use std::time::Duration;

use herald_testing::{
    aws, console_session, queue_counts, wait_until, ApiServer, Herald, Receiver, Stack, Worker,
};
use serde_json::{json, Value};

use crate::HERALD;

/// The event ids a receiver got, from the envelopes' ids (`webhook-id` is per webhook).
fn received_ids(r: &Receiver) -> BTreeSet<String> {
    r.received()
        .iter()
        .map(|d| {
            d.json()["data"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_reach_only_the_webhooks_whose_filters_they_match() {
    let stack = Stack::deploy("payload-filters").unwrap();
    let api = ApiServer::start(&stack, &[]).await.unwrap();
    let key = api.app_with_key("shop").await;
    let k = Some(key.as_str());
    let _worker = Worker::spawn(&stack, &[]).unwrap();

    let eu = Receiver::ok().await;
    let big = Receiver::ok().await;
    let eu_hook = api
        .create_webhook(
            &key,
            json!({"url": eu.url(), "events": ["order.created"],
                   "filter": {"path": "/data/region", "eq": "eu"}}),
        )
        .await;
    assert_eq!(
        eu_hook["filter"],
        json!({"path": "/data/region", "eq": "eu"})
    );
    let big_filter = json!({"all": [
        {"path": "/data/amount", "exists": true},
        {"any": [
            {"path": "/data/currency", "in": ["USD", "CAD"]},
            {"path": "/actor/id", "prefix": "admin_"}
        ]}
    ]});
    let big_hook = api
        .create_webhook(
            &key,
            json!({"url": big.url(), "events": ["*"], "filter": big_filter}),
        )
        .await;

    // Which event goes where: (data, actor, to eu, to big).
    let cases = [
        (json!({"id": "o1", "region": "eu"}), None, true, false),
        (
            json!({"id": "o2", "region": "us", "amount": 5, "currency": "USD"}),
            None,
            false,
            true,
        ),
        (
            json!({"id": "o3", "region": "eu", "amount": 5, "currency": "EUR"}),
            Some("admin_7"),
            true,
            true,
        ),
        (
            json!({"id": "o4", "region": "us", "amount": 1, "currency": "EUR"}),
            Some("user_7"),
            false,
            false,
        ),
        (json!({"id": "o5"}), None, false, false),
        (
            json!({"id": "o6", "region": "EU", "amount": null, "currency": "CAD"}),
            None,
            false,
            true,
        ),
        (
            json!({"id": "o7", "region": ["eu"], "currency": "USD"}),
            None,
            false,
            false,
        ),
    ];
    let events: Vec<Value> = cases
        .iter()
        .map(|(data, actor, _, _)| {
            let mut e = json!({"type": "order.created", "object_type": "order", "data": data});
            if let Some(actor) = actor {
                e["actor"] = json!({"id": actor});
            }
            e
        })
        .collect();
    let (s, published) = api
        .call("POST", "/v1/events", k, Some(json!({"events": events})))
        .await;
    assert_eq!(s, 202, "{published}");
    let wanted = |to_eu: bool| -> BTreeSet<String> {
        cases
            .iter()
            .filter(|c| if to_eu { c.2 } else { c.3 })
            .map(|c| c.0["id"].as_str().unwrap().to_owned())
            .collect()
    };

    // Everything handled: both receivers have what they should, and the queue is empty.
    let sqs = aws_sdk_sqs::Client::new(&aws().await);
    let settled = wait_until(Duration::from_secs(60), || async {
        received_ids(&eu) == wanted(true)
            && received_ids(&big) == wanted(false)
            && queue_counts(&sqs, stack.events_queue())
                .await
                .is_ok_and(|c| c.total() == 0)
    })
    .await;
    assert!(
        settled,
        "eu got {:?} (wants {:?}), big got {:?} (wants {:?})",
        received_ids(&eu),
        wanted(true),
        received_ids(&big),
        wanted(false)
    );
    // Counted: each matching event once, nothing else.
    assert_eq!(eu.count(), 2, "{:?}", received_ids(&eu));
    assert_eq!(big.count(), 3, "{:?}", received_ids(&big));

    // Filtered out is not failed: no failures, and the history holds only deliveries.
    for (hook, delivered) in [(&eu_hook, 2), (&big_hook, 3)] {
        let id = hook["id"].as_str().unwrap();
        let (s, w) = api
            .call("GET", &format!("/v1/webhooks/{id}"), k, None)
            .await;
        assert_eq!(s, 200);
        assert_eq!(w["health"]["last_24h"]["failures"], 0, "{w}");
        assert_eq!(w["health"]["consecutive_failures"], 0, "{w}");
        let history = wait_until(Duration::from_secs(20), || async {
            let (_, page) = api
                .call("GET", &format!("/v1/webhooks/{id}/deliveries"), k, None)
                .await;
            page["data"]
                .as_array()
                .is_some_and(|d| d.len() == delivered)
        })
        .await;
        let (_, page) = api
            .call("GET", &format!("/v1/webhooks/{id}/deliveries"), k, None)
            .await;
        assert!(history, "only the delivered events are recorded: {page}");
        assert!(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .all(|a| a["outcome"] == "succeeded"),
            "{page}"
        );
    }

    // The console shows a webhook's filter on its page.
    let console = format!("{}/console", api.base);
    let cookie = console_session(&console, &key).await.unwrap().cookie;
    let page = reqwest::Client::new()
        .get(format!(
            "{console}/webhooks/{}",
            eu_hook["id"].as_str().unwrap()
        ))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Payload filter") && page.contains("/data/region"),
        "{page}"
    );

    // Bad filters: 422 naming the bad part, on create and on PATCH.
    for (filter, says) in [
        (json!({"path": "/amount", "eq": 1}), "filter.path"),
        (
            json!({"all": [{"path": "/data/a", "eq": [1]}]}),
            "filter.all[0].eq",
        ),
        (json!({"any": []}), "filter.any"),
        (
            json!({"path": "/data/a", "prefix": "x", "eq": "y"}),
            "exactly one test",
        ),
        (json!("region = eu"), "must be an object"),
    ] {
        let (s, e) = api
            .call(
                "POST",
                "/v1/webhooks",
                k,
                Some(json!({"url": eu.url(), "events": ["*"], "filter": filter})),
            )
            .await;
        assert_eq!(s, 422, "{filter}: {e}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(says),
            "{filter}: {e}"
        );
    }
    let big_path = format!("/v1/webhooks/{}", big_hook["id"].as_str().unwrap());
    let (s, e) = api
        .call(
            "PATCH",
            &big_path,
            k,
            Some(json!({"filter": {"path": "/data", "exists": 1}})),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("filter.exists"),
        "{e}"
    );

    // Removing the filter: events that match nothing reach big. The worker follows a
    // routing change within its cache TTL, so an event goes out each second until one
    // arrives (the ones before are filtered out by the routes the worker still held).
    let (s, w) = api
        .call("PATCH", &big_path, k, Some(json!({"filter": null})))
        .await;
    assert_eq!((s, &w["filter"]), (200, &Value::Null), "{w}");
    let polls = std::sync::atomic::AtomicUsize::new(0);
    let arrived = wait_until(Duration::from_secs(40), || async {
        let n = polls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n.is_multiple_of(10) {
            let data = json!({"id": format!("o8-{n}"), "region": "us"});
            let (s, _) = api
                .call(
                    "POST",
                    "/v1/events",
                    k,
                    Some(json!({"type": "order.created", "object_type": "order", "data": data})),
                )
                .await;
            assert_eq!(s, 202);
        }
        received_ids(&big).iter().any(|id| id.starts_with("o8-"))
    })
    .await;
    assert!(arrived, "big takes every event once its filter is removed");
    assert!(!received_ids(&eu).iter().any(|id| id.starts_with("o8-")));

    // The CLI: --filter on add and update, shown by get and list; --no-filter.
    let scratch = herald_testing::scratch_dir("payload-filters-cli").unwrap();
    let herald = Herald::new(HERALD, &stack, &scratch)
        .with("HERALD_API_URL", &api.base)
        .with("HERALD_API_KEY", &key);
    let filter = r#"{"path":"/data/region","in":["eu","uk"]}"#;
    let added = herald
        .run(&[
            "--json",
            "webhooks",
            "add",
            "--url",
            &eu.url(),
            "--filter",
            filter,
        ])
        .await
        .ok()
        .json();
    assert_eq!(
        added["filter"],
        serde_json::from_str::<Value>(filter).unwrap()
    );
    let id = added["id"].as_str().unwrap();
    // Shown as compact JSON, keys in order.
    let shown = r#"{"in":["eu","uk"],"path":"/data/region"}"#;
    crate::assert_webhook_shows(
        &herald,
        id,
        &format!("filter:       {shown}"),
        &format!("filter={shown}"),
    )
    .await;
    let file = scratch.join("filter.json");
    std::fs::write(&file, r#"{"path": "/type", "prefix": "order."}"#).unwrap();
    let updated = herald
        .run(&[
            "--json",
            "webhooks",
            "update",
            id,
            "--filter",
            &format!("@{}", file.display()),
        ])
        .await
        .ok()
        .json();
    assert_eq!(
        updated["filter"],
        json!({"path": "/type", "prefix": "order."})
    );
    let bad = herald
        .run(&["webhooks", "update", id, "--filter", r#"{"path": "data"}"#])
        .await;
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("filter.path"), "{}", bad.stderr);
    let cleared = herald
        .run(&["--json", "webhooks", "update", id, "--no-filter"])
        .await
        .ok()
        .json();
    assert_eq!(cleared["filter"], Value::Null);
}
