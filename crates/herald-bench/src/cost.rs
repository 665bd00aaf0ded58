//! Cost per million deliveries at AWS list prices, from the calls counted by the
//! proxy, the handler time the worker logged (with a receiver that takes as long as
//! real ones, since Lambda bills wall time), the log bytes it wrote and Lambda's own
//! per-invocation log lines.

use serde::Serialize;

use crate::emulator::{CallsPhase, RunKind};

/// AWS list prices assumed (us-east-1, on-demand, after free tiers).
#[derive(Debug, Clone, Serialize)]
pub struct Prices {
    pub region: &'static str,
    pub as_of: &'static str,
    /// SQS standard queue, per million requests (each 64 KiB of payload is one).
    pub sqs_per_million_requests: f64,
    /// DynamoDB on-demand, per million write request units (1 KiB each).
    pub dynamodb_per_million_wru: f64,
    /// DynamoDB on-demand, per million read request units (4 KiB strongly
    /// consistent, or 8 KiB eventually consistent).
    pub dynamodb_per_million_rru: f64,
    /// DynamoDB standard table class storage, per GB-month.
    pub dynamodb_storage_per_gb_month: f64,
    /// Lambda, per million invocations.
    pub lambda_per_million_requests: f64,
    /// Lambda x86_64, per GB-second.
    pub lambda_per_gb_second: f64,
    /// Memory size of the consumer function (infra/herald.yaml's `ConsumerMemoryMB`
    /// default).
    pub lambda_memory_mb: f64,
    /// Bytes of Lambda's platform lines per invocation (START, END, REPORT in the text
    /// format, about 70 + 55 + 175). An upper bound: infra/herald.yaml's JSON log
    /// format with the system log level at WARN writes none of them.
    pub lambda_platform_log_bytes_per_invocation: f64,
    /// CloudWatch Logs ingestion, per GB.
    pub logs_per_gb: f64,
    /// Data transfer out to the internet, per GB (first 10 TB tier).
    pub transfer_out_per_gb: f64,
}

