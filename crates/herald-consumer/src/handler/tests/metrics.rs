//! The batch's metrics line: what it counts is what the batch did.

use super::*;

#[tokio::test]
async fn each_batch_writes_one_emf_line_counting_what_it_did() {
    let mut h = Harness::new(
        FakeSubscriptions::with(vec![
            sub("ok", &["*"]),
            sub("down", &["*"]),
            sub("gone", &["*"]),
        ]),
        FakeDeliverer::answering(&[
            (&url("ok"), status(204)),
            (&url("down"), status(503)),
            (&url("gone"), error(DeliveryError::Timeout)),
        ]),
        FakeOutbox::default(),
    );
    let (metrics, lines) = emf_lines();
    h.consumer = h.consumer.with_metrics(metrics);

    // Two fresh events to three webhooks, and a last attempt that times out (parked).
    let last = task(&event("create"), "gone", 3);
    h.handle(vec![
        event_record("m1", &event("create")),
        event_record("m2", &event("update")),
        delivery_record("m3", &last),
    ])
    .await;

    let lines = lines.lock().unwrap();
    assert_eq!(lines.len(), 1, "one line per batch");
    let doc: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(doc["Records"], 3);
    assert_eq!(
        doc["Attempts"], 7,
        "2 events × 3 webhooks, and the last attempt"
    );
    assert_eq!(doc["Succeeded"], 2);
    assert_eq!(doc["Failed"], 5);
    assert_eq!(doc["Retried"], 4, "first attempts that failed are retried");
    assert_eq!(doc["Parked"], 1);
    assert_eq!(doc["Failed.http_status"], 2);
    assert_eq!(doc["Failed.timeout"], 3);
    assert_eq!(doc["Latency"].as_array().unwrap().len(), 7);
    assert_eq!(h.outbox.parked().len(), 1, "the count is the DLQ's");
    assert_eq!(h.outbox.scheduled().len(), 4, "and the retries the queue's");
}
