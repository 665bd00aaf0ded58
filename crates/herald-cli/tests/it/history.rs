//! The delivery history store against the emulator: a batch's items written in
//! BatchWriteItem calls of 25, a webhook's attempts paged newest first across the 8
//! shard partitions, an event's attempts (first fan-out, not sent, retries through the
//! trail), stored events found by id, cursors bound to their listing, and expired
//! items hidden even where TTL deletion has not run.

use std::collections::BTreeSet;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64;
use base64::Engine as _;
use chrono::{DateTime, TimeDelta, Utc};
use herald_core::{webhook_id, AppId, EventId};
use herald_core::{
    Attempt, AttemptOutcome, DeliveryError, DeliveryOutcome, Event, EventType, ObjectType,
    SubscriptionId,
};
use herald_store::AttemptFilter;
use herald_store::{BatchHistory, HistoryStore, StoreError};
use herald_testing::{aws, Stack};

const RETENTION: Duration = Duration::from_secs(30 * 86_400);

fn app(name: &str) -> AppId {
    AppId::parse(name).unwrap()
}

fn sub(id: &str) -> SubscriptionId {
    SubscriptionId::new(id)
}

/// An event with a real generated id (a UUIDv7: lookups take the minute from it).
fn event(app_name: &str, n: usize) -> Event {
    Event::new(
        app(app_name),
        EventType::parse("update").unwrap(),
        ObjectType::parse("user").unwrap(),
        serde_json::json!({ "n": n, "name": format!("user {n}") }),
    )
}

fn succeeded(e: &Event, to: &str, attempt: u32, at: DateTime<Utc>) -> Attempt {
    let ok = DeliveryOutcome::answered(200, "fine".into(), None, Duration::from_millis(20));
    Attempt::of_outcome(e, &sub(to), webhook_id(&e.id, &sub(to)), attempt, at, &ok)
}

fn failed(e: &Event, to: &str, attempt: u32, at: DateTime<Utc>) -> Attempt {
    let down = DeliveryOutcome::failed(DeliveryError::Timeout, Duration::from_millis(900));
    Attempt {
        next_attempt_at: Some(at + TimeDelta::seconds(30)),
        ..Attempt::of_outcome(e, &sub(to), webhook_id(&e.id, &sub(to)), attempt, at, &down)
    }
}

fn not_sent(e: &Event, to: &str, at: DateTime<Utc>) -> Attempt {
    Attempt {
        attempted_at: at,
        ..Attempt::not_sent(e, &sub(to), "endpoint_disabled", Some("410 Gone"))
    }
}

/// A batch at `at` in `shard`.
fn batch(at: DateTime<Utc>, shard: u8) -> BatchHistory {
    BatchHistory {
        at,
        shard,
        ..BatchHistory::start()
    }
}

/// Every page of a webhook's listing, `size` at a time.
async fn all_pages(
    store: &HistoryStore,
    app: &AppId,
    sub: &SubscriptionId,
    size: i32,
) -> (Vec<Attempt>, Vec<String>) {
    let (mut all, mut cursors) = (Vec::new(), Vec::new());
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .for_subscription(app, sub, &AttemptFilter::default(), size, cursor.as_deref())
            .await
            .expect("a page");
        assert!(page.items.len() <= size as usize);
        all.extend(page.items);
        match page.next_cursor {
            Some(c) => {
                cursors.push(c.clone());
                cursor = Some(c);
            }
            None => return (all, cursors),
        }
    }
}

fn bad_cursor<T: std::fmt::Debug>(r: Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::BadCursor))
}

