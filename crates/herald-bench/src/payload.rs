//! The bench's events: an `order.updated`-like object (hex ids, a customer, amounts,
//! ISO timestamps, an address, line items, a free-text note from a word list) whose
//! delivered envelope is exactly [`PAYLOAD_BYTES`]. The data is a function of the
//! seed, so runs are repeatable, and differs from seed to seed, so storage that
//! compresses events sees what it would see in production, not one repeated byte.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use herald_core::{AppId, Envelope, Event, EventType, ObjectType};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{json, Value};

/// Size of every delivered body (the signed JSON envelope).
pub const PAYLOAD_BYTES: usize = 1024;

const FIRST: [&str; 16] = [
    "Amara", "Bjorn", "Chen", "Dalia", "Emeka", "Freya", "Goran", "Hana", "Ines", "Jonas", "Keiko",
    "Luca", "Maya", "Nikhil", "Olga", "Pablo",
];
const LAST: [&str; 16] = [
    "Okafor",
    "Lindqvist",
    "Wang",
    "Haddad",
    "Nwosu",
    "Jensen",
    "Petrovic",
    "Sato",
    "Moreira",
    "Becker",
    "Tanaka",
    "Rossi",
    "Cohen",
    "Iyer",
    "Volkova",
    "Garcia",
];
const STREETS: [&str; 8] = [
    "Harbour Road",
    "Linden Allee",
    "Rue des Tanneurs",
    "Maple Avenue",
    "Via Roma",
    "Calle Mayor",
    "Station Street",
    "Kings Parade",
];
const CITIES: [(&str, &str); 8] = [
    ("Dublin", "IE"),
    ("Berlin", "DE"),
    ("Lyon", "FR"),
    ("Toronto", "CA"),
    ("Bologna", "IT"),
    ("Sevilla", "ES"),
    ("Leeds", "GB"),
    ("Osaka", "JP"),
];
const PRODUCTS: [&str; 12] = [
    "Ceramic mug",
    "Linen shirt",
    "Trail shoes",
    "Desk lamp",
    "Notebook A5",
    "Wool scarf",
    "Coffee beans 1kg",
    "USB-C cable",
    "Water bottle",
    "Backpack 20L",
    "Tea sampler",
    "Phone case",
];
const STATUSES: [&str; 5] = ["paid", "packed", "shipped", "delivered", "refunded"];
const WORDS: [&str; 48] = [
    "please",
    "leave",
    "the",
    "parcel",
    "with",
    "neighbour",
    "at",
    "number",
    "if",
    "nobody",
    "answers",
    "door",
    "gift",
    "wrap",
    "requested",
    "deliver",
    "after",
    "six",
    "call",
    "on",
    "arrival",
    "fragile",
    "items",
    "inside",
    "customer",
    "asked",
    "for",
    "invoice",
    "by",
    "email",
    "second",
    "floor",
    "ring",
    "twice",
    "back",
    "entrance",
    "weekday",
    "mornings",
    "only",
    "no",
    "plastic",
    "packaging",
    "order",
    "split",
    "across",
    "two",
    "shipments",
    "thanks",
];

fn hex(rng: &mut StdRng, digits: usize) -> String {
    (0..digits)
        .map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap_or('0'))
        .collect()
}

fn pick<'a>(rng: &mut StdRng, from: &[&'a str]) -> &'a str {
    from[rng.gen_range(0..from.len())]
}

/// An ISO 8601 time in 2026, seconds resolution.
fn timestamp(rng: &mut StdRng) -> String {
    let base = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .expect("a valid constant")
        .with_timezone(&chrono::Utc);
    let at = base + chrono::Duration::seconds(rng.gen_range(0..300 * 86_400));
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn cents(rng: &mut StdRng, max: u64) -> f64 {
    rng.gen_range(100..max) as f64 / 100.0
}

/// The order object without its note.
fn order(rng: &mut StdRng) -> Value {
    let (first, last) = (pick(rng, &FIRST), pick(rng, &LAST));
    let (city, country) = CITIES[rng.gen_range(0..CITIES.len())];
    let items: Vec<Value> = (0..rng.gen_range(2..=3))
        .map(|_| {
            json!({
                "sku": format!("SKU-{}", hex(rng, 8).to_uppercase()),
                "name": pick(rng, &PRODUCTS),
                "qty": rng.gen_range(1..5),
                "unit_price": cents(rng, 12_000),
            })
        })
        .collect();
    let subtotal: f64 = items
        .iter()
        .map(|i| i["qty"].as_f64().unwrap_or(0.0) * i["unit_price"].as_f64().unwrap_or(0.0))
        .sum();
    let shipping = cents(rng, 1_500);
    json!({
        "id": format!("ord_{}", hex(rng, 24)),
        "status": pick(rng, &STATUSES),
        "created_at": timestamp(rng),
        "updated_at": timestamp(rng),
        "customer": {
            "id": format!("cus_{}", hex(rng, 16)),
            "name": format!("{first} {last}"),
            "email": format!("{}.{}@example.com", first.to_lowercase(), last.to_lowercase()),
        },
        "shipping_address": {
            "line1": format!("{} {}", rng.gen_range(1..250), pick(rng, &STREETS)),
            "city": city,
            "postal_code": format!("{:05}", rng.gen_range(1000..99_999)),
            "country": country,
        },
        "items": items,
        "currency": "EUR",
        "amount_subtotal": (subtotal * 100.0).round() / 100.0,
        "amount_shipping": shipping,
        "amount_total": ((subtotal + shipping) * 100.0).round() / 100.0,
        "note": "",
    })
}

/// Words from the list, at least `len` bytes, cut to exactly `len`.
fn note(rng: &mut StdRng, len: usize) -> String {
    let mut text = String::with_capacity(len + 16);
    while text.len() < len {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(pick(rng, &WORDS));
    }
    text.truncate(len);
    text
}

/// An `update` event on an `order`, its data a function of `seed`, whose delivered
/// envelope is exactly [`PAYLOAD_BYTES`].
pub fn event_1k(app: &AppId, seed: u64) -> Result<Event> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut data = order(&mut rng);
    let mut event = Event::new(
        app.clone(),
        EventType::parse("update")?,
        ObjectType::parse("order")?,
        data.clone(),
    );
    let base = Envelope::of(&event).to_body().len();
    let room = PAYLOAD_BYTES
        .checked_sub(base)
        .context("the envelope without its note exceeds the payload size")?;
    data["note"] = Value::String(note(&mut rng, room));
    event.data = data.into();
    let len = Envelope::of(&event).to_body().len();
    if len != PAYLOAD_BYTES {
        bail!("built a {len}-byte payload, wanted {PAYLOAD_BYTES}");
    }
    Ok(event)
}

