//! `herald publish`, `herald deliveries` and `herald tail`, through the API.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use reqwest::Method;
use serde_json::{json, Value};

use crate::api::{refused_status, seg, Api};
use crate::config::Settings;
use crate::failure::{exit_code, usage, EXIT_AUTH, EXIT_USAGE};
use crate::manage::{app_api, more_hint, PageArgs};
use crate::output::{self, read_input, read_stdin, s, time};

/// Most events the API takes in one request.
const MAX_EVENTS_PER_REQUEST: usize = 100;

#[derive(Args, Debug)]
pub struct PublishArgs {
    /// Event type: create, update, delete, createAll, updateAll, deleteAll, or a dotted
    /// name such as invoice.paid.
    #[arg(
        long = "type",
        value_name = "TYPE",
        requires = "object_type",
        conflicts_with = "file"
    )]
    event_type: Option<String>,
    /// The type of object the event is about (user, invoice, …).
    #[arg(long, value_name = "TYPE", requires = "event_type")]
    object_type: Option<String>,
    /// Event data as JSON [default: {}].
    #[arg(
        long,
        value_name = "JSON",
        requires = "event_type",
        conflicts_with = "data_file"
    )]
    data: Option<String>,
    /// Read the event data from this file (`-`: standard input).
    #[arg(long, value_name = "PATH", requires = "event_type")]
    data_file: Option<PathBuf>,
    /// Read whole events from this file (`-`: standard input): one event
    /// {"type","object_type","data"}, a list of them, {"events": [...]}, or JSON lines.
    #[arg(long, short = 'f', value_name = "PATH")]
    file: Option<PathBuf>,
    /// Idempotency-Key: the same key and body within 24 h publish nothing new and
    /// return the same ids.
    #[arg(long, value_name = "KEY")]
    idempotency_key: Option<String>,
}

pub const PUBLISH_HELP: &str = "\
Without --type or --file, events are read from standard input, in any of the --file forms.
More than 100 events are sent 100 per request.

Examples:
  herald publish --type update --object-type user --data '{\"id\":\"42\",\"name\":\"Ada\"}'
  herald publish --type invoice.paid --object-type invoice --data-file invoice.json
  herald publish --file events.json --idempotency-key import-2025-01-31
  echo '{\"type\":\"create\",\"object_type\":\"user\",\"data\":{\"id\":\"7\"}}' | herald publish";

#[derive(Args, Debug)]
pub struct DeliveriesArgs {
    /// Attempts of this webhook, newest first.
    #[arg(
        long,
        value_name = "WEBHOOK_ID",
        required_unless_present = "event",
        conflicts_with = "event"
    )]
    webhook: Option<String>,
    /// Attempts of this event, to every webhook, newest first.
    #[arg(long, value_name = "EVENT_ID")]
    event: Option<String>,
    #[command(flatten)]
    page: PageArgs,
}

pub const DELIVERIES_HELP: &str = "\
Each line is one attempt: when, outcome (succeeded, failed, not_sent), HTTP status,
latency, attempt number, event type, event id, webhook id, and the error if any.

Examples:
  herald deliveries --event evt_0190ab...
  herald deliveries --webhook sub_0190ab... --limit 10
  herald --json deliveries --webhook sub_0190ab... --all | jq '.data[] | select(.outcome != \"succeeded\")'";

#[derive(Args, Debug)]
pub struct TailArgs {
    /// Only this webhook's attempts [default: every webhook of the app].
    #[arg(long, value_name = "WEBHOOK_ID")]
    webhook: Option<String>,
    /// Seconds between polls.
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    interval: f64,
    /// Stop after this many seconds [default: run until Ctrl-C].
    #[arg(long = "for", value_name = "SECS")]
    duration: Option<f64>,
}

pub const TAIL_HELP: &str = "\
Polls the delivery history (GET /v1/webhooks/{id}/deliveries) and prints each attempt
made after it started, oldest first. With --json, one JSON object per line.

Examples:
  herald tail
  herald tail --webhook sub_0190ab...
  herald --json tail --for 30 | jq -c 'select(.outcome == \"failed\")'";

/// The events of a file or standard input.
fn parse_events(bytes: &[u8]) -> Result<Vec<Value>> {
    let text = std::str::from_utf8(bytes).map_err(|_| usage("the events are not UTF-8"))?;
    if text.trim().is_empty() {
        return Err(usage("no events in the input"));
    }
    let events = match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(items)) => items,
        Ok(Value::Object(o)) if o.contains_key("events") => match o.get("events") {
            Some(Value::Array(items)) => items.clone(),
            _ => return Err(usage("\"events\" must be a list of events")),
        },
        Ok(v @ Value::Object(_)) => vec![v],
        Ok(other) => {
            return Err(usage(format!(
                "expected an event object, a list of events or {{\"events\": [...]}}, not {other}"
            )))
        }
        Err(whole) => {
            let mut items = Vec::new();
            for (n, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                items.push(serde_json::from_str(line).map_err(|e| {
                    usage(format!(
                        "the input is neither one JSON document ({whole}) nor JSON lines (line {}: {e})",
                        n + 1
                    ))
                })?);
            }
            items
        }
    };
    if events.is_empty() {
        return Err(usage("no events in the input"));
    }
    Ok(events)
}

