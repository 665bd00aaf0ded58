//! Routing in the subscriptions table, against the emulator: a lookup reads exactly
//! the webhooks of the event's type, routing changes move routes and the app's routing
//! version (health writes do not), the consumer's cache follows the version, and races
//! between a read-modify-write and another writer lose nothing (step by step: the
//! emulator does not make concurrent conditional writes atomic as DynamoDB does).

use std::collections::BTreeSet;
use std::time::Duration;

use herald_consumer::subscriptions::{CachedSubscriptions, SubscriptionSource};
use herald_core::{
    AppId, Event, EventFilter, EventType, ObjectType, ObjectTypeFilter, Route, Secret,
    Subscription, SubscriptionId,
};
use herald_store::{SubscriptionChanges, SubscriptionStore};
use herald_testing::{aws, wait_until, Stack};

struct Fixture {
    _stack: Stack,
    store: SubscriptionStore,
    app: AppId,
}

impl Fixture {
    async fn new(test: &str) -> Self {
        let stack = Stack::deploy(test).expect("deploy the stack");
        let dynamo = aws_sdk_dynamodb::Client::new(&aws().await);
        let store =
            SubscriptionStore::new(dynamo, stack.subscriptions_table(), stack.sealer().unwrap());
        Self {
            _stack: stack,
            store,
            app: AppId::parse("shop").unwrap(),
        }
    }

    /// Creates a webhook of `app` taking `events` and `objects`.
    async fn create_in(&self, app: &AppId, events: &[&str], objects: &[&str]) -> Subscription {
        let sub = Subscription::new(
            app.clone(),
            "https://example.com/hook",
            EventFilter::parse(events).unwrap(),
            ObjectTypeFilter::parse(objects).unwrap(),
        );
        self.store.create(&sub).await.unwrap();
        sub
    }

    async fn create(&self, events: &[&str], objects: &[&str]) -> Subscription {
        self.create_in(&self.app.clone(), events, objects).await
    }

    /// The ids of the routes of `event_type`.
    async fn routed(&self, event_type: &str) -> BTreeSet<SubscriptionId> {
        ids(&self
            .store
            .routes(&self.app, &EventType::parse(event_type).unwrap())
            .await
            .unwrap())
    }

    async fn version(&self) -> u64 {
        self.store.routing_version(&self.app).await.unwrap()
    }

    async fn stored(&self, id: &SubscriptionId) -> Subscription {
        self.store.get(&self.app, id).await.unwrap().unwrap()
    }

    /// The route of `id` under `event_type`.
    async fn route(&self, event_type: &str, id: &SubscriptionId) -> Route {
        self.store
            .routes(&self.app, &EventType::parse(event_type).unwrap())
            .await
            .unwrap()
            .into_iter()
            .find(|r| &r.id == id)
            .expect("the route exists")
    }
}

fn ids(routes: &[Route]) -> BTreeSet<SubscriptionId> {
    routes.iter().map(|r| r.id.clone()).collect()
}

/// The ids of the consumer's cached routes.
fn prepared_ids(routes: &herald_consumer::subscriptions::Routes) -> BTreeSet<SubscriptionId> {
    routes.iter().map(|r| r.id.clone()).collect()
}

fn set<const N: usize>(subs: [&Subscription; N]) -> BTreeSet<SubscriptionId> {
    subs.iter().map(|s| s.id.clone()).collect()
}

fn event(app: &AppId, t: &str, o: &str) -> Event {
    Event::new(
        app.clone(),
        EventType::parse(t).unwrap(),
        ObjectType::parse(o).unwrap(),
        serde_json::json!({}),
    )
}

/// Checks that the version moved past `seen`, and remembers it.
fn moved(seen: &mut u64, now: u64, what: &str) {
    assert!(now > *seen, "{what} moves the version ({seen} -> {now})");
    *seen = now;
}

