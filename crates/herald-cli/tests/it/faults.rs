//! Fault tests: receivers that fail, hang, answer 410 or 429, a worker killed
//! mid-batch, garbage on the queue, a private destination. Each runs the worker
//! (in-process; `herald worker` as a process where it is killed or refuses to start)
//! against its own stack in the emulator, with real HTTP receivers on
//! 127.0.0.1 and a retry schedule compressed to seconds, and prints its accounting.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use herald_core::{
    AppId, AttemptOutcome, Event, EventFilter, EventType, ObjectType, ObjectTypeFilter,
    Subscription,
};
use herald_queue::Publisher;
use herald_store::AttemptFilter;
use herald_store::{HistoryStore, SubscriptionStore};
use herald_testing::{
    aws, aws_at, is_dynamodb_write, queue_depth, scratch_dir, wait_until, Accounting, Fault,
    FaultProxy, Herald, Receiver, Reply, Stack, Worker, WorkerProcess,
};

/// The schedule and bounds every fault test runs with (unless it overrides them).
const BASE_ENV: [(&str, &str); 6] = [
    ("HERALD_RETRY_SCHEDULE", "0s,1s,1s"),
    ("HERALD_RETRY_JITTER", "0"),
    ("HERALD_HTTP_TIMEOUT", "1s"),
    ("HERALD_BATCH_START_DEADLINE", "2s"),
    ("HERALD_SUBSCRIPTION_CACHE_TTL", "0s"),
    ("HERALD_DISABLE_AFTER_FAILED_DELIVERIES", "1"),
];
/// Longer than the worst-case batch time of BASE_ENV (2 s + 1 s + 10 s).
const VISIBILITY: &str = "20";

struct Fixture {
    stack: Stack,
    sqs: aws_sdk_sqs::Client,
    store: SubscriptionStore,
    history_store: HistoryStore,
    publisher: Publisher,
}

impl Fixture {
    async fn new(test: &str) -> Self {
        let stack = Stack::deploy_with(test, &[("VisibilityTimeoutSeconds", VISIBILITY)])
            .expect("deploy the stack");
        let aws = aws().await;
        let sqs = aws_sdk_sqs::Client::new(&aws);
        let dynamo = aws_sdk_dynamodb::Client::new(&aws);
        let store = SubscriptionStore::new(
            dynamo.clone(),
            stack.subscriptions_table(),
            stack.sealer().unwrap(),
        );
        let history_store = HistoryStore::new(
            dynamo,
            stack.var("HERALD_HISTORY_TABLE"),
            Duration::from_secs(86_400),
        );
        let publisher = Publisher::connect(sqs.clone(), stack.events_queue())
            .await
            .expect("publisher");
        Self {
            stack,
            sqs,
            store,
            history_store,
            publisher,
        }
    }

    /// The worker in-process, with BASE_ENV and `overrides`.
    fn worker(&self, overrides: &[(&str, &str)]) -> Worker {
        Worker::spawn(&self.stack, &Self::env(overrides)).expect("start the worker")
    }

    /// `herald worker` as a process (to be killed), with BASE_ENV and `overrides`.
    fn worker_process(&self, overrides: &[(&str, &str)]) -> WorkerProcess {
        WorkerProcess::spawn(&self.herald(), &Self::env(overrides)).expect("start the worker")
    }

