//! `herald publish`, `herald events`, `herald deliveries` and `herald tail`, through
//! the API.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, Utc};
use clap::Args;
use herald_api::apps::PageParams;
use herald_api::deliveries::{AttemptOut, DeliveryFilterParams};
use herald_api::event_listing::EventListParams;
use herald_api::events::{EventBatchIn, EventIn, PublishIn, Published};
use serde_json::Value;

use crate::api::{refused_status, ApiClient, Paging};
use crate::config::Settings;
use crate::failure::{exit_code, failed, usage, EXIT_AUTH, EXIT_USAGE};
use crate::manage::{more_hint, PageArgs};
use crate::output::{self, read_input, read_stdin, time};

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
    /// Who made the change: the actor's id (with --type; in --file events, `actor`).
    #[arg(long, value_name = "ID", requires = "event_type")]
    actor_id: Option<String>,
    /// The actor's kind (user, service, …).
    #[arg(long, value_name = "TYPE", requires = "actor_id")]
    actor_type: Option<String>,
    /// The actor's display name.
    #[arg(long, value_name = "NAME", requires = "actor_id")]
    actor_name: Option<String>,
    /// What changed, as JSON: {"field": [before, after], …} (at most 100 fields).
    #[arg(long, value_name = "JSON", requires = "event_type")]
    changes: Option<String>,
    /// What orders the event for ordered webhooks (the object's id, say; in --file
    /// events, `ordering_key`): their deliveries of one key are made in publish order.
    #[arg(long, value_name = "KEY", requires = "event_type")]
    ordering_key: Option<String>,
    /// Also deliver the event to this URL, signed with the app's callback secret
    /// (`herald callback-secret rotate` creates it; in --file events, `callback_url`).
    #[arg(long, value_name = "URL", requires = "event_type")]
    callback_url: Option<String>,
}

/// The `--help` epilogue of `herald publish`.
pub const PUBLISH_HELP: &str = "\
Without --type or --file, events are read from standard input, in any of the --file forms.
More than 100 events are sent 100 per request.

Examples:
  herald publish --type update --object-type user --data '{\"id\":\"42\",\"name\":\"Ada\"}'
  herald publish --type invoice.paid --object-type invoice --data-file invoice.json
  herald publish --type update --object-type invoice --data '{\"id\":\"inv_1\"}' \\
      --actor-id u_42 --actor-type user --actor-name Ada --changes '{\"status\":[\"draft\",\"paid\"]}'
  herald publish --type update --object-type invoice --data '{\"id\":\"inv_1\"}' --ordering-key inv_1
  herald publish --file events.json --idempotency-key import-2025-01-31
  echo '{\"type\":\"create\",\"object_type\":\"user\",\"data\":{\"id\":\"7\"}}' | herald publish";

#[derive(Args, Debug)]
pub struct DeliveriesArgs {
    /// Attempts of this webhook, newest first [default: every webhook of the app].
    #[arg(long, value_name = "WEBHOOK_ID", conflicts_with = "event")]
    webhook: Option<String>,
    /// Attempts of this event, to every webhook, newest first.
    #[arg(long, value_name = "EVENT_ID")]
    event: Option<String>,
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    page: PageArgs,
}

/// The filters of `herald deliveries`.
#[derive(Args, Debug, Default)]
pub struct FilterArgs {
    /// Only attempts that ended so.
    #[arg(long, value_enum)]
    outcome: Option<OutcomeArg>,
    /// Only attempts made since this time: RFC 3339 (2026-12-01T10:00:00Z) or a
    /// duration ago (90m, 2h, 7d).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Only attempts made before this time (same forms as --since).
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// Only attempts of events of this type.
    #[arg(long, value_name = "TYPE")]
    event_type: Option<String>,
}

/// An attempt's outcome, as `--outcome` takes it.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutcomeArg {
    Succeeded,
    Failed,
    NotSent,
}

