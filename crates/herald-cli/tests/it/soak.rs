//! The soak test: 5,000 deliveries (250 events to twenty webhooks) through two
//! `herald worker` processes that are SIGKILLed and restarted again and again, to
//! receivers that are healthy, flaky, dead and hanging, with garbage and oversized
//! messages on the queue and every DynamoDB write held back 200-500 ms; then the
//! accounting: nothing lost, every dead delivery parked with its reason, garbage and
//! oversized messages parked with theirs, duplicates only from batches in flight at a
//! kill. The workers reach AWS through a proxy that slows the writes and sees every
//! message they receive: a duplicate is explained by a kill between its delivery's
//! first request and it, or by the emulator's queue handing a message to both workers
//! at once (as SQS itself occasionally may); any other fails the test.
//!
//! The emulator's SQS slows down as a queue grows deep (a receive takes 0.1 s with 100
//! messages on the queue, 0.7 s with 300, 2.4 s with 1,000), so a flood would measure
//! the emulator, not Herald: the events are published at a steady pace and only while
//! the queue is shallow, and the letters are taken off the DLQ as they come. Most
//! webhooks are healthy, so that 5,000 deliveries take few queue messages. The run
//! prints its progress at every kill (requests per receiver, the queues, the request
//! rate since the last kill).

mod receives;
mod webhooks;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::Message;
use herald_core::{AppId, Event, EventType, ObjectType, QueueMessage};
use herald_queue::Publisher;
use herald_testing::{
    aws, drain, is_dynamodb_write, queue_counts, scratch_dir, wait_until, Fault, FaultProxy,
    Herald, Stack, WorkerProcess,
};
use receives::Receives;
use webhooks::{account, prefix, Kill, Seen, Webhooks};

/// Events published; each goes to the twenty webhooks below: 5,000 deliveries.
const EVENTS: usize = 250;
/// Healthy webhooks; with a flaky, a dead and a hanging one, twenty.
const HEALTHY: usize = 17;
const WEBHOOKS: usize = HEALTHY + 3;
/// Events per publish, and the least time between publishes: 50 events a second.
const CHUNK: usize = 10;
const PACE: Duration = Duration::from_millis(200);
/// Messages on the events queue (visible, in flight or delayed) from which the
/// publisher waits.
const BACKLOG: u64 = 80;
/// Times a worker is killed (the two in turn) and started again.
const KILLS: usize = 6;
/// Messages a worker hands to the consumer at once (`HERALD_WORKER_BATCH_SIZE`).
const BATCH_SIZE: usize = 50;
/// The most deliveries a killed batch can have made that are made again when its
/// messages come back: every message an event, fanned out to every webhook.
const PER_BATCH: usize = BATCH_SIZE * WEBHOOKS;
/// Requests per event when all goes well: one per healthy webhook, then 2 flaky,
/// 3 dead and 2 hanging.
const REQUESTS_PER_EVENT: usize = HEALTHY + 7;
/// The reason of a dead delivery's letter under the schedule below.
const DEAD_REASON: &str = "all 3 attempts failed";
/// Longer than the worst-case batch time of the settings below (2 s + 1 s + 10 s).
const VISIBILITY: &str = "20";
/// The longest one stage of the run (the way to a kill, the settling) may take.
const STAGE: Duration = Duration::from_secs(90);

const SETTINGS: [(&str, &str); 10] = [
    ("HERALD_RETRY_SCHEDULE", "0s,1s,1s"),
    ("HERALD_RETRY_JITTER", "0"),
    ("HERALD_HTTP_TIMEOUT", "1s"),
    ("HERALD_BATCH_START_DEADLINE", "2s"),
    // Every dead delivery runs its whole schedule and is parked on its own, rather
    // than the endpoint being disabled.
    ("HERALD_DISABLE_AFTER_FAILED_DELIVERIES", "0"),
    ("HERALD_DELIVERY_CONCURRENCY", "128"),
    ("HERALD_WORKER_BATCH_SIZE", "50"),
    ("HERALD_WORKER_BATCH_WINDOW", "200ms"),
    ("HERALD_SUBSCRIPTION_CACHE_TTL", "1s"),
    // Thousands of failed attempts are the point here: only errors are worth a line.
    ("RUST_LOG", "error,herald_consumer::worker=warn"),
];