#[tokio::test]
async fn history_is_written_per_batch_and_listed_per_webhook_and_per_event() {
    let stack = Stack::deploy("history").unwrap();
    let dynamo = aws_sdk_dynamodb::Client::new(&aws().await);
    let store = HistoryStore::new(dynamo, stack.var("HERALD_HISTORY_TABLE"), RETENTION);
    let shop = app("shop");
    let start = Utc::now() - TimeDelta::minutes(10);

    // Three batches of four fresh events each, in three shards: each event delivered
    // to `sub_a` and not sent to the disabled `sub_off`.
    let mut events = Vec::new();
    for (b, shard) in [1u8, 6, 3].into_iter().enumerate() {
        let at = start + TimeDelta::seconds(b as i64 * 10);
        let mut h = batch(at, shard);
        for i in 0..4 {
            let e = event("shop", b * 4 + i);
            let t = at + TimeDelta::milliseconds(i as i64);
            h.fanned_out(e.clone());
            h.attempted(succeeded(&e, "sub_a", 1, t), true);
            h.attempted(not_sent(&e, "sub_off", t), true);
            events.push(e);
        }
        store.record(&h).await.expect("write a batch");
    }
    // A later batch in another shard: a retry of the first event to `sub_a` (from a
    // Delivery message: reached through the event's trail).
    let retried_at = start + TimeDelta::seconds(40);
    let mut retry = batch(retried_at, 0);
    retry.attempted(failed(&events[0], "sub_a", 2, retried_at), false);
    store.record(&retry).await.expect("write the retry batch");
    // One batch of 30 webhooks: 31 items, more than one BatchWriteItem call.
    let wide = event("shop", 99);
    let wide_at = start + TimeDelta::seconds(50);
    let mut h = batch(wide_at, 2);
    h.fanned_out(wide.clone());
    for i in 0..30 {
        h.attempted(succeeded(&wide, &format!("sub_w{i:02}"), 1, wide_at), true);
    }
    store.record(&h).await.expect("write a batch of 31 items");
    // Another app with a webhook of the same id; and a batch older than the retention.
    let theirs = event("other", 0);
    let mut h = batch(start, 1);
    h.fanned_out(theirs.clone());
    h.attempted(succeeded(&theirs, "sub_a", 1, start), true);
    store.record(&h).await.unwrap();
    let expired = event("shop", 100);
    let long_ago = Utc::now() - TimeDelta::days(31);
    let mut h = batch(long_ago, 5);
    h.fanned_out(expired.clone());
    h.attempted(succeeded(&expired, "sub_a", 1, long_ago), true);
    store.record(&h).await.unwrap();

    // Per webhook: newest first across shards and pages, no duplicates, no gaps.
    let (listed, cursors) = all_pages(&store, &shop, &sub("sub_a"), 2).await;
    assert_eq!(
        listed.len(),
        13,
        "12 first attempts and a retry; not the expired one"
    );
    assert_eq!(cursors.len(), 6, "pages of 2, no empty last page");
    assert!(
        listed
            .windows(2)
            .all(|w| w[0].attempted_at > w[1].attempted_at),
        "newest first: {:?}",
        listed.iter().map(|a| a.attempted_at).collect::<Vec<_>>()
    );
    let seen: BTreeSet<(String, u32)> = listed
        .iter()
        .map(|a| (a.event_id.to_string(), a.attempt))
        .collect();
    let mut expected: BTreeSet<(String, u32)> =
        events.iter().map(|e| (e.id.to_string(), 1)).collect();
    expected.insert((events[0].id.to_string(), 2));
    assert_eq!(seen, expected);
    assert!(listed
        .iter()
        .all(|a| a.app_id == shop && a.subscription_id == sub("sub_a")));
    assert_eq!(listed[0].outcome, AttemptOutcome::Failed);
    assert_eq!(listed[0].error_kind.as_deref(), Some("timeout"));
    assert!(listed[0].next_attempt_at.is_some());
    assert_eq!(
        listed[1],
        Attempt {
            response_body: String::new(),
            ..succeeded(&events[11], "sub_a", 1, listed[1].attempted_at)
        },
        "a success reads back compact"
    );
    let (big_pages, _) = all_pages(&store, &shop, &sub("sub_a"), 250).await;
    assert_eq!(big_pages, listed, "page size does not change the listing");
    let (off, _) = all_pages(&store, &shop, &sub("sub_off"), 5).await;
    assert_eq!(off.len(), 12);
    assert!(off
        .iter()
        .all(|a| a.outcome == AttemptOutcome::NotSent && a.error.as_deref() == Some("410 Gone")));
    let (other, _) = all_pages(&store, &app("other"), &sub("sub_a"), 10).await;
    assert_eq!(other.len(), 1, "tenants never see each other's history");
    assert_eq!(other[0].event_id, theirs.id);

    // Per event: its first fan-out (delivered and not sent) and its retry.
    let first = &events[0];
    let page = store
        .for_event(&shop, &first.id, &AttemptFilter::default(), 2, None)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 2);
    let cursor = page.next_cursor.expect("a second page");
    let rest = store
        .for_event(
            &shop,
            &first.id,
            &AttemptFilter::default(),
            2,
            Some(&cursor),
        )
        .await
        .unwrap();
    assert!(rest.next_cursor.is_none());
    let mine: Vec<Attempt> = page.items.into_iter().chain(rest.items).collect();
    let summary: Vec<(&str, u32, AttemptOutcome)> = mine
        .iter()
        .map(|a| (a.subscription_id.as_str(), a.attempt, a.outcome))
        .collect();
    assert_eq!(
        summary,
        [
            ("sub_a", 2, AttemptOutcome::Failed),
            ("sub_off", 0, AttemptOutcome::NotSent),
            ("sub_a", 1, AttemptOutcome::Succeeded),
        ],
        "newest first (the not-sent entry shares its time with the first attempt)"
    );
    assert!(mine
        .iter()
        .all(|a| a.event_id == first.id && a.app_id == shop));
    let wide_listed = store
        .for_event(&shop, &wide.id, &AttemptFilter::default(), 100, None)
        .await
        .unwrap();
    assert_eq!(
        wide_listed.items.len(),
        30,
        "all 30 webhooks' records read back"
    );
    assert!(store
        .for_event(
            &app("other"),
            &first.id,
            &AttemptFilter::default(),
            10,
            None
        )
        .await
        .unwrap()
        .items
        .is_empty());

    // Stored events by id: present when matched, absent when never stored or expired.
    assert_eq!(
        store.get_event(&shop, &events[7].id).await.unwrap(),
        Some(events[7].clone())
    );
    assert_eq!(
        store.get_event(&shop, &wide.id).await.unwrap(),
        Some(wide.clone())
    );
    let unmatched = event("shop", 200);
    assert_eq!(store.get_event(&shop, &unmatched.id).await.unwrap(), None);
    assert_eq!(store.get_event(&shop, &expired.id).await.unwrap(), None);
    assert_eq!(
        store.get_event(&app("other"), &first.id).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .get_event(&shop, &EventId::parse("evt_custom").unwrap())
            .await
            .unwrap(),
        None
    );

    // Cursors are bound to their listing.
    let webhook_cursor = &cursors[0];
    assert!(bad_cursor(
        store
            .for_subscription(
                &shop,
                &sub("sub_off"),
                &AttemptFilter::default(),
                2,
                Some(webhook_cursor)
            )
            .await
    ));
    assert!(bad_cursor(
        store
            .for_subscription(
                &app("other"),
                &sub("sub_a"),
                &AttemptFilter::default(),
                2,
                Some(webhook_cursor)
            )
            .await
    ));
    assert!(bad_cursor(
        store
            .for_event(
                &shop,
                &events[1].id,
                &AttemptFilter::default(),
                2,
                Some(&cursor)
            )
            .await
    ));
    assert!(bad_cursor(
        store
            .for_event(
                &shop,
                &first.id,
                &AttemptFilter::default(),
                2,
                Some(webhook_cursor)
            )
            .await
    ));
    let mut decoded: serde_json::Value =
        serde_json::from_slice(&BASE64.decode(webhook_cursor).unwrap()).unwrap();
    decoded["k"] = serde_json::json!("W#shop#sub_a#0");
    let tampered = BASE64.encode(serde_json::to_vec(&decoded).unwrap());
    for forged in [tampered.as_str(), "bogus", &"A".repeat(600)] {
        assert!(bad_cursor(
            store
                .for_subscription(
                    &shop,
                    &sub("sub_a"),
                    &AttemptFilter::default(),
                    2,
                    Some(forged)
                )
                .await
        ));
    }
}