impl FilterArgs {
    /// The API's filter parameters, times given as durations made absolute (now less
    /// the duration).
    fn params(&self, now: DateTime<Utc>) -> Result<DeliveryFilterParams> {
        Ok(DeliveryFilterParams {
            outcome: self.outcome.map(|o| {
                match o {
                    OutcomeArg::Succeeded => "succeeded",
                    OutcomeArg::Failed => "failed",
                    OutcomeArg::NotSent => "not_sent",
                }
                .to_owned()
            }),
            since: flag_time("since", &self.since, now)?,
            until: flag_time("until", &self.until, now)?,
            event_type: self.event_type.clone(),
        })
    }
}

/// The time flag `--{flag}`'s value made absolute (usage error naming the flag).
pub(crate) fn flag_time(
    flag: &str,
    value: &Option<String>,
    now: DateTime<Utc>,
) -> Result<Option<String>> {
    value
        .as_deref()
        .map(|v| absolute_time(v, now).map_err(|e| usage(format!("--{flag}: {e}"))))
        .transpose()
}

/// `text` as an RFC 3339 time: itself if it is one, else a duration before `now`.
fn absolute_time(text: &str, now: DateTime<Utc>) -> Result<String, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc).to_rfc3339());
    }
    let ago = herald_core::retry::parse_duration(text)
        .map_err(|_| format!("{text:?} is neither an RFC 3339 time nor a duration such as 2h"))?;
    let ago = chrono::TimeDelta::from_std(ago).map_err(|_| format!("{text:?} is too long ago"))?;
    Ok((now - ago).to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// The `--help` epilogue of `herald deliveries`.
pub const DELIVERIES_HELP: &str = "\
Each line is one attempt: when, outcome (succeeded, failed, not_sent), HTTP status,
latency, attempt number, event type, event id, webhook id, and the error if any.

Without --webhook or --event, the attempts of every webhook of the app, newest first.

Examples:
  herald deliveries --outcome failed --since 1h
  herald deliveries --event evt_0190ab...
  herald deliveries --webhook sub_0190ab... --limit 10
  herald deliveries --webhook sub_0190ab... --outcome failed --since 2h
  herald deliveries --event evt_0190ab... --outcome succeeded
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

/// The `--help` epilogue of `herald tail`.
pub const TAIL_HELP: &str = "\
Polls the delivery history (GET /v1/deliveries, or GET /v1/webhooks/{id}/deliveries with
--webhook) and prints each attempt made after it started, oldest first. With --json, one
JSON object per line.

Examples:
  herald tail
  herald tail --webhook sub_0190ab...
  herald --json tail --for 30 | jq -c 'select(.outcome == \"failed\")'";

/// The events of a file or standard input. Input that is not JSON in one of the forms
/// is a usage error; an event of the wrong shape fails as the API would refuse it.
fn parse_events(bytes: &[u8]) -> Result<Vec<EventIn>> {
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
    let count = events.len();
    events
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            serde_json::from_value(e).map_err(|e| match count {
                1 => failed(format!("the event is not valid: {e}")),
                _ => failed(format!("event {} of {count} is not valid: {e}", i + 1)),
            })
        })
        .collect()
}

