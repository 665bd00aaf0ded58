//! Delivery pages: the app's and one webhook's attempts, filtered by outcome and time
//! and paged with cursor links (the first page refreshes itself with htmx), and one
//! attempt's detail.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{TimeDelta, Utc};
use maud::{html, Markup};
use serde::Deserialize;

use super::auth::Signed;
use super::page::{badge, page, respond, time, with_query, ConsoleError, ConsoleResult, Nav};
use crate::apps::PageParams;
use crate::deliveries::{list_attempts, AttemptOut, DeliveryFilterParams, DeliveryScope};
use crate::state::AppState;
use crate::webhooks::{get_webhook, WebhookOut};

/// Attempts on one page.
const PER_PAGE: i32 = 50;

/// The filters of a delivery page, as its query.
#[derive(Debug, Default, Deserialize)]
pub struct Filters {
    outcome: Option<String>,
    since: Option<String>,
    cursor: Option<String>,
}

/// A window choice (`1h`, `24h`, `7d`; anything else: all time) as an RFC 3339 start.
pub fn window_start(choice: Option<&str>) -> Option<String> {
    let hours = match choice? {
        "1h" => 1,
        "24h" => 24,
        "7d" => 24 * 7,
        _ => return None,
    };
    Some((Utc::now() - TimeDelta::hours(hours)).to_rfc3339())
}

/// The window choices of the filter forms.
pub fn window_select(current: Option<&str>) -> Markup {
    html! {
        select #since name="since" {
            @for (value, label) in [("", "any time"), ("1h", "last hour"), ("24h", "last 24 h"), ("7d", "last 7 days")] {
                option value=(value) selected[current.unwrap_or("") == value] { (label) }
            }
        }
    }
}

/// A table of attempts; `with_webhook` adds the webhook column.
pub fn attempts_table(attempts: &[AttemptOut], with_webhook: bool) -> Markup {
    html! {
        @if attempts.is_empty() {
            p.muted { "No deliveries." }
        } @else {
            div.table-wrap { table {
                thead { tr {
                    th { "When" } th { "Event" }
                    @if with_webhook { th { "Webhook" } }
                    th.num { "Attempt" } th { "Outcome" } th.num { "Status" } th.num { "Latency" } th { "" }
                } }
                tbody { @for a in attempts { tr.attempt {
                    td { (time(Some(a.attempted_at))) }
                    td { a href=(format!("/console/events/{}", a.event_id)) { (a.event_type) } }
                    @if with_webhook { td { a href=(format!("/console/webhooks/{}", a.subscription_id)) { code { (a.subscription_id) } } } }
                    td.num { (a.attempt) }
                    td { (badge(&a.outcome)) }
                    td.num { (a.status_code.map_or("—".to_owned(), |c| c.to_string())) }
                    td.num { (a.latency_ms) " ms" }
                    td { a.open-attempt href=(format!("/console/events/{}/attempts/{}/{}", a.event_id, a.subscription_id, a.attempt)) { "details" } }
                } } }
            } }
        }
    }
}

async fn listing(
    state: &AppState,
    s: &Signed,
    scope: DeliveryScope<'_>,
    path: &str,
    f: Filters,
) -> ConsoleResult {
    let app = s.tenant()?;
    let heading = match scope {
        DeliveryScope::Webhook(id) => {
            let w = get_webhook(state, &app, id).await?;
            html! { p { a href=(format!("/console/webhooks/{}", w.id)) { "← " (w.url) } } h1 { "Deliveries of this webhook" } }
        }
        _ => html! { h1 { "Deliveries" } },
    };
    let filter = DeliveryFilterParams {
        outcome: f.outcome.clone().filter(|o| !o.is_empty()),
        since: window_start(f.since.as_deref()),
        ..Default::default()
    };
    let p = PageParams {
        limit: Some(PER_PAGE),
        cursor: f.cursor.clone(),
    };
    let page_of = list_attempts(state, &app, scope, &p, &filter).await?;
    let here = with_query(
        path,
        &[
            ("outcome", f.outcome.as_deref()),
            ("since", f.since.as_deref()),
        ],
    );
    let next = page_of.next_cursor.as_deref().map(|c| {
        with_query(
            path,
            &[
                ("outcome", f.outcome.as_deref()),
                ("since", f.since.as_deref()),
                ("cursor", Some(c)),
            ],
        )
    });
    let first_page = f.cursor.is_none();
    let body = html! {
        (heading)
        form.filters method="get" action=(path) {
            div { label for="outcome" { "Outcome" }
                select #outcome name="outcome" {
                    @for (value, label) in [("", "any"), ("succeeded", "succeeded"), ("failed", "failed"), ("not_sent", "not sent")] {
                        option value=(value) selected[f.outcome.as_deref().unwrap_or("") == value] { (label) }
                    }
                } }
            div { label for="since" { "When" } (window_select(f.since.as_deref())) }
            button type="submit" { "Filter" }
        }
        // The first page follows new attempts: htmx fetches it again every 5 s and
        // swaps in its table; without JavaScript, reload the page.
        @if first_page {
            div #deliveries hx-get=(here) hx-trigger="every 5s" hx-select="#deliveries" hx-swap="outerHTML" {
                (attempts_table(&page_of.data, matches!(scope, DeliveryScope::App)))
            }
        } @else {
            div #deliveries { (attempts_table(&page_of.data, matches!(scope, DeliveryScope::App))) }
        }
        div.pager {
            @if !first_page { a href=(here) { "← Newest" } }
            @if let Some(next) = next { a href=(next) { "Older →" } }
        }
    };
    Ok(respond(
        StatusCode::OK,
        page("Deliveries", Some(s), Nav::Deliveries, body),
    ))
}

