//! The tenant's overview: the last 24 hours of every webhook's health added up, the
//! failing webhooks, and a chart of attempts and failures per hour.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use maud::html;

use super::auth::Signed;
use super::chart;
use super::page::{badge, page, percent, respond, time, ConsoleResult, Nav};
use crate::apps::PageParams;
use crate::health::HourOut;
use crate::state::AppState;
use crate::webhooks::{list_webhooks, MAX_WEBHOOKS_PER_PAGE};

/// `GET /console/overview`: from the first page of webhooks (up to 100), the same
/// health figures `GET /v1/webhooks` gives.
pub async fn show(State(state): State<AppState>, s: Signed) -> ConsoleResult {
    let app = s.tenant()?;
    let p = PageParams {
        limit: Some(MAX_WEBHOOKS_PER_PAGE),
        cursor: None,
    };
    let webhooks = list_webhooks(&state, &app, &p).await?;
    let healths: Vec<_> = webhooks
        .data
        .iter()
        .filter_map(|w| w.health.as_ref())
        .collect();
    let attempts: u64 = healths.iter().map(|h| h.last_24h.attempts).sum();
    let successes: u64 = healths.iter().map(|h| h.last_24h.successes).sum();
    let failures: u64 = healths.iter().map(|h| h.last_24h.failures).sum();
    let rate = (attempts > 0).then(|| successes as f64 / attempts as f64);
    // The hours of every webhook added up, by hour.
    let mut hours: Vec<HourOut> = Vec::new();
    for h in healths.iter().flat_map(|h| &h.hours) {
        match hours.iter_mut().find(|x| x.hour == h.hour) {
            Some(x) => {
                x.attempts += h.attempts;
                x.failures += h.failures;
            }
            None => hours.push(h.clone()),
        }
    }
    hours.sort_by_key(|h| h.hour);
    let failing: Vec<_> = webhooks
        .data
        .iter()
        .filter(|w| {
            !w.active
                || w.health
                    .as_ref()
                    .is_some_and(|h| h.consecutive_failures > 0)
        })
        .collect();
    let last_success: Option<DateTime<Utc>> =
        healths.iter().filter_map(|h| h.last_success_at).max();
    let body = html! {
        h1 { "Overview" }
        div.figures #figures {
            div.figure { b #attempts-24h { (attempts) } "attempts in 24 h" }
            div.figure { b { (percent(rate)) } "succeeded" }
            div.figure { b #failures-24h { (failures) } "failed" }
            div.figure { b { (failing.len()) } "failing or disabled webhooks" }
            div.figure { b { (webhooks.data.len()) } "webhooks" }
        }
        p.muted { "Last success: " (time(last_success)) }
        h2 { "Attempts per hour" }
        (chart::hourly(&hours))
        h2 { "Failing webhooks" }
        @if failing.is_empty() { p.muted { "None: every webhook's last attempt succeeded." } } @else {
            div.table-wrap { table {
                thead { tr { th { "Webhook" } th { "State" } th.num { "Failures since success" } th { "Last failure" } } }
                tbody { @for w in &failing { tr {
                    td { a href=(format!("/console/webhooks/{}", w.id)) { (w.url) } }
                    td { @if w.active { (badge("failing")) } @else { (badge("disabled")) " " span.muted { (w.disabled_reason.as_deref().unwrap_or_default()) } } }
                    td.num { (w.health.as_ref().map_or(0, |h| h.consecutive_failures)) }
                    td { (time(w.health.as_ref().and_then(|h| h.last_failure_at))) }
                } } }
            } }
        }
    };
    Ok(respond(
        StatusCode::OK,
        page("Overview", Some(&s), Nav::Overview, body),
    ))
}