/// Runs `herald publish`.
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
            let object_type = args
                .object_type
                .clone()
                .ok_or_else(|| usage("--type needs --object-type"))?;
            let changes = args
                .changes
                .as_deref()
                .map(serde_json::from_str::<Value>)
                .transpose()
                .map_err(|e| usage(format!("--changes is not JSON: {e}")))?;
            let actor = args.actor_id.as_ref().map(|id| {
                let mut actor = serde_json::json!({ "id": id });
                if let Some(t) = &args.actor_type {
                    actor["type"] = Value::from(t.as_str());
                }
                if let Some(n) = &args.actor_name {
                    actor["name"] = Value::from(n.as_str());
                }
                actor
            });
            vec![EventIn {
                event_type: t.clone(),
                object_type,
                data,
                actor,
                changes,
                ordering_key: args.ordering_key.clone(),
                callback_url: args.callback_url.clone(),
            }]
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
    let api = ApiClient::app(settings)?;
    let mut ids: Vec<String> = Vec::with_capacity(events.len());
    for chunk in events.chunks(MAX_EVENTS_PER_REQUEST) {
        let body = match chunk {
            [one] if events.len() == 1 => PublishIn::One(one.clone()),
            _ => PublishIn::Batch(EventBatchIn {
                events: chunk.to_vec(),
            }),
        };
        let published = api.publish(&body, args.idempotency_key.as_deref()).await?;
        ids.extend(published.ids);
    }
    if settings.json {
        output::json(&Published { ids });
    } else {
        for (id, e) in ids.iter().zip(&events) {
            println!("published {id}  {} on {}", e.event_type, e.object_type);
        }
        if ids.len() > 1 {
            println!("{} events published", ids.len());
        }
    }
    Ok(())
}

/// One attempt as a line of text.
pub fn attempt_line(a: &AttemptOut) -> String {
    let outcome = a.outcome.as_str();
    let mark = match outcome {
        "succeeded" => "✔",
        "failed" => "✘",
        _ => "·",
    };
    let status = a
        .status_code
        .map(|c| c.to_string())
        .unwrap_or_else(|| "-".into());
    let mut line = format!(
        "{}  {mark} {outcome:<9}  {status:>3}  {:>5} ms  #{}  {:<12}  {}  → {}",
        time(&a.attempted_at),
        a.latency_ms,
        a.attempt,
        a.event_type,
        a.event_id,
        a.subscription_id,
    );
    match (&a.error_kind, &a.error) {
        (_, Some(e)) => line.push_str(&format!("  ({e})")),
        (Some(k), None) => line.push_str(&format!("  ({k})")),
        _ => {}
    }
    if let Some(next) = &a.next_attempt_at {
        line.push_str(&format!("  next attempt {}", time(next)));
    }
    line
}

/// `herald events`.
#[derive(clap::Subcommand, Debug)]
pub enum EventsCommand {
    /// The app's events, newest first (those that matched a webhook, for the history
    /// retention).
    #[command(
        after_help = "Each line: published, type, object type, event id, webhooks sent to.\n\n\
        Examples:\n  \
        herald events list --since 1h\n  \
        herald events list --type invoice.paid --object-type invoice --limit 10\n  \
        herald --json events list --all --since 1d | jq '.data[].id'"
    )]
    List(EventListArgs),
    /// One event: its data as published and its delivery status at each webhook.
    #[command(
        after_help = "Each webhook the event matched, with its status: succeeded, failing (a retry\n\
        is due), parked (on the dead-letter queue), not_sent (the endpoint was disabled) or pending.\n\n\
        Examples:\n  \
        herald events get evt_0190ab...\n  \
        herald --json events get evt_0190ab... | jq .data"
    )]
    Get {
        /// The event's id (`evt_…`, as `herald publish` printed it).
        id: String,
    },
}

/// The `--help` epilogue of `herald events`.
pub const EVENTS_HELP: &str = "\
Examples:
  herald events list --since 2h --type update
  herald events get evt_0190ab...";

/// `herald events list`.
#[derive(Args, Debug)]
pub struct EventListArgs {
    /// Only events of this type.
    #[arg(long = "type", value_name = "TYPE")]
    event_type: Option<String>,
    /// Only events about this object type.
    #[arg(long, value_name = "TYPE")]
    object_type: Option<String>,
    /// Only events published since this time: RFC 3339 or a duration ago (90m, 2h, 7d).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Only events published before this time (same forms as --since).
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    #[command(flatten)]
    page: PageArgs,
}

/// Runs `herald events`.
pub async fn events(command: EventsCommand, settings: &Settings) -> Result<()> {
    match command {
        EventsCommand::List(args) => list_events(args, settings).await,
        EventsCommand::Get { id } => get_event(&id, settings).await,
    }
}

