//! The local worker keeps deliveries in flight across batches: a slow delivery in one
//! batch does not hold back the next batches, each batch is deleted when its own
//! deliveries are done, and a stop drains the batches in hand.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use herald_core::{
    AppId, Event, EventFilter, EventType, ObjectType, ObjectTypeFilter, Subscription,
};
use herald_queue::Publisher;
use herald_store::SubscriptionStore;
use herald_testing::{aws, queue_counts, wait_until, Receiver, Reply, Stack, Worker};

/// How long the slow receiver holds its request: long enough for 30 other deliveries
/// (three receives gathered into one batch) on a machine busy with other tests (a CI
/// run under the soak test took 2.1 s for them).
const HANG: Duration = Duration::from_secs(5);

fn event(event_type: &str, n: usize) -> Event {
    Event::new(
        AppId::parse("shop").unwrap(),
        EventType::parse(event_type).unwrap(),
        ObjectType::parse("user").unwrap(),
        serde_json::json!({ "n": n }),
    )
}

/// A webhook of `shop` taking `event_type`, posting to `receiver`.
async fn subscribe(store: &SubscriptionStore, receiver: &Receiver, event_type: &str) {
    let sub = Subscription::new(
        AppId::parse("shop").unwrap(),
        receiver.url(),
        EventFilter::parse(&[event_type]).unwrap(),
        ObjectTypeFilter::All,
    );
    store.create(&sub).await.expect("create subscription");
}

