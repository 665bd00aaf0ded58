//! A counting HTTP proxy between AWS clients and the emulator. It forwards every
//! request unchanged and counts it by the JSON-protocol operation in `X-Amz-Target`
//! (`AmazonSQS.SendMessageBatch`, `DynamoDB_20120810.Query`, ...), together with what
//! AWS bills for it: SQS requests in 64 KiB chunks, DynamoDB read and write request
//! units from the sizes of the items read and written, and the write units per
//! partition key (`pk`), so a run shows how its writes spread over partitions.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result};
use axum::http::StatusCode;
use herald_testing::FaultProxy;
use serde::Serialize;
use serde_json::Value;

use crate::receives::ReceiveLog;

/// The `X-Amz-Target` of SQS `ReceiveMessage`.
const RECEIVE: &str = "AmazonSQS.ReceiveMessage";

/// What was counted for one operation.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OpStats {
    pub calls: u64,
    /// SQS: billed requests (each 64 KiB of payload is one).
    pub billed_requests: u64,
    /// Messages sent or received, items read or written.
    pub items: u64,
    /// DynamoDB read request units (on-demand).
    pub read_units: f64,
    /// DynamoDB: bytes of the items read or written, as billed.
    pub item_bytes: u64,
    /// DynamoDB write request units per table, before index writes.
    pub write_units: BTreeMap<String, f64>,
    /// DynamoDB: write units, items and bytes written again to a global secondary index
    /// (an item carrying an index key attribute, see [`INDEX_KEYS`]).
    pub index_write_units: f64,
    pub index_items: u64,
    pub index_item_bytes: u64,
    /// DynamoDB: what was written per partition key (the `pk` attribute; an item
    /// without one is counted under `(no pk) {table}`). Summarised per run by
    /// [`crate::partitions`]; not in the JSON (one entry per key).
    #[serde(skip)]
    pub by_pk: BTreeMap<String, PkWrites>,
}

/// What one operation wrote into one partition key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct PkWrites {
    /// Items put, updated or deleted.
    pub items: u64,
    /// Bytes of the items put (updates and deletes: 0, their size is not in the request).
    pub bytes: u64,
    /// Write request units, transactions doubled, before index writes.
    pub write_units: f64,
}

impl PkWrites {
    /// Adds `other` to these.
    pub fn add(&mut self, other: &PkWrites) {
        self.items += other.items;
        self.bytes += other.bytes;
        self.write_units += other.write_units;
    }
}

/// Key attributes of the global secondary indexes in infra/data-plane.yaml whose
/// projection is ALL: an item that has one is written to the index too, at the
/// same size. None today (the history table has no index since issue #10); the
/// accounting stays so that an index added later shows up in the bill.
pub const INDEX_KEYS: [&str; 0] = [];

pub type Counts = BTreeMap<String, OpStats>;

/// The counting proxy, listening on 127.0.0.1 (the test harness's forwarding proxy
/// with an observer that counts); stops when dropped. It also notes when each SQS
/// receive opened and closed and when it handed each event over ([`ReceiveLog`]).
pub struct CountingProxy {
    pub url: String,
    inner: FaultProxy,
    counts: Arc<Mutex<Counts>>,
    receives: Arc<Mutex<ReceiveLog>>,
}

impl CountingProxy {
    pub async fn start(upstream: &str) -> Result<Self> {
        let counts: Arc<Mutex<Counts>> = Arc::default();
        let receives: Arc<Mutex<ReceiveLog>> = Arc::default();
        let observer = {
            let counts = Arc::clone(&counts);
            let receives = Arc::clone(&receives);
            Arc::new(
                move |target: &str, request: &[u8], status: StatusCode, response: &[u8]| {
                    if target == RECEIVE {
                        receives.lock().expect("receives lock").closed(
                            request,
                            response,
                            Instant::now(),
                        );
                    }
                    count(&counts, target, request, status, response)
                },
            )
        };
        let inner = FaultProxy::start_observed(upstream, Some(observer))
            .await
            .context("starting the counting proxy")?;
        {
            // The rule sees every request as it arrives; it injects no fault.
            let receives = Arc::clone(&receives);
            inner.set_rule(move |target, request| {
                if target == RECEIVE {
                    receives
                        .lock()
                        .expect("receives lock")
                        .opened(request, Instant::now());
                }
                None
            });
        }
        Ok(Self {
            url: inner.url.clone(),
            inner,
            counts,
            receives,
        })
    }

