//! Undecodable records and partial batch responses.

use super::*;

#[tokio::test]
async fn an_undecodable_record_is_parked_and_does_not_disturb_the_batch() {
    let h = Harness::new(
        FakeSubscriptions::with(vec![sub("a", &["*"])]),
        FakeDeliverer::default(),
        FakeOutbox::default(),
    );
    let response = h
        .handle(vec![
            record("bad", "not json"),
            event_record("good", &event("create")),
        ])
        .await;

    assert!(failures(&response).is_empty());
    assert_eq!(h.deliverer.urls(), vec![url("a")]);
    let parked = h.outbox.parked();
    assert_eq!(parked.len(), 1);
    match &parked[0] {
        DeadLetter::Undecodable {
            reason,
            body,
            body_truncated,
            original_message_id,
            ..
        } => {
            assert!(!reason.is_empty());
            assert_eq!(body, "not json");
            assert!(!body_truncated);
            assert_eq!(original_message_id.as_deref(), Some("bad"));
        }
        other => panic!("expected an undecodable letter, got {other:?}"),
    }
}

#[tokio::test]
async fn a_record_too_large_to_retry_is_parked_at_first_sight_and_one_at_the_limit_is_taken() {
    let mut h = Harness::new(
        FakeSubscriptions::with(vec![sub("a", &["*"])]),
        FakeDeliverer::default(),
        FakeOutbox::default(),
    );
    let fits = event_record("fits", &event("create"));
    let fits_len = fits.body.as_ref().unwrap().len();
    // The queue's limit leaves exactly the retry headroom above the record that fits.
    let limit = fits_len + herald_queue::RETRY_HEADROOM;
    h.consumer = h.consumer.with_max_message_bytes(limit);
    let mut big = event("update");
    big.data = serde_json::json!({"id": 42, "pad": "x"}).into();
    let too_big = event_record("too-big", &big);
    let too_big_body = too_big.body.clone().unwrap();
    assert!(too_big_body.len() > fits_len);

    let response = h.handle(vec![too_big, fits]).await;

    assert!(failures(&response).is_empty());
    assert_eq!(
        h.deliverer.urls(),
        vec![url("a")],
        "only the record that fits"
    );
    let parked = h.outbox.parked();
    assert_eq!(parked.len(), 1);
    let DeadLetter::Undecodable {
        reason,
        body,
        original_message_id,
        ..
    } = &parked[0]
    else {
        panic!("expected an undecodable letter, got {:?}", parked[0]);
    };
    assert!(
        reason.contains(&format!(
            "message of {} bytes is over the limit of {fits_len} bytes",
            too_big_body.len()
        )) && reason.contains(&format!("maximum message size, {limit} bytes")),
        "{reason}"
    );
    assert_eq!(body, &too_big_body);
    assert_eq!(original_message_id.as_deref(), Some("too-big"));
}

