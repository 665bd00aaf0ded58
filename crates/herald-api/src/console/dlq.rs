//! The operator's dead-letter queue: what is parked (counts by reason and by app, and
//! samples), and a re-drive with filters, dry run first. Everything goes through the
//! re-driver (`herald_redriver`): its dry run receives with a short visibility timeout
//! and makes every message visible again, so reading the DLQ loses nothing, and a
//! re-drive sends each message before deleting it. Each request looks at no more than
//! [`MAX_PER_REQUEST`] messages, so a page never hangs on a large DLQ.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use herald_redriver::{Filter, Outcome, RedriveOptions, RedriveReport};
use maud::{html, Markup};
use serde::Deserialize;

use super::auth::{FormData, Posted, Signed};
use super::page::{
    csrf_field, page, respond, see_other, time, with_query, ConsoleError, ConsoleResult, Nav,
};
use crate::state::AppState;

/// The most messages one page or one re-drive looks at.
pub const MAX_PER_REQUEST: usize = 100;
/// How long a page's dry run holds the messages it reads (they are made visible again
/// at the end of the run, at once).
const HOLD_SECS: i32 = 30;
/// Samples shown on the DLQ page.
const SAMPLES: usize = 20;

/// The re-drive filters, from the query of a dry run or the fields of its confirmation.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Filters {
    app: Option<String>,
    webhook: Option<String>,
    event_type: Option<String>,
}

fn blank_none(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

impl Filters {
    fn of_form(form: &FormData) -> Self {
        let get = |k: &str| form.get(k).map(str::to_owned);
        Self {
            app: get("app"),
            webhook: get("webhook"),
            event_type: get("event_type"),
        }
    }

    fn options(&self, dry_run: bool) -> RedriveOptions {
        RedriveOptions {
            filter: Filter {
                app_id: blank_none(&self.app),
                subscription_id: blank_none(&self.webhook),
                event_type: blank_none(&self.event_type),
                ..Filter::default()
            },
            dry_run,
            max_messages: Some(MAX_PER_REQUEST),
            max_examined: Some(MAX_PER_REQUEST),
            visibility_timeout_secs: HOLD_SECS,
            ..RedriveOptions::default()
        }
    }

    fn fields(&self) -> [(&'static str, &'static str, Option<&str>); 3] {
        [
            ("app", "App", self.app.as_deref()),
            ("webhook", "Webhook", self.webhook.as_deref()),
            ("event_type", "Event type", self.event_type.as_deref()),
        ]
    }
}

async fn run(state: &AppState, opts: &RedriveOptions) -> ConsoleResult<RedriveReport> {
    let Some(redriver) = &state.redriver else {
        return Err(ConsoleError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the DLQ page reads SQS; in memory mode (herald dev --in-memory) it is not available",
        ));
    };
    redriver
        .run(opts)
        .await
        .map_err(|e| ConsoleError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))
}

fn bound_note() -> Markup {
    html! {
        p.muted #bound { "Each page looks at no more than " (MAX_PER_REQUEST) " parked messages, and each re-drive moves no more than " (MAX_PER_REQUEST) ": run it again for more, or use "
          code { "herald redrive" } " for a large DLQ." }
    }
}

/// What a re-drive did, from the redirect's query.
#[derive(Debug, Default, Deserialize)]
pub struct Done {
    moved: Option<usize>,
    matched: Option<usize>,
    left: Option<usize>,
}

