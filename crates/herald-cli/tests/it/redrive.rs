//! The DLQ re-driver against the emulator: a mix of dead letters (failed deliveries of
//! two apps, undecodable messages with whole and cut bodies, a raw queue message SQS
//! could have moved itself, and garbage) is put on a stack's DLQ; dry runs move
//! nothing, filtered runs (library and `herald redrive`) move exactly what
//! matches as fresh first attempts, and an unfiltered run moves the rest except the
//! body that was cut, which stays on the DLQ.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::{Context, Result};
use aws_sdk_sqs::types::MessageAttributeValue;
use herald_core::message::DEAD_LETTER_BODY_CAP;
use herald_core::testing::{event, parked};
use herald_core::{DeadLetter, Event, QueueMessage};
use herald_redriver::{parse_age, Filter, Kind, Outcome, RedriveOptions, RedriveReport, Redriver};
use herald_testing::{aws, drain, queue_depth, scratch_dir, Herald, Stack};

use crate::HERALD;

fn failed(app: &str, sub: &str) -> (Event, DeadLetter) {
    let event = event(app, "update");
    let letter = parked(event.clone(), sub, 503, None);
    (event, letter)
}

fn string_attribute(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .unwrap()
}

fn attribute(m: &aws_sdk_sqs::types::Message, name: &str) -> Option<String> {
    m.message_attributes()?
        .get(name)?
        .string_value()
        .map(str::to_owned)
}

/// Sends one message to the DLQ; returns its message id.
async fn park(
    sqs: &aws_sdk_sqs::Client,
    dlq: &str,
    body: &str,
    attributes: &[(&str, &str)],
) -> Result<String> {
    let mut send = sqs.send_message().queue_url(dlq).message_body(body);
    for (k, v) in attributes {
        send = send.message_attributes(*k, string_attribute(v));
    }
    let out = send.send().await.context("SendMessage to the DLQ")?;
    out.message_id.context("a message id")
}

fn accounting(step: &str, r: &RedriveReport) {
    println!(
        "{step}: examined {}, matched {}, moved {}, unmovable {}, send failed {}, delete failed {}, dry run {}",
        r.examined,
        r.matched,
        r.moved,
        r.skipped_unmovable.len(),
        r.send_failed.len(),
        r.delete_failed.len(),
        r.dry_run
    );
}

/// Runs `herald redrive` against the stack; returns (exit success, stdout).
async fn cli(stack: &Stack, args: &[&str]) -> Result<(bool, String)> {
    let herald = Herald::new(HERALD, stack, &scratch_dir("redrive-xdg")?);
    let out = herald.run(&[&["redrive"], args].concat()).await;
    if !out.stderr.trim().is_empty() {
        println!("herald redrive {args:?} stderr: {}", out.stderr);
    }
    Ok((out.code == 0, out.stdout))
}

async fn cli_json(stack: &Stack, args: &[&str]) -> Result<serde_json::Value> {
    let mut all = args.to_vec();
    all.push("--json");
    let (ok, stdout) = cli(stack, &all).await?;
    assert!(ok, "herald redrive {args:?} failed: {stdout}");
    serde_json::from_str(&stdout).with_context(|| format!("JSON from herald redrive: {stdout}"))
}