/// Runs `herald events list`.
async fn list_events(args: EventListArgs, settings: &Settings) -> Result<()> {
    let api = ApiClient::app(settings)?;
    let now = Utc::now();
    let filter = EventListParams {
        event_type: args.event_type.clone(),
        object_type: args.object_type.clone(),
        since: flag_time("since", &args.since, now)?,
        until: flag_time("until", &args.until, now)?,
    };
    let page = api.list_events(&filter, &args.page.paging()).await?;
    if settings.json {
        output::json(&page);
        return Ok(());
    }
    if page.data.is_empty() {
        println!("no events");
    }
    for e in &page.data {
        let mut to = e.sent_to.join(", ");
        if !e.not_sent.is_empty() {
            to.push_str(&format!("  (not sent: {})", e.not_sent.join(", ")));
        }
        let by = e
            .event
            .actor
            .as_ref()
            .map(|a| format!("  by {}", a.id))
            .unwrap_or_default();
        println!(
            "{}  {:<14} {:<10} {}{by}  → {to}",
            time(&e.event.timestamp),
            e.event.event_type,
            e.event.object_type,
            e.event.id
        );
    }
    more_hint(&page);
    Ok(())
}

/// Runs `herald events get`.
async fn get_event(id: &str, settings: &Settings) -> Result<()> {
    let api = ApiClient::app(settings)?;
    let e = api.get_event(id).await?;
    if settings.json {
        output::json(&e);
        return Ok(());
    }
    println!(
        "{}  {} on {}  published {}",
        e.event.id,
        e.event.event_type,
        e.event.object_type,
        time(&e.event.timestamp)
    );
    println!("data: {}", e.event.data);
    if let Some(a) = &e.event.actor {
        let kind = a
            .actor_type
            .as_deref()
            .map(|t| format!(" ({t})"))
            .unwrap_or_default();
        let name = a
            .name
            .as_deref()
            .map(|n| format!(" {n}"))
            .unwrap_or_default();
        println!("by: {}{kind}{name}", a.id);
    }
    if let Some(changes) = &e.event.changes {
        println!("changes: {changes}");
    }
    if e.webhooks.is_empty() {
        println!("no webhook took it");
    }
    for w in &e.webhooks {
        let mut line = format!(
            "  {}  {:<9} attempts {}",
            w.webhook_id, w.status, w.attempts
        );
        if let Some(code) = w.last_status_code {
            line.push_str(&format!("  last HTTP {code}"));
        }
        if let Some(next) = w.next_attempt_at {
            line.push_str(&format!("  next {}", time(&next)));
        }
        println!("{line}");
    }
    Ok(())
}

/// Runs `herald deliveries`.
pub async fn deliveries(args: DeliveriesArgs, settings: &Settings) -> Result<()> {
    let api = ApiClient::app(settings)?;
    let paging = args.page.paging();
    let filter = args.filter.params(Utc::now())?;
    let page = match (&args.webhook, &args.event) {
        (Some(w), _) => api.webhook_deliveries(w, &filter, &paging).await?,
        (None, Some(e)) => api.event_deliveries(e, &filter, &paging).await?,
        (None, None) => api.app_deliveries(&filter, &paging).await?,
    };
    if settings.json {
        output::json(&page);
        return Ok(());
    }
    if page.data.is_empty() {
        println!("no delivery attempts recorded (yet)");
    }
    for a in &page.data {
        println!("{}", attempt_line(a));
    }
    more_hint(&page);
    Ok(())
}

/// What tells attempts apart.
type AttemptKey = (String, String, u32, DateTime<Utc>);

fn attempt_key(a: &AttemptOut) -> AttemptKey {
    (
        a.subscription_id.clone(),
        a.webhook_id.clone(),
        a.attempt,
        a.attempted_at,
    )
}

/// `limit` items per page; every page with `all`.
fn paging(limit: i32, all: bool) -> Paging {
    Paging {
        params: PageParams {
            limit: Some(limit),
            cursor: None,
        },
        all,
    }
}