/// How well the bench's events compress: one envelope alone, and 100 in one JSON
/// array (as a batch's history item would hold them).
#[derive(Debug, Clone, Serialize)]
pub struct Compression {
    pub one_bytes: usize,
    pub hundred_bytes: usize,
    /// deflate (zlib level 6, python3's `zlib`), compressed bytes.
    pub one_deflate: Option<usize>,
    pub hundred_deflate: Option<usize>,
    /// zstd level 3 (the `zstd` command, when installed), compressed bytes.
    pub one_zstd: Option<usize>,
    pub hundred_zstd: Option<usize>,
}

/// Compressed sizes of the bench's events, with the tools at hand (python3's zlib, the
/// `zstd` command); files go to `dir`. `None` if the events cannot be written.
pub fn compression(dir: &Path) -> Option<Compression> {
    let app = AppId::parse("bench").ok()?;
    let bodies: Vec<String> = (0..100)
        .map(|i| {
            event_1k(&app, 9_000_000 + i)
                .map(|e| String::from_utf8_lossy(&Envelope::of(&e).to_body()).into_owned())
        })
        .collect::<Result<_>>()
        .ok()?;
    let one = dir.join("payload-one.json");
    let hundred = dir.join("payload-hundred.json");
    std::fs::write(&one, &bodies[0]).ok()?;
    std::fs::write(&hundred, format!("[{}]", bodies.join(","))).ok()?;
    let deflate = |file: &Path| -> Option<usize> {
        let out = Command::new("python3")
            .args([
                "-c",
                "import sys, zlib; print(len(zlib.compress(open(sys.argv[1], 'rb').read(), 6)))",
            ])
            .arg(file)
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    let zstd = |file: &Path| -> Option<usize> {
        let out = Command::new("zstd")
            .args(["-q", "-3", "-c"])
            .arg(file)
            .output()
            .ok()?;
        out.status.success().then_some(out.stdout.len())
    };
    Some(Compression {
        one_bytes: bodies[0].len(),
        hundred_bytes: std::fs::metadata(&hundred).ok()?.len() as usize,
        one_deflate: deflate(&one),
        hundred_deflate: deflate(&hundred),
        one_zstd: zstd(&one),
        hundred_zstd: zstd(&hundred),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> AppId {
        AppId::parse("bench").unwrap()
    }

    #[test]
    fn payloads_are_exactly_one_kib() {
        for seed in 0..200 {
            let e = event_1k(&app(), seed).unwrap();
            assert_eq!(
                Envelope::of(&e).to_body().len(),
                PAYLOAD_BYTES,
                "seed {seed}"
            );
        }
    }

    #[test]
    fn the_data_follows_the_seed_and_differs_between_seeds() {
        let (a, b, c) = (
            event_1k(&app(), 7).unwrap(),
            event_1k(&app(), 7).unwrap(),
            event_1k(&app(), 8).unwrap(),
        );
        assert_eq!(a.data, b.data);
        assert_ne!(a.data, c.data);
        assert_ne!(a.id, b.id, "each event is its own");
    }

    #[test]
    fn the_note_is_words_not_one_repeated_byte() {
        let data = event_1k(&app(), 1).unwrap().data.to_value();
        let note = data["note"].as_str().unwrap();
        assert!(note.len() > 50, "{note}");
        let distinct: std::collections::BTreeSet<char> = note.chars().collect();
        assert!(distinct.len() > 10, "{note}");
        assert!(data["items"].as_array().unwrap().len() >= 2);
    }
}
