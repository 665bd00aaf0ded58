//! The walking skeleton end to end: the publisher library puts 200 events on the
//! events queue, the worker (in-process) consumes them, and real HTTP receivers on
//! 127.0.0.1 check that each got exactly what its filters match, signed, with stable
//! webhook ids, while garbage on the queue is parked. Runs on both backends: the
//! emulator's SQS and DynamoDB, and in memory (`herald dev --in-memory`'s).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use herald_core::{
    webhook_id, AppId, Event, EventFilter, EventType, ObjectType, ObjectTypeFilter, Subscription,
    Verifier,
};
use herald_testing::{both_backends, wait_until, Backend, Deployment, Receiver};

/// Para's six kinds and a custom dotted type.
const EVENT_TYPES: [&str; 7] = {
    let [a, b, c, d, e, f] = EventType::BUILT_IN;
    [a, b, c, d, e, f, "invoice.paid"]
};
const OBJECT_TYPES: [&str; 3] = ["user", "invoice", "order"];

/// A subscription under test, with the rule it should follow written out
/// independently of the matching code.
struct Case {
    name: &'static str,
    app: &'static str,
    events: &'static [&'static str],
    object_types: &'static [&'static str],
    active: bool,
    expect: fn(&Event) -> bool,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "user-updates",
            app: "shop",
            events: &["update"],
            object_types: &["user"],
            active: true,
            expect: |e| {
                e.app_id.as_str() == "shop"
                    && e.event_type.as_str() == "update"
                    && e.object_type.as_str() == "user"
            },
        },
        Case {
            name: "everything",
            app: "shop",
            events: &["*"],
            object_types: &[],
            active: true,
            expect: |e| e.app_id.as_str() == "shop",
        },
        Case {
            name: "invoice-and-order-creates-deletes",
            app: "shop",
            events: &["create", "delete"],
            object_types: &["invoice", "order"],
            active: true,
            expect: |e| {
                e.app_id.as_str() == "shop"
                    && ["create", "delete"].contains(&e.event_type.as_str())
                    && ["invoice", "order"].contains(&e.object_type.as_str())
            },
        },
        Case {
            name: "custom-type-any-object",
            app: "shop",
            events: &["invoice.paid"],
            object_types: &["*"],
            active: true,
            expect: |e| e.app_id.as_str() == "shop" && e.event_type.as_str() == "invoice.paid",
        },
        Case {
            name: "bulk-kinds",
            app: "shop",
            events: &["createAll", "updateAll", "deleteAll"],
            object_types: &["user"],
            active: true,
            expect: |e| {
                e.app_id.as_str() == "shop"
                    && e.event_type.as_str().ends_with("All")
                    && e.object_type.as_str() == "user"
            },
        },
        Case {
            name: "other-tenant-everything",
            app: "blog",
            events: &["*"],
            object_types: &[],
            active: true,
            expect: |e| e.app_id.as_str() == "blog",
        },
        Case {
            name: "inactive",
            app: "shop",
            events: &["*"],
            object_types: &[],
            active: false,
            expect: |_| false,
        },
    ]
}

/// 200 events over two apps, every type and object type, in a fixed pattern.
fn events() -> Vec<Event> {
    (0..200)
        .map(|i| {
            let app = if i % 5 == 4 { "blog" } else { "shop" };
            Event::new(
                AppId::parse(app).unwrap(),
                EventType::parse(EVENT_TYPES[i % EVENT_TYPES.len()]).unwrap(),
                ObjectType::parse(OBJECT_TYPES[(i / 7) % OBJECT_TYPES.len()]).unwrap(),
                serde_json::json!({"n": i, "name": format!("object {i}")}),
            )
        })
        .collect()
}

both_backends!(every_receiver_gets_exactly_its_matching_events_signed_and_garbage_is_parked);

