//! Section 5b: the cost of looking up the webhooks of an event as the app's number of
//! webhooks grows (routes by (app, event type): only the 10 that take the event's type
//! are read), and of confirming a cached lookup (the app's routing version), beside a
//! one-item DynamoDB Query.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use herald_core::{
    AppId, Event, EventFilter, EventType, ObjectType, ObjectTypeFilter, Subscription,
};
use herald_store::SubscriptionStore;
use serde::Serialize;

use super::shared::Bench;
use super::EmulatorSettings;
use crate::stats::Summary;

/// Webhooks of each app that take the looked-up event type; the others take other types.
pub const MATCHING: usize = 10;
/// How many other event types the rest of an app's webhooks are spread over.
pub const OTHER_TYPES: usize = 40;

#[derive(Debug, Clone, Serialize)]
pub struct LookupRow {
    pub subscriptions: usize,
    pub matched: usize,
    pub reps: usize,
    /// `SubscriptionStore::routes` of the event's type plus the filter, ms.
    pub lookup_ms: Summary,
    /// The one-item Query, timed alternately with the lookups of this row, ms.
    pub baseline_ms: Summary,
    /// The in-memory filter alone, µs.
    pub filter_us: f64,
    /// What one lookup costs on DynamoDB (from the proxied lookup).
    pub read_units: f64,
    pub item_bytes: u64,
    pub calls: u64,
    /// What confirming a cached lookup costs: the routing version `GetItem`.
    pub confirm_read_units: f64,
    pub confirm_calls: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Lookup {
    pub rows: Vec<LookupRow>,
    /// A one-item DynamoDB Query, ms.
    pub baseline_ms: Summary,
    pub write_s: f64,
}

async fn write_subscriptions(
    store: &SubscriptionStore,
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
    subs: Vec<Subscription>,
) -> Result<()> {
    let mut requests = Vec::new();
    for item in store
        .bulk_items(&subs)
        .await
        .context("subscriptions as items")?
    {
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

/// An app of `n` webhooks: the first [`MATCHING`] take `update`, the others one of
/// [`OTHER_TYPES`] other types.
fn webhooks(app: &AppId, n: usize) -> Result<Vec<Subscription>> {
    (0..n)
        .map(|i| {
            let events = if i < MATCHING {
                EventFilter::parse(&["update"])?
            } else {
                EventFilter::parse(&[format!("other{}", i % OTHER_TYPES)])?
            };
            Ok(Subscription::new(
                app.clone(),
                format!("https://hooks.example.com/{i}"),
                events,
                ObjectTypeFilter::All,
            ))
        })
        .collect()
}

/// Looks up apps of each size of `settings.lookup_sizes`, alternating with a one-item
/// Query; counts one lookup's reads and one confirmation's through the proxy and times
/// the filter in process.
pub(super) async fn lookup(
    bench: &Bench,
    settings: &EmulatorSettings,
    quick: bool,
) -> Result<Lookup> {
    let dynamo = &bench.dynamo;
    let proxy = &bench.proxy;
    let table = bench.stack.subscriptions_table();
    let sealer = bench.stack.sealer()?;
    let store = SubscriptionStore::new(dynamo.clone(), table, sealer.clone());
    let proxied =
        SubscriptionStore::new(aws_sdk_dynamodb::Client::new(&bench.proxied), table, sealer);
    let write_started = Instant::now();
    for &n in &settings.lookup_sizes {
        let app = AppId::parse(&format!("lookup-{n}"))?;
        write_subscriptions(&store, dynamo, table, webhooks(&app, n)?).await?;
        eprintln!("[bench] lookup: wrote {n} subscriptions");
    }
    // The baseline's app: one subscription.
    let one = AppId::parse("bench-lookup-baseline")?;
    write_subscriptions(&store, dynamo, table, webhooks(&one, 1)?).await?;
    let write_s = write_started.elapsed().as_secs_f64();
    // One `Query` returning one item: the first page, of one, of that app's list.
    let one_item_query = || async {
        let t = Instant::now();
        let page = store
            .list(&one, 1, None)
            .await
            .context("the one-item Query")?;
        if page.items.len() != 1 {
            bail!("the one-item Query found {} items, not 1", page.items.len());
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
        let reps = if quick { 10 } else { 30 };
        // Alternate the one-item Query and the lookup, so both see the emulator alike.
        let mut ms = Vec::new();
        let mut base = Vec::new();
        let mut matched = 0;
        for _ in 0..reps {
            base.push(one_item_query().await?);
            let t = Instant::now();
            matched = store.matching(&event).await?.len();
            ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        // The same lookup once more, through the proxy (to count what DynamoDB would
        // bill), then a confirmation of a cached lookup: the routing version read.
        proxy.take();
        let routes = proxied
            .routes(&app, &event.event_type)
            .await
            .context("the counted lookup")?;
        let counts = proxy.take();
        let query = counts.get("DynamoDB Query").cloned().unwrap_or_default();
        proxied
            .routing_version(&app)
            .await
            .context("the counted version read")?;
        let counts = proxy.take();
        let confirm = counts.get("DynamoDB GetItem").cloned().unwrap_or_default();
        let t = Instant::now();
        let kept = std::hint::black_box(&routes)
            .iter()
            .filter(|r| r.matches(&event))
            .count();
        let filter_us = t.elapsed().as_secs_f64() * 1e6;
        if kept != matched || matched != n.min(MATCHING) {
            bail!(
                "lookup of {n}: {} routes, {kept} matching, {matched} by the store",
                routes.len()
            );
        }
        all_base.extend_from_slice(&base);
        rows.push(LookupRow {
            subscriptions: n,
            matched,
            reps,
            lookup_ms: Summary::of(&ms),
            baseline_ms: Summary::of(&base),
            filter_us,
            read_units: query.read_units,
            item_bytes: query.item_bytes,
            calls: query.calls,
            confirm_read_units: confirm.read_units,
            confirm_calls: confirm.calls,
        });
        eprintln!(
            "[bench] lookup of {n}: p50 {:.1} ms (one-item Query {:.1} ms), {:.1} read units, \
             confirmation {:.1}",
            rows.last().map_or(0.0, |r| r.lookup_ms.p50),
            rows.last().map_or(0.0, |r| r.baseline_ms.p50),
            query.read_units,
            confirm.read_units
        );
    }
    Ok(Lookup {
        rows,
        baseline_ms: Summary::of(&all_base),
        write_s,
    })
}
