//! The consumer-wide bound on deliveries in flight, with the real HTTP deliverer and a
//! real receiver on 127.0.0.1 (the other adapters are the in-memory fakes).

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use herald_consumer::testing::{FakeHistory, FakeOutbox, FakeSubscriptions};
use herald_consumer::{Adapters, Consumer, DeliveryPolicy};
use herald_core::{
    AddressPolicy, AppId, Event, EventFilter, EventType, ObjectType, ObjectTypeFilter,
    QueueMessage, RetrySchedule, Subscription,
};
use herald_delivery::{HttpDeliverer, HttpSettings};
use herald_testing::{Receiver, Reply};

const BOUND: usize = 4;
const BATCHES: usize = 6;
const EVENTS_PER_BATCH: usize = 5;
const SUBSCRIPTIONS: usize = 3;

fn batch(events: &[Event]) -> SqsEvent {
    let mut batch = SqsEvent::default();
    batch.records = events
        .iter()
        .map(|event| {
            let mut m = SqsMessage::default();
            m.message_id = Some(event.id.to_string());
            m.body = Some(
                QueueMessage::Event {
                    event: event.clone(),
                }
                .encode(),
            );
            m
        })
        .collect();
    batch
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_bound_on_deliveries_in_flight_holds_across_concurrent_batches() {
    // Each request is held a while, so deliveries pile up at the receiver if the
    // bound lets them.
    let receiver = Receiver::start(Arc::new(|_| {
        Reply::status(204).after(Duration::from_millis(40))
    }))
    .await;
    let app = AppId::parse("shop").unwrap();
    let subs: Vec<Subscription> = (0..SUBSCRIPTIONS)
        .map(|i| {
            Subscription::new(
                app.clone(),
                format!("{}/{i}", receiver.url()),
                EventFilter::All,
                ObjectTypeFilter::All,
            )
        })
        .collect();
    let history = Arc::new(FakeHistory::default());
    let outbox = Arc::new(FakeOutbox::default());
    let deliverer = HttpDeliverer::new(&HttpSettings {
        address_policy: AddressPolicy::with_allowlist("127.0.0.1/32").unwrap(),
        ..HttpSettings::default()
    })
    .unwrap();
    let consumer = Arc::new(Consumer::new(
        Adapters {
            subscriptions: Arc::new(FakeSubscriptions::with(subs)),
            deliverer: Arc::new(deliverer),
            outbox: outbox.clone(),
            history: history.clone(),
        },
        DeliveryPolicy {
            schedule: RetrySchedule::parse("0s,1s", 0.0).unwrap(),
            retry_after_cap: Duration::from_secs(60),
            concurrency: BOUND,
            start_deadline: Duration::from_secs(30),
            attempt_timeout: Duration::from_secs(15),
        },
    ));

    // Every batch handled at once, each in its own task, as the worker does.
    let tasks: Vec<_> = (0..BATCHES)
        .map(|_| {
            let events: Vec<Event> = (0..EVENTS_PER_BATCH)
                .map(|n| {
                    Event::new(
                        app.clone(),
                        EventType::parse("update").unwrap(),
                        ObjectType::parse("user").unwrap(),
                        serde_json::json!({ "n": n }),
                    )
                })
                .collect();
            let consumer = Arc::clone(&consumer);
            tokio::spawn(async move { consumer.handle(batch(&events)).await })
        })
        .collect();
    for task in tasks {
        let response = task.await.unwrap().expect("answered record by record");
        assert!(response.batch_item_failures.is_empty());
    }

    let deliveries = BATCHES * EVENTS_PER_BATCH * SUBSCRIPTIONS;
    assert_eq!(receiver.count(), deliveries, "every delivery made once");
    assert_eq!(receiver.distinct(), deliveries);
    assert_eq!(history.succeeded(), deliveries as u64);
    assert_eq!(outbox.sent(), 0, "nothing handed back or retried");
    // Per batch, 15 deliveries could have been in flight; across the six, 90.
    assert_eq!(
        receiver.max_in_flight(),
        BOUND,
        "the consumer's bound holds across its concurrent batches, and is reached"
    );
}