/// How far back each poll of `herald tail` reads: a batch's attempts reach the
/// history when the batch ends, at most this long after they were made.
const TAIL_WINDOW: chrono::TimeDelta = chrono::TimeDelta::minutes(15);
/// Pages one poll reads at most (250 attempts each).
const TAIL_PAGES: usize = 4;

/// The newest attempts (of the last [`TAIL_WINDOW`]) of the webhook followed, or of
/// every webhook of the app through the app-wide listing: pages until one holds
/// nothing unseen.
async fn poll(
    api: &ApiClient,
    webhook: Option<&str>,
    seen: &HashSet<AttemptKey>,
) -> Result<Vec<AttemptOut>> {
    let filter = DeliveryFilterParams {
        since: Some(
            (Utc::now() - TAIL_WINDOW).to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        ),
        ..Default::default()
    };
    let mut page_args = paging(250, false);
    let mut all = Vec::new();
    for _ in 0..TAIL_PAGES {
        let page = match webhook {
            Some(w) => api.webhook_deliveries(w, &filter, &page_args).await?,
            None => api.app_deliveries(&filter, &page_args).await?,
        };
        let unseen = page.data.iter().any(|a| !seen.contains(&attempt_key(a)));
        all.extend(page.data);
        match page.next_cursor {
            Some(c) if unseen => page_args.params.cursor = Some(c),
            _ => break,
        }
    }
    Ok(all)
}

/// Runs `herald tail`.
pub async fn tail(args: TailArgs, settings: &Settings) -> Result<()> {
    if !(args.interval.is_finite() && args.interval >= 0.1) {
        return Err(usage("--interval must be at least 0.1 seconds"));
    }
    let api = ApiClient::app(settings)?;
    let mut seen: HashSet<AttemptKey> = poll(&api, args.webhook.as_deref(), &HashSet::new())
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
        let attempts = match poll(&api, args.webhook.as_deref(), &seen).await {
            Ok(a) => a,
            Err(e) if matches!(exit_code(&e), EXIT_AUTH | EXIT_USAGE) => return Err(e),
            Err(e) if refused_status(&e).is_some_and(|s| s == 404 || s == 422) => return Err(e),
            Err(e) => {
                eprintln!("herald tail: {e:#} (retrying)");
                continue;
            }
        };
        let mut fresh: Vec<&AttemptOut> = attempts
            .iter()
            .filter(|a| seen.insert(attempt_key(a)))
            .collect();
        fresh.sort_by_key(|a| a.attempted_at);
        // What the next poll cannot return again need not be remembered.
        let horizon = Utc::now() - TAIL_WINDOW - TAIL_WINDOW;
        seen.retain(|k| k.3 >= horizon);
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
    fn events_of_the_wrong_shape_fail_as_the_api_would_refuse_them() {
        use crate::failure::EXIT_FAILED;
        let missing = br#"[{"type":"a","object_type":"b","data":1},{"type":"c","data":2}]"#;
        let e = parse_events(missing).unwrap_err();
        assert_eq!(exit_code(&e), EXIT_FAILED);
        assert!(e.to_string().contains("event 2 of 2"), "{e}");
        assert!(e.to_string().contains("object_type"), "{e}");
        let unknown = br#"{"type":"a","object_type":"b","data":1,"id":"x"}"#;
        assert_eq!(exit_code(&parse_events(unknown).unwrap_err()), EXIT_FAILED);
    }

    #[test]
    fn attempts_read_as_one_line() {
        let a: AttemptOut = serde_json::from_value(serde_json::json!({"event_id": "evt_1", "event_type": "update", "subscription_id": "sub_1",
            "webhook_id": "msg_1", "attempt": 2, "attempted_at": "2025-01-31T12:00:00Z",
            "outcome": "failed", "status_code": 500, "latency_ms": 12, "error_kind": "http_status",
            "error": null, "response_body": "", "next_attempt_at": "2025-01-31T12:00:05Z"}))
        .unwrap();
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