pub const PRICES: Prices = Prices {
    region: "us-east-1",
    as_of: "AWS list prices as published in 2026 (DynamoDB on-demand after its November 2024 reduction); not fetched at run time",
    sqs_per_million_requests: 0.40,
    dynamodb_per_million_wru: 0.625,
    dynamodb_per_million_rru: 0.125,
    dynamodb_storage_per_gb_month: 0.25,
    lambda_per_million_requests: 0.20,
    lambda_per_gb_second: 0.000_016_666_7,
    lambda_memory_mb: 512.0,
    lambda_platform_log_bytes_per_invocation: 300.0,
    logs_per_gb: 0.50,
    transfer_out_per_gb: 0.09,
};

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// One line of a cost breakdown.
#[derive(Debug, Clone, Serialize)]
pub struct CostLine {
    pub item: String,
    /// Units per delivery (requests, request units, GB-s, bytes).
    pub per_delivery: f64,
    pub unit: String,
    pub usd_per_million: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Breakdown {
    pub kind: RunKind,
    pub scenario: String,
    pub lines: Vec<CostLine>,
    pub total_usd_per_million: f64,
    /// Storage of the delivery history while it is retained, per month (not in the total).
    pub history_storage_usd_per_million_per_month: f64,
    /// Data transfer out of the payloads, if receivers are on the internet (not in the total).
    pub transfer_out_usd_per_million: f64,
}

/// The cost of `phase` per million deliveries.
pub fn breakdown(phase: &CallsPhase, payload_bytes: f64) -> Breakdown {
    let p = &PRICES;
    let d = phase.deliveries.max(1) as f64;
    let mut lines = Vec::new();
    let mut line = |item: &str, per_delivery: f64, unit: &str, price_per_unit: f64| {
        lines.push(CostLine {
            item: item.to_owned(),
            per_delivery,
            unit: unit.to_owned(),
            usd_per_million: per_delivery * 1e6 * price_per_unit,
        });
    };
    let sqs: u64 = phase
        .counts
        .iter()
        .filter(|(op, _)| op.starts_with("SQS "))
        .map(|(_, s)| s.billed_requests)
        .sum();
    line(
        "SQS requests",
        sqs as f64 / d,
        "requests",
        p.sqs_per_million_requests / 1e6,
    );
    let mut wru = 0.0;
    let mut rru = 0.0;
    let mut stored_bytes = 0.0;
    for (op, s) in &phase.counts {
        if !op.starts_with("DynamoDB ") {
            continue;
        }
        rru += s.read_units;
        wru += s.write_units.values().sum::<f64>() + s.index_write_units;
        if op == "DynamoDB BatchWriteItem" {
            // New history items: DynamoDB stores 100 bytes of overhead with each item,
            // in the table and in an index alike. (Deletes count as items of 0 bytes.)
            let put: u64 = s
                .by_pk
                .values()
                .filter(|w| w.bytes > 0)
                .map(|w| w.items)
                .sum();
            stored_bytes +=
                (s.item_bytes + s.index_item_bytes) as f64 + 100.0 * (put + s.index_items) as f64;
        }
    }
    if wru > 0.0 || rru > 0.0 || phase.batches > 0 {
        line(
            "DynamoDB writes (history, any index copies, health counters)",
            wru / d,
            "WRU",
            p.dynamodb_per_million_wru / 1e6,
        );
        line(
            "DynamoDB reads (subscription lookups, version checks)",
            rru / d,
            "RRU",
            p.dynamodb_per_million_rru / 1e6,
        );
    }
    if phase.batches > 0 {
        let gb = p.lambda_memory_mb / 1024.0;
        line(
            "Lambda invocations",
            phase.batches as f64 / d,
            "invocations",
            p.lambda_per_million_requests / 1e6,
        );
        line(
            &format!(
                "Lambda duration at {} MB (handler wall time, receiver answering in {} ms)",
                p.lambda_memory_mb, phase.receiver_delay_ms
            ),
            phase.billed_ms_total / 1e3 * gb / d,
            "GB-s",
            p.lambda_per_gb_second,
        );
        line(
            "CloudWatch Logs: Herald's log lines",
            phase.log_bytes as f64 / d,
            "bytes",
            p.logs_per_gb / GIB,
        );
        line(
            "CloudWatch Logs: Lambda's START/END/REPORT lines (upper bound)",
            phase.batches as f64 * p.lambda_platform_log_bytes_per_invocation / d,
            "bytes",
            p.logs_per_gb / GIB,
        );
    }
    let total = lines.iter().map(|l| l.usd_per_million).sum();
    let stored_per_delivery = stored_bytes / d;
    // Payload, signature headers and HTTP framing: about 400 bytes besides the body.
    let sent_per_delivery = if phase.batches > 0 {
        payload_bytes + 400.0
    } else {
        0.0
    };
    Breakdown {
        kind: phase.kind,
        scenario: phase.label.clone(),
        lines,
        total_usd_per_million: total,
        history_storage_usd_per_million_per_month: stored_per_delivery * 1e6 / 1e9
            * p.dynamodb_storage_per_gb_month,
        transfer_out_usd_per_million: sent_per_delivery * 1e6 / 1e9 * p.transfer_out_per_gb,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::OpStats;
    use crate::stats::Summary;

    #[test]
    fn one_delivery_per_batch_costs_what_the_prices_say() {
        let mut counts = crate::proxy::Counts::new();
        let put = |bytes| crate::proxy::PkWrites {
            items: 1,
            bytes,
            write_units: 1.0,
        };
        counts.insert(
            "SQS ReceiveMessage".into(),
            OpStats {
                calls: 2,
                billed_requests: 2,
                ..OpStats::default()
            },
        );
        counts.insert(
            "DynamoDB BatchWriteItem".into(),
            OpStats {
                calls: 2,
                items: 2,
                item_bytes: 1000,
                write_units: [("attempts".to_owned(), 2.0)].into(),
                index_write_units: 2.0,
                index_items: 2,
                index_item_bytes: 1000,
                by_pk: [("a#1".to_owned(), put(500)), ("a#2".to_owned(), put(500))].into(),
                ..OpStats::default()
            },
        );
        let phase = CallsPhase {
            kind: RunKind::Steady,
            label: "t".into(),
            batching: None,
            receiver_delay_ms: 100,
            fanout: 1,
            events: 2,
            deliveries: 2,
            partitions: crate::partitions::WritePartitions::of(&counts),
            counts,
            batches: 2,
            records_per_batch: Summary::default(),
            handler_ms: Summary::default(),
            billed_ms_total: 20.0,
            log_bytes: 0,
            wall_s: 1.0,
        };
        let b = breakdown(&phase, 1024.0);
        let cost = |item: &str| {
            b.lines
                .iter()
                .find(|l| l.item.starts_with(item))
                .map(|l| l.usd_per_million)
                .unwrap()
        };
        assert!((cost("SQS") - 0.40).abs() < 1e-9);
        assert!((cost("DynamoDB writes") - 2.0 * 0.625).abs() < 1e-9);
        assert!((cost("Lambda invocations") - 0.20).abs() < 1e-9);
        // 10 ms at 0.5 GB per delivery.
        assert!((cost("Lambda duration") - 0.005 * 1e6 * 0.000_016_666_7).abs() < 1e-9);
        // 300 bytes per invocation, one invocation per delivery, $0.50 per GiB.
        assert!((cost("CloudWatch Logs: Lambda's") - 300.0 * 1e6 * 0.50 / GIB).abs() < 1e-9);
        // (2000 bytes + 4 x 100 overhead) / 2 deliveries, a month at $0.25 per GB.
        assert!(
            (b.history_storage_usd_per_million_per_month - 1200.0 * 1e6 / 1e9 * 0.25).abs() < 1e-9
        );
    }

    #[test]
    fn the_memory_size_is_the_templates_default() {
        assert_eq!(
            crate::template::default_of("ConsumerMemoryMB").as_deref(),
            Some(format!("{}", PRICES.lambda_memory_mb).as_str()),
            "PRICES.lambda_memory_mb must match infra/herald.yaml's ConsumerMemoryMB default"
        );
    }
}
