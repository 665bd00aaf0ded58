//! Section 3 of `BENCHMARKS.md`: the AWS calls each run made, its DynamoDB writes by
//! partition key prefix, and the cost per million deliveries with the prices assumed.

use std::fmt::Write;

use super::usd;
use crate::cost::{Breakdown, PRICES};
use crate::emulator::{CallsPhase, RunKind};
use crate::Results;

/// Calls of `op` per delivery in `phase`.
fn per_delivery(phase: &CallsPhase, op: &str) -> f64 {
    phase.counts.get(op).map_or(0, |c| c.calls) as f64 / phase.deliveries.max(1) as f64
}

/// All calls per delivery in `phase`.
pub(super) fn calls_per_delivery(phase: &CallsPhase) -> f64 {
    phase.counts.values().map(|c| c.calls).sum::<u64>() as f64 / phase.deliveries.max(1) as f64
}

/// A short column name for a run.
pub(super) fn short(p: &CallsPhase) -> String {
    match p.kind {
        RunKind::SqsAlone => "SQS alone".into(),
        RunKind::Latency => "latency run".into(),
        RunKind::SteadyLatencyFirst => "steady, latency first".into(),
        RunKind::Steady => "steady".into(),
        RunKind::BacklogFanout => format!("backlog, fan-out {}", p.fanout),
        RunKind::BacklogFanout1 => "backlog, fan-out 1".into(),
    }
}

/// Section 3.
pub(super) fn calls_and_cost(s: &mut String, r: &Results) {
    let e = &r.emulator;
    let runs: Vec<&CallsPhase> = e.runs.iter().chain(std::iter::once(&e.pipe)).collect();
    let _ = writeln!(s, "## 3. AWS calls per delivered webhook, and cost\n");
    let _ = writeln!(
        s,
        "Every AWS call of the publisher and the worker goes through a counting proxy in the \
         bench process (`AWS_ENDPOINT_URL` of the worker points at it), which forwards to moto \
         and counts by the `X-Amz-Target` operation, with the billed units: SQS requests per \
         64 KiB chunk of payload, DynamoDB read units from the bytes of the items returned \
         (4 KiB per unit, halved for eventually consistent reads; per item for \
         `BatchGetItem`) and write units from the bytes of each item written (1 KiB per unit, \
         per item; doubled in `TransactWriteItems`; an update or delete, whose item size is \
         not in the request, counts one unit), per partition key (`pk`). Start-up calls are \
         not counted. In these runs the receiver takes **{} ms** to answer each delivery, \
         as real endpoints do (Lambda bills the consumer's wall time), and the worker batches \
         as the run says (`HERALD_WORKER_BATCH_SIZE` and `HERALD_WORKER_BATCH_WINDOW`, the \
         local worker's equivalent of the event source mapping's `BatchSize` and \
         `MaximumBatchingWindowInSeconds`; infra/herald.yaml defaults to 100 and 1 s). \
         The runs:\n",
        e.runs.first().map_or(0, |p| p.receiver_delay_ms)
    );
    for p in &e.runs {
        let how = match p.kind {
            RunKind::Steady | RunKind::SteadyLatencyFirst => format!(
                "{} events published one by one at {}/s, each to 1 subscription",
                p.events, e.latency.rate
            ),
            _ => format!(
                "{} events published at once with `publish_all` (`SendMessageBatch` of 10), \
                 each matching {} subscription(s)",
                p.events, p.fanout
            ),
        };
        let _ = writeln!(
            s,
            "- **{}** ({}): {how}; {} consumer batches of {:.1} events on average (the most \
             {:.0}), handler p50 {:.0} ms.",
            short(p),
            p.batching.map_or("no worker".into(), |b| b.describe()),
            p.batches,
            p.records_per_batch.mean,
            p.records_per_batch.max,
            p.handler_ms.p50,
        );
    }
    let _ = writeln!(
        s,
        "- **SQS alone** (baseline): the SQS-alone run of section 2, per message.\n\n\
         Section 2's latency run (latency first, receiver answering at once) made {:.3} calls \
         per delivery; it is not priced, since its receiver flatters the Lambda duration.\n",
        calls_per_delivery(&e.latency_run)
    );

    let mut ops: Vec<&String> = runs.iter().flat_map(|p| p.counts.keys()).collect();
    ops.sort();
    ops.dedup();
    let mut header = String::from("| call |");
    let mut rule = String::from("| --- |");
    for p in &runs {
        let _ = write!(header, " {}: calls | per delivery |", short(p));
        rule.push_str(" ---: | ---: |");
    }
    let _ = writeln!(s, "{header}\n{rule}");
    for op in &ops {
        let _ = write!(s, "| {op} |");
        for p in &runs {
            let _ = write!(
                s,
                " {} | {:.3} |",
                p.counts.get(*op).map_or(0, |c| c.calls),
                per_delivery(p, op)
            );
        }
        let _ = writeln!(s);
    }
    let _ = write!(s, "| **all calls** |");
    for p in &runs {
        let _ = write!(
            s,
            " {} | **{:.3}** |",
            p.counts.values().map(|c| c.calls).sum::<u64>(),
            calls_per_delivery(p)
        );
    }
    let _ = write!(s, "\n| deliveries (messages) |");
    for p in &runs {
        let _ = write!(s, " {} | |", p.deliveries);
    }
    let _ = write!(s, "\n| consumer batches (Lambda invocations) |");
    for p in &runs {
        if p.kind == RunKind::SqsAlone {
            let _ = write!(s, " | |");
        } else {
            let _ = write!(
                s,
                " {} | {:.3} |",
                p.batches,
                p.batches as f64 / p.deliveries.max(1) as f64
            );
        }
    }
    let _ = writeln!(s, "\n");

    writes_by_prefix(s, &e.runs);
    cost_table(s, r);
    prices(s, r);
}