/// The event ids a receiver got, and how many requests.
fn ids(receiver: &Receiver) -> (BTreeSet<String>, usize) {
    let received = receiver.received();
    let ids = received
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    (ids, received.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_delivery_does_not_hold_back_the_next_batches() {
    let stack = Stack::deploy("worker-overlap").expect("deploy the stack");
    let aws = aws().await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let store = stack.subscription_store(&aws).unwrap();
    let slow = Receiver::start(Arc::new(|_| Reply::status(200).after(HANG))).await;
    let fast = Receiver::ok().await;
    subscribe(&store, &slow, "invoice.stuck").await;
    subscribe(&store, &fast, "update").await;
    let publisher = Publisher::connect(sqs.clone(), stack.events_queue())
        .await
        .expect("publisher");
    let worker = Worker::spawn(&stack, &[]).expect("start the worker");

    // Batch 1 is the slow event alone: nothing else is on the queue when it is received.
    let stuck = event("invoice.stuck", 0);
    publisher
        .publish_all(std::slice::from_ref(&stuck))
        .await
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || async { slow.in_flight() == 1 }).await,
        "the slow delivery started"
    );
    let hanging_since = Instant::now();

    // The next batches are received and delivered while it hangs.
    let events: Vec<Event> = (0..30).map(|n| event("update", n)).collect();
    publisher.publish_all(&events).await.unwrap();
    let overtaken = wait_until(HANG, || async { fast.count() >= events.len() }).await;
    let overtaken_in = hanging_since.elapsed();
    let (still_hanging, delivered_meanwhile) = (slow.in_flight(), fast.count());

    // Everything delivered once and deleted: nothing visible, in flight or delayed.
    let drained = wait_until(Duration::from_secs(30), || async {
        slow.count() == 1
            && slow.in_flight() == 0
            && queue_counts(&sqs, stack.events_queue())
                .await
                .is_ok_and(|c| c.total() == 0)
    })
    .await;
    worker.stop().await.expect("the worker ran");
    let counts = queue_counts(&sqs, stack.events_queue()).await.unwrap();
    let (fast_ids, fast_requests) = ids(&fast);
    let (slow_ids, slow_requests) = ids(&slow);
    println!(
        "fast deliveries done {overtaken_in:?} into the slow one; fast {fast_requests} requests, \
         slow {slow_requests}; queue after: {counts:?}"
    );
    assert!(
        overtaken && still_hanging == 1,
        "the 30 other events were delivered while the slow delivery hung \
         ({delivered_meanwhile} of 30 within {HANG:?})"
    );
    let expected: BTreeSet<String> = events.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(fast_ids, expected, "every event delivered");
    assert_eq!(fast_requests, events.len(), "no duplicates");
    assert_eq!(slow_ids, BTreeSet::from([stuck.id.to_string()]));
    assert_eq!(slow_requests, 1, "the slow delivery made once");
    assert!(drained, "every message deleted: {counts:?}");
    assert_eq!(counts.total(), 0, "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stop_drains_the_batches_in_hand() {
    let stack = Stack::deploy("worker-drain").expect("deploy the stack");
    let aws = aws().await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let store = stack.subscription_store(&aws).unwrap();
    let receiver = Receiver::start(Arc::new(|_| {
        Reply::status(200).after(Duration::from_millis(1_500))
    }))
    .await;
    subscribe(&store, &receiver, "update").await;
    let publisher = Publisher::connect(sqs.clone(), stack.events_queue())
        .await
        .expect("publisher");
    let events: Vec<Event> = (0..30).map(|n| event("update", n)).collect();
    publisher.publish_all(&events).await.unwrap();
    let worker = Worker::spawn(&stack, &[]).expect("start the worker");

    // Every message received (several batches in hand) and deliveries under way.
    let in_hand = wait_until(Duration::from_secs(30), || async {
        receiver.in_flight() > 0
            && queue_counts(&sqs, stack.events_queue())
                .await
                .is_ok_and(|c| c.visible == 0 && c.in_flight == events.len() as u64)
    })
    .await;
    let under_way = receiver.in_flight();
    worker.stop().await.expect("the worker ran");

    let counts = queue_counts(&sqs, stack.events_queue()).await.unwrap();
    let (got, requests) = ids(&receiver);
    println!(
        "requests under way at the stop: {under_way}; requests in all: {requests}; queue after: {counts:?}"
    );
    assert!(
        in_hand,
        "the worker held every message, deliveries under way"
    );
    assert!(under_way > 0, "the stop came while batches were delivering");
    let expected: BTreeSet<String> = events.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(got, expected, "the batches in hand were delivered");
    assert_eq!(requests, events.len(), "once each");
    assert_eq!(receiver.in_flight(), 0, "no delivery left under way");
    // A batch is deleted only once it is done, and a delivery cut short would have
    // left a retry on the queue: an empty queue says every batch finished.
    assert_eq!(
        counts.total(),
        0,
        "every message deleted, none left invisible: {counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_window_a_batch_takes_what_is_waiting_and_no_more() {
    use herald_consumer::worker::{next_batch, PollSettings};

    let stack = Stack::deploy("worker-gather").expect("deploy the stack");
    let aws = aws().await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let publisher = Publisher::connect(sqs.clone(), stack.events_queue())
        .await
        .expect("publisher");
    let source = herald_queue::SqsSource::new(sqs.clone(), stack.events_queue());
    let settings = |batch_size| PollSettings {
        wait: Duration::from_secs(1),
        batch_size,
        batch_window: Duration::ZERO,
        batches_in_flight: 3,
    };
    let events: Vec<Event> = (0..35).map(|n| event("update", n)).collect();
    publisher.publish_all(&events).await.unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || async {
            queue_counts(&sqs, stack.events_queue())
                .await
                .is_ok_and(|c| c.visible == 35)
        })
        .await,
        "the backlog is on the queue"
    );

    // A backlog fills the batch over several receives, up to its size.
    let first = next_batch(&source, &settings(20)).await.unwrap();
    let rest = next_batch(&source, &settings(100)).await.unwrap();
    let ids: BTreeSet<String> = first
        .iter()
        .chain(&rest)
        .filter_map(|m| m.message_id.clone())
        .collect();
    println!("batches of {} and {}", first.len(), rest.len());
    assert_eq!(first.len(), 20, "a batch of 20 across receives of 10");
    assert_eq!(
        rest.len(),
        15,
        "the next takes the 15 left, not waiting for more"
    );
    assert_eq!(ids.len(), 35, "each message once");

    // A trickle: one message is handed over on its own, at once.
    publisher.publish_all(&[event("update", 99)]).await.unwrap();
    // Long polls of 1 s until it shows up.
    let deadline = Instant::now() + Duration::from_secs(10);
    let single = loop {
        let got = next_batch(&source, &settings(100)).await.unwrap();
        if !got.is_empty() || Instant::now() > deadline {
            break got;
        }
    };
    assert_eq!(single.len(), 1);
}