/// `GET /console/ops/dlq`: counts by reason and by app of what is parked, samples, and
/// the re-drive form.
pub async fn show(
    State(state): State<AppState>,
    s: Signed,
    Query(done): Query<Done>,
) -> ConsoleResult {
    s.operator()?;
    let depth = state.dlq.counts().await;
    let report = run(&state, &Filters::default().options(true)).await?;
    let mut by_reason: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_app: BTreeMap<String, usize> = BTreeMap::new();
    for item in &report.items {
        *by_reason
            .entry(item.reason.clone().unwrap_or_else(|| "unknown".into()))
            .or_default() += 1;
        *by_app
            .entry(item.app_id.clone().unwrap_or_else(|| "unknown".into()))
            .or_default() += 1;
    }
    let body = html! {
        h1 { "Dead letters" }
        @if let Some(moved) = done.moved {
            p.notice #redriven role="status" {
                "Re-drive done: " (done.matched.unwrap_or(0)) " matched, " (moved) " moved back to the events queue, "
                (done.left.unwrap_or(0)) " left on the DLQ."
            }
        }
        p {
            @if let Ok(c) = &depth { "The DLQ holds about " b #depth { (c.total()) } " messages (" (c.visible) " visible, " (c.in_flight) " in flight). " }
            "This page looked at " b #examined { (report.examined) } " of them."
        }
        (bound_note())
        div.figures {
            div { h2 { "By reason" } (counts("by-reason", &by_reason)) }
            div { h2 { "By app" } (counts("by-app", &by_app)) }
        }
        h2 { "Samples" }
        (items(&report, SAMPLES))
        h2 { "Re-drive" }
        p { "Choose what to move back to the events queue; you see what would move (a dry run) before anything moves." }
        form.filters method="get" action="/console/ops/dlq/redrive" {
            @for (name, label, value) in Filters::default().fields() {
                div { label for=(name) { (label) } input #(name) type="text" name=(name) value=[value]; }
            }
            div { button type="submit" { "Dry run" } }
        }
    };
    Ok(respond(
        StatusCode::OK,
        page("Dead letters", Some(&s), Nav::DeadLetters, body),
    ))
}

/// `GET /console/ops/dlq/redrive?app=&webhook=&event_type=`: the dry run, and the
/// button that does it.
pub async fn dry_run(
    State(state): State<AppState>,
    s: Signed,
    Query(f): Query<Filters>,
) -> ConsoleResult {
    s.operator()?;
    let report = run(&state, &f.options(true)).await?;
    let would = report
        .items
        .iter()
        .filter(|i| i.outcome == Outcome::WouldMove)
        .count();
    let body = html! {
        h1 { "Re-drive: dry run" }
        p #dry-run-summary { "Dry run: nothing was moved. Looked at " (report.examined) ", " (report.matched) " matched: "
          b #would-move { (would) } " would move, " (report.skipped_unmovable.len()) " cannot be moved." }
        (bound_note())
        dl.props { @for (_, label, value) in f.fields() { dt { (label) } dd { (value.unwrap_or("any")) } } }
        (items(&report, MAX_PER_REQUEST))
        @if would > 0 {
            form method="post" action="/console/ops/dlq/redrive" {
                (csrf_field(&s))
                @for (name, _, value) in f.fields() { @if let Some(v) = value { input type="hidden" name=(name) value=(v); } }
                p { button #confirm-redrive type="submit" { "Re-drive these messages" } }
                p.muted { "What moves is what matches when you confirm, which may differ from this dry run if the DLQ changed since." }
            }
        }
        p { a href="/console/ops/dlq" { "Back to the dead letters" } }
    };
    Ok(respond(
        StatusCode::OK,
        page("Re-drive", Some(&s), Nav::DeadLetters, body),
    ))
}

/// `POST /console/ops/dlq/redrive`: the re-drive, then back to the DLQ page with what
/// it did.
pub async fn redrive(
    State(state): State<AppState>,
    Posted { signed: s, form }: Posted,
) -> ConsoleResult {
    s.operator()?;
    let report = run(&state, &Filters::of_form(&form).options(false)).await?;
    let left = report.matched - report.moved + report.delete_failed.len();
    let n = |v: usize| v.to_string();
    Ok(see_other(&with_query(
        "/console/ops/dlq",
        &[
            ("moved", Some(&n(report.moved))),
            ("matched", Some(&n(report.matched))),
            ("left", Some(&n(left))),
        ],
    )))
}

fn counts(id: &str, counts: &BTreeMap<String, usize>) -> Markup {
    html! {
        @if counts.is_empty() { p.muted { "Nothing parked." } } @else {
            table #(id) { tbody { @for (k, n) in counts { tr { td { (k) } td.num { (n) } } } } }
        }
    }
}

/// The report's messages (at most `max`): decoded facts only, never a payload.
fn items(report: &RedriveReport, max: usize) -> Markup {
    html! {
        @if report.items.is_empty() { p.muted #no-items { "No parked messages." } } @else {
            div.table-wrap { table #dlq-items {
                thead { tr { th { "App" } th { "Webhook" } th { "Event type" } th { "Event" } th { "Reason" } th { "Parked at" } } }
                tbody { @for i in report.items.iter().take(max) { tr {
                    td { (i.app_id.as_deref().unwrap_or("?")) }
                    td { (i.subscription_id.as_deref().unwrap_or("?")) }
                    td { (i.event_type.as_deref().unwrap_or("?")) }
                    td { code { (i.event_id.as_deref().unwrap_or("?")) } }
                    td { (i.reason.as_deref().unwrap_or("?")) }
                    td { (time(i.parked_at)) }
                } } }
            } }
        }
    }
}