/// DynamoDB writes per key prefix, per delivery, for each priced run.
fn writes_by_prefix(s: &mut String, runs: &[CallsPhase]) {
    let _ = writeln!(s, "### DynamoDB writes by partition key prefix\n");
    let _ = writeln!(
        s,
        "Per delivery, by the `pk` up to its first `#` (in the history table `E` is an event \
         group, `W` a webhook record, `T` a trail item, `H` an hour of a webhook's health \
         counters, one `UpdateItem` counted as one unit; other prefixes are whatever the \
         storage of this commit writes, for example an app id). Items whose key has no `pk` \
         attribute are listed by table.\n"
    );
    let _ = writeln!(
        s,
        "| run | key prefix | keys | items per delivery | mean item bytes | write units per delivery |\n| --- | --- | ---: | ---: | ---: | ---: |"
    );
    for p in runs {
        let d = p.deliveries.max(1) as f64;
        for (prefix, w) in &p.partitions.by_prefix {
            let put_items = w.writes.items.max(1);
            let _ = writeln!(
                s,
                "| {} | `{prefix}` | {} | {:.3} | {:.0} | {:.3} |",
                short(p),
                w.keys,
                w.writes.items as f64 / d,
                w.writes.bytes as f64 / put_items as f64,
                w.writes.write_units / d,
            );
        }
        let index: (u64, f64) = p.counts.values().fold((0, 0.0), |(i, u), c| {
            (i + c.index_items, u + c.index_write_units)
        });
        if index.0 > 0 {
            let _ = writeln!(
                s,
                "| {} | copies in a global secondary index | | {:.3} | | {:.3} |",
                short(p),
                index.0 as f64 / d,
                index.1 / d,
            );
        }
    }
    let _ = writeln!(
        s,
        "\nHow the fan-out-1 backlog's writes would load one partition at 5,000 deliveries/s: \
         see [the goals](#issue-10-goals).\n"
    );
}

