use chrono::{DateTime, TimeDelta, Utc};
use herald_core::{Attempt, AttemptOutcome, Envelope, Event, EventType, ObjectType};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

use super::*;
use crate::history::items::{unpack, write_units, EXCERPT_BYTES};
use crate::history::keys::record_partition;

fn app(name: &str) -> AppId {
    AppId::parse(name).unwrap()
}

fn event_at(app_name: &str, data: serde_json::Value) -> Event {
    Event::new(
        app(app_name),
        EventType::parse("update").unwrap(),
        ObjectType::parse("user").unwrap(),
        data,
    )
}

fn attempt(e: &Event, sub: &str, outcome: AttemptOutcome, n: u32, at: DateTime<Utc>) -> Attempt {
    let sub = SubscriptionId::new(sub);
    let base = Attempt::not_sent(e, &sub, "endpoint_disabled", Some("410 Gone"));
    match outcome {
        AttemptOutcome::NotSent => Attempt {
            attempted_at: at,
            ..base
        },
        AttemptOutcome::Succeeded => Attempt {
            attempt: n,
            attempted_at: at,
            outcome,
            status_code: Some(200),
            latency_ms: 87,
            error_kind: None,
            error: None,
            response_body: "{\"ok\":true}".into(),
            ..base
        },
        AttemptOutcome::Failed => Attempt {
            attempt: n,
            attempted_at: at,
            outcome,
            status_code: Some(503),
            latency_ms: 1_204,
            error_kind: Some("http_status".into()),
            error: Some("HTTP 503 Service Unavailable".into()),
            response_body: "<html><body>upstream unavailable, retry later</body></html>".repeat(40),
            next_attempt_at: Some(at + TimeDelta::seconds(30)),
            ..base
        },
    }
}

fn batch() -> BatchHistory {
    BatchHistory {
        shard: 5,
        ..BatchHistory::start()
    }
}

fn groups(b: &BatchHistory) -> Vec<(GroupItem, Vec<GroupEntry>)> {
    group_items(b, 99)
        .unwrap()
        .0
        .into_iter()
        .map(|g| {
            let entries = unpack(ItemKind::EventGroup, &g.z).unwrap();
            (g, entries)
        })
        .collect()
}

#[test]
fn groups_hold_an_app_and_minute_each_with_the_first_fan_outs_targets() {
    let mut b = batch();
    let (e1, e2, other) = (
        event_at("shop", serde_json::json!({"n": 1})),
        event_at("shop", serde_json::json!({"n": 2})),
        event_at("other", serde_json::json!({"n": 3})),
    );
    // An event of the previous minute (its id carries its time).
    let mut old = event_at("shop", serde_json::json!({"n": 4}));
    let earlier = Utc::now() - TimeDelta::minutes(2);
    old.id = EventId::parse(&format!(
        "evt_{}",
        uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            earlier.timestamp() as u64,
            0
        ))
        .simple()
    ))
    .unwrap();
    old.timestamp = earlier;
    for e in [&e2, &e1, &other, &old, &e1] {
        b.fanned_out((*e).clone());
    }
    let now = Utc::now();
    b.attempted(
        attempt(&e1, "sub_a", AttemptOutcome::Succeeded, 1, now),
        true,
    );
    b.attempted(attempt(&e1, "sub_b", AttemptOutcome::Failed, 1, now), true);
    b.attempted(attempt(&e1, "sub_c", AttemptOutcome::NotSent, 0, now), true);
    // A retry of e2 in the same batch is not part of e2's first fan-out.
    b.attempted(
        attempt(&e2, "sub_a", AttemptOutcome::Succeeded, 2, now),
        false,
    );
    b.attempted(
        attempt(&other, "sub_x", AttemptOutcome::Succeeded, 1, now),
        true,
    );

    let g = groups(&b);
    let by_app = |name: &str| -> Vec<&(GroupItem, Vec<GroupEntry>)> {
        g.iter()
            .filter(|(item, _)| item.key.pk.starts_with(&format!("E#{name}#")))
            .collect()
    };
    let shop = by_app("shop");
    assert_eq!(
        shop.len(),
        if event_minute(&e1) == event_minute(&e2) {
            2
        } else {
            3
        }
    );
    let (item, entries) = shop
        .iter()
        .find(|(_, entries)| entries.iter().any(|e| e.event.id == e1.id))
        .unwrap();
    let ids: Vec<_> = entries.iter().map(|e| e.event.id.clone()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "sorted by id, the duplicate dropped");
    assert_eq!(item.n, entries.len());
    assert_eq!(
        (item.first.as_str(), item.last.as_str()),
        (ids[0].as_str(), ids[ids.len() - 1].as_str())
    );
    assert_eq!(
        item.key.pk,
        format!("E#shop#{}#5", event_minute(&e1).format("%Y-%m-%d"))
    );
    assert_eq!(item.key.sk, format!("{}#{}", ids[0], b.id));
    assert_eq!(
        (item.at, item.b.as_str(), item.ws, item.expires_at),
        (b.at, b.id.as_str(), 5, 99)
    );
    let entry = entries.iter().find(|e| e.event.id == e1.id).unwrap();
    assert_eq!(entry.event, e1);
    assert_eq!(
        entry.to,
        [SubscriptionId::new("sub_a"), SubscriptionId::new("sub_b")]
    );
    assert_eq!(entry.not_sent, [SubscriptionId::new("sub_c")]);
    if let Some(entry) = entries.iter().find(|e| e.event.id == e2.id) {
        assert!(
            entry.to.is_empty() && entry.not_sent.is_empty(),
            "a retry is no target"
        );
    }
    let (old_group, old_entries) = shop
        .iter()
        .find(|(_, entries)| entries.iter().any(|e| e.event.id == old.id))
        .unwrap();
    assert_eq!(old_entries.len(), 1, "another minute, another group");
    assert_eq!(old_group.first, old.id.as_str());
    assert_eq!(by_app("other").len(), 1);
}