#[tokio::test]
async fn records_without_a_body_or_with_an_unknown_kind_are_parked_as_undecodable() {
    let h = Harness::new(
        FakeSubscriptions::default(),
        FakeDeliverer::default(),
        FakeOutbox::default(),
    );
    let mut no_body = SqsMessage::default();
    no_body.message_id = Some("empty".into());
    let response = h
        .handle(vec![no_body, record("odd", r#"{"kind":"nope"}"#)])
        .await;
    assert!(failures(&response).is_empty());
    let parked = h.outbox.parked();
    assert_eq!(parked.len(), 2);
    assert!(parked
        .iter()
        .all(|l| matches!(l, DeadLetter::Undecodable { .. })));
}

#[tokio::test]
async fn an_undecodable_record_that_cannot_be_parked_comes_back_alone() {
    let h = Harness::new(
        FakeSubscriptions::with(vec![sub("a", &["*"]), sub("b", &["*"])]),
        FakeDeliverer::answering(&[(&url("b"), status(500))]),
        FakeOutbox::default().failing_parks(|l| matches!(l, DeadLetter::Undecodable { .. })),
    );
    let response = h
        .handle(vec![
            record("bad", "{\"kind\":\"event\"}"),
            event_record("good", &event("create")),
        ])
        .await;

    assert_eq!(failures(&response), vec!["bad"]);
    assert_eq!(h.deliverer.urls(), vec![url("a"), url("b")]);
    assert_eq!(h.outbox.scheduled().len(), 1, "b's retry is scheduled");
    assert_eq!(h.history.attempts().len(), 2);
}

/// `create` events go to an endpoint answering 500 whose retries cannot be scheduled;
/// `update` events to one answering 200.
fn creates_fail_and_cannot_be_retried() -> Harness {
    Harness::new(
        FakeSubscriptions::with(vec![
            sub("creates", &["create"]),
            sub("updates", &["update"]),
        ]),
        FakeDeliverer::answering(&[
            (&url("creates"), status(500)),
            (&url("updates"), status(200)),
        ]),
        FakeOutbox::default().failing_schedules(|_| true),
    )
}

#[tokio::test]
async fn a_retry_that_cannot_be_scheduled_brings_back_only_its_record() {
    let h = creates_fail_and_cannot_be_retried();
    let response = h
        .handle(vec![
            event_record("failing", &event("create")),
            event_record("fine", &event("update")),
        ])
        .await;

    assert_eq!(failures(&response), vec!["failing"]);
    assert_eq!(h.deliverer.urls(), vec![url("creates"), url("updates")]);
    assert!(h.outbox.scheduled().is_empty());
    assert!(h.outbox.parked().is_empty());
    assert_eq!(
        h.history.attempts().len(),
        2,
        "both attempts were made and are recorded"
    );
}

#[tokio::test]
async fn a_record_whose_message_id_is_missing_brings_the_whole_batch_back_and_does_not_panic() {
    let h = Harness::new(
        FakeSubscriptions::default().failing_lookups(),
        FakeDeliverer::default(),
        FakeOutbox::default(),
    );
    let mut r = event_record("x", &event("create"));
    r.message_id = None;
    let result = h.try_handle(vec![r]).await;
    assert_eq!(
        result,
        Err(BatchError {
            unnamed: 1,
            records: 1
        }),
        "a record that must come back but cannot be named is never reported as done"
    );
}

#[tokio::test]
async fn a_follow_up_that_fails_for_an_unnamed_record_brings_back_the_named_ones_too() {
    let h = creates_fail_and_cannot_be_retried();
    let mut unnamed = event_record("failing", &event("create"));
    unnamed.message_id = Some(String::new());
    let mut also_unnamed = event_record("failing too", &event("create"));
    also_unnamed.message_id = None;

    let result = h
        .try_handle(vec![
            unnamed,
            also_unnamed,
            event_record("fine", &event("update")),
        ])
        .await;

    let error = result.expect_err("the whole batch must come back");
    assert_eq!(
        error,
        BatchError {
            unnamed: 2,
            records: 3
        }
    );
    assert_eq!(
        h.deliverer.urls(),
        vec![url("creates"), url("creates"), url("updates")]
    );
    assert_eq!(
        h.history.attempts().len(),
        3,
        "the attempts made are recorded even though the batch comes back"
    );
}

#[tokio::test]
async fn a_record_without_a_message_id_that_is_done_needs_no_name() {
    let h = Harness::new(
        FakeSubscriptions::with(vec![sub("a", &["*"])]),
        FakeDeliverer::default(),
        FakeOutbox::default(),
    );
    let mut r = event_record("x", &event("create"));
    r.message_id = None;
    let response = h.try_handle(vec![r]).await.expect("nothing must come back");
    assert!(failures(&response).is_empty());
    assert_eq!(h.deliverer.urls(), vec![url("a")]);
}

#[tokio::test]
async fn an_empty_batch_is_handled() {
    let h = Harness::new(
        FakeSubscriptions::default(),
        FakeDeliverer::default(),
        FakeOutbox::default(),
    );
    let response = h.handle(Vec::new()).await;
    assert!(failures(&response).is_empty());
    assert!(h.history.attempts().is_empty());
}

#[tokio::test]
async fn a_retry_whose_first_send_fails_is_sent_again_so_the_event_is_not_fanned_out_twice() {
    // The first schedule fails (a passing SQS error), the second goes through.
    let failures_left = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(1));
    let failing = std::sync::Arc::clone(&failures_left);
    let h = Harness::new(
        FakeSubscriptions::with(vec![sub("down", &["*"]), sub("up", &["*"])]),
        FakeDeliverer::answering(&[(&url("down"), status(500)), (&url("up"), status(200))]),
        FakeOutbox::default().failing_schedules(move |_| {
            failing
                .fetch_update(
                    std::sync::atomic::Ordering::SeqCst,
                    std::sync::atomic::Ordering::SeqCst,
                    |n| n.checked_sub(1),
                )
                .is_ok()
        }),
    );
    let response = h.handle(vec![event_record("m1", &event("create"))]).await;

    assert!(
        failures(&response).is_empty(),
        "the record does not come back, so `up` is not sent the event again"
    );
    assert_eq!(failures_left.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(h.outbox.scheduled().len(), 1, "down's retry is scheduled");
}
