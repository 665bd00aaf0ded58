//! The publisher against the emulator's SQS: the queue's own size limit is read and
//! enforced with a clear error, and large events are split across batches so that no
//! call exceeds the limit.

use herald_core::{AppId, Event, EventType, ObjectType, QueueMessage};
use herald_queue::{PublishError, Publisher, RETRY_HEADROOM};
use herald_testing::{aws, drain, Stack};

fn event(pad: usize) -> Event {
    Event::new(
        AppId::parse("app").unwrap(),
        EventType::parse("invoice.paid").unwrap(),
        ObjectType::parse("invoice").unwrap(),
        serde_json::json!({ "pad": "x".repeat(pad) }),
    )
}

#[tokio::test]
async fn large_events_are_batched_within_the_limit_and_oversized_ones_refused() {
    let stack = Stack::deploy("publisher").unwrap();
    let sqs = aws_sdk_sqs::Client::new(&aws().await);
    let publisher = Publisher::connect(sqs.clone(), stack.events_queue())
        .await
        .unwrap();
    let limit = publisher.max_message_bytes();
    assert!(
        limit >= 262_144,
        "the queue's MaximumMessageSize is read: {limit}"
    );

    // Five events of 30 % of the limit each: at most three fit in one call.
    let big: Vec<Event> = (0..5).map(|_| event(limit * 3 / 10)).collect();
    let ids = publisher
        .publish_all(&big)
        .await
        .expect("split into batches within the limit");
    assert_eq!(ids.len(), 5);
    let got = drain(&sqs, stack.events_queue()).await.unwrap();
    let mut got_ids: Vec<String> = got
        .iter()
        .map(|m| match QueueMessage::decode(m.body().unwrap()).unwrap() {
            QueueMessage::Event { event } => event.id.to_string(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    got_ids.sort();
    let mut want: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    want.sort();
    assert_eq!(got_ids, want, "every event arrived once, intact");

    let too_big = event(limit);
    let err = publisher.publish(&too_big).await.unwrap_err();
    match &err {
        PublishError::TooLarge {
            event_id,
            limit: l,
            size,
        } => {
            assert_eq!(event_id, &too_big.id);
            assert_eq!(
                *l,
                limit - RETRY_HEADROOM,
                "room is kept for the retry wrapper"
            );
            assert!(*size > limit);
        }
        other => panic!("expected TooLarge, got {other}"),
    }
    assert!(
        err.to_string()
            .contains(&format!("limit of {} bytes", limit - RETRY_HEADROOM)),
        "{err}"
    );

    assert!(
        drain(&sqs, stack.events_queue()).await.unwrap().is_empty(),
        "nothing was sent"
    );

    // The largest accepted event still fits on the queue as a retry of itself.
    let mut pad = limit - RETRY_HEADROOM - 600;
    let fits = loop {
        let e = event(pad);
        match publisher.publish(&e).await {
            Ok(_) => break e,
            Err(PublishError::TooLarge { .. }) => pad -= 200,
            Err(other) => panic!("{other}"),
        }
    };
    drain(&sqs, stack.events_queue()).await.unwrap();
    let retry = herald_core::QueueMessage::Delivery {
        delivery: herald_core::DeliveryTask {
            attempt: 8,
            last_result: Some("x".repeat(1024)),
            ..herald_core::DeliveryTask::first(
                fits,
                herald_core::SubscriptionId::new(format!("sub_{}", "0".repeat(32))),
            )
        },
    };
    sqs.send_message()
        .queue_url(stack.events_queue())
        .message_body(retry.encode())
        .send()
        .await
        .expect("a retry of the largest accepted event fits on the queue");
    drain(&sqs, stack.events_queue()).await.unwrap();
}