#[tokio::test]
async fn redrive_moves_exactly_what_matches_and_never_loses_a_message() -> Result<()> {
    let stack = Stack::deploy("redrive")?;
    let sqs = aws_sdk_sqs::Client::new(&aws().await);
    let (dlq, events) = (stack.dlq().to_owned(), stack.events_queue().to_owned());
    let redriver = Redriver::new(sqs.clone(), &dlq, &events);

    // The mix on the DLQ.
    let (event_a1, letter_a1) = failed("a", "sub_a1");
    let (event_a2, letter_a2) = failed("a", "sub_a2");
    let (event_b1, letter_b1) = failed("b", "sub_b1");
    let reason = [("herald_reason", "parked")];
    let mut names: HashMap<String, &str> = HashMap::new();
    names.insert(park(&sqs, &dlq, &letter_a1.encode(), &reason).await?, "a1");
    names.insert(park(&sqs, &dlq, &letter_a2.encode(), &reason).await?, "a2");
    names.insert(park(&sqs, &dlq, &letter_b1.encode(), &reason).await?, "b1");
    let undecodable_body = r#"{"kind":"event","event":"not an event"}"#;
    let undecodable = DeadLetter::undecodable(undecodable_body, "invalid type", Some("m-1".into()));
    names.insert(
        park(&sqs, &dlq, &undecodable.encode(), &reason).await?,
        "undecodable",
    );
    let cut = DeadLetter::undecodable(&"x".repeat(DEAD_LETTER_BODY_CAP + 100), "too big", None);
    let cut_id = park(&sqs, &dlq, &cut.encode(), &reason).await?;
    names.insert(cut_id.clone(), "cut");
    let garbage = "garbage, not a queue message ☃";
    names.insert(park(&sqs, &dlq, garbage, &[]).await?, "garbage");
    // A raw queue message, as SQS moves one after maxReceiveCount receives.
    let event_c = event("c", "invoice.paid");
    let raw_c = QueueMessage::Event {
        event: event_c.clone(),
    }
    .encode();
    names.insert(
        park(
            &sqs,
            &dlq,
            &raw_c,
            &[
                ("app_id", "c"),
                ("event_type", "invoice.paid"),
                ("event_id", event_c.id.as_str()),
                ("trace_id", "t-123"),
            ],
        )
        .await?,
        "raw",
    );
    let total = names.len() as u64;
    assert_eq!(total, 7);
    assert_eq!(queue_depth(&sqs, &dlq).await?, total);

    // 1. An unfiltered dry run reports everything and moves nothing.
    let dry = redriver
        .run(&RedriveOptions {
            dry_run: true,
            ..RedriveOptions::default()
        })
        .await?;
    accounting("dry run, unfiltered", &dry);
    assert!(dry.dry_run);
    assert_eq!((dry.examined, dry.matched, dry.moved), (7, 7, 0));
    assert_eq!(dry.items.len(), 7);
    assert_eq!(
        dry.skipped_unmovable
            .iter()
            .map(|(id, _)| id.as_str())
            .collect::<Vec<_>>(),
        [cut_id.as_str()]
    );
    let outcomes: BTreeMap<&str, Outcome> = dry
        .items
        .iter()
        .map(|i| (names[&i.message_id], i.outcome))
        .collect();
    for (name, outcome) in &outcomes {
        let want = if *name == "cut" {
            Outcome::Unmovable
        } else {
            Outcome::WouldMove
        };
        assert_eq!(*outcome, want, "{name}");
    }
    let kinds: BTreeMap<&str, Kind> = dry
        .items
        .iter()
        .map(|i| (names[&i.message_id], i.kind))
        .collect();
    assert_eq!(kinds["a1"], Kind::Failed);
    assert_eq!(kinds["undecodable"], Kind::Undecodable);
    assert_eq!(kinds["cut"], Kind::Undecodable);
    assert_eq!(kinds["garbage"], Kind::Unrecognized);
    assert_eq!(kinds["raw"], Kind::QueueMessage);
    let a1 = dry
        .items
        .iter()
        .find(|i| names[&i.message_id] == "a1")
        .unwrap();
    assert_eq!(a1.app_id.as_deref(), Some("a"));
    assert_eq!(a1.subscription_id.as_deref(), Some("sub_a1"));
    assert_eq!(a1.event_type.as_deref(), Some("update"));
    assert_eq!(a1.reason.as_deref(), Some("all 8 attempts failed"));
    assert_eq!(
        queue_depth(&sqs, &dlq).await?,
        total,
        "a dry run moves nothing"
    );
    assert_eq!(
        queue_depth(&sqs, &events).await?,
        0,
        "a dry run sends nothing"
    );

    // Dry runs through the binary: filters by app and by age. Each run sees all seven
    // messages, so the previous run made what it held visible again at once.
    let by_app = cli_json(&stack, &["--dry-run", "--app", "a"]).await?;
    println!("dry run --app a (binary): {by_app}");
    assert_eq!(by_app["examined"], 7);
    assert_eq!(by_app["matched"], 2);
    assert_eq!(by_app["moved"], 0);
    let subs: BTreeSet<&str> = by_app["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["subscription_id"].as_str().unwrap())
        .collect();
    assert_eq!(subs, BTreeSet::from(["sub_a1", "sub_a2"]));
    let (ok, text) = cli(&stack, &["--dry-run", "--app", "a"]).await?;
    println!("{text}");
    assert!(ok);
    assert!(
        text.contains("examined 7, matched 2: would move 2, unmovable 0"),
        "{text}"
    );
    assert_eq!(text.matches("would move  ").count(), 2, "{text}");
    assert_eq!(
        cli_json(&stack, &["--dry-run", "--older-than", "1h"]).await?["matched"],
        0,
        "everything was parked just now"
    );
    let recent = redriver
        .run(&RedriveOptions {
            dry_run: true,
            filter: Filter {
                newer_than: Some(parse_age("1h")?),
                ..Filter::default()
            },
            ..RedriveOptions::default()
        })
        .await?;
    accounting("dry run, newer than 1h", &recent);
    assert_eq!((recent.examined, recent.matched), (7, 7));
    let capped = cli_json(&stack, &["--dry-run", "--max", "3"]).await?;
    assert_eq!(capped["matched"], 3, "--max stops after 3 matches");
    assert_eq!(capped["items"].as_array().unwrap().len(), 3);
    // Bounded by messages looked at: a filter nothing matches stops after 2 (the
    // console's bound), and releases them.
    let bounded = redriver
        .run(&RedriveOptions {
            dry_run: true,
            max_examined: Some(2),
            filter: Filter {
                app_id: Some("nobody".into()),
                ..Filter::default()
            },
            ..RedriveOptions::default()
        })
        .await?;
    assert_eq!((bounded.examined, bounded.matched), (2, 0));
    assert_eq!(queue_depth(&sqs, &dlq).await?, total);
    assert_eq!(queue_depth(&sqs, &events).await?, 0);

    // 2. App "a": exactly its two failed deliveries move, as fresh first attempts.
    let run_a = redriver
        .run(&RedriveOptions {
            filter: Filter {
                app_id: Some("a".into()),
                ..Filter::default()
            },
            ..RedriveOptions::default()
        })
        .await?;
    accounting("app a", &run_a);
    assert_eq!((run_a.examined, run_a.matched, run_a.moved), (7, 2, 2));
    assert!(run_a.is_complete() && run_a.skipped_unmovable.is_empty());
    assert_eq!(queue_depth(&sqs, &dlq).await?, total - 2);
    let moved = drain(&sqs, &events).await?;
    assert_eq!(moved.len(), 2);
    let mut seen_subs = BTreeSet::new();
    for m in &moved {
        let QueueMessage::Delivery { delivery } = QueueMessage::decode(m.body().unwrap())? else {
            panic!("a delivery message: {:?}", m.body());
        };
        assert_eq!(delivery.attempt, 1);
        assert_eq!(delivery.first_attempt_at, delivery.not_before);
        assert_eq!(
            delivery.last_result.as_deref(),
            Some("re-driven from the DLQ after: all 8 attempts failed")
        );
        let want = if delivery.subscription_id.as_str() == "sub_a1" {
            &event_a1
        } else {
            &event_a2
        };
        assert_eq!(&delivery.event, want);
        assert_eq!(attribute(m, "app_id").as_deref(), Some("a"));
        assert_eq!(attribute(m, "event_type").as_deref(), Some("update"));
        assert_eq!(attribute(m, "event_id").as_deref(), Some(want.id.as_str()));
        assert_eq!(
            attribute(m, "subscription_id").as_deref(),
            Some(delivery.subscription_id.as_str())
        );
        assert_eq!(attribute(m, "herald_reason"), None);
        seen_subs.insert(delivery.subscription_id.to_string());
    }
    assert_eq!(
        seen_subs,
        BTreeSet::from(["sub_a1".to_owned(), "sub_a2".to_owned()])
    );

    // 3. The binary, by subscription: only sub_b1's delivery moves.
    let by_sub = cli_json(&stack, &["--subscription", "sub_b1"]).await?;
    println!("--subscription sub_b1 (binary): {by_sub}");
    assert_eq!(by_sub["dry_run"], false);
    assert_eq!(by_sub["examined"], 5);
    assert_eq!(by_sub["matched"], 1);
    assert_eq!(by_sub["moved"], 1);
    assert_eq!(queue_depth(&sqs, &dlq).await?, total - 3);
    let moved = drain(&sqs, &events).await?;
    assert_eq!(moved.len(), 1);
    let QueueMessage::Delivery { delivery } = QueueMessage::decode(moved[0].body().unwrap())?
    else {
        panic!("a delivery message");
    };
    assert_eq!(delivery.subscription_id.as_str(), "sub_b1");
    assert_eq!(delivery.event, event_b1);
    assert_eq!(delivery.attempt, 1);

    // A target that refuses every send: nothing is deleted, the failures are reported,
    // and the binary exits 1.
    let missing = format!("{events}-missing");
    let refused = Redriver::new(sqs.clone(), &dlq, &missing)
        .run(&RedriveOptions::default())
        .await?;
    accounting("target missing", &refused);
    assert_eq!(
        (refused.examined, refused.matched, refused.moved),
        (4, 4, 0)
    );
    assert_eq!(refused.send_failed.len(), 3);
    assert!(!refused.is_complete());
    assert_eq!(queue_depth(&sqs, &dlq).await?, total - 3);
    let (ok, text) = cli(&stack, &["--queue-url", &missing]).await?;
    print!("{text}");
    assert!(!ok, "a run whose sends failed exits 1");
    assert!(text.contains("send failed 3"), "{text}");
    assert_eq!(queue_depth(&sqs, &dlq).await?, total - 3);

    // 4. Unfiltered: the rest moves as it was, except the cut body, which stays.
    let rest = redriver.run(&RedriveOptions::default()).await?;
    accounting("unfiltered", &rest);
    assert_eq!((rest.examined, rest.matched, rest.moved), (4, 4, 3));
    assert_eq!(rest.skipped_unmovable.len(), 1);
    assert_eq!(rest.skipped_unmovable[0].0, cut_id);
    assert!(rest.is_complete());
    let moved = drain(&sqs, &events).await?;
    let bodies: BTreeMap<&str, &aws_sdk_sqs::types::Message> =
        moved.iter().map(|m| (m.body().unwrap(), m)).collect();
    assert_eq!(bodies.len(), 3);
    let undecodable_back = bodies[undecodable_body];
    assert_eq!(attribute(undecodable_back, "herald_reason"), None);
    assert!(bodies.contains_key(garbage));
    let raw_back = bodies[raw_c.as_str()];
    assert_eq!(attribute(raw_back, "app_id").as_deref(), Some("c"));
    assert_eq!(
        attribute(raw_back, "event_type").as_deref(),
        Some("invoice.paid")
    );
    assert_eq!(
        attribute(raw_back, "event_id").as_deref(),
        Some(event_c.id.as_str())
    );
    assert_eq!(
        attribute(raw_back, "trace_id").as_deref(),
        Some("t-123"),
        "a raw message keeps its attributes"
    );

    let left = drain(&sqs, &dlq).await?;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].message_id(), Some(cut_id.as_str()));
    let Ok(DeadLetter::Undecodable { body_truncated, .. }) =
        DeadLetter::decode(left[0].body().unwrap())
    else {
        panic!("the cut undecodable letter");
    };
    assert!(body_truncated);

    // Every message is accounted for: moved by one of the three runs, or left.
    let moved_total = run_a.moved as u64 + by_sub["moved"].as_u64().unwrap() + rest.moved as u64;
    println!(
        "accounting: {total} parked = {} (app a) + {} (sub_b1) + {} (unfiltered) moved + {} left on the DLQ",
        run_a.moved,
        by_sub["moved"],
        rest.moved,
        left.len()
    );
    assert_eq!(moved_total + left.len() as u64, total);
    Ok(())
}