fn cost_table(s: &mut String, r: &Results) {
    let _ = writeln!(s, "### Cost per million deliveries\n");
    let _ = writeln!(
        s,
        "From the counts above; the handler time per batch the worker logged, rounded up to \
         whole milliseconds (Lambda bills the handler's wall time, here including the \
         receiver's answer time and moto's latency for the history write); the JSON log bytes \
         the worker wrote (the Lambda binary logs the same lines); and Lambda's own START, END \
         and REPORT lines per invocation. Lambda's event-source-mapping polls are the worker's \
         `ReceiveMessage` and `DeleteMessageBatch` here; SQS bills them either way.\n"
    );
    let all: Vec<&Breakdown> = r
        .costs
        .iter()
        .chain(std::iter::once(&r.cost_baseline))
        .collect();
    let mut header = String::from("| item | unit |");
    let mut rule = String::from("| --- | --- |");
    for b in &all {
        let _ = write!(header, " {}: per delivery | $ per million |", b.scenario);
        rule.push_str(" ---: | ---: |");
    }
    let _ = writeln!(s, "{header}\n{rule}");
    let mut items: Vec<(String, String)> = Vec::new();
    for b in &all {
        for l in &b.lines {
            // The duration's label names the receiver's delay; rows match on the rest.
            let key = l.item.split(" (").next().unwrap_or(&l.item).to_owned();
            if !items.iter().any(|(i, _)| i == &key) {
                items.push((key, l.unit.clone()));
            }
        }
    }
    for (item, unit) in &items {
        let _ = write!(s, "| {item} | {unit} |");
        for b in &all {
            match b
                .lines
                .iter()
                .find(|l| l.item.split(" (").next() == Some(item))
            {
                Some(l) => {
                    let _ = write!(s, " {:.4} | {} |", l.per_delivery, usd(l.usd_per_million));
                }
                None => {
                    let _ = write!(s, " – | – |");
                }
            }
        }
        let _ = writeln!(s);
    }
    let _ = write!(s, "| **total** | |");
    for b in &all {
        let _ = write!(s, " | **{}** |", usd(b.total_usd_per_million));
    }
    let _ = write!(
        s,
        "\n| not in the total: history storage, per month retained | |"
    );
    for b in &all {
        let _ = write!(
            s,
            " | {} |",
            usd(b.history_storage_usd_per_million_per_month)
        );
    }
    let _ = write!(
        s,
        "\n| not in the total: data transfer out, receivers on the internet | |"
    );
    for b in &all {
        let _ = write!(s, " | {} |", usd(b.transfer_out_usd_per_million));
    }
    let _ = writeln!(s, "\n");
    let _ = writeln!(
        s,
        "Lambda duration is the handler's wall time with a receiver answering in {} ms, at \
         the consumer's {} MB (infra/herald.yaml's `ConsumerMemoryMB` default). Lambda's \
         platform lines are priced at {} bytes per invocation, an **upper bound**: \
         infra/herald.yaml sets the consumer's log format to JSON with the system log level \
         at WARN, which writes none of them. Storage counts the history items written (and \
         any index copies) with DynamoDB's 100 bytes of overhead per item, kept for a month \
         (the default retention is 30 days). Transfer out assumes the {}-byte body plus \
         about 400 bytes of headers per delivery.\n",
        r.emulator.runs.first().map_or(0, |p| p.receiver_delay_ms),
        PRICES.lambda_memory_mb,
        PRICES.lambda_platform_log_bytes_per_invocation,
        r.payload_bytes
    );
}

fn prices(s: &mut String, _r: &Results) {
    let p = &PRICES;
    let _ = writeln!(
        s,
        "**Price assumptions** ({}, {}). Free tiers are ignored.\n",
        p.region, p.as_of
    );
    let _ = writeln!(s, "| price | assumed |\n| --- | ---: |");
    let rows = [
        (
            "SQS standard, per million requests (64 KiB each)",
            format!("${:.2}", p.sqs_per_million_requests),
        ),
        (
            "DynamoDB on-demand, per million write request units",
            format!("${:.3}", p.dynamodb_per_million_wru),
        ),
        (
            "DynamoDB on-demand, per million read request units",
            format!("${:.3}", p.dynamodb_per_million_rru),
        ),
        (
            "DynamoDB storage, per GB-month",
            format!("${:.2}", p.dynamodb_storage_per_gb_month),
        ),
        (
            "Lambda, per million invocations",
            format!("${:.2}", p.lambda_per_million_requests),
        ),
        (
            "Lambda x86_64, per GB-second",
            format!("${:.10}", p.lambda_per_gb_second),
        ),
        (
            "Lambda memory size (infra/herald.yaml's default)",
            format!("{} MB", p.lambda_memory_mb),
        ),
        (
            "Lambda platform log lines per invocation (upper bound)",
            format!("{} bytes", p.lambda_platform_log_bytes_per_invocation),
        ),
        (
            "CloudWatch Logs ingestion, per GB",
            format!("${:.2}", p.logs_per_gb),
        ),
        (
            "data transfer out to the internet, per GB",
            format!("${:.2}", p.transfer_out_per_gb),
        ),
    ];
    for (what, price) in rows {
        let _ = writeln!(s, "| {what} | {price} |");
    }
    let _ = writeln!(s);
}