fn describe(text: &str) -> SubscriptionChanges {
    SubscriptionChanges {
        description: Some(text.to_owned()),
        ..SubscriptionChanges::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_returns_exactly_the_webhooks_of_the_event_type() {
    let f = Fixture::new("routing-lookup").await;
    let create = f.create(&["create"], &[]).await;
    let both = f.create(&["create", "update"], &["user"]).await;
    let every = f.create(&["*"], &[]).await;
    let update = f.create(&["update"], &[]).await;
    let invoices = f.create(&["create"], &["invoice"]).await;
    let mut off = f.create(&["create"], &[]).await;
    f.store.disable(&f.app, &off.id, "test").await.unwrap();
    off.active = false;
    // Another app's webhook of the same type is never routed here.
    let other = AppId::parse("other").unwrap();
    f.create_in(&other, &["create"], &[]).await;

    // The routes of a type: type-specific and all-types webhooks, active or not,
    // whatever their object types.
    assert_eq!(
        f.routed("create").await,
        set([&create, &both, &every, &invoices, &off])
    );
    assert_eq!(f.routed("update").await, set([&both, &every, &update]));
    assert_eq!(f.routed("delete").await, set([&every]));
    // What an event matches: active, and the object-type filter admits it.
    let matching = f
        .store
        .matching(&event(&f.app, "create", "user"))
        .await
        .unwrap();
    assert_eq!(ids(&matching), set([&create, &both, &every]));
    let matching = f
        .store
        .matching(&event(&f.app, "create", "invoice"))
        .await
        .unwrap();
    assert_eq!(ids(&matching), set([&create, &every, &invoices]));
    // A route carries what delivery needs.
    let route = f.route("update", &both.id).await;
    assert_eq!(route, f.stored(&both.id).await.route());
    // Listing and counting see the subscriptions, not the routes or the version.
    assert_eq!(f.store.count(&f.app).await.unwrap(), 6);
    let page = f.store.list(&f.app, 4, None).await.unwrap();
    assert_eq!(page.items.len(), 4);
    let rest = f
        .store
        .list(&f.app, 4, page.next_cursor.as_deref())
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 2);
    assert_eq!(rest.next_cursor, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_of_event_types_moves_its_routes_and_delete_removes_them() {
    let f = Fixture::new("routing-moves").await;
    let sub = f.create(&["create", "update"], &[]).await;
    let changes = SubscriptionChanges {
        events: Some(EventFilter::parse(&["update", "delete"]).unwrap()),
        url: Some("https://example.com/moved".into()),
        ..SubscriptionChanges::default()
    };
    f.store.apply(&f.app, &sub.id, &changes).await.unwrap();
    assert!(f.routed("create").await.is_empty());
    assert_eq!(f.routed("update").await, set([&sub]));
    assert_eq!(f.routed("delete").await, set([&sub]));
    assert_eq!(
        f.route("update", &sub.id).await.url,
        "https://example.com/moved"
    );
    // To every type: one route under `*`, the typed ones gone.
    let changes = SubscriptionChanges {
        events: Some(EventFilter::All),
        ..SubscriptionChanges::default()
    };
    f.store.apply(&f.app, &sub.id, &changes).await.unwrap();
    for t in ["create", "update", "delete", "anything"] {
        assert_eq!(f.routed(t).await, set([&sub]), "{t}");
    }
    f.store.delete(&f.app, &sub.id).await.unwrap();
    for t in ["create", "update", "delete"] {
        assert!(f.routed(t).await.is_empty(), "{t}");
    }
    assert!(f.store.get(&f.app, &sub.id).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_routing_version_moves_on_every_routing_change_and_not_on_health_writes() {
    let f = Fixture::new("routing-version").await;
    assert_eq!(f.version().await, 0, "no routing change yet");
    let sub = f.create(&["create"], &[]).await;
    let mut seen = f.version().await;
    assert!(seen > 0, "create");
    let id = sub.id.clone();

    let url = SubscriptionChanges {
        url: Some("https://example.com/v2".into()),
        ..SubscriptionChanges::default()
    };
    f.store.apply(&f.app, &id, &url).await.unwrap();
    moved(&mut seen, f.version().await, "a PATCH of the URL");
    f.store
        .rotate_secret(&f.app, &id, chrono::Utc::now(), chrono::Duration::hours(1))
        .await
        .unwrap();
    moved(&mut seen, f.version().await, "a rotation");
    f.store.disable(&f.app, &id, "by hand").await.unwrap();
    moved(&mut seen, f.version().await, "a disable");
    f.store.enable(&f.app, &id).await.unwrap();
    moved(&mut seen, f.version().await, "an enable");

    // Health writes: the count moves, the routing version does not; the route's
    // `failing` flag follows the count's transitions.
    assert!(!f.route("create", &id).await.failing);
    let (count, disabled) = f
        .store
        .record_failed_delivery(&f.app, &id, 5)
        .await
        .unwrap();
    assert_eq!((count, disabled), (1, false));
    assert_eq!(f.version().await, seen, "a counted failure");
    assert!(
        f.route("create", &id).await.failing,
        "0 -> 1 flags the route"
    );
    f.store
        .record_failed_delivery(&f.app, &id, 5)
        .await
        .unwrap();
    assert_eq!(f.version().await, seen, "a second counted failure");
    f.store.reset_failures(&f.app, &id).await.unwrap();
    assert_eq!(f.version().await, seen, "a reset");
    assert_eq!(f.stored(&id).await.consecutive_failures, 0);
    assert!(!f.route("create", &id).await.failing, "back to 0 clears it");
    f.store.reset_failures(&f.app, &id).await.unwrap();
    assert_eq!(f.version().await, seen, "a reset of a zero count");
    // A description is not routed: no route is rewritten, no consumer reloads.
    f.store.apply(&f.app, &id, &describe("d")).await.unwrap();
    assert_eq!(f.version().await, seen, "a PATCH of the description");

    // The consumer's auto-disable is a routing change.
    let (_, disabled) = f
        .store
        .record_failed_delivery(&f.app, &id, 1)
        .await
        .unwrap();
    assert!(disabled);
    moved(&mut seen, f.version().await, "an auto-disable");
    assert!(!f.route("create", &id).await.active);
    f.store.delete(&f.app, &id).await.unwrap();
    moved(&mut seen, f.version().await, "a delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_racing_the_consumers_auto_disable_loses_neither() {
    let f = Fixture::new("routing-race-disable").await;
    let sub = f.create(&["create"], &[]).await;

    // The PATCH reads; the consumer's auto-disable lands; the PATCH's guarded write
    // from its stale read is refused, and the PATCH, read again, lands.
    let read = f.stored(&sub.id).await;
    let (_, disabled) = f
        .store
        .record_failed_delivery(&f.app, &sub.id, 1)
        .await
        .unwrap();
    assert!(disabled);
    let mut stale = read.clone();
    stale.description = "patched".into();
    assert!(
        f.store.write_change(&read, &stale).await.unwrap().is_none(),
        "the stale write is refused"
    );
    f.store
        .apply(&f.app, &sub.id, &describe("patched"))
        .await
        .unwrap();
    let now = f.stored(&sub.id).await;
    assert_eq!(now.description, "patched");
    assert!(!now.active, "the auto-disable survived the PATCH");
    assert!(now.disabled_reason.is_some());
    assert!(!f.route("create", &sub.id).await.active, "and its route");

    // The other way round: the consumer counts (a health write) between the PATCH's
    // read and write; the count is kept too.
    f.store.enable(&f.app, &sub.id).await.unwrap();
    let read = f.stored(&sub.id).await;
    f.store
        .record_failed_delivery(&f.app, &sub.id, 5)
        .await
        .unwrap();
    let mut stale = read.clone();
    stale.description = "again".into();
    assert!(f.store.write_change(&read, &stale).await.unwrap().is_none());
    f.store
        .apply(&f.app, &sub.id, &describe("again"))
        .await
        .unwrap();
    let now = f.stored(&sub.id).await;
    assert_eq!(
        (now.description.as_str(), now.consecutive_failures),
        ("again", 1)
    );
    assert!(f.route("create", &sub.id).await.failing, "the flag is kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_patches_of_different_fields_both_land() {
    let f = Fixture::new("routing-race-patches").await;
    let sub = f.create(&["create"], &[]).await;
    // Both read the same item; the first lands; the second's write is refused, so it
    // reads again and lands on top of the first.
    let read = f.stored(&sub.id).await;
    f.store
        .apply(&f.app, &sub.id, &describe("first"))
        .await
        .unwrap();
    let mut stale = read.clone();
    stale.headers.insert("x-team".into(), "billing".into());
    assert!(f.store.write_change(&read, &stale).await.unwrap().is_none());
    let headers = SubscriptionChanges {
        headers: Some([("x-team".to_owned(), "billing".to_owned())].into()),
        ..SubscriptionChanges::default()
    };
    f.store.apply(&f.app, &sub.id, &headers).await.unwrap();
    let now = f.stored(&sub.id).await;
    assert_eq!(now.description, "first");
    assert_eq!(
        now.headers.get("x-team").map(String::as_str),
        Some("billing")
    );
    assert_eq!(f.route("create", &sub.id).await.headers, now.headers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_rotations_lose_no_acknowledged_secret() {
    let f = Fixture::new("routing-race-rotations").await;
    let sub = f.create(&["create"], &[]).await;
    let window = chrono::Duration::hours(1);
    // The second rotation reads before the first lands: its write is refused, it
    // reads again, and keeps the first one's (acknowledged) secret as the previous.
    let read = f.stored(&sub.id).await;
    let (first, _) = f
        .store
        .rotate_secret(&f.app, &sub.id, chrono::Utc::now(), window)
        .await
        .unwrap();
    let mut stale = read.clone();
    stale.rotate_secret(chrono::Utc::now(), window);
    assert!(f.store.write_change(&read, &stale).await.unwrap().is_none());
    let (second, stored) = f
        .store
        .rotate_secret(&f.app, &sub.id, chrono::Utc::now(), window)
        .await
        .unwrap();
    let expose = |s: &[Secret]| s.iter().map(Secret::expose).collect::<Vec<_>>();
    assert_eq!(expose(&stored.secrets), expose(&[second, first]));
    assert_eq!(
        expose(&f.route("create", &sub.id).await.secrets),
        expose(&stored.secrets),
        "the route signs with both"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_cache_follows_the_routing_version_and_not_health_writes() {
    let f = Fixture::new("routing-cache").await;
    let first = f.create(&["create"], &[]).await;
    // A TTL of 1 ms: every lookup below reads the routing version again.
    let cached = CachedSubscriptions::new(f.store.clone(), Duration::from_millis(1), 5);
    let create = EventType::parse("create").unwrap();
    let routes = cached.routes(&f.app, &create).await.unwrap();
    assert_eq!(prepared_ids(&routes), set([&first]));

    // A routing change elsewhere: the next version read sees it and reloads.
    let second = f.create(&["create"], &[]).await;
    let seen = wait_until(Duration::from_secs(10), || async {
        let routes = cached.routes(&f.app, &create).await.unwrap();
        prepared_ids(&routes) == set([&first, &second])
    })
    .await;
    assert!(seen, "the new webhook is routed after a version read");

    // A health write moves no version: the version read confirms the very same
    // cached routes (no reload).
    let before = cached.routes(&f.app, &create).await.unwrap();
    let version = f.version().await;
    f.store
        .record_failed_delivery(&f.app, &first.id, 5)
        .await
        .unwrap();
    assert_eq!(f.version().await, version, "a health write");
    let now = cached.routes(&f.app, &create).await.unwrap();
    assert!(
        std::sync::Arc::ptr_eq(&before, &now),
        "confirmed, not reloaded"
    );

    // The instance's own knowledge: a success resets a count it saw go up, though
    // its cached route predates the failure.
    f.store.reset_failures(&f.app, &first.id).await.unwrap();
    let route = now.iter().find(|r| r.id == first.id).unwrap().clone();
    assert!(!route.failing, "cached before the failure");
    cached
        .record_failed_delivery(&f.app, &first.id)
        .await
        .unwrap();
    assert_eq!(f.stored(&first.id).await.consecutive_failures, 1);
    cached.delivered(&route).await.unwrap();
    assert_eq!(f.stored(&first.id).await.consecutive_failures, 0);
    assert_eq!(f.version().await, version);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_apps_lookups_are_refreshed_ahead_and_seldom_wait_on_the_store() {
    let f = Fixture::new("routing-ahead").await;
    let first = f.create(&["create"], &[]).await;
    // A version is trusted for 1 s and read again ahead after 0.5 s.
    let cached = CachedSubscriptions::new(f.store.clone(), Duration::from_secs(1), 5);
    let create = EventType::parse("create").unwrap();
    let stats = || {
        let s = cached.stats().expect("a cache");
        (s.waited(), s.ahead())
    };

    // Lookups at 20/s for 5 s, as a busy app makes them; a routing change halfway.
    let mut pace = tokio::time::interval(Duration::from_millis(50));
    let mut second = None;
    let mut seen_at = None;
    for n in 0..100 {
        pace.tick().await;
        let routes = cached.routes(&f.app, &create).await.unwrap();
        if n == 50 {
            second = Some(f.create(&["create"], &[]).await);
        }
        if let Some(second) = &second {
            if seen_at.is_none() && prepared_ids(&routes) == set([&first, second]) {
                seen_at = Some(n);
            }
        }
    }
    let (waited, ahead) = stats();
    println!(
        "store reads waited for: {waited}, read ahead: {ahead}; change seen at lookup {seen_at:?}"
    );
    // Without reading ahead, each of the 5 s would wait for a version read, and more.
    assert!(
        waited <= 4,
        "lookups waited for the first version and routes, and the routes of the new \
         version, not for every expiry: {waited}"
    );
    assert!(ahead >= 4, "versions were read ahead of expiry: {ahead}");
    let seen_at = seen_at.expect("the new webhook was routed");
    assert!(
        seen_at <= 50 + 40,
        "within the TTL and a read of the change: lookup {seen_at}"
    );
}
