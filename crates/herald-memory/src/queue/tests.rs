//! The queue semantics the worker and the consumer rely on, on a paused clock.

use super::*;

const VISIBILITY: Duration = Duration::from_secs(30);

fn queue(max_receive_count: u32) -> (Arc<MemoryQueue>, Arc<MemoryQueue>) {
    let settings = QueueSettings {
        visibility_timeout: VISIBILITY,
        max_receive_count,
    };
    let dlq = MemoryQueue::new(settings);
    (
        MemoryQueue::with_dead_letters(settings, Arc::clone(&dlq)),
        dlq,
    )
}

fn receive_count(m: &Message) -> u32 {
    m.attributes().unwrap()[&MessageSystemAttributeName::ApproximateReceiveCount]
        .parse()
        .unwrap()
}

async fn receive_now(q: &MemoryQueue, max: usize) -> Vec<Message> {
    q.receive(max, Duration::ZERO).await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_received_message_is_invisible_until_its_visibility_timeout_passes() {
    let (q, _) = queue(5);
    let id = q
        .send("hello", &[("app_id", "shop")], Duration::ZERO)
        .unwrap();
    let first = receive_now(&q, 10).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].message_id(), Some(id.as_str()));
    assert_eq!(first[0].body(), Some("hello"));
    assert_eq!(
        first[0].message_attributes().unwrap()["app_id"].string_value(),
        Some("shop")
    );
    assert_eq!(receive_count(&first[0]), 1);
    assert_eq!(q.counts().in_flight, 1);

    tokio::time::advance(VISIBILITY - Duration::from_millis(1)).await;
    assert!(receive_now(&q, 10).await.is_empty(), "still invisible");

    tokio::time::advance(Duration::from_millis(1)).await;
    let again = receive_now(&q, 10).await;
    assert_eq!(again.len(), 1, "back after the timeout");
    assert_eq!(receive_count(&again[0]), 2);
    assert_ne!(again[0].receipt_handle(), first[0].receipt_handle());
}

#[tokio::test(start_paused = true)]
async fn a_delayed_message_is_not_received_before_its_delay() {
    let (q, _) = queue(5);
    q.send("later", &[], Duration::from_secs(10)).unwrap();
    assert_eq!(q.counts().delayed, 1);
    assert!(receive_now(&q, 10).await.is_empty());
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(q.counts().visible, 1);
    assert_eq!(receive_now(&q, 10).await.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_long_poll_returns_when_a_delayed_message_becomes_visible() {
    let (q, _) = queue(5);
    q.send("later", &[], Duration::from_secs(3)).unwrap();
    let start = Instant::now();
    let got = q.receive(10, Duration::from_secs(20)).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(start.elapsed(), Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn a_long_poll_wakes_on_a_send_and_ends_empty_at_its_wait() {
    let (q, _) = queue(5);
    let start = Instant::now();
    assert!(q
        .receive(10, Duration::from_secs(2))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(start.elapsed(), Duration::from_secs(2));

    let sender = Arc::clone(&q);
    let poll = tokio::spawn(async move { sender.receive(10, Duration::from_secs(20)).await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    q.send("now", &[], Duration::ZERO).unwrap();
    assert_eq!(poll.await.unwrap().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn after_max_receives_the_next_receive_moves_the_message_to_the_dlq() {
    let (q, dlq) = queue(2);
    let id = q
        .send("poison", &[("event_id", "evt_1")], Duration::ZERO)
        .unwrap();
    for n in 1..=2 {
        let got = receive_now(&q, 10).await;
        assert_eq!(receive_count(&got[0]), n);
        tokio::time::advance(VISIBILITY).await;
    }
    assert!(
        receive_now(&q, 10).await.is_empty(),
        "redriven, not received"
    );
    assert_eq!(q.counts().total(), 0);
    let dead = receive_now(&dlq, 10).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].message_id(), Some(id.as_str()), "same message id");
    assert_eq!(dead[0].body(), Some("poison"));
    assert_eq!(receive_count(&dead[0]), 1, "counts start again on the DLQ");
}

#[tokio::test(start_paused = true)]
async fn batch_deletes_answer_per_entry() {
    let (q, _) = queue(5);
    for n in 0..3 {
        q.send(&format!("m{n}"), &[], Duration::ZERO).unwrap();
    }
    let got = receive_now(&q, 10).await;
    assert_eq!(got.len(), 3);
    let first_handle = got[0].receipt_handle().unwrap().to_owned();
    let results = q.delete_batch(&[&first_handle, "bogus", got[2].receipt_handle().unwrap()]);
    assert_eq!(results[0], EntryResult::Succeeded);
    assert!(matches!(
        &results[1],
        EntryResult::Failed {
            sender_fault: true,
            ..
        }
    ));
    assert_eq!(results[2], EntryResult::Succeeded);
    assert_eq!(
        q.counts().in_flight,
        1,
        "the undeleted one is still in flight"
    );

    // A handle of an earlier receive no longer deletes a message received again.
    tokio::time::advance(VISIBILITY).await;
    let stale = got[1].receipt_handle().unwrap().to_owned();
    let again = receive_now(&q, 10).await;
    assert_eq!(again.len(), 1);
    assert!(matches!(
        q.delete_batch(&[&stale])[0],
        EntryResult::Failed { .. }
    ));
    assert_eq!(
        q.delete_batch(&[again[0].receipt_handle().unwrap()])[0],
        EntryResult::Succeeded
    );
    assert_eq!(q.counts().total(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_receive_takes_at_most_ten_and_oversized_messages_are_refused() {
    let (q, _) = queue(5);
    for n in 0..15 {
        q.send(&n.to_string(), &[], Duration::ZERO).unwrap();
    }
    assert_eq!(receive_now(&q, 100).await.len(), 10);
    assert_eq!(receive_now(&q, 3).await.len(), 3);
    let big = "x".repeat(MAX_MESSAGE_BYTES + 1);
    assert!(q.send(&big, &[], Duration::ZERO).is_err());
}