    /// The receives seen so far, and the events they handed over.
    pub fn receives(&self) -> std::sync::MutexGuard<'_, ReceiveLog> {
        self.receives.lock().expect("receives lock")
    }

    /// The counts so far, which are then cleared.
    pub fn take(&self) -> Counts {
        std::mem::take(&mut *self.counts.lock().expect("counts lock"))
    }

    /// Waits (up to `timeout`) until every request that started before this call has
    /// ended upstream. A stopped worker's long poll goes on in the emulator for up to
    /// 20 s and would take (and hide, for the visibility timeout) messages published
    /// meanwhile. Returns whether they all ended in time.
    pub async fn wait_started_before_now(&self, timeout: std::time::Duration) -> bool {
        self.inner.wait_started_before_now(timeout).await
    }

    /// Items (messages, entries) counted for `op` so far, without clearing.
    pub fn items(&self, op: &str) -> u64 {
        self.counts
            .lock()
            .expect("counts lock")
            .get(op)
            .map_or(0, |s| s.items)
    }
}

/// Counts one forwarded request: what it costs when it succeeded, a failed call when
/// it did not.
fn count(counts: &Mutex<Counts>, target: &str, body: &[u8], status: StatusCode, response: &[u8]) {
    let mut counts = counts.lock().expect("counts lock");
    if !status.is_success() {
        counts
            .entry(format!("{} (failed)", operation_name(target)))
            .or_default()
            .calls += 1;
        return;
    }
    let (op, stats) = analyse(target, body, response);
    let entry = counts.entry(op).or_default();
    entry.calls += 1;
    entry.billed_requests += stats.billed_requests;
    entry.items += stats.items;
    entry.read_units += stats.read_units;
    entry.item_bytes += stats.item_bytes;
    for (table, units) in stats.write_units {
        *entry.write_units.entry(table).or_default() += units;
    }
    entry.index_write_units += stats.index_write_units;
    entry.index_items += stats.index_items;
    entry.index_item_bytes += stats.index_item_bytes;
    for (pk, writes) in &stats.by_pk {
        entry.by_pk.entry(pk.clone()).or_default().add(writes);
    }
}

/// `AmazonSQS.SendMessageBatch` -> `SQS SendMessageBatch`.
fn operation_name(target: &str) -> String {
    match target.split_once('.') {
        Some(("AmazonSQS", op)) => format!("SQS {op}"),
        Some((service, op)) if service.starts_with("DynamoDB") => format!("DynamoDB {op}"),
        _ if target.is_empty() => "other (no X-Amz-Target)".to_owned(),
        _ => target.to_owned(),
    }
}