#[test]
fn groups_split_to_stay_under_the_size_limit() {
    let mut b = batch();
    let blob = "ab".repeat(30_000);
    for i in 0..12 {
        b.fanned_out(event_at("shop", serde_json::json!({"i": i, "blob": blob})));
    }
    let g = groups(&b);
    assert!(g.len() >= 3, "12 events of 60 KB: {} groups", g.len());
    let mut seen = Vec::new();
    for (item, entries) in &g {
        let raw = serde_json::to_vec(entries).unwrap();
        assert!(raw.len() <= MAX_BODY_JSON, "{}", raw.len());
        assert_eq!(item.first, entries[0].event.id.as_str());
        seen.extend(entries.iter().map(|e| e.event.id.clone()));
    }
    assert_eq!(seen.len(), 12);
    seen.dedup();
    assert_eq!(seen.len(), 12, "each event in exactly one group");
}

#[test]
fn records_are_per_webhook_newest_first_and_trails_cover_what_groups_do_not() {
    let mut b = batch();
    let (e1, e2, e3) = (
        event_at("shop", serde_json::json!({})),
        event_at("shop", serde_json::json!({})),
        event_at("shop", serde_json::json!({})),
    );
    b.fanned_out(e1.clone());
    b.fanned_out(e2.clone());
    let t = Utc::now();
    let ms = TimeDelta::milliseconds;
    b.attempted(attempt(&e1, "sub_a", AttemptOutcome::Succeeded, 1, t), true);
    b.attempted(
        attempt(&e2, "sub_a", AttemptOutcome::Failed, 1, t + ms(5)),
        true,
    );
    b.attempted(
        attempt(&e2, "sub_b", AttemptOutcome::NotSent, 0, t + ms(1)),
        true,
    );
    // A retry and a re-send (e3 was not fanned out in this batch), twice for the same record.
    b.attempted(
        attempt(&e1, "sub_b", AttemptOutcome::Failed, 3, t + ms(2)),
        false,
    );
    b.attempted(
        attempt(&e3, "sub_a", AttemptOutcome::Succeeded, 1, t + ms(3)),
        false,
    );
    b.attempted(
        attempt(&e3, "sub_a", AttemptOutcome::Succeeded, 1, t + ms(4)),
        false,
    );

    let kept = group_items(&b, 99).unwrap().1;
    let (records, trails) = record_items(&b, &kept, 99).unwrap();
    assert_eq!(records.len(), 2);
    let a = &records[0];
    assert_eq!(
        a.key,
        PkSk::record(
            &app("shop"),
            &SubscriptionId::new("sub_a"),
            5,
            b.at,
            &b.id,
            0
        )
    );
    assert_eq!((a.n, a.failed, a.expires_at), (4, 1, 99));
    let entries: Vec<Entry> = unpack(ItemKind::WebhookRecord, &a.z).unwrap();
    let times: Vec<_> = entries.iter().map(|e| e.at).collect();
    assert_eq!(times, [t + ms(5), t + ms(4), t + ms(3), t], "newest first");
    assert!(entries[3].response.is_empty(), "successes keep no body");
    assert!(!entries[0].response.is_empty() && entries[0].response.len() <= EXCERPT_BYTES);
    let b_record = &records[1];
    assert_eq!((b_record.n, b_record.failed), (2, 2));

    let mut pointers: Vec<(String, String)> = trails
        .iter()
        .map(|t| (t.key.pk.clone(), t.key.sk.clone()))
        .collect();
    pointers.sort();
    assert_eq!(
        pointers,
        [
            (format!("T#shop#{}", e1.id), format!("sub_b#0003#{}", b.id)),
            (format!("T#shop#{}", e3.id), format!("sub_a#0001#{}", b.id)),
        ],
        "first fan-outs need no trail; one trail per event and record"
    );
    for t in &trails {
        let to = if t.key.sk.starts_with("sub_a") {
            a
        } else {
            b_record
        };
        assert_eq!(t.r, to.key);
        assert_eq!(t.expires_at, 99);
    }
}