/// `GET /console/deliveries`.
pub async fn of_app(
    State(state): State<AppState>,
    s: Signed,
    Query(f): Query<Filters>,
) -> ConsoleResult {
    listing(&state, &s, DeliveryScope::App, "/console/deliveries", f).await
}

/// `GET /console/webhooks/{id}/deliveries`.
pub async fn of_webhook(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
    Query(f): Query<Filters>,
) -> ConsoleResult {
    let path = format!("/console/webhooks/{id}/deliveries");
    listing(&state, &s, DeliveryScope::Webhook(&id), &path, f).await
}

/// `GET /console/events/{id}/attempts/{webhook}/{attempt}`: one attempt, with the
/// request's headers as Herald sent them (the signature and credential values hidden).
pub async fn attempt(
    State(state): State<AppState>,
    s: Signed,
    Path((event, webhook, n)): Path<(String, String, u32)>,
) -> ConsoleResult {
    let app = s.tenant()?;
    let w = get_webhook(&state, &app, &webhook).await?;
    let p = PageParams {
        limit: Some(250),
        cursor: None,
    };
    let attempts = list_attempts(
        &state,
        &app,
        DeliveryScope::Event(&event),
        &p,
        &DeliveryFilterParams::default(),
    )
    .await?;
    let a = attempts
        .data
        .into_iter()
        .find(|a| a.subscription_id == w.id && a.attempt == n)
        .ok_or_else(|| {
            ConsoleError::new(
                StatusCode::NOT_FOUND,
                format!("attempt {n} of event {event} to webhook {webhook} not found"),
            )
        })?;
    let body = html! {
        p { a href=(format!("/console/events/{}", a.event_id)) { "← Event " (a.event_id) } }
        h1 { "Attempt " (a.attempt) " of " (a.event_type) }
        dl.props #attempt {
            dt { "Outcome" } dd { (badge(&a.outcome)) }
            dt { "Status" } dd #status-code { (a.status_code.map_or("none".to_owned(), |c| c.to_string())) }
            dt { "Latency" } dd { (a.latency_ms) " ms" }
            dt { "Made at" } dd { (time(Some(a.attempted_at))) }
            dt { "Next attempt" } dd { (time(a.next_attempt_at)) }
            @if let Some(k) = &a.error_kind { dt { "Error kind" } dd { (k) } }
            @if let Some(e) = &a.error { dt { "Error" } dd { (e) } }
            dt { "Webhook" } dd { a href=(format!("/console/webhooks/{}", w.id)) { (w.url) } }
        }
        h2 { "Request headers" }
        p.muted { "This attempt's id and time; the URL, format and custom headers as the webhook has them now." }
        pre #request-headers {
            "POST " (w.url) "\n"
            @for (k, v) in request_headers(&w, &a) { (k) ": " (v) "\n" }
        }
        h2 { "Response excerpt" }
        @if a.response_body.is_empty() { p.muted { "None kept (Herald keeps the start of failed responses only)." } }
        @else { pre #response-body { (a.response_body) } }
    };
    Ok(respond(
        StatusCode::OK,
        page("Attempt", Some(&s), Nav::Deliveries, body),
    ))
}

/// The headers a delivery of `webhook` sent for `attempt`, as the delivery path
/// (`herald_delivery::DeliveryRequest`) writes them for the webhook's format and
/// content type: `content-type`, `webhook-id`, then the format's signature headers (the
/// signature itself not shown), then the custom headers as the API shows them
/// (credential values masked). The HTTP client's own (`user-agent`, `host`,
/// `content-length`) are left out.
fn request_headers(webhook: &WebhookOut, attempt: &AttemptOut) -> Vec<(String, String)> {
    use herald_core::{para, signing, ContentType, PayloadFormat};
    let format = webhook.format.parse().unwrap_or_default();
    let content_type: ContentType = webhook
        .content_type
        .parse()
        .unwrap_or_else(|_| PayloadFormat::default_content_type(format));
    let mut headers = vec![
        ("content-type".to_owned(), content_type.mime().to_owned()),
        (signing::HEADER_ID.to_owned(), attempt.webhook_id.clone()),
    ];
    match format {
        PayloadFormat::Standard => headers.extend([
            (
                signing::HEADER_TIMESTAMP.to_owned(),
                attempt.attempted_at.timestamp().to_string(),
            ),
            (
                signing::HEADER_SIGNATURE.to_owned(),
                "v1,… (not shown)".to_owned(),
            ),
        ]),
        PayloadFormat::Para => headers.extend([
            (
                para::HEADER_SIGNATURE.to_owned(),
                "… (not shown)".to_owned(),
            ),
            (para::HEADER_EVENT.to_owned(), attempt.event_type.clone()),
        ]),
    }
    // The format's headers replace custom ones of the same names, as they do when sent.
    let custom: Vec<_> = webhook
        .headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value.clone()))
        .filter(|(name, _)| {
            !herald_core::is_reserved_header(name) && !headers.iter().any(|(n, _)| n == name)
        })
        .collect();
    headers.extend(custom);
    headers
}