pub async fn publish(args: PublishArgs, settings: &Settings) -> Result<()> {
    let events = match (&args.event_type, &args.file) {
        (Some(t), _) => {
            let data = match (&args.data, &args.data_file) {
                (Some(d), _) => d.clone(),
                (None, Some(path)) => String::from_utf8(read_input(path)?)
                    .map_err(|_| usage("the event data is not UTF-8"))?,
                (None, None) => "{}".to_owned(),
            };
            let data: Value = serde_json::from_str(&data)
                .map_err(|e| usage(format!("the event data is not JSON: {e}")))?;
            vec![json!({"type": t, "object_type": args.object_type, "data": data})]
        }
        (None, Some(path)) => parse_events(&read_input(path)?)?,
        (None, None) => parse_events(&read_stdin()?)?,
    };
    if args.idempotency_key.is_some() && events.len() > MAX_EVENTS_PER_REQUEST {
        return Err(usage(format!(
            "--idempotency-key covers one request, at most {MAX_EVENTS_PER_REQUEST} events; \
             this input has {}",
            events.len()
        )));
    }
    let api = app_api(settings)?;
    let headers: Vec<(&str, &str)> = args
        .idempotency_key
        .as_deref()
        .map(|k| ("Idempotency-Key", k))
        .into_iter()
        .collect();
    let mut ids: Vec<String> = Vec::with_capacity(events.len());
    for chunk in events.chunks(MAX_EVENTS_PER_REQUEST) {
        let body = if chunk.len() == 1 && events.len() == 1 {
            chunk[0].clone()
        } else {
            json!({"events": chunk})
        };
        let out = api
            .call(Method::POST, "/v1/events", &[], Some(&body), &headers)
            .await?;
        ids.extend(
            out["ids"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_owned)),
        );
    }
    if settings.json {
        output::json(&json!({"ids": ids}));
    } else {
        for (id, e) in ids.iter().zip(&events) {
            println!(
                "published {id}  {} on {}",
                s(e, "type"),
                s(e, "object_type")
            );
        }
        if ids.len() > 1 {
            println!("{} events published", ids.len());
        }
    }
    Ok(())
}

/// One attempt as a line of text.
pub fn attempt_line(a: &Value) -> String {
    let outcome = s(a, "outcome");
    let mark = match outcome {
        "succeeded" => "✔",
        "failed" => "✘",
        _ => "·",
    };
    let status = a["status_code"]
        .as_u64()
        .map(|c| c.to_string())
        .unwrap_or_else(|| "-".into());
    let mut line = format!(
        "{}  {mark} {outcome:<9}  {status:>3}  {:>5} ms  #{}  {:<12}  {}  → {}",
        time(&a["attempted_at"]),
        a["latency_ms"].as_u64().unwrap_or(0),
        a["attempt"].as_u64().unwrap_or(0),
        s(a, "event_type"),
        s(a, "event_id"),
        s(a, "subscription_id"),
    );
    match (a["error_kind"].as_str(), a["error"].as_str()) {
        (_, Some(e)) => line.push_str(&format!("  ({e})")),
        (Some(k), None) => line.push_str(&format!("  ({k})")),
        _ => {}
    }
    if let Some(next) = a["next_attempt_at"].as_str() {
        line.push_str(&format!("  next attempt {}", time(&Value::from(next))));
    }
    line
}

pub async fn deliveries(args: DeliveriesArgs, settings: &Settings) -> Result<()> {
    let api = app_api(settings)?;
    let path = match (&args.webhook, &args.event) {
        (Some(w), _) => format!("/v1/webhooks/{}/deliveries", seg(w)),
        (None, Some(e)) => format!("/v1/events/{}/deliveries", seg(e)),
        (None, None) => return Err(usage("give --webhook or --event")),
    };
    let page = args.page.fetch(&api, &path).await?;
    if settings.json {
        output::json(&page);
        return Ok(());
    }
    let items = page["data"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        println!("no delivery attempts recorded (yet)");
    }
    for a in &items {
        println!("{}", attempt_line(a));
    }
    more_hint(&page);
    Ok(())
}