/// The letters taken off the DLQ so far.
type Letters = Arc<Mutex<Vec<Message>>>;

/// What is on the events queue, what came to the DLQ and how far the receivers got,
/// as one line.
async fn progress(
    sqs: &aws_sdk_sqs::Client,
    stack: &Stack,
    hooks: &Webhooks,
    letters: &Letters,
    t0: Instant,
) -> String {
    let events = queue_counts(sqs, stack.events_queue()).await;
    format!(
        "t={:.1}s requests {} ({}); events queue {events:?}; {} letters",
        t0.elapsed().as_secs_f64(),
        hooks.requests(),
        hooks.summary(),
        letters.lock().unwrap().len()
    )
}

/// Takes the letters off the DLQ as they come, into `letters`, until `stop` is set;
/// then takes what is left.
async fn collect_letters(
    sqs: aws_sdk_sqs::Client,
    dlq: String,
    letters: Letters,
    stop: Arc<AtomicBool>,
) {
    loop {
        let last = stop.load(Ordering::SeqCst);
        let taken = drain(&sqs, &dlq).await.expect("take letters off the DLQ");
        letters.lock().unwrap().extend(taken);
        if last {
            return;
        }
    }
}

/// Bodies no consumer can make an event of, one of them larger than a dead letter
/// keeps (parked cut short, and marked so).
fn garbage() -> Vec<String> {
    vec![
        "not json at all".to_owned(),
        "{\"kind\":\"event\"}".to_owned(),
        "[1,2,3]".to_owned(),
        "{\"kind\":\"delivery\",\"delivery\":{\"subscription_id\":\"s\"}}".to_owned(),
        format!("{{\"junk\":\"{}\"}}", "x".repeat(300_000)),
    ]
}

/// An event message within the queue's limit but too large to be carried on: a retry
/// of it (the event and the delivery's metadata) would not fit on the queue.
fn oversized_event(app: &AppId, publisher: &Publisher) -> String {
    let event = Event::new(
        app.clone(),
        EventType::parse("update").unwrap(),
        ObjectType::parse("order").unwrap(),
        serde_json::json!({ "blob": "y".repeat(publisher.max_message_bytes() - 200) }),
    );
    let body = QueueMessage::Event { event }.encode();
    assert!(body.len() > publisher.max_event_bytes() && body.len() < publisher.max_message_bytes());
    body
}