async fn every_receiver_gets_exactly_its_matching_events_signed_and_garbage_is_parked(
    backend: Backend,
) {
    let deployment = Deployment::deploy(backend, "e2e")
        .await
        .expect("deploy the data plane");
    let store = deployment.subscriptions();

    // Receivers and their subscriptions.
    let cases = cases();
    let mut receivers = Vec::new();
    let mut subs = Vec::new();
    for case in &cases {
        let receiver = Receiver::ok().await;
        let mut sub = Subscription::new(
            AppId::parse(case.app).unwrap(),
            receiver.url(),
            EventFilter::parse(case.events).unwrap(),
            ObjectTypeFilter::parse(case.object_types).unwrap(),
        );
        sub.active = case.active;
        sub.headers.insert("x-herald-test".into(), case.name.into());
        sub.headers.insert("webhook-id".into(), "forged".into());
        store.create(&sub).await.expect("create subscription");
        receivers.push(receiver);
        subs.push(sub);
    }

    // Garbage first, so it sits in the same batches as real events.
    for garbage in [
        "this is not json {",
        r#"{"kind":"event","event":{"id":"x"}}"#,
    ] {
        deployment.inject(garbage).await.expect("inject garbage");
    }

    // Batches as the event source mapping's defaults make them (infra/herald.yaml): up
    // to 100 messages gathered for a second, so batches span several receives and
    // several DeleteMessageBatch calls.
    let worker = deployment
        .worker(&[
            ("HERALD_WORKER_BATCH_SIZE", "100"),
            ("HERALD_WORKER_BATCH_WINDOW", "1s"),
        ])
        .expect("start the worker");
    let events = events();
    let publisher = deployment.publisher().await.expect("publisher");
    let ids = publisher
        .publish_all(&events)
        .await
        .expect("publish 200 events");
    assert_eq!(ids.len(), 200);

    let expected: Vec<BTreeSet<String>> = cases
        .iter()
        .map(|c| {
            events
                .iter()
                .filter(|e| (c.expect)(e))
                .map(|e| e.id.to_string())
                .collect()
        })
        .collect();
    let total_expected: usize = expected.iter().map(BTreeSet::len).sum();
    let all_arrived = wait_until(Duration::from_secs(180), || async {
        receivers.iter().map(Receiver::count).sum::<usize>() >= total_expected
    })
    .await;
    let queue_empty = wait_until(Duration::from_secs(60), || async {
        deployment.events_depth().await.unwrap_or(1) == 0
    })
    .await;
    // With nothing left on the queue (in flight and delayed included), stopping the
    // worker waits out the batches in hand: after that nothing more arrives, so anything
    // extra (a duplicate, a wrong match) is in the receivers' logs now.
    worker.stop().await.expect("the worker ran");

    let mut webhook_ids: HashMap<String, (String, String)> = HashMap::new();
    let mut accounting = BTreeMap::new();
    for ((case, sub), (receiver, expected)) in
        cases.iter().zip(&subs).zip(receivers.iter().zip(&expected))
    {
        let got = receiver.received();
        let got_ids: Vec<String> = got
            .iter()
            .map(|r| r.json()["id"].as_str().unwrap_or_default().to_owned())
            .collect();
        let got_set: BTreeSet<String> = got_ids.iter().cloned().collect();
        accounting.insert(case.name, (expected.len(), got.len()));
        assert_eq!(
            got_ids.len(),
            got_set.len(),
            "{}: duplicate deliveries",
            case.name
        );
        assert_eq!(&got_set, expected, "{}: wrong set of events", case.name);

        let verifier = Verifier::new(sub.secrets.clone());
        for r in &got {
            let body = &r.body;
            verifier
                .verify(
                    r.header("webhook-id"),
                    r.header("webhook-timestamp"),
                    r.header("webhook-signature"),
                    body,
                )
                .unwrap_or_else(|e| panic!("{}: signature does not verify: {e}", case.name));
            crate::reference_verify(&sub.secrets[0], r)
                .expect("the standardwebhooks crate verifies it");

            let payload = r.json();
            let event_id = herald_core::EventId::parse(payload["id"].as_str().unwrap()).unwrap();
            assert_eq!(
                r.header("webhook-id"),
                webhook_id(&event_id, &sub.id),
                "webhook-id is per (event, subscription)"
            );
            assert_eq!(r.header("x-herald-test"), case.name, "custom header sent");
            assert_eq!(r.header("content-type"), "application/json");
            let previous = webhook_ids.insert(
                r.header("webhook-id").to_owned(),
                (event_id.to_string(), sub.id.to_string()),
            );
            assert!(previous.is_none(), "webhook-id reused across pairs");

            let original = events.iter().find(|e| e.id == event_id).unwrap();
            assert_eq!(payload["type"], original.event_type.as_str());
            assert_eq!(payload["object_type"], original.object_type.as_str());
            assert_eq!(payload["data"], original.data.to_value());
        }
    }
    println!("accounting (expected, delivered) per receiver: {accounting:?}");
    assert!(all_arrived, "not every delivery arrived: {accounting:?}");
    assert!(queue_empty, "the events queue did not drain");
    assert!(
        !expected[0].is_empty() && !expected[5].is_empty(),
        "the fixture exercises each tenant"
    );

    // The two garbage messages are on the DLQ with their reasons.
    let parked = deployment.drain_dlq().await.expect("read the DLQ");
    assert_eq!(parked.len(), 2, "both garbage messages parked");
    for m in &parked {
        let letter: serde_json::Value = serde_json::from_str(m.body().unwrap()).unwrap();
        assert_eq!(letter["kind"], "undecodable");
        assert!(!letter["reason"].as_str().unwrap().is_empty());
        let attr = m
            .message_attributes()
            .unwrap()
            .get("herald_reason")
            .unwrap();
        assert_eq!(attr.string_value(), letter["reason"].as_str());
    }
    let bodies: BTreeSet<&str> = parked.iter().map(|m| m.body().unwrap()).collect();
    assert!(bodies.iter().any(|b| b.contains("this is not json {")));
}