    fn env<'a>(overrides: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut env: HashMap<&str, &str> = BASE_ENV.into_iter().collect();
        env.extend(overrides.iter().copied());
        env.into_iter().collect()
    }

    /// The `herald` binary with the stack's settings.
    fn herald(&self) -> Herald {
        let config_home = scratch_dir("faults-xdg").expect("a scratch directory");
        Herald::new(crate::HERALD, &self.stack, &config_home)
    }

    async fn subscribe(&self, url: String, events: &[&str]) -> Subscription {
        let sub = Subscription::new(
            AppId::parse("app").unwrap(),
            url,
            EventFilter::parse(events).unwrap(),
            ObjectTypeFilter::All,
        );
        self.store.create(&sub).await.expect("create subscription");
        sub
    }

    async fn publish(&self, n: usize, event_type: &str) -> Vec<Event> {
        let events: Vec<Event> = (0..n)
            .map(|i| {
                Event::new(
                    AppId::parse("app").unwrap(),
                    EventType::parse(event_type).unwrap(),
                    ObjectType::parse("user").unwrap(),
                    serde_json::json!({ "n": i }),
                )
            })
            .collect();
        self.publisher.publish_all(&events).await.expect("publish");
        events
    }

    async fn dlq_depth(&self) -> u64 {
        queue_depth(&self.sqs, self.stack.dlq()).await.unwrap_or(0)
    }

    async fn events_depth(&self) -> u64 {
        queue_depth(&self.sqs, self.stack.events_queue())
            .await
            .unwrap_or(1)
    }

    /// Reads the DLQ without consuming it (messages become visible again at once).
    async fn peek_dlq(&self) -> Vec<serde_json::Value> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(self.stack.dlq())
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .message_attribute_names("All")
            .send()
            .await
            .expect("receive from the DLQ");
        out.messages()
            .iter()
            .map(|m| serde_json::from_str(m.body().unwrap_or_default()).unwrap_or_default())
            .collect()
    }

    async fn history(&self, sub: &Subscription) -> Vec<herald_core::Attempt> {
        self.history_store
            .for_subscription(&sub.app_id, &sub.id, &AttemptFilter::default(), 100, None)
            .await
            .expect("history")
            .items
    }
}

