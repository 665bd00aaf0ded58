use herald_core::{EventFilter, ObjectType, ObjectTypeFilter};

use super::*;

fn app() -> AppId {
    AppId::parse("shop").unwrap()
}

fn sub(types: &[&str]) -> Subscription {
    Subscription::new(
        app(),
        "https://example.com/hook",
        EventFilter::parse(types).unwrap(),
        ObjectTypeFilter::parse::<&str>(&[]).unwrap(),
    )
}

fn event(event_type: &str) -> Event {
    Event::new(
        app(),
        EventType::parse(event_type).unwrap(),
        ObjectType::parse("user").unwrap(),
        serde_json::json!({}),
    )
}

#[tokio::test]
async fn routes_follow_the_webhooks_event_filters_and_changes() {
    let store = MemorySubscriptions::default();
    let created = sub(&["created"]);
    store.create(&created).await.unwrap();
    assert!(matches!(
        store.create(&created).await,
        Err(StoreError::AlreadyExists { .. })
    ));
    assert_eq!(store.matching(&event("created")).await.unwrap().len(), 1);
    assert!(store.matching(&event("deleted")).await.unwrap().is_empty());

    SubscriptionStorage::disable(&store, &app(), &created.id, "off")
        .await
        .unwrap();
    assert!(store.matching(&event("created")).await.unwrap().is_empty());
    store.enable(&app(), &created.id).await.unwrap();
    assert_eq!(store.matching(&event("created")).await.unwrap().len(), 1);

    store.delete(&app(), &created.id).await.unwrap();
    assert_eq!(store.count(&app()).await.unwrap(), 0);
    assert!(matches!(
        store.delete(&app(), &created.id).await,
        Err(StoreError::NotFound { .. })
    ));
}

#[tokio::test]
async fn failures_in_a_row_disable_and_a_success_resets_them() {
    let memory = Arc::new(MemorySubscriptions::default());
    let s = sub(&["created"]);
    memory.create(&s).await.unwrap();
    let store = MemorySource::new(Arc::clone(&memory), 2);
    assert!(!store.record_failed_delivery(&app(), &s.id).await.unwrap());
    assert!(
        store.delivered(&s.route()).await.unwrap(),
        "reset one failure"
    );
    assert!(
        !store.delivered(&s.route()).await.unwrap(),
        "nothing to reset"
    );
    assert!(!store.record_failed_delivery(&app(), &s.id).await.unwrap());
    assert!(store.record_failed_delivery(&app(), &s.id).await.unwrap());
    let stored = SubscriptionStorage::get(memory.as_ref(), &app(), &s.id)
        .await
        .unwrap()
        .unwrap();
    assert!(!stored.active);
}

#[tokio::test]
async fn rate_slots_queue_behind_the_schedule_and_an_idle_one_starts_now() {
    let store = MemorySource::new(Arc::default(), 0);
    let s = sub(&["created"]);
    let limit = RateLimit::new(2).unwrap();
    let now = Utc::now();
    let route = s.route();
    assert_eq!(
        store.reserve_slots(&route, limit, 3, now).await.unwrap(),
        now
    );
    assert_eq!(
        store.reserve_slots(&route, limit, 1, now).await.unwrap(),
        now + limit.span(3)
    );
    let later = now + chrono::Duration::seconds(60);
    assert_eq!(
        store.reserve_slots(&route, limit, 1, later).await.unwrap(),
        later
    );
}