/// A key that tells attempts apart.
fn attempt_key(a: &Value) -> String {
    format!(
        "{}|{}|{}|{}",
        s(a, "subscription_id"),
        s(a, "webhook_id"),
        a["attempt"],
        s(a, "attempted_at")
    )
}

/// The newest attempts of the webhooks followed.
async fn poll(api: &Api, webhook: Option<&str>) -> Result<Vec<Value>> {
    let ids: Vec<String> = match webhook {
        Some(w) => vec![w.to_owned()],
        None => api
            .all_pages("/v1/webhooks", vec![("limit", "250".into())])
            .await?
            .iter()
            .filter_map(|w| w["id"].as_str().map(str::to_owned))
            .collect(),
    };
    let mut all = Vec::new();
    for id in ids {
        let page = api
            .get(
                &format!("/v1/webhooks/{}/deliveries", seg(&id)),
                &[("limit", "100".into())],
            )
            .await;
        match page {
            Ok(p) => all.extend(p["data"].as_array().cloned().unwrap_or_default()),
            // A webhook deleted between the list and this call.
            Err(e) if webhook.is_none() && refused_status(&e) == Some(404) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(all)
}

pub async fn tail(args: TailArgs, settings: &Settings) -> Result<()> {
    if !(args.interval.is_finite() && args.interval >= 0.1) {
        return Err(usage("--interval must be at least 0.1 seconds"));
    }
    let api = app_api(settings)?;
    let mut seen: HashSet<String> = poll(&api, args.webhook.as_deref())
        .await?
        .iter()
        .map(attempt_key)
        .collect();
    if !settings.json {
        eprintln!(
            "following new delivery attempts of {} (Ctrl-C to stop)",
            args.webhook
                .as_deref()
                .map(|w| format!("webhook {w}"))
                .unwrap_or_else(|| "every webhook of the app".into())
        );
    }
    let deadline = args
        .duration
        .map(|d| tokio::time::Instant::now() + Duration::from_secs_f64(d.max(0.0)));
    let interval = Duration::from_secs_f64(args.interval);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let sleep = tokio::time::sleep(interval);
        let until_deadline = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut ctrl_c => break,
            _ = until_deadline => break,
            _ = sleep => {}
        }
        let attempts = match poll(&api, args.webhook.as_deref()).await {
            Ok(a) => a,
            Err(e) if matches!(exit_code(&e), EXIT_AUTH | EXIT_USAGE) => return Err(e),
            Err(e) if refused_status(&e).is_some_and(|s| s == 404 || s == 422) => return Err(e),
            Err(e) => {
                eprintln!("herald tail: {e:#} (retrying)");
                continue;
            }
        };
        let mut fresh: Vec<&Value> = attempts
            .iter()
            .filter(|a| seen.insert(attempt_key(a)))
            .collect();
        fresh.sort_by(|a, b| s(a, "attempted_at").cmp(s(b, "attempted_at")));
        for a in fresh {
            if settings.json {
                output::json_line(a);
            } else {
                output::line(attempt_line(a));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_in_every_form() {
        let one = br#"{"type":"update","object_type":"user","data":{}}"#;
        assert_eq!(parse_events(one).unwrap().len(), 1);
        let list =
            br#"[{"type":"a","object_type":"b","data":1},{"type":"c","object_type":"d","data":2}]"#;
        assert_eq!(parse_events(list).unwrap().len(), 2);
        let batch = br#"{"events":[{"type":"a","object_type":"b","data":1}]}"#;
        assert_eq!(parse_events(batch).unwrap().len(), 1);
        let lines = b"{\"type\":\"a\",\"object_type\":\"b\",\"data\":1}\n\n{\"type\":\"c\",\"object_type\":\"d\",\"data\":2}\n";
        assert_eq!(parse_events(lines).unwrap().len(), 2);
        assert!(parse_events(b"").is_err());
        assert!(parse_events(b"[]").is_err());
        assert!(parse_events(b"42").is_err());
        assert!(parse_events(b"{nope").is_err());
    }

    #[test]
    fn attempts_read_as_one_line() {
        let a = json!({"event_id": "evt_1", "event_type": "update", "subscription_id": "sub_1",
            "webhook_id": "msg_1", "attempt": 2, "attempted_at": "2025-01-31T12:00:00Z",
            "outcome": "failed", "status_code": 500, "latency_ms": 12, "error_kind": "http_status",
            "error": null, "response_body": "", "next_attempt_at": "2025-01-31T12:00:05Z"});
        let line = attempt_line(&a);
        for part in [
            "✘ failed",
            "500",
            "#2",
            "evt_1",
            "sub_1",
            "(http_status)",
            "next attempt 2025-01-31 12:00:05.000",
        ] {
            assert!(line.contains(part), "{line} lacks {part}");
        }
    }
}