/// The operation's name and what it costs, from its request and response bodies.
fn analyse(target: &str, request: &[u8], response: &[u8]) -> (String, OpStats) {
    let op = operation_name(target);
    let req: Value = serde_json::from_slice(request).unwrap_or(Value::Null);
    let resp: Value = serde_json::from_slice(response).unwrap_or(Value::Null);
    let mut stats = OpStats::default();
    if op.starts_with("SQS ") {
        // A request is billed per 64 KiB chunk of its payload.
        let payload = request.len().max(response.len()) as u64;
        stats.billed_requests = payload.div_ceil(64 * 1024).max(1);
        stats.items = match op.as_str() {
            "SQS SendMessage" => 1,
            "SQS ReceiveMessage" => resp["Messages"].as_array().map_or(0, |m| m.len() as u64),
            _ => req["Entries"].as_array().map_or(0, |e| e.len() as u64),
        };
    } else if op.starts_with("DynamoDB ") {
        let table = req["TableName"].as_str().unwrap_or("?").to_owned();
        let consistent = req["ConsistentRead"].as_bool().unwrap_or(false);
        let read_factor = if consistent { 1.0 } else { 0.5 };
        match op.as_str() {
            "DynamoDB Query" | "DynamoDB Scan" => {
                let items = resp["Items"].as_array().cloned().unwrap_or_default();
                let bytes: u64 = items.iter().map(item_size).sum();
                stats.items = items.len() as u64;
                stats.item_bytes = bytes;
                stats.read_units = bytes.div_ceil(4096).max(1) as f64 * read_factor;
            }
            "DynamoDB GetItem" => {
                stats.items = u64::from(resp["Item"].is_object());
                stats.item_bytes = item_size(&resp["Item"]);
                stats.read_units =
                    item_size(&resp["Item"]).div_ceil(4096).max(1) as f64 * read_factor;
            }
            "DynamoDB BatchGetItem" => {
                // Billed per item, each rounded up to 4 KiB (halved if eventually consistent).
                let requested = &req["RequestItems"];
                for (table, items) in resp["Responses"].as_object().into_iter().flatten() {
                    let factor = if requested[table]["ConsistentRead"]
                        .as_bool()
                        .unwrap_or(false)
                    {
                        1.0
                    } else {
                        0.5
                    };
                    for item in items.as_array().into_iter().flatten() {
                        stats.items += 1;
                        stats.item_bytes += item_size(item);
                        stats.read_units += item_size(item).div_ceil(4096).max(1) as f64 * factor;
                    }
                }
            }
            "DynamoDB PutItem" => stats.put(&table, &req["Item"], 1.0),
            "DynamoDB UpdateItem" | "DynamoDB DeleteItem" => stats.keyed(&table, &req["Key"], 1.0),
            "DynamoDB BatchWriteItem" => {
                if let Some(tables) = req["RequestItems"].as_object() {
                    for (table, writes) in tables {
                        for w in writes.as_array().into_iter().flatten() {
                            if w["PutRequest"].is_object() {
                                stats.put(table, &w["PutRequest"]["Item"], 1.0);
                            } else {
                                stats.keyed(table, &w["DeleteRequest"]["Key"], 1.0);
                            }
                        }
                    }
                }
            }
            "DynamoDB TransactWriteItems" => {
                // A transaction bills twice the units of each item it writes or checks.
                for t in req["TransactItems"].as_array().into_iter().flatten() {
                    if let Some(put) = t.get("Put") {
                        stats.put(put["TableName"].as_str().unwrap_or("?"), &put["Item"], 2.0);
                    }
                    for kind in ["Update", "Delete", "ConditionCheck"] {
                        if let Some(w) = t.get(kind) {
                            stats.keyed(w["TableName"].as_str().unwrap_or("?"), &w["Key"], 2.0);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    (op, stats)
}

impl OpStats {
    /// An item put into `table`: its bytes, its write units times `factor`, its index copy.
    fn put(&mut self, table: &str, item: &Value, factor: f64) {
        let units = write_units(item) * factor;
        self.items += 1;
        self.item_bytes += item_size(item);
        *self.write_units.entry(table.to_owned()).or_default() += units;
        self.by_pk
            .entry(partition_key(table, item))
            .or_default()
            .add(&PkWrites {
                items: 1,
                bytes: item_size(item),
                write_units: units,
            });
        self.add_index_write(item);
    }

    /// An update, delete or condition check of the item at `key`: its size is not in the
    /// request, so one unit (times `factor`), as for an item under 1 KiB.
    fn keyed(&mut self, table: &str, key: &Value, factor: f64) {
        self.items += 1;
        *self.write_units.entry(table.to_owned()).or_default() += factor;
        self.by_pk
            .entry(partition_key(table, key))
            .or_default()
            .add(&PkWrites {
                items: 1,
                bytes: 0,
                write_units: factor,
            });
    }

    fn add_index_write(&mut self, item: &Value) {
        if INDEX_KEYS.iter().any(|k| item.get(*k).is_some()) {
            self.index_items += 1;
            self.index_item_bytes += item_size(item);
            self.index_write_units += write_units(item);
        }
    }
}

/// The item's (or key's) `pk` string, or `(no pk) {table}`.
fn partition_key(table: &str, item: &Value) -> String {
    item["pk"]["S"]
        .as_str()
        .map_or_else(|| format!("(no pk) {table}"), str::to_owned)
}

fn write_units(item: &Value) -> f64 {
    item_size(item).div_ceil(1024).max(1) as f64
}

/// The size DynamoDB bills for an item in DynamoDB JSON (`{"name": {"S": "..."}}`):
/// attribute names plus values (strings by UTF-8 length, numbers about one byte per
/// two digits plus one, booleans and nulls one byte, lists and maps three bytes plus
/// one per element plus their contents).
pub fn item_size(item: &Value) -> u64 {
    item.as_object().map_or(0, |attrs| {
        attrs
            .iter()
            .map(|(name, value)| name.len() as u64 + value_size(value))
            .sum()
    })
}

fn value_size(value: &Value) -> u64 {
    let Some((kind, inner)) = value.as_object().and_then(|o| o.iter().next()) else {
        return 0;
    };
    match kind.as_str() {
        "S" => inner.as_str().map_or(0, |s| s.len() as u64),
        "N" => inner
            .as_str()
            .map_or(0, |s| (s.len() as u64).div_ceil(2) + 1),
        "B" => inner.as_str().map_or(0, |s| s.len() as u64 * 3 / 4),
        "BOOL" | "NULL" => 1,
        "SS" | "NS" | "BS" => inner.as_array().map_or(0, |a| {
            a.iter()
                .map(|s| s.as_str().map_or(0, |s| s.len() as u64))
                .sum()
        }),
        "L" => inner
            .as_array()
            .map_or(3, |a| 3 + a.iter().map(|v| 1 + value_size(v)).sum::<u64>()),
        "M" => inner.as_object().map_or(3, |m| {
            3 + m
                .iter()
                .map(|(k, v)| 1 + k.len() as u64 + value_size(v))
                .sum::<u64>()
        }),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_named_from_the_target_header() {
        assert_eq!(
            operation_name("AmazonSQS.SendMessageBatch"),
            "SQS SendMessageBatch"
        );
        assert_eq!(operation_name("DynamoDB_20120810.Query"), "DynamoDB Query");
    }

    #[test]
    fn batch_writes_are_billed_per_started_kib_of_each_item() {
        let small =
            serde_json::json!({"PutRequest": {"Item": {"pk": {"S": "a"}, "event_pk": {"S": "b"}}}});
        let big = serde_json::json!({"PutRequest": {"Item": {"pk": {"S": "x".repeat(1500)}}}});
        let req = serde_json::json!({"RequestItems": {"t": [small, big]}});
        let (op, stats) = analyse(
            "DynamoDB_20120810.BatchWriteItem",
            req.to_string().as_bytes(),
            b"{}",
        );
        assert_eq!(op, "DynamoDB BatchWriteItem");
        assert_eq!(stats.items, 2);
        assert_eq!(stats.write_units["t"], 3.0);
        // No table has an index since issue #10: nothing is written twice, not even
        // an item with the old `by_event` index's key attribute.
        assert_eq!(stats.index_items, 0);
        assert_eq!(stats.index_write_units, 0.0);
    }

    #[test]
    fn writes_are_counted_per_partition_key_transactions_doubled() {
        let put = |pk: &str, n: usize| serde_json::json!({"PutRequest": {"Item": {"pk": {"S": pk}, "z": {"S": "q".repeat(n)}}}});
        let req = serde_json::json!({"RequestItems": {"h": [put("E#a#0", 2000), put("W#a#s#1", 10), put("W#a#s#1", 10)]}});
        let (_, stats) = analyse(
            "DynamoDB_20120810.BatchWriteItem",
            req.to_string().as_bytes(),
            b"{}",
        );
        assert_eq!(stats.by_pk["E#a#0"].write_units, 2.0);
        assert_eq!(stats.by_pk["W#a#s#1"].items, 2);
        assert_eq!(stats.by_pk["W#a#s#1"].write_units, 2.0);
        let req = serde_json::json!({"TransactItems": [
            {"Put": {"TableName": "s", "Item": {"pk": {"S": "R#a#t"}, "sk": {"S": "x"}}}},
            {"Update": {"TableName": "s", "Key": {"pk": {"S": "A#a"}, "sk": {"S": "V"}}}},
        ]});
        let (_, stats) = analyse(
            "DynamoDB_20120810.TransactWriteItems",
            req.to_string().as_bytes(),
            b"{}",
        );
        assert_eq!(stats.write_units["s"], 4.0);
        assert_eq!(stats.by_pk["A#a"].write_units, 2.0);
        let (_, stats) = analyse(
            "DynamoDB_20120810.UpdateItem",
            br#"{"TableName":"t","Key":{"app_id":{"S":"a"}}}"#,
            b"{}",
        );
        assert_eq!(stats.by_pk["(no pk) t"].write_units, 1.0);
    }

    #[test]
    fn batch_gets_are_billed_per_item() {
        let resp = serde_json::json!({"Responses": {"t": [
            {"d": {"S": "y".repeat(5000)}}, {"d": {"S": "y"}}
        ]}});
        let (_, stats) = analyse(
            "DynamoDB_20120810.BatchGetItem",
            br#"{"RequestItems":{"t":{"Keys":[]}}}"#,
            resp.to_string().as_bytes(),
        );
        assert_eq!(stats.items, 2);
        assert_eq!(stats.read_units, 1.5, "2 x 4 KiB and 1 x 4 KiB, halved");
    }

    #[test]
    fn queries_are_billed_per_four_kib_read_eventually_consistent_at_half() {
        let items: Vec<Value> = (0..10)
            .map(|_| serde_json::json!({"d": {"S": "y".repeat(999)}}))
            .collect();
        let resp = serde_json::json!({ "Items": items });
        let (_, stats) = analyse(
            "DynamoDB_20120810.Query",
            br#"{"TableName":"t"}"#,
            resp.to_string().as_bytes(),
        );
        assert_eq!(stats.items, 10);
        assert_eq!(stats.read_units, 1.5, "10,000 bytes = 3 x 4 KiB, halved");
    }

    #[test]
    fn sqs_requests_are_billed_per_64_kib() {
        let (_, stats) = analyse("AmazonSQS.SendMessageBatch", &vec![b' '; 70_000], b"{}");
        assert_eq!(stats.billed_requests, 2);
    }
}
