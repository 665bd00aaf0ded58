//! The delivery history store against the emulator: batched writes beyond one
//! BatchWriteItem call, newest-first paging per subscription and per event, and
//! expired records hidden even where TTL deletion has not run.

use std::time::Duration;

use chrono::Utc;
use herald_core::{webhook_id, AppId, Attempt, AttemptOutcome, EventId, EventType, SubscriptionId};
use herald_store::AttemptStore;
use herald_testing::{aws, Stack};

fn attempt(app: &str, sub: &str, event: &str, n: u32, age: chrono::TimeDelta) -> Attempt {
    let event_id = EventId::parse(event).unwrap();
    let subscription_id = SubscriptionId::new(sub);
    Attempt {
        app_id: AppId::parse(app).unwrap(),
        webhook_id: webhook_id(&event_id, &subscription_id),
        event_id,
        event_type: EventType::parse("update").unwrap(),
        subscription_id,
        attempt: n,
        attempted_at: Utc::now() - age,
        outcome: AttemptOutcome::Failed,
        status_code: Some(500),
        latency_ms: 12,
        error_kind: Some("http_status".into()),
        error: None,
        response_body: "x".repeat(100),
        next_attempt_at: None,
    }
}

#[tokio::test]
async fn history_is_written_in_batches_paged_newest_first_and_expires() {
    let stack = Stack::deploy("history").unwrap();
    let dynamo = aws_sdk_dynamodb::Client::new(&aws().await);
    let store = AttemptStore::new(
        dynamo,
        stack.var("HERALD_ATTEMPTS_TABLE"),
        Duration::from_secs(30 * 86_400),
    );

    // 60 attempts for one subscription over 3 events, one minute apart; plus one for
    // another app, and one older than the retention.
    let mut records: Vec<Attempt> = (0..60)
        .map(|i| {
            attempt(
                "app",
                "sub_1",
                &format!("evt_{}", i % 3),
                i / 3 + 1,
                chrono::TimeDelta::minutes(i as i64),
            )
        })
        .collect();
    records.push(attempt(
        "other",
        "sub_1",
        "evt_0",
        1,
        chrono::TimeDelta::zero(),
    ));
    records.push(attempt(
        "app",
        "sub_1",
        "evt_old",
        1,
        chrono::TimeDelta::days(31),
    ));
    store
        .record(&records)
        .await
        .expect("batched write of 62 records");

    let app = AppId::parse("app").unwrap();
    let sub = SubscriptionId::new("sub_1");
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = store
            .for_subscription(&app, &sub, 25, cursor.as_deref())
            .await
            .unwrap();
        pages += 1;
        all.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(
        all.len(),
        60,
        "the other app's and the expired record are not listed"
    );
    assert!(pages >= 3);
    assert!(
        all.windows(2)
            .all(|w| w[0].attempted_at >= w[1].attempted_at),
        "newest first"
    );
    assert_eq!(all[0], records[0], "records read back intact");

    let per_event = store
        .for_event(&app, &EventId::parse("evt_1").unwrap(), 100, None)
        .await
        .unwrap();
    assert_eq!(per_event.items.len(), 20);
    assert!(per_event
        .items
        .iter()
        .all(|a| a.event_id.as_str() == "evt_1" && a.app_id == app));
    let other = store
        .for_event(
            &AppId::parse("other").unwrap(),
            &EventId::parse("evt_0").unwrap(),
            100,
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        other.items.len(),
        1,
        "tenants never see each other's history"
    );
    assert!(
        store
            .for_subscription(&app, &sub, 10, Some("bogus"))
            .await
            .is_err(),
        "a forged cursor is refused"
    );
}