/// Publishes `events` CHUNK at a time, at most every PACE and only while fewer than
/// BACKLOG messages are on the queue, and puts `odd` bodies on the queue in between,
/// spread over the run. Returns how often it waited for the queue.
async fn publish_paced(
    publisher: Publisher,
    sqs: aws_sdk_sqs::Client,
    queue: String,
    events: Vec<Event>,
    odd: Vec<String>,
) -> usize {
    let chunks: Vec<&[Event]> = events.chunks(CHUNK).collect();
    let every = chunks.len() / (odd.len() + 1);
    let mut odd = odd.into_iter();
    let mut tick = tokio::time::interval(PACE);
    let mut held = 0;
    for (i, chunk) in chunks.into_iter().enumerate() {
        tick.tick().await;
        let shallow = || async {
            queue_counts(&sqs, &queue)
                .await
                .is_ok_and(|c| c.total() < BACKLOG)
        };
        if !shallow().await {
            held += 1;
            assert!(
                wait_until(STAGE, shallow).await,
                "the events queue stayed at {BACKLOG} messages or more"
            );
        }
        publisher.publish_all(chunk).await.expect("publish a chunk");
        if i > 0 && i % every == 0 {
            if let Some(body) = odd.next() {
                sqs.send_message()
                    .queue_url(&queue)
                    .message_body(body)
                    .send()
                    .await
                    .expect("put an odd message on the queue");
            }
        }
    }
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_thousand_deliveries_survive_kills_faulty_receivers_garbage_and_a_slow_dynamodb() {
    let t0 = Instant::now();
    let stack = Stack::deploy_with("soak", &[("VisibilityTimeoutSeconds", VISIBILITY)])
        .expect("deploy the stack");
    let aws = aws().await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let store = stack.subscription_store(&aws).unwrap();
    let app = AppId::parse("soak").unwrap();
    let hooks = Webhooks::create(&store, &app).await;

    // The workers reach AWS through a proxy that holds every DynamoDB write 200-500 ms
    // and sees what they receive from the events queue.
    let emulator = std::env::var("AWS_ENDPOINT_URL").expect("the emulator's endpoint");
    let receives = Arc::new(Receives::default());
    let proxy = FaultProxy::start_observed(&emulator, Some(receives.observer(hooks.sub_ids())))
        .await
        .unwrap();
    let writes = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&writes);
    proxy.set_rule(move |target, _| {
        is_dynamodb_write(target).then(|| {
            let n = counted.fetch_add(1, Ordering::Relaxed);
            Fault::Delay(Duration::from_millis(200 + n * 73 % 301))
        })
    });
    let herald = Herald::new(crate::HERALD, &stack, &scratch_dir("soak-xdg").unwrap());
    let mut env: Vec<(&str, &str)> = SETTINGS.to_vec();
    env.push(("AWS_ENDPOINT_URL", &proxy.url));
    let spawn = || WorkerProcess::spawn(&herald, &env).expect("start a worker");
    let mut workers = [spawn(), spawn()];
    let letters = Letters::default();
    let stop_collecting = Arc::new(AtomicBool::new(false));
    let collecting = tokio::spawn(collect_letters(
        sqs.clone(),
        stack.dlq().to_owned(),
        Arc::clone(&letters),
        Arc::clone(&stop_collecting),
    ));

    let publisher = Publisher::connect(sqs.clone(), stack.events_queue())
        .await
        .unwrap();
    let mut odd = garbage();
    odd.push(oversized_event(&app, &publisher));
    let events: Vec<Event> = (0..EVENTS)
        .map(|i| {
            Event::new(
                app.clone(),
                EventType::parse("update").unwrap(),
                ObjectType::parse("order").unwrap(),
                serde_json::json!({ "n": i, "note": "soak" }),
            )
        })
        .collect();
    let publishing = tokio::spawn(publish_paced(
        publisher,
        sqs.clone(),
        stack.events_queue().to_owned(),
        events.clone(),
        odd.clone(),
    ));
    println!(
        "[soak] publishing from t={:.1}s",
        t0.elapsed().as_secs_f64()
    );

    // Kill a worker at even steps of progress, the two in turn, and start it again.
    let total = EVENTS * REQUESTS_PER_EVENT;
    let mut last = (t0.elapsed(), 0usize);
    // (requests, seconds) of each stretch between kills.
    let mut stretches = Vec::new();
    let mut kills = Vec::new();
    for kill in 0..KILLS {
        let target = (kill + 1) * total / (KILLS + 1);
        let went_on = wait_until(STAGE, || async { hooks.requests() >= target }).await;
        let line = progress(&sqs, &stack, &hooks, &letters, t0).await;
        let (now, requests) = (t0.elapsed(), hooks.requests());
        let rate = (requests - last.1) as f64 / (now - last.0).as_secs_f64();
        stretches.push(((requests - last.1) as f64, (now - last.0).as_secs_f64()));
        last = (now, requests);
        println!(
            "[soak] kill {kill} (worker {}): {line}; {rate:.0} requests/s",
            kill % 2
        );
        assert!(
            went_on,
            "no progress to {target} requests before kill {kill}: {line}"
        );
        let asked = Instant::now();
        workers[kill % 2].kill();
        kills.push(Kill {
            asked,
            gone: Instant::now(),
        });
        workers[kill % 2] = spawn();
    }
    let held = publishing.await.expect("the publisher ran");
    let rates: Vec<f64> = stretches
        .iter()
        .map(|(requests, seconds)| (requests / seconds).round())
        .collect();

    // Everything settles: nothing visible, in flight or delayed on the events queue.
    let settled = wait_until(STAGE, || async {
        queue_counts(&sqs, stack.events_queue())
            .await
            .is_ok_and(|c| c.total() == 0)
    })
    .await;
    println!(
        "[soak] settled: {}",
        progress(&sqs, &stack, &hooks, &letters, t0).await
    );
    for w in &mut workers {
        w.kill();
    }
    assert!(settled, "the events queue never emptied");
    stop_collecting.store(true, Ordering::SeqCst);
    collecting.await.expect("the letters were collected");
    let letters = std::mem::take(&mut *letters.lock().unwrap());

    assert!(
        receives.deliveries() >= EVENTS * WEBHOOKS,
        "the proxy saw every delivery's messages received: {}",
        receives.deliveries()
    );
    let (doubled, doubled_messages) = receives.doubled();
    let seen = Seen {
        kills: &kills,
        receives: &receives,
        doubled,
        timed_out: receives.timed_out(),
    };
    let report = account(&hooks, &events, &letters, &seen, t0);
    report.acc.print("soak");
    println!(
        "[soak] {} letters: {} dead deliveries ({} distinct), {} undecodable ({} distinct), {} other; \
         {KILLS} kills; {doubled_messages} messages handed out twice at once by the emulator \
         ({} duplicates); {} duplicates retried after a timeout; publisher held back {held} times; {} DynamoDB writes slowed; \
         requests/s between kills {rates:?}; took {:.1}s",
        letters.len(),
        report.dead_letters,
        report.dead.len(),
        report.undecodable_letters,
        report.undecodable.len(),
        report.other.len(),
        report.doubled,
        report.late,
        writes.load(Ordering::Relaxed),
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(report.acc.lost, 0, "nothing lost: {:?}", report.acc);
    // The pace holds: no stretch between kills slows to a crawl (as a deep queue in
    // the emulator would make it). The first stretch, the first fan-outs with no
    // retries yet, runs faster than the rest. A stretch may also wait once for the
    // batches the kill before it cut off: their messages stay invisible for the
    // queue's visibility timeout and, in flight, count toward the publisher's backlog,
    // which holds the publisher back meanwhile. So each stretch takes at most the time
    // its requests need at a fifth of the fastest pace, plus one visibility timeout.
    let fastest = rates[1..].iter().copied().fold(0.0, f64::max);
    let visibility: f64 = VISIBILITY.parse().expect("a number of seconds");
    assert!(
        stretches[1..]
            .iter()
            .all(|(requests, seconds)| *seconds <= requests / (fastest / 5.0) + visibility),
        "throughput fell between kills: {rates:?} requests/s over {stretches:?} (requests, s)"
    );
    assert_eq!(
        report.dead,
        events
            .iter()
            .map(|e| e.id.to_string())
            .collect::<BTreeSet<_>>(),
        "every dead delivery parked, with the reason that its attempts failed"
    );
    assert!(
        report.other.is_empty(),
        "letters without their reason: {:?}",
        report.other
    );
    assert_eq!(
        report.undecodable.keys().cloned().collect::<BTreeSet<_>>(),
        odd.iter().map(|b| prefix(b)).collect::<BTreeSet<_>>(),
        "every garbage and oversized body parked, with its reason"
    );
    let big = report.undecodable[&prefix(odd.last().unwrap())].as_str();
    assert!(big.contains("bytes is over the limit"), "{big}");
    // Duplicates only from batches in flight at a kill (or messages the emulator's
    // queue handed out twice at once, which SQS may do too): each made after a kill
    // that came after its delivery's first request, and within what the killed
    // batches held.
    assert_eq!(
        report.unexplained, 0,
        "duplicates neither a kill, the queue nor a late answer explains"
    );
    let bound = KILLS * PER_BATCH + doubled_messages * WEBHOOKS + report.late;
    assert!(
        report.acc.duplicates <= bound,
        "{} duplicates, more than {KILLS} kills x {PER_BATCH} deliveries of a batch \
         (+ {WEBHOOKS} for each of {doubled_messages} messages handed out twice)",
        report.acc.duplicates
    );
    assert!(
        writes.load(Ordering::Relaxed) >= EVENTS as u64,
        "the workers' DynamoDB writes went through the slowing proxy"
    );
    let parked_twice = report.dead_letters - report.dead.len() + report.undecodable_letters
        - report.undecodable.len();
    assert!(
        parked_twice <= KILLS * BATCH_SIZE + doubled_messages,
        "letters parked twice only from batches in flight at a kill: {parked_twice}"
    );
}
