//! Operating an app's endpoints through the API and the CLI: its events listed newest
//! first and filtered, every delivery of the app in one stream (and `herald tail` on
//! it), and a webhook's failures recovered after an outage: every missed delivery
//! sent again exactly once, however often the recovery is repeated. Both scenarios run
//! on both backends (the emulator and in memory).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use herald_testing::{
    both_backends, wait_until, ApiServer, Backend, Deployment, Herald, Receiver, Reply,
};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::cli::wait_for_line;

/// The `data` array of a listing.
fn data(page: &Value) -> &Vec<Value> {
    page["data"].as_array().expect("a listing")
}

/// Each listed item's `field`, as strings.
fn field(page: &Value, name: &str) -> Vec<String> {
    data(page)
        .iter()
        .map(|v| v[name].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Every page of the listing at `path` (`?…&` included) with `limit` items each.
async fn all_pages(api: &ApiServer, key: &str, path: &str, limit: usize) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let q = match &cursor {
            Some(c) => format!("{path}limit={limit}&cursor={c}"),
            None => format!("{path}limit={limit}"),
        };
        let (s, page) = api.call("GET", &q, Some(key), None).await;
        assert_eq!(s, 200, "{q}: {page}");
        assert!(data(&page).len() <= limit);
        items.extend(data(&page).iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return items,
        }
    }
    panic!("{path}: more than 100 pages");
}