const PATIENCE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flaky_endpoint_gets_the_event_after_retries_and_the_healthy_one_exactly_once() {
    let f = Fixture::new("flaky").await;
    // Fails the first two attempts of every delivery.
    let flaky = Receiver::start(Arc::new(|seen| {
        Reply::status(if seen.for_id <= 2 { 500 } else { 200 })
    }))
    .await;
    let healthy = Receiver::ok().await;
    let flaky_sub = f.subscribe(flaky.url(), &["update"]).await;
    let healthy_sub = f.subscribe(healthy.url(), &["update"]).await;
    let worker = f.worker(&[("HERALD_RETRY_SCHEDULE", "0s,1s,1s,1s")]);
    let events = f.publish(5, "update").await;

    assert!(wait_until(PATIENCE, || async { flaky.delivered().0.len() == 5 }).await);
    assert!(
        wait_until(PATIENCE, || async { f.events_depth().await == 0 }).await,
        "queue drained"
    );
    // Nothing is left to do; once the worker has stopped (after the batches in hand),
    // the counts below are final.
    worker.stop().await.expect("the worker ran");

    let (flaky_ok, flaky_dups) = flaky.delivered();
    let (healthy_ok, healthy_dups) = healthy.delivered();
    let acc = Accounting {
        expected: 10,
        delivered: flaky_ok.len() + healthy_ok.len(),
        duplicates: flaky_dups + healthy_dups,
        parked: f.dlq_depth().await as usize,
        lost: 10 - flaky_ok.len() - healthy_ok.len(),
    };
    acc.print("flaky");
    assert_eq!(
        flaky.count(),
        15,
        "three attempts for each of the five deliveries"
    );
    assert_eq!(
        healthy.count(),
        5,
        "the healthy endpoint got exactly one request per event"
    );
    assert_eq!(
        (acc.delivered, acc.duplicates, acc.parked, acc.lost),
        (10, 0, 0, 0)
    );

    // History: per delivery to the flaky endpoint, attempts 1 and 2 failed with 500, 3 succeeded.
    assert!(
        wait_until(PATIENCE, || async {
            f.history(&flaky_sub).await.len() == 15
        })
        .await
    );
    let history = f.history(&flaky_sub).await;
    assert_eq!(history.len(), 15);
    for event in &events {
        let mut mine: Vec<_> = history.iter().filter(|a| a.event_id == event.id).collect();
        mine.sort_by_key(|a| a.attempt);
        let summary: Vec<_> = mine
            .iter()
            .map(|a| (a.attempt, a.outcome, a.status_code))
            .collect();
        assert_eq!(
            summary,
            vec![
                (1, AttemptOutcome::Failed, Some(500)),
                (2, AttemptOutcome::Failed, Some(500)),
                (3, AttemptOutcome::Succeeded, Some(200)),
            ]
        );
        assert!(mine[0].next_attempt_at.is_some() && mine[2].next_attempt_at.is_none());
        assert_eq!(mine[0].error_kind.as_deref(), Some("http_status"));
    }
    assert!(
        history
            .windows(2)
            .all(|w| w[0].attempted_at >= w[1].attempted_at),
        "newest first"
    );
    assert_eq!(f.history(&healthy_sub).await.len(), 5);
    let per_event = f
        .history_store
        .for_event(
            &events[0].app_id,
            &events[0].id,
            &AttemptFilter::default(),
            50,
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        per_event.items.len(),
        4,
        "3 attempts to the flaky endpoint + 1 to the healthy one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_endpoint_is_parked_disabled_and_redelivered_after_recovery_and_redrive() {
    let f = Fixture::new("dead").await;
    let up = Arc::new(AtomicBool::new(false));
    let up_in = Arc::clone(&up);
    let receiver = Receiver::start(Arc::new(move |_| {
        Reply::status(if up_in.load(Ordering::SeqCst) {
            200
        } else {
            500
        })
    }))
    .await;
    let sub = f.subscribe(receiver.url(), &["*"]).await;
    let _worker = f.worker(&[]);
    let events = f.publish(1, "create").await;

    assert!(
        wait_until(PATIENCE, || async { f.dlq_depth().await == 1 }).await,
        "parked after the last attempt"
    );
    assert_eq!(
        receiver.count(),
        3,
        "every attempt of the schedule was made"
    );
    // Disabling and the history follow the parking within the same batch.
    assert!(
        wait_until(PATIENCE, || async {
            let disabled = f
                .store
                .get(&sub.app_id, &sub.id)
                .await
                .ok()
                .flatten()
                .is_some_and(|s| !s.active);
            disabled && f.history(&sub).await.len() == 3
        })
        .await
    );
    let letters = f.peek_dlq().await;
    let letter = &letters[0];
    assert_eq!(letter["kind"], "failed");
    assert_eq!(letter["reason"], "all 3 attempts failed");
    assert_eq!(letter["attempts"], 3);
    assert_eq!(letter["last_status"], 500);
    assert_eq!(letter["delivery"]["subscription_id"], sub.id.as_str());
    assert_eq!(letter["delivery"]["event"]["id"], events[0].id.as_str());
    assert!(letter["parked_at"].is_string() && letter["delivery"]["first_attempt_at"].is_string());

    let stored = f.store.get(&sub.app_id, &sub.id).await.unwrap().unwrap();
    assert!(!stored.active, "disabled after the failed delivery");
    assert!(stored
        .disabled_reason
        .unwrap()
        .contains("failed deliveries in a row"));
    let history = f.history(&sub).await;
    assert_eq!(
        history
            .iter()
            .filter(|a| a.outcome == AttemptOutcome::Failed)
            .count(),
        3
    );

    // While disabled, a new event is recorded as not sent, and nothing is requested.
    let later = f.publish(1, "update").await;
    assert!(
        wait_until(PATIENCE, || async {
            f.history(&sub)
                .await
                .iter()
                .any(|a| a.event_id == later[0].id && a.outcome == AttemptOutcome::NotSent)
        })
        .await,
        "event for a disabled endpoint recorded as not sent"
    );
    assert_eq!(receiver.count(), 3);

    // The endpoint recovers, the operator re-enables it and re-drives the DLQ.
    up.store(true, Ordering::SeqCst);
    f.store.enable(&sub.app_id, &sub.id).await.unwrap();
    let report =
        herald_redriver::Redriver::new(f.sqs.clone(), f.stack.dlq(), f.stack.events_queue())
            .run(&herald_redriver::RedriveOptions::default())
            .await
            .expect("redrive");
    assert_eq!(report.moved, 1);
    assert!(wait_until(PATIENCE, || async { receiver.delivered().0.len() == 1 }).await);
    assert!(
        wait_until(PATIENCE, || async {
            f.events_depth().await == 0 && f.dlq_depth().await == 0
        })
        .await
    );
    let (ok, dups) = receiver.delivered();
    let acc = Accounting {
        expected: 1,
        delivered: ok.len(),
        duplicates: dups,
        parked: f.dlq_depth().await as usize,
        lost: 1 - ok.len(),
    };
    acc.print("dead");
    assert_eq!(
        (acc.delivered, acc.duplicates, acc.parked, acc.lost),
        (1, 0, 0, 0)
    );
    assert_eq!(
        ok.into_iter().next().unwrap(),
        herald_core::webhook_id(&events[0].id, &sub.id),
        "same webhook-id after re-drive"
    );
    let stored = f.store.get(&sub.app_id, &sub.id).await.unwrap().unwrap();
    assert_eq!(
        stored.consecutive_failures, 0,
        "the success reset the failure count"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hanging_endpoint_times_out_and_is_retried_never_twice_at_once() {
    let f = Fixture::new("hang").await;
    // The first attempt hangs far past the 1 s timeout; the second answers at once.
    let receiver = Receiver::start(Arc::new(|seen| {
        if seen.for_id == 1 {
            Reply::status(200).after(Duration::from_secs(8))
        } else {
            Reply::status(200)
        }
    }))
    .await;
    let sub = f.subscribe(receiver.url(), &["*"]).await;
    let worker = f.worker(&[]);
    f.publish(3, "update").await;

    assert!(wait_until(PATIENCE, || async { receiver.count() >= 6 }).await);
    assert!(wait_until(PATIENCE, || async { f.events_depth().await == 0 }).await);
    // Nothing is left to do; once the worker has stopped (after the batches in hand),
    // the counts below are final.
    worker.stop().await.expect("the worker ran");
    assert!(wait_until(PATIENCE, || async { f.history(&sub).await.len() == 6 }).await);
    let history = f.history(&sub).await;
    let timeouts = history
        .iter()
        .filter(|a| a.error_kind.as_deref() == Some("timeout"))
        .count();
    let successes = history
        .iter()
        .filter(|a| a.outcome == AttemptOutcome::Succeeded)
        .count();
    let acc = Accounting {
        expected: 3,
        delivered: successes,
        duplicates: 0,
        parked: f.dlq_depth().await as usize,
        lost: 3 - successes,
    };
    acc.print("hang");
    assert_eq!(timeouts, 3, "each first attempt timed out");
    assert_eq!(successes, 3, "each delivery succeeded on its retry");
    assert_eq!(receiver.count(), 6);
    assert_eq!(
        receiver.max_in_flight_per_delivery(),
        1,
        "never two requests for one delivery at once"
    );
    assert!(
        history.iter().all(|a| a.latency_ms < 5_000),
        "attempts are bounded by the timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_killed_mid_batch_loses_nothing() {
    let f = Fixture::new("kill").await;
    let slow = || Arc::new(|_| Reply::status(200).after(Duration::from_millis(150)));
    let receivers = [
        Receiver::start(slow()).await,
        Receiver::start(slow()).await,
        Receiver::start(slow()).await,
    ];
    for r in &receivers {
        f.subscribe(r.url(), &["*"]).await;
    }
    let events = f.publish(60, "create").await;
    let mut worker = f.worker_process(&[("HERALD_DELIVERY_CONCURRENCY", "4")]);
    let total = || receivers.iter().map(Receiver::count).sum::<usize>();
    assert!(
        wait_until(PATIENCE, || async { total() >= 20 }).await,
        "the worker got going"
    );
    worker.kill(); // SIGKILL, mid-batch
    let at_kill = total();
    let _restarted = f.worker(&[("HERALD_DELIVERY_CONCURRENCY", "16")]);

    let expected = events.len() * receivers.len();
    assert!(
        wait_until(Duration::from_secs(120), || async {
            receivers
                .iter()
                .map(|r| r.delivered().0.len())
                .sum::<usize>()
                == expected
        })
        .await,
        "every delivery arrived after the restart"
    );
    assert!(wait_until(PATIENCE, || async { f.events_depth().await == 0 }).await);
    let delivered: usize = receivers.iter().map(|r| r.delivered().0.len()).sum();
    let duplicates: usize = receivers.iter().map(|r| r.delivered().1).sum();
    let acc = Accounting {
        expected,
        delivered,
        duplicates,
        parked: f.dlq_depth().await as usize,
        lost: expected - delivered,
    };
    acc.print("kill");
    println!("[kill] requests before the kill: {at_kill}; duplicates are redeliveries of the batch in flight, deduped by webhook-id");
    assert_eq!((acc.delivered, acc.parked, acc.lost), (expected, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn garbage_on_the_queue_is_parked_with_its_reason_and_everything_else_delivered() {
    let f = Fixture::new("garbage").await;
    let receiver = Receiver::ok().await;
    f.subscribe(receiver.url(), &["*"]).await;
    let garbage = [
        "not json at all",
        "{\"kind\":\"event\"}",
        "{\"kind\":\"teleport\",\"event\":{}}",
        "[1,2,3]",
        "{\"kind\":\"event\",\"event\":{\"id\":\"e\",\"app_id\":\"app\",\"type\":\"bad type!\",\"object_type\":\"user\",\"timestamp\":\"2026-01-01T00:00:00Z\",\"data\":{}}}",
        "{\"kind\":\"delivery\",\"delivery\":{\"subscription_id\":\"s\"}}",
    ];
    for body in garbage {
        f.sqs
            .send_message()
            .queue_url(f.stack.events_queue())
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    let events = f.publish(20, "update").await;
    let _worker = f.worker(&[]);

    assert!(wait_until(PATIENCE, || async { receiver.delivered().0.len() == 20 }).await);
    assert!(wait_until(PATIENCE, || async { f.events_depth().await == 0 }).await);
    assert!(
        wait_until(PATIENCE, || async {
            f.dlq_depth().await == garbage.len() as u64
        })
        .await
    );
    let parked = herald_testing::drain(&f.sqs, f.stack.dlq()).await.unwrap();
    let (ok, dups) = receiver.delivered();
    let acc = Accounting {
        expected: events.len(),
        delivered: ok.len(),
        duplicates: dups,
        parked: parked.len(),
        lost: events.len() - ok.len(),
    };
    acc.print("garbage");
    assert_eq!((acc.delivered, acc.duplicates, acc.lost), (20, 0, 0));
    let mut bodies = BTreeSet::new();
    for m in &parked {
        let letter: serde_json::Value = serde_json::from_str(m.body().unwrap()).unwrap();
        assert_eq!(letter["kind"], "undecodable");
        assert!(!letter["reason"].as_str().unwrap().is_empty(), "{letter}");
        assert_eq!(
            m.message_attributes().unwrap()["herald_reason"].string_value(),
            letter["reason"].as_str()
        );
        bodies.insert(letter["body"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        bodies,
        garbage.iter().map(|s| s.to_string()).collect(),
        "each garbage body parked once, intact"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_message_too_large_to_retry_is_parked_at_first_sight_with_its_reason() {
    let f = Fixture::new("oversized").await;
    let healthy = Receiver::ok().await;
    let dead = Receiver::start(Arc::new(|_| Reply::status(500))).await;
    f.subscribe(healthy.url(), &["*"]).await;
    f.subscribe(dead.url(), &["*"]).await;
    // Within the queue's limit, but over the largest event the publisher accepts: a
    // retry of it (the event plus the delivery's metadata) would not fit on the queue.
    let limit = f.publisher.max_message_bytes();
    let event = Event::new(
        AppId::parse("app").unwrap(),
        EventType::parse("update").unwrap(),
        ObjectType::parse("user").unwrap(),
        serde_json::json!({ "blob": "y".repeat(limit - 200) }),
    );
    let body = herald_core::QueueMessage::Event { event }.encode();
    assert!(body.len() < limit && body.len() > f.publisher.max_event_bytes());
    f.sqs
        .send_message()
        .queue_url(f.stack.events_queue())
        .message_body(&body)
        .send()
        .await
        .expect("the queue takes it");
    let _worker = f.worker(&[]);

    assert!(
        wait_until(PATIENCE, || async { f.dlq_depth().await == 1 }).await,
        "parked at once, not after the queue's own redrive"
    );
    assert!(wait_until(PATIENCE, || async { f.events_depth().await == 0 }).await);
    let letter = &f.peek_dlq().await[0];
    assert_eq!(letter["kind"], "undecodable", "{}", letter["reason"]);
    let reason = letter["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("{} bytes", body.len())) && reason.contains(&limit.to_string()),
        "{reason}"
    );
    assert_eq!(letter["body_truncated"], true);
    assert!(body.starts_with(letter["body"].as_str().unwrap()));
    assert_eq!(
        (healthy.count(), dead.count()),
        (0, 0),
        "no delivery of an event the queue cannot carry on"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gone_410_disables_the_endpoint_at_once() {
    let f = Fixture::new("gone").await;
    let receiver = Receiver::start(Arc::new(|_| Reply::status(410))).await;
    let sub = f.subscribe(receiver.url(), &["*"]).await;
    let _worker = f.worker(&[("HERALD_DISABLE_AFTER_FAILED_DELIVERIES", "100")]);
    f.publish(1, "delete").await;

    assert!(wait_until(PATIENCE, || async { f.dlq_depth().await == 1 }).await);
    // The dead letter is parked first, then the endpoint disabled (handler.rs).
    assert!(
        wait_until(PATIENCE, || async {
            let stored = f.store.get(&sub.app_id, &sub.id).await.unwrap().unwrap();
            !stored.active
        })
        .await
    );
    let stored = f.store.get(&sub.app_id, &sub.id).await.unwrap().unwrap();
    assert!(stored.disabled_reason.as_deref().unwrap().contains("410"));
    let letter = &f.peek_dlq().await[0];
    assert!(letter["reason"].as_str().unwrap().contains("410"));
    assert_eq!(letter["attempts"], 1, "no retries after 410");

    let second = f.publish(1, "delete").await;
    assert!(
        wait_until(PATIENCE, || async {
            f.history(&sub)
                .await
                .iter()
                .any(|a| a.event_id == second[0].id && a.outcome == AttemptOutcome::NotSent)
        })
        .await
    );
    Accounting {
        expected: 0,
        delivered: 0,
        duplicates: 0,
        parked: 1,
        lost: 0,
    }
    .print("gone");
    assert_eq!(
        receiver.count(),
        1,
        "one request, then the endpoint was left alone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retry_after_is_honoured_within_bounds_and_long_delays_take_several_hops() {
    let f = Fixture::new("retry-after").await;
    // 429 with Retry-After: 3 (seconds), then 503 with an HTTP date 6 s ahead, then 200.
    let receiver = Receiver::start(Arc::new(|seen| match seen.for_id {
        1 => Reply::status(429).header("retry-after", "3"),
        2 => Reply::status(503).header(
            "retry-after",
            &httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(6)),
        ),
        _ => Reply::status(200),
    }))
    .await;
    let sub = f.subscribe(receiver.url(), &["*"]).await;
    // Scheduled delays 2 s and 4 s; queue delays capped at 1 s, so each wait takes hops.
    let _worker = f.worker(&[
        ("HERALD_RETRY_SCHEDULE", "0s,2s,4s"),
        ("HERALD_MAX_QUEUE_DELAY", "1s"),
    ]);
    f.publish(1, "update").await;

    assert!(wait_until(PATIENCE, || async { receiver.count() == 3 }).await);
    let got = receiver.received();
    let gap1 = got[1].at - got[0].at;
    let gap2 = got[2].at - got[1].at;
    println!("[retry-after] gaps between attempts: {gap1:?}, {gap2:?}");
    assert!(
        gap1 >= Duration::from_secs(3),
        "Retry-After: 3 honoured over the 2 s schedule: {gap1:?}"
    );
    assert!(
        gap2 >= Duration::from_millis(5_000),
        "HTTP-date Retry-After honoured: {gap2:?}"
    );
    // The third attempt's record is written with its batch's history, just after the
    // receiver saw it.
    assert!(wait_until(PATIENCE, || async { f.history(&sub).await.len() == 3 }).await);
    let mut history = f.history(&sub).await;
    history.sort_by_key(|a| a.attempt);
    let planned =
        |a: &herald_core::Attempt| (a.next_attempt_at.unwrap() - a.attempted_at).num_milliseconds();
    assert!(
        (3_000..3_500).contains(&planned(&history[0])),
        "3 s, within [2 s, 4 s]: {}",
        planned(&history[0])
    );
    assert!(
        (5_000..=8_000).contains(&planned(&history[1])),
        "about 6 s, capped at twice 4 s: {}",
        planned(&history[1])
    );
    assert_eq!(history[2].outcome, AttemptOutcome::Succeeded);
    Accounting {
        expected: 1,
        delivered: 1,
        duplicates: 0,
        parked: 0,
        lost: 0,
    }
    .print("retry-after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn private_destinations_are_refused_with_a_clear_error() {
    let f = Fixture::new("private").await;
    let receiver = Receiver::ok().await;
    let by_ip = f.subscribe(receiver.url(), &["*"]).await;
    let by_name = f
        .subscribe(
            format!("http://localhost:{}/hook", receiver.addr.port()),
            &["*"],
        )
        .await;
    // No allowlist: the default policy.
    let _worker = f.worker(&[("HERALD_ALLOW_PRIVATE_NETWORKS", "")]);
    f.publish(1, "create").await;

    assert!(wait_until(PATIENCE, || async { f.dlq_depth().await == 2 }).await);
    assert_eq!(
        receiver.count(),
        0,
        "no request reached the private address"
    );
    for letter in f.peek_dlq().await {
        assert_eq!(
            letter["reason"],
            "destination refused by the address policy"
        );
        let error = letter["last_error"].as_str().unwrap();
        assert!(
            error.contains("loopback") && error.contains("HERALD_ALLOW_PRIVATE_NETWORKS"),
            "{error}"
        );
        // The address a name resolved to is not told (no DNS oracle).
        assert!(
            !error.contains("127.0.0.1") && !error.contains("::1"),
            "{error}"
        );
        assert_eq!(letter["attempts"], 1, "refused at once, not retried");
    }
    // The history is written at the end of the batch, just after the parking.
    assert!(
        wait_until(PATIENCE, || async {
            f.history(&by_ip).await.len() == 1 && f.history(&by_name).await.len() == 1
        })
        .await
    );
    for sub in [&by_ip, &by_name] {
        let history = f.history(sub).await;
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].error_kind.as_deref(), Some("refused_address"));
        let error = history[0].error.as_deref().unwrap_or_default();
        assert!(error.contains("loopback"), "{error}");
        assert!(
            !error.contains("127.0.0.1") && !error.contains("::1"),
            "{error}"
        );
    }
    Accounting {
        expected: 0,
        delivered: 0,
        duplicates: 0,
        parked: 2,
        lost: 0,
    }
    .print("private");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redirects_are_not_followed_and_a_vanished_endpoint_is_retried_then_parked() {
    let f = Fixture::new("redirect").await;
    let target = Receiver::ok().await;
    let location = target.url();
    let redirecting = Receiver::start(Arc::new(move |_| {
        Reply::status(302).header("location", &location)
    }))
    .await;
    let redirect_sub = f.subscribe(redirecting.url(), &["*"]).await;
    // A receiver that was there and is gone: its port now refuses connections.
    let vanished_url = {
        let gone = Receiver::ok().await;
        let url = gone.url();
        gone.stop().await;
        url
    };
    let vanished_sub = f.subscribe(vanished_url, &["*"]).await;
    let _worker = f.worker(&[]);
    f.publish(1, "update").await;

    assert!(wait_until(PATIENCE, || async { f.dlq_depth().await == 2 }).await);
    // The history of the last attempts is written at the end of their batch.
    assert!(
        wait_until(PATIENCE, || async {
            f.history(&redirect_sub).await.len() == 3 && f.history(&vanished_sub).await.len() == 3
        })
        .await
    );
    assert_eq!(
        redirecting.count(),
        3,
        "each attempt hit the redirecting endpoint"
    );
    assert_eq!(target.count(), 0, "the redirect was never followed");
    let redirects = f.history(&redirect_sub).await;
    assert!(redirects
        .iter()
        .all(|a| a.status_code == Some(302) && a.outcome == AttemptOutcome::Failed));
    let vanished = f.history(&vanished_sub).await;
    assert_eq!(vanished.len(), 3);
    assert!(
        vanished
            .iter()
            .all(|a| a.error_kind.as_deref() == Some("connect")),
        "{vanished:?}"
    );
    Accounting {
        expected: 0,
        delivered: 0,
        duplicates: 0,
        parked: 2,
        lost: 0,
    }
    .print("redirect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_worker_refuses_to_start_when_the_visibility_timeout_is_too_short() {
    let stack =
        Stack::deploy_with("short-visibility", &[("VisibilityTimeoutSeconds", "10")]).unwrap();
    // Worst case with these settings: 30 s + 15 s + 10 s = 55 s > 10 s.
    let config_home = scratch_dir("short-visibility-xdg").unwrap();
    let out = Herald::new(crate::HERALD, &stack, &config_home)
        .with("HERALD_BATCH_START_DEADLINE", "30s")
        .with("HERALD_HTTP_TIMEOUT", "15s")
        .std_command(&["worker"])
        .output()
        .expect("run the worker");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "a setting to change: {stderr}");
    assert!(
        stderr.contains("visibility timeout (10 s) must exceed the worst-case batch time (55 s"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_answers_by_its_deadline_when_dynamodb_hangs_and_loses_nothing() {
    let f = Fixture::new("slow-dynamo").await;
    let ok = Receiver::ok().await;
    let gone = Receiver::start(Arc::new(|_| Reply::status(410))).await;
    f.subscribe(ok.url(), &["*"]).await;
    f.subscribe(gone.url(), &["*"]).await;
    let events = f.publish(5, "create").await;
    let mut messages = Vec::new();
    while messages.len() < events.len() {
        let out = f
            .sqs
            .receive_message()
            .queue_url(f.stack.events_queue())
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive the events");
        messages.extend(out.messages.unwrap_or_default());
    }

    // The consumer on the real adapters, but every DynamoDB write (the endpoint's
    // disable, the history) hangs: the proxy holds it for 30 s, past the SDK's own
    // 5-second operation timeout, so each such call would eat 5 s of the batch.
    let emulator = std::env::var("AWS_ENDPOINT_URL").expect("the emulator's endpoint");
    let proxy = FaultProxy::start(&emulator).await.unwrap();
    proxy.set_rule(|target, _| {
        is_dynamodb_write(target).then_some(Fault::Delay(Duration::from_secs(30)))
    });
    let mut vars: HashMap<String, String> = f.stack.env.clone();
    vars.extend(
        Fixture::env(&[("HERALD_ALLOW_PRIVATE_NETWORKS", "127.0.0.1/32")])
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let config = herald_consumer::ConsumerConfig::from_vars(vars).expect("settings");
    let consumer = herald_consumer::build(&config, &aws_at(&proxy.url).await).expect("consumer");

    let budget = Duration::from_secs(5);
    let started = std::time::Instant::now();
    let response = consumer
        .handle_until(herald_queue::sqs::to_sqs_event(messages), started + budget)
        .await
        .expect("a response for every record");
    let took = started.elapsed();
    assert!(
        took < budget + Duration::from_millis(750),
        "the batch answered after {took:?}, past its {budget:?} deadline"
    );
    // Nothing comes back and nothing is lost: the healthy endpoint got each event
    // once, and the gone one's deliveries are parked (its disable was abandoned).
    assert!(
        response.batch_item_failures.is_empty(),
        "{:?}",
        response.batch_item_failures
    );
    let (delivered, duplicates) = ok.delivered();
    assert_eq!((delivered.len(), duplicates), (events.len(), 0));
    assert_eq!(gone.count(), events.len());
    assert!(
        wait_until(PATIENCE, || async {
            f.dlq_depth().await == events.len() as u64
        })
        .await,
        "every delivery to the gone endpoint is parked"
    );
}