#[test]
fn oversized_records_split_into_parts_and_later_parts_get_trails() {
    let mut b = batch();
    let t = Utc::now();
    let events: Vec<Event> = (0..400)
        .map(|_| event_at("shop", serde_json::json!({})))
        .collect();
    for (i, e) in events.iter().enumerate() {
        b.fanned_out(e.clone());
        let mut a = attempt(
            e,
            "sub_a",
            AttemptOutcome::Failed,
            1,
            t + TimeDelta::milliseconds(i as i64),
        );
        a.response_body = format!("{i:04}{}", "z".repeat(3_000));
        b.attempted(a, true);
    }
    let kept = group_items(&b, 1).unwrap().1;
    let (records, trails) = record_items(&b, &kept, 1).unwrap();
    assert!(
        records.len() >= 2,
        "400 failures of 1 KiB: {} parts",
        records.len()
    );
    let mut keys: Vec<&str> = records.iter().map(|r| r.key.sk.as_str()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), records.len(), "parts have distinct keys");
    assert!(records
        .iter()
        .all(|r| r.key.pk == record_partition(&app("shop"), &SubscriptionId::new("sub_a"), 5)));
    // Listing sorts by key, newest first: the entries keep their order across parts.
    let mut sorted = records.clone();
    sorted.sort_by(|x, y| y.key.sk.cmp(&x.key.sk));
    let all: Vec<Entry> = sorted
        .iter()
        .flat_map(|r| unpack::<Vec<Entry>>(ItemKind::WebhookRecord, &r.z).unwrap())
        .collect();
    assert_eq!(all.len(), 400);
    assert!(all.windows(2).all(|w| w[0].at > w[1].at));
    let part0 = PkSk::record(
        &app("shop"),
        &SubscriptionId::new("sub_a"),
        5,
        b.at,
        &b.id,
        0,
    );
    assert!(records.iter().any(|r| r.key == part0));
    let in_later_parts: usize = records.iter().filter(|r| r.key != part0).map(|r| r.n).sum();
    assert_eq!(
        trails.len(),
        in_later_parts,
        "entries past part 0 are reached by their trail"
    );
    assert!(trails.iter().all(|t| t.r != part0));
    // The app's index entry names the webhook's record with all its parts, and its
    // keys lead to every part.
    let index = index_items(&b, &records, 1);
    assert_eq!(index.len(), 1);
    let i = &index[0];
    assert_eq!(i.key, PkSk::index(&app("shop"), 5, b.at, &b.id));
    assert_eq!((i.n, i.failed, i.w.len()), (400, 400, 1));
    assert_eq!((i.w[0].p, i.w[0].n, i.w[0].f), (records.len(), 400, 400));
    let mut named: Vec<PkSk> = (0..i.w[0].p)
        .map(|p| PkSk::record_of_index(&app("shop"), &i.w[0].s, i.ws, &i.key.sk, p))
        .collect();
    let mut written: Vec<PkSk> = records.iter().map(|r| r.key.clone()).collect();
    named.sort();
    written.sort();
    assert_eq!(named, written);
    for r in &records {
        let raw = serde_json::to_vec(&unpack::<Vec<Entry>>(ItemKind::WebhookRecord, &r.z).unwrap())
            .unwrap();
        assert!(raw.len() <= MAX_BODY_JSON);
    }
}

