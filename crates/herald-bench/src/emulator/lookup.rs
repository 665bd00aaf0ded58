//! Section 5b: the cost of looking up an app's subscriptions as the number of them
//! grows, beside a bare one-item DynamoDB Query.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use herald_core::{
    AppId, Event, EventFilter, EventType, ObjectType, ObjectTypeFilter, Subscription,
};
use herald_store::SubscriptionStore;
use serde::Serialize;

use super::shared::Bench;
use super::EmulatorSettings;
use crate::stats::Summary;

#[derive(Debug, Clone, Serialize)]
pub struct LookupRow {
    pub subscriptions: usize,
    pub matched: usize,
    pub reps: usize,
    /// `SubscriptionStore::for_app` plus the filter, ms.
    pub lookup_ms: Summary,
    /// The bare one-item Query, timed alternately with the lookups of this row, ms.
    pub baseline_ms: Summary,
    /// Decoding the returned items into subscriptions, in process, µs.
    pub decode_us: f64,
    /// The in-memory filter alone, µs.
    pub filter_us: f64,
    /// What one lookup costs on DynamoDB (from the proxied lookup).
    pub read_units: f64,
    pub item_bytes: u64,
    pub calls: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Lookup {
    pub rows: Vec<LookupRow>,
    /// A bare DynamoDB Query returning one item, ms.
    pub baseline_ms: Summary,
    pub write_s: f64,
}

async fn write_subscriptions(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
    subs: Vec<Subscription>,
) -> Result<()> {
    let mut requests = Vec::with_capacity(subs.len());
    for sub in &subs {
        let item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(sub).context("a subscription as an item")?;
        requests.push(
            WriteRequest::builder()
                .put_request(PutRequest::builder().set_item(Some(item)).build()?)
                .build(),
        );
    }
    let chunks: Vec<Vec<WriteRequest>> = requests.chunks(25).map(<[_]>::to_vec).collect();
    use futures::stream::{self, StreamExt, TryStreamExt};
    stream::iter(chunks)
        .map(|mut chunk| async move {
            for _ in 0..10 {
                let out = dynamo
                    .batch_write_item()
                    .request_items(table, chunk.clone())
                    .send()
                    .await
                    .context("BatchWriteItem of subscriptions")?;
                chunk = out
                    .unprocessed_items
                    .and_then(|mut m| m.remove(table))
                    .unwrap_or_default();
                if chunk.is_empty() {
                    return Ok::<(), anyhow::Error>(());
                }
            }
            bail!("subscriptions left unprocessed after 10 rounds")
        })
        .buffer_unordered(4)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Looks up apps of each size of `settings.lookup_sizes`, alternating with a bare
/// one-item Query; counts one lookup's reads through the proxy and times decoding and
/// filtering in process.
pub(super) async fn lookup(
    bench: &Bench,
    settings: &EmulatorSettings,
    quick: bool,
) -> Result<Lookup> {
    let dynamo = &bench.dynamo;
    let proxied = &aws_sdk_dynamodb::Client::new(&bench.proxied);
    let proxy = &bench.proxy;
    let table = bench.stack.subscriptions_table();
    let store = SubscriptionStore::new(dynamo.clone(), table);
    let update = EventFilter::parse(&["update"])?;
    let delete = EventFilter::parse(&["delete"])?;
    let write_started = Instant::now();
    for &n in &settings.lookup_sizes {
        let app = AppId::parse(&format!("lookup-{n}"))?;
        let subs = (0..n)
            .map(|i| {
                Subscription::new(
                    app.clone(),
                    format!("https://hooks.example.com/{i}"),
                    if i % 2 == 0 {
                        update.clone()
                    } else {
                        delete.clone()
                    },
                    ObjectTypeFilter::All,
                )
            })
            .collect();
        write_subscriptions(dynamo, table, subs).await?;
        eprintln!("[bench] lookup: wrote {n} subscriptions");
    }
    // The baseline's app: one subscription.
    let one = AppId::parse("bench-lookup-baseline")?;
    write_subscriptions(
        dynamo,
        table,
        vec![Subscription::new(
            one.clone(),
            "https://hooks.example.com/0",
            update,
            ObjectTypeFilter::All,
        )],
    )
    .await?;
    let write_s = write_started.elapsed().as_secs_f64();
    let bare_query = || async {
        let t = Instant::now();
        let out = dynamo
            .query()
            .table_name(table)
            .key_condition_expression("app_id = :app")
            .expression_attribute_values(":app", AttributeValue::S(one.to_string()))
            .send()
            .await
            .context("the bare one-item Query")?;
        if out.count() != 1 {
            bail!("the bare Query found {} items, not 1", out.count());
        }
        Ok::<f64, anyhow::Error>(t.elapsed().as_secs_f64() * 1e3)
    };

    let mut rows = Vec::new();
    let mut all_base = Vec::new();
    for &n in &settings.lookup_sizes {
        let app = AppId::parse(&format!("lookup-{n}"))?;
        let event = Event::new(
            app.clone(),
            EventType::parse("update")?,
            ObjectType::parse("user")?,
            serde_json::json!({}),
        );
        let reps = match (n, quick) {
            (0..=100, false) => 30,
            (0..=100, true) => 10,
            (101..=1000, _) => 5,
            _ => 3,
        };
        // Alternate the bare Query and the lookup, so both see the emulator alike.
        let mut ms = Vec::new();
        let mut base = Vec::new();
        let mut matched = 0;
        for _ in 0..reps {
            base.push(bare_query().await?);
            let t = Instant::now();
            matched = store.matching(&event).await?.len();
            ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        // The same Query once more, through the proxy (to count what DynamoDB would
        // bill), keeping the raw items to time decoding and filtering in process.
        proxy.take();
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = proxied
                .query()
                .table_name(table)
                .key_condition_expression("app_id = :app")
                .expression_attribute_values(":app", AttributeValue::S(app.to_string()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .context("the counted Query")?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        let counts = proxy.take();
        let query = counts.get("DynamoDB Query").cloned().unwrap_or_default();
        let t = Instant::now();
        let all: Vec<Subscription> = items
            .into_iter()
            .map(serde_dynamo::from_item)
            .collect::<Result<_, _>>()
            .context("decoding subscriptions")?;
        let decode_us = t.elapsed().as_secs_f64() * 1e6;
        let t = Instant::now();
        let kept = std::hint::black_box(&all)
            .iter()
            .filter(|s| s.matches(&event))
            .count();
        let filter_us = t.elapsed().as_secs_f64() * 1e6;
        if kept != matched || all.len() != n {
            bail!(
                "lookup of {n}: found {} subscriptions, {kept} matching",
                all.len()
            );
        }
        all_base.extend_from_slice(&base);
        rows.push(LookupRow {
            subscriptions: n,
            matched,
            reps,
            lookup_ms: Summary::of(&ms),
            baseline_ms: Summary::of(&base),
            decode_us,
            filter_us,
            read_units: query.read_units,
            item_bytes: query.item_bytes,
            calls: query.calls,
        });
        eprintln!(
            "[bench] lookup of {n}: p50 {:.1} ms (bare Query {:.1} ms)",
            rows.last().map_or(0.0, |r| r.lookup_ms.p50),
            rows.last().map_or(0.0, |r| r.baseline_ms.p50)
        );
    }
    Ok(Lookup {
        rows,
        baseline_ms: Summary::of(&all_base),
        write_s,
    })
}