/// Publishes `events` with `key`, expecting 202; their ids.
async fn publish(api: &ApiServer, key: String, events: Vec<Value>) -> Vec<String> {
    let (s, out) = api
        .call(
            "POST",
            "/v1/events",
            Some(&key),
            Some(json!({"events": events})),
        )
        .await;
    assert_eq!(s, 202, "{out}");
    out["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect()
}

both_backends!(events_and_app_wide_deliveries_list_newest_first_filtered_and_isolated);

async fn events_and_app_wide_deliveries_list_newest_first_filtered_and_isolated(backend: Backend) {
    let deployment = Deployment::deploy(backend, "operating-lists")
        .await
        .unwrap();
    let api = deployment.api(&[]).await.unwrap();
    let key = api.app_with_key("shop").await;
    let other = api.app_with_key("other-shop").await;
    let all = Receiver::ok().await;
    let paid = Receiver::start(Arc::new(|_| Reply::status(500))).await;
    let w_all = api
        .create_webhook(&key, json!({"url": all.url(), "events": ["*"]}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let w_paid = api
        .create_webhook(&key, json!({"url": paid.url(), "events": ["invoice.paid"]}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The other app has a webhook and events of its own, all of them invisible to shop.
    api.create_webhook(&other, json!({"url": all.url(), "events": ["*"]}))
        .await;
    let _worker = deployment
        .worker(&[("HERALD_RETRY_SCHEDULE", "0s,1h")])
        .unwrap();

    let publish = |k: &str, events: Vec<Value>| publish(&api, k.to_owned(), events);
    let ev = |t: &str, o: &str, i: usize| json!({"type": t, "object_type": o, "data": {"i": i}});
    let mut ids = publish(
        &key,
        vec![
            ev("update", "user", 0),
            ev("invoice.paid", "invoice", 1),
            ev("update", "invoice", 2),
        ],
    )
    .await;
    let recorded = |n: usize| {
        let (api, key) = (&api, &key);
        async move {
            wait_until(Duration::from_secs(60), || async {
                let (_, page) = api
                    .call("GET", "/v1/deliveries?limit=100", Some(key), None)
                    .await;
                page["data"].as_array().is_some_and(|d| d.len() == n)
            })
            .await
        }
    };
    // 3 deliveries to the catch-all webhook, 1 (failing) to the invoice.paid one.
    assert!(recorded(4).await, "four attempts recorded");
    let between = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
    ids.extend(
        publish(
            &key,
            vec![ev("invoice.paid", "invoice", 3), ev("create", "user", 4)],
        )
        .await,
    );
    publish(&other, vec![ev("update", "user", 9)]).await;
    // 5 deliveries to the catch-all webhook, 2 (failing) to the invoice.paid one.
    assert!(recorded(7).await, "seven attempts recorded");

    // Events: newest first, each once, with the webhooks it went to.
    let (s, page) = api.call("GET", "/v1/events", Some(&key), None).await;
    assert_eq!(s, 200, "{page}");
    let mut newest_first = ids.clone();
    newest_first.sort();
    newest_first.reverse();
    assert_eq!(field(&page, "id"), newest_first, "{page}");
    let by_id: BTreeMap<String, &Value> = data(&page)
        .iter()
        .map(|e| (e["id"].as_str().unwrap().to_owned(), e))
        .collect();
    assert_eq!(
        by_id[&ids[1]]["data"],
        json!({"i": 1}),
        "the data as published"
    );
    let sent: BTreeSet<&str> = by_id[&ids[1]]["sent_to"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(sent, BTreeSet::from([w_all.as_str(), w_paid.as_str()]));
    assert_eq!(by_id[&ids[0]]["sent_to"], json!([w_all]));

    // Filters, alone and together.
    let listed = |q: String| {
        let (api, key) = (&api, &key);
        async move {
            let (s, page) = api
                .call("GET", &format!("/v1/events?{q}"), Some(key), None)
                .await;
            assert_eq!(s, 200, "{q}: {page}");
            let mut got = field(&page, "id");
            got.sort();
            got
        }
    };
    let pick = |is: &[usize]| {
        let mut v: Vec<String> = is.iter().map(|&i| ids[i].clone()).collect();
        v.sort();
        v
    };
    assert_eq!(listed("type=invoice.paid".into()).await, pick(&[1, 3]));
    assert_eq!(listed("object_type=user".into()).await, pick(&[0, 4]));
    assert_eq!(
        listed("type=update&object_type=invoice".into()).await,
        pick(&[2])
    );
    let enc = |t: &str| t.replace('+', "%2B").replace(':', "%3A");
    assert_eq!(
        listed(format!("since={}", enc(&between))).await,
        pick(&[3, 4])
    );
    assert_eq!(
        listed(format!("until={}", enc(&between))).await,
        pick(&[0, 1, 2])
    );
    assert!(listed("type=delete".into()).await.is_empty());
    // Pages of one item each make up the whole listing, in order, each event once.
    let paged: Vec<String> = all_pages(&api, &key, "/v1/events?", 1)
        .await
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(paged, newest_first);
    let (_, typed) = api
        .call("GET", "/v1/events?type=update&limit=1", Some(&key), None)
        .await;
    let cursor = typed["next_cursor"].as_str().expect("a second page");
    let (s, e) = api
        .call(
            "GET",
            &format!("/v1/events?cursor={cursor}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(s, 400, "a filtered listing's cursor on another filter: {e}");
    for (q, word) in [
        ("type=a..b", "type"),
        ("object_type=%20", "object_type"),
        ("since=yesterday", "since"),
        (
            "since=2026-12-02T00:00:00Z&until=2026-12-01T00:00:00Z",
            "since",
        ),
        ("limit=0", "limit"),
    ] {
        let (s, e) = api
            .call("GET", &format!("/v1/events?{q}"), Some(&key), None)
            .await;
        assert_eq!(s, 422, "{q}: {e}");
        assert!(
            e["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(word)),
            "{q}: {e}"
        );
    }

    // App-wide deliveries: both webhooks' attempts in one stream, newest first.
    let attempts = all_pages(&api, &key, "/v1/deliveries?", 2).await;
    assert_eq!(attempts.len(), 7);
    let times: Vec<&str> = attempts
        .iter()
        .map(|a| a["attempted_at"].as_str().unwrap())
        .collect();
    let mut sorted = times.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(times, sorted, "newest first");
    let per_webhook = |w: &str| {
        attempts
            .iter()
            .filter(|a| a["subscription_id"] == w)
            .count()
    };
    assert_eq!((per_webhook(&w_all), per_webhook(&w_paid)), (5, 2));
    let (_, failed) = api
        .call("GET", "/v1/deliveries?outcome=failed", Some(&key), None)
        .await;
    assert_eq!(field(&failed, "subscription_id"), vec![w_paid.clone(); 2]);
    let (_, updates) = api
        .call(
            "GET",
            "/v1/deliveries?event_type=update&outcome=succeeded",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(data(&updates).len(), 2, "{updates}");
    let (_, late) = api
        .call(
            "GET",
            &format!("/v1/deliveries?since={}", enc(&between)),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(data(&late).len(), 3, "{late}");

    // The other app sees only its own; shop's cursors mean nothing to it.
    let (s, theirs) = api.call("GET", "/v1/events", Some(&other), None).await;
    assert_eq!((s, data(&theirs).len()), (200, 1), "{theirs}");
    assert!(!ids.contains(&theirs["data"][0]["id"].as_str().unwrap().to_owned()));
    let (s, theirs) = api.call("GET", "/v1/deliveries", Some(&other), None).await;
    assert_eq!((s, data(&theirs).len()), (200, 1), "{theirs}");
    assert_ne!(theirs["data"][0]["subscription_id"], w_all);
    let (_, mine) = api
        .call("GET", "/v1/deliveries?limit=1", Some(&key), None)
        .await;
    let cursor = mine["next_cursor"].as_str().unwrap();
    let (s, e) = api
        .call(
            "GET",
            &format!("/v1/deliveries?limit=1&cursor={cursor}"),
            Some(&other),
            None,
        )
        .await;
    assert_eq!(s, 400, "{e}");
    let (s, _) = api.call("GET", "/v1/events", None, None).await;
    assert_eq!(s, 401);

    // The CLI: events list and get, app-wide deliveries, and tail on the app's stream.
    let herald = Herald::bare(crate::HERALD)
        .with("HERALD_API_URL", &api.base)
        .with("HERALD_API_KEY", &key);
    let out = herald
        .run(&[
            "--json",
            "events",
            "list",
            "--type",
            "invoice.paid",
            "--since",
            "1h",
        ])
        .await
        .ok();
    let mut got = field(&out.json(), "id");
    got.sort();
    assert_eq!(got, pick(&[1, 3]), "{out:#?}");
    let out = herald.run(&["events", "list", "--limit", "2"]).await.ok();
    assert!(
        out.stdout.contains(&newest_first[0]) && out.stderr.contains("--cursor"),
        "{out:#?}"
    );
    let out = herald.run(&["events", "get", &ids[1]]).await.ok();
    assert!(
        out.stdout.contains("failing") && out.stdout.contains(&w_all),
        "{out:#?}"
    );
    let out = herald
        .run(&["--json", "deliveries", "--outcome", "failed"])
        .await
        .ok();
    assert_eq!(data(&out.json()).len(), 2, "{out:#?}");

    // tail first, so it sees the attempts that follow: those of both webhooks, in one
    // stream.
    let mut tail = herald.spawn(&["tail", "--interval", "0.3", "--for", "60"]);
    let mut tail_err = BufReader::new(tail.stderr.take().unwrap()).lines();
    let mut tail_out = BufReader::new(tail.stdout.take().unwrap()).lines();
    wait_for_line(&mut tail_err, "following", Duration::from_secs(30))
        .await
        .unwrap();
    let fresh = publish(&key, vec![ev("invoice.paid", "invoice", 5)]).await;
    let mut webhooks = BTreeSet::new();
    while webhooks.len() < 2 {
        let line = wait_for_line(&mut tail_out, &fresh[0], Duration::from_secs(60))
            .await
            .unwrap();
        for w in [&w_all, &w_paid] {
            if line.contains(w.as_str()) {
                webhooks.insert(w.clone());
            }
        }
    }
    let _ = tail.kill().await;
}

both_backends!(recover_sends_every_missed_delivery_exactly_once_however_often_it_runs);

async fn recover_sends_every_missed_delivery_exactly_once_however_often_it_runs(backend: Backend) {
    let deployment = Deployment::deploy(backend, "operating-recover")
        .await
        .unwrap();
    let api = deployment.api(&[]).await.unwrap();
    let key = api.app_with_key("shop").await;
    let other = api.app_with_key("other-shop").await;
    let up = Arc::new(AtomicBool::new(false));
    let receiver = Receiver::start({
        let up = Arc::clone(&up);
        Arc::new(move |_| Reply::status(if up.load(Ordering::SeqCst) { 200 } else { 503 }))
    })
    .await;
    let w = api
        .create_webhook(&key, json!({"url": receiver.url(), "events": ["*"]}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Two attempts a second apart, then the dead-letter queue; never disabled by
    // Herald (the test disables it itself).
    let _worker = deployment
        .worker(&[
            ("HERALD_RETRY_SCHEDULE", "0s,1s"),
            ("HERALD_DISABLE_AFTER_FAILED_DELIVERIES", "0"),
            // A disabled webhook is seen as such at once.
            ("HERALD_SUBSCRIPTION_CACHE_TTL", "0s"),
        ])
        .unwrap();
    let started = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    let publish = |n: usize, from: usize| {
        let events = (from..from + n)
            .map(|i| json!({"type": "update", "object_type": "user", "data": {"i": i}}))
            .collect();
        publish(&api, key.clone(), events)
    };

    // The endpoint is down: 60 events fail twice each and are parked (120 failed
    // attempts: more than one recovery call examines, so it takes a continuation).
    let parked = publish(60, 0).await;
    assert!(
        wait_until(Duration::from_secs(120), || async {
            deployment.dlq_depth().await.unwrap_or(0) == 60
        })
        .await,
        "60 dead letters"
    );
    assert_eq!(receiver.count(), 120);
    // Then disabled for a while: 2 events not sent.
    let (s, _) = api
        .call(
            "POST",
            &format!("/v1/webhooks/{w}/disable"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let not_sent = publish(2, 60).await;
    let recorded = |outcome: &'static str, n: usize| {
        let (api, key, w) = (&api, &key, &w);
        async move {
            wait_until(Duration::from_secs(60), || async {
                all_pages(
                    api,
                    key,
                    &format!("/v1/webhooks/{w}/deliveries?outcome={outcome}&"),
                    250,
                )
                .await
                .len()
                    == n
            })
            .await
        }
    };
    assert!(recorded("not_sent", 2).await, "two deliveries not sent");
    // A disabled webhook is not recovered: its deliveries would only be not sent again.
    let (s, e) = api
        .call(
            "POST",
            &format!("/v1/webhooks/{w}/recover"),
            Some(&key),
            Some(json!({"since": started})),
        )
        .await;
    assert_eq!(s, 409, "{e}");
    // Up again, enabled: new events are delivered at once.
    up.store(true, Ordering::SeqCst);
    let (s, _) = api
        .call(
            "POST",
            &format!("/v1/webhooks/{w}/enable"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let delivered = publish(1, 62).await;
    assert!(
        wait_until(Duration::from_secs(60), || async {
            receiver.delivered().0.len() == 1
        })
        .await
    );

    // Bad requests, and another app's key, change nothing.
    let path = format!("/v1/webhooks/{w}/recover");
    for body in [
        json!({}),
        json!({"since": "yesterday"}),
        json!({"since": started, "until": "2020-01-01T00:00:00Z"}),
        json!({"since": "2999-01-01T00:00:00Z"}),
        json!({"since": started, "extra": 1}),
    ] {
        let (s, e) = api
            .call("POST", &path, Some(&key), Some(body.clone()))
            .await;
        assert!(s == 422 || s == 400, "{body}: {s} {e}");
        assert!(e["error"]["message"].is_string(), "{body}: {e}");
    }
    let (s, e) = api
        .call("POST", &path, Some(&other), Some(json!({"since": started})))
        .await;
    assert_eq!(s, 404, "{e}");

    // Recover, call after call until the window is done.
    let recover = || {
        let (api, key, path, started) = (&api, &key, &path, &started);
        async move {
            let mut calls = Vec::new();
            let mut body = json!({"since": started});
            loop {
                let (s, out) = api.call("POST", path, Some(key), Some(body.clone())).await;
                assert_eq!(s, 202, "{out}");
                calls.push(out.clone());
                match out["next_cursor"].as_str() {
                    Some(c) => body["cursor"] = json!(c),
                    None => return calls,
                }
            }
        }
    };
    let sum = |calls: &[Value], name: &str| -> u64 {
        calls.iter().map(|c| c[name].as_u64().unwrap()).sum()
    };
    let calls = recover().await;
    assert!(calls.len() >= 2, "bounded work per call: {calls:?}");
    assert_eq!(sum(&calls, "queued"), 62, "{calls:?}");
    let mut queued: Vec<String> = calls
        .iter()
        .flat_map(|c| c["event_ids"].as_array().unwrap().iter())
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    queued.sort();
    let mut missed: Vec<String> = parked.iter().chain(&not_sent).cloned().collect();
    missed.sort();
    assert_eq!(queued, missed, "exactly the missed events");
    // Repeated at once, while those deliveries may still be under way: nothing twice.
    let again = recover().await;
    assert_eq!(sum(&again, "queued"), 0, "{again:?}");
    assert_eq!(
        sum(&again, "already_queued") + sum(&again, "succeeded_since"),
        62,
        "each delivery counted once: {again:?}"
    );

    // Every event, missed or not, reached the endpoint exactly once with a 2xx.
    assert!(
        wait_until(Duration::from_secs(120), || async {
            receiver.delivered().0.len() == 63
        })
        .await,
        "63 events delivered: {}",
        receiver.delivered().0.len()
    );
    let (_, duplicates) = receiver.delivered();
    assert_eq!(duplicates, 0);
    assert!(
        recorded("succeeded", 63).await,
        "the recovered deliveries are in the history"
    );
    // Once delivered, a recovery finds them succeeded; the CLI says so too.
    let herald = Herald::bare(crate::HERALD)
        .with("HERALD_API_URL", &api.base)
        .with("HERALD_API_KEY", &key);
    let out = herald
        .run(&["--json", "webhooks", "recover", &w, "--since", "1h"])
        .await
        .ok();
    let total = out.json();
    assert_eq!(total["queued"], 0, "{out:#?}");
    assert_eq!(total["succeeded_since"], 62, "{out:#?}");
    let out = herald
        .run(&["webhooks", "recover", &w, "--since", "1h"])
        .await
        .ok();
    assert!(out.stdout.contains("0 deliveries queued again"), "{out:#?}");
    let bad = herald
        .run(&["webhooks", "recover", &w, "--since", "last week"])
        .await;
    assert_eq!(bad.code, 2, "{bad:#?}");
    let (_, delivered_event) = api
        .call(
            "GET",
            &format!("/v1/events/{}", delivered[0]),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(
        delivered_event["webhooks"][0]["attempts"], 1,
        "never re-sent"
    );
    // The dead letters stay on the dead-letter queue: recovering is not re-driving
    // (docs/delivery.md: a re-drive after a recovery sends them again, under the same
    // webhook-id).
    assert_eq!(deployment.dlq_depth().await.unwrap(), 60);
}