#[test]
fn json_runs_stay_within_the_limit() {
    let elements: Vec<Vec<u8>> = ["1", "22", "333", "4444444444", "5"]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
    let runs = split_json(&elements, 8);
    let bodies: Vec<String> = runs
        .iter()
        .map(|(_, b)| String::from_utf8(b.clone()).unwrap())
        .collect();
    assert_eq!(bodies, ["[1,22]", "[333]", "[4444444444]", "[5]"]);
    assert_eq!(runs[0].0, 0..2);
    for (range, body) in &runs {
        let v: Vec<u64> = serde_json::from_slice(body).unwrap();
        assert_eq!(v.len(), range.len());
    }
    assert!(split_json(&[], 8).is_empty());
}

/// A `user` update whose delivered body is about 1 KiB, with realistic mixed fields
/// (ids, names, numbers, timestamps, nested objects), different in every event.
fn bench_like_event(rng: &mut StdRng) -> Event {
    let hex = |rng: &mut StdRng, n: usize| -> String {
        (0..n)
            .map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap())
            .collect()
    };
    let names = [
        "Ada", "Grace", "Linus", "Barbara", "Ken", "Margaret", "Dennis", "Frances",
    ];
    let cities = [
        "Lyon", "Oslo", "Austin", "Kyoto", "Porto", "Cork", "Quito", "Perth",
    ];
    let name = names[rng.gen_range(0..names.len())];
    let plan = ["free", "pro", "team", "enterprise"][rng.gen_range(0..4)];
    let country = ["FR", "NO", "US", "JP", "PT", "IE", "EC", "AU"][rng.gen_range(0..8)];
    let street = names[rng.gen_range(0..names.len())];
    let city = cities[rng.gen_range(0..cities.len())];
    let data = serde_json::json!({
        "id": format!("usr_{}", hex(rng, 24)),
        "email": format!("{}.{}@example{}.com", name.to_lowercase(), rng.gen_range(10..9999), rng.gen_range(1..50)),
        "name": format!("{name} {}", hex(rng, 6)),
        "plan": plan,
        "balance_cents": rng.gen_range(0..10_000_000),
        "active": rng.gen_bool(0.8),
        "created_at": format!("2025-{:02}-{:02}T{:02}:{:02}:{:02}Z", rng.gen_range(1..13), rng.gen_range(1..29), rng.gen_range(0..24), rng.gen_range(0..60), rng.gen_range(0..60)),
        "address": {
            "line1": format!("{} {street} Street", rng.gen_range(1..999)),
            "city": city,
            "postal_code": format!("{:05}", rng.gen_range(0..99_999)),
            "country": country,
        },
        "tags": (0..rng.gen_range(1..5)).map(|_| format!("tag-{}", hex(rng, 4))).collect::<Vec<_>>(),
        "preferences": {"newsletter": rng.gen_bool(0.5), "locale": "en-GB", "timezone": "Europe/Paris"},
        "last_login": {"ip": format!("203.0.{}.{}", rng.gen_range(0..255), rng.gen_range(0..255)), "user_agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36", "at": rng.gen_range(1_700_000_000u64..1_800_000_000)},
        "session": hex(rng, 64),
        "notes": "",
    });
    let mut e = event_at("bench", data);
    let pad = 1024usize.saturating_sub(Envelope::of(&e).to_body().len());
    let words = [
        "order",
        "shipped",
        "late",
        "refund",
        "VIP",
        "call back",
        "prefers email",
        "paid",
    ];
    let mut notes = String::new();
    while notes.len() < pad {
        notes.push_str(words[rng.gen_range(0..words.len())]);
        notes.push(' ');
    }
    notes.truncate(pad);
    let mut data = e.data.to_value();
    data["notes"] = serde_json::Value::String(notes);
    e.data = data.into();
    e
}

