use herald_core::testing::{attempt, event};
use herald_store::RecoveryState;

use super::*;

fn batch(events: Vec<Event>, attempts: Vec<(Attempt, bool)>) -> BatchHistory {
    let mut b = BatchHistory::start();
    for e in events {
        b.fanned_out(e);
    }
    for (a, first) in attempts {
        b.attempted(a, first);
    }
    b
}

fn app() -> AppId {
    AppId::parse("shop").unwrap()
}

#[tokio::test]
async fn attempts_list_newest_first_by_webhook_event_and_app_in_pages() {
    let h = MemoryHistory::new(Duration::from_secs(3600));
    let e = event("shop", "update");
    let now = Utc::now();
    let sub = SubscriptionId::new("sub_1");
    let first = attempt(
        &e,
        "sub_1",
        AttemptOutcome::Failed,
        now - TimeDelta::seconds(2),
    );
    let second = attempt(
        &e,
        "sub_1",
        AttemptOutcome::Succeeded,
        now - TimeDelta::seconds(1),
    );
    let other = attempt(&e, "sub_2", AttemptOutcome::NotSent, now);
    History::record(
        &h,
        &batch(vec![e.clone()], vec![(first, true), (other, true)]),
    )
    .await
    .unwrap();
    History::record(&h, &batch(vec![], vec![(second, false)]))
        .await
        .unwrap();

    let all = AttemptFilter::default();
    let p1 = h
        .for_subscription(&app(), &sub, &all, 1, None)
        .await
        .unwrap();
    assert_eq!(
        p1.items[0].outcome,
        AttemptOutcome::Succeeded,
        "newest first"
    );
    let p2 = h
        .for_subscription(&app(), &sub, &all, 1, p1.next_cursor.as_deref())
        .await
        .unwrap();
    assert_eq!(p2.items[0].outcome, AttemptOutcome::Failed);
    assert_eq!(p2.next_cursor, None);
    // A cursor resumes only its own listing (`ListingScope`), filter included.
    let cursor = p1.next_cursor.as_deref();
    let failed = AttemptFilter {
        outcome: Some(AttemptOutcome::Failed),
        ..AttemptFilter::default()
    };
    let other_sub = SubscriptionId::new("sub_2");
    let refused = [
        h.for_subscription(&app(), &sub, &failed, 1, cursor).await,
        h.for_subscription(&app(), &other_sub, &all, 1, cursor)
            .await,
        h.for_app(&app(), &all, 1, cursor).await,
        h.for_event(&app(), &e.id, &all, 1, cursor).await,
    ];
    for r in refused {
        assert!(matches!(r, Err(StoreError::BadCursor)), "{r:?}");
    }
    assert_eq!(
        h.for_event(&app(), &e.id, &all, 10, None)
            .await
            .unwrap()
            .items
            .len(),
        3
    );
    let other_app = AppId::parse("other").unwrap();
    assert!(h
        .for_app(&other_app, &all, 10, None)
        .await
        .unwrap()
        .items
        .is_empty());

    let stored = h.stored_event(&app(), &e.id).await.unwrap().unwrap();
    assert_eq!(stored.sent_to, vec![sub.clone()]);
    assert_eq!(stored.not_sent, vec![SubscriptionId::new("sub_2")]);
    let listed = h
        .list_events(&app(), &EventQuery::default(), 10, None)
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);

    let health = h.health(&app(), &sub).await.unwrap();
    assert_eq!(
        health,
        WebhookHealth::of(Utc::now(), {
            let attempts: Vec<Attempt> = h
                .attempts(|a| a.subscription_id == sub)
                .into_iter()
                .map(|(_, a)| a)
                .collect();
            vec![(hour_of(now), HourCounts::of(&attempts))]
        })
    );
}

#[tokio::test]
async fn a_failed_delivery_is_due_until_a_recovery_claims_it_once() {
    let h = MemoryHistory::new(Duration::from_secs(3600));
    let e = event("shop", "update");
    let now = Utc::now();
    let sub = SubscriptionId::new("sub_1");
    let failed = attempt(&e, "sub_1", AttemptOutcome::Failed, now);
    History::record(&h, &batch(vec![e.clone()], vec![(failed, true)]))
        .await
        .unwrap();
    let since = now - TimeDelta::minutes(1);
    let page = h
        .recovery_page(&app(), &sub, since, None, None)
        .await
        .unwrap();
    assert_eq!(page.candidates.len(), 1);
    assert_eq!(page.candidates[0].state, RecoveryState::Due);

    assert!(h.claim_recovery(&app(), &sub, &e.id, now).await.unwrap());
    assert!(!h.claim_recovery(&app(), &sub, &e.id, now).await.unwrap());
    let page = h
        .recovery_page(&app(), &sub, since, None, None)
        .await
        .unwrap();
    assert_eq!(page.candidates[0].state, RecoveryState::Queued);
    h.release_recovery(&app(), &sub, &e.id).await.unwrap();
    assert!(h.claim_recovery(&app(), &sub, &e.id, now).await.unwrap());
}