/// The sizes behind docs/storage.md's arithmetic (run with `--nocapture` to see them):
/// a group of 10 bench-like events, and webhook records of 10 successes and of 10
/// failures, in bytes and write units.
#[test]
fn bench_like_items_are_a_few_write_units() {
    let mut rng = StdRng::seed_from_u64(10);
    let mut b = batch();
    let events: Vec<Event> = (0..10).map(|_| bench_like_event(&mut rng)).collect();
    let t = Utc::now();
    for (i, e) in events.iter().enumerate() {
        assert!((1000..=1024).contains(&Envelope::of(e).to_body().len()));
        b.fanned_out(e.clone());
        let at = t + TimeDelta::milliseconds(i as i64);
        b.attempted(attempt(e, "sub_ok", AttemptOutcome::Succeeded, 1, at), true);
        let mut failed = attempt(e, "sub_down", AttemptOutcome::Failed, 1, at);
        failed.response_body = format!(
            "{{\"error\":\"maintenance\",\"request_id\":\"{}\",\"retry_after\":30}}",
            rng.gen_range(0..u64::MAX)
        );
        b.attempted(failed, true);
        // A failure whose response fills the 1 KiB excerpt: an HTML error page.
        let mut page = attempt(e, "sub_html", AttemptOutcome::Failed, 1, at);
        page.response_body = format!(
            "<!DOCTYPE html><html><head><title>502 Bad Gateway</title><style>body{{font-family:sans-serif;margin:4em}}</style></head><body><h1>502 Bad Gateway</h1><p>The upstream server at 10.{}.{}.{} did not answer in time.</p><p>Request id {:032x}, edge node fra-{}, {}</p>{}</body></html>",
            rng.gen_range(0..255), rng.gen_range(0..255), rng.gen_range(0..255),
            rng.gen::<u128>(), rng.gen_range(1..60), at.to_rfc3339(),
            "<!-- padding -->".repeat(60)
        );
        b.attempted(page, true);
    }
    let expires = b.at.timestamp() + 30 * 86_400;
    let (groups, kept) = group_items(&b, expires).unwrap();
    let (records, trails) = record_items(&b, &kept, expires).unwrap();
    assert_eq!((groups.len(), records.len(), trails.len()), (1, 3, 0));
    let raw_group =
        serde_json::to_vec(&unpack::<Vec<GroupEntry>>(ItemKind::EventGroup, &groups[0].z).unwrap())
            .unwrap();
    let group = to_item(ItemKind::EventGroup, &groups[0]).unwrap();
    let describe = |what: &str, item: &Item, raw: usize| {
        eprintln!(
            "{what}: body {raw} B JSON -> {} B zstd; item {} B = {} WRU",
            item["z"].as_b().unwrap().as_ref().len(),
            item_size(item),
            write_units(item)
        );
    };
    describe("group of 10 events", &group, raw_group.len());
    for r in &records {
        let raw = serde_json::to_vec(&unpack::<Vec<Entry>>(ItemKind::WebhookRecord, &r.z).unwrap())
            .unwrap();
        let item = to_item(ItemKind::WebhookRecord, r).unwrap();
        describe(
            &format!("record of 10 to {}, {} failed", r.key.pk, r.failed),
            &item,
            raw.len(),
        );
        assert!(
            write_units(&item) <= 2,
            "a record of 10 entries: {} B",
            item_size(&item)
        );
    }
    assert!(raw_group.len() > 10 * 1000);
    assert!(
        write_units(&group) <= 8,
        "a group of 10 1-KiB events: {} B",
        item_size(&group)
    );

    // A batch of one event delivered to one webhook (a steady trickle, fan-out 1).
    let mut one = batch();
    one.fanned_out(events[0].clone());
    one.attempted(
        attempt(&events[0], "sub_ok", AttemptOutcome::Succeeded, 1, t),
        true,
    );
    let items = batch_items(&one, expires).unwrap();
    for item in &items {
        eprintln!(
            "batch of one: {} item {} B = {} WRU",
            &item["pk"].as_s().unwrap()[..1],
            item_size(item),
            write_units(item)
        );
    }
    assert_eq!(
        items.iter().map(write_units).sum::<usize>(),
        3,
        "a group, a record and the app's index entry"
    );
}
