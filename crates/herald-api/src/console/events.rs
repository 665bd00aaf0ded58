//! Event pages: the app's events newest first, filtered by type, object type and time;
//! one event's payload, its status at each webhook and its attempts; re-sending it.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use maud::html;
use serde::Deserialize;

use super::auth::{Posted, Signed};
use super::deliveries::{attempts_table, window_select, window_start};
use super::page::{badge, page, respond, see_other, time, with_query, ConsoleResult, Nav};
use crate::apps::PageParams;
use crate::deliveries::{list_attempts, DeliveryFilterParams, DeliveryScope};
use crate::event_listing::{list_events_of, EventListParams};
use crate::event_status::event_status;
use crate::events::{resend_event, ResendIn};
use crate::state::AppState;

/// The filters of the event list, as its query.
#[derive(Debug, Default, Deserialize)]
pub struct Filters {
    #[serde(rename = "type")]
    event_type: Option<String>,
    object_type: Option<String>,
    since: Option<String>,
    cursor: Option<String>,
}

/// `GET /console/events`.
pub async fn list(
    State(state): State<AppState>,
    s: Signed,
    Query(f): Query<Filters>,
) -> ConsoleResult {
    let app = s.tenant()?;
    let blank = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
    let params = EventListParams {
        event_type: blank(&f.event_type),
        object_type: blank(&f.object_type),
        since: window_start(f.since.as_deref()),
        until: None,
    };
    let p = PageParams {
        limit: Some(50),
        cursor: f.cursor.clone(),
    };
    let events = list_events_of(&state, &app, &p, &params).await?;
    let query = |cursor: Option<&str>| {
        with_query(
            "/console/events",
            &[
                ("type", f.event_type.as_deref()),
                ("object_type", f.object_type.as_deref()),
                ("since", f.since.as_deref()),
                ("cursor", cursor),
            ],
        )
    };
    let body = html! {
        h1 { "Events" }
        form.filters method="get" action="/console/events" role="search" {
            div { label for="type" { "Type" } input #type type="text" name="type" value=[f.event_type.as_deref()] placeholder="update"; }
            div { label for="object_type" { "Object type" } input #object_type type="text" name="object_type" value=[f.object_type.as_deref()] placeholder="user"; }
            div { label for="since" { "When" } (window_select(f.since.as_deref())) }
            button type="submit" { "Search" }
        }
        @if events.data.is_empty() { p.muted { "No events." } } @else {
            div.table-wrap { table #events {
                thead { tr { th { "When" } th { "Event" } th { "Type" } th { "Object type" } th.num { "Sent to" } th.num { "Not sent" } } }
                tbody { @for e in &events.data { tr {
                    td { (time(Some(e.event.timestamp))) }
                    td { a href=(format!("/console/events/{}", e.event.id)) { code { (e.event.id) } } }
                    td { (e.event.event_type) } td { (e.event.object_type) }
                    td.num { (e.sent_to.len()) } td.num { (e.not_sent.len()) }
                } } }
            } }
        }
        div.pager {
            @if f.cursor.is_some() { a href=(query(None)) { "← Newest" } }
            @if let Some(c) = &events.next_cursor { a href=(query(Some(c))) { "Older →" } }
        }
    };
    Ok(respond(
        StatusCode::OK,
        page("Events", Some(&s), Nav::Events, body),
    ))
}

/// What the event page says after a re-send.
#[derive(Debug, Default, Deserialize)]
pub struct DetailQuery {
    resent: Option<usize>,
}

/// `GET /console/events/{id}`.
pub async fn detail(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
    Query(q): Query<DetailQuery>,
) -> ConsoleResult {
    let app = s.tenant()?;
    let event = event_status(&state, &app, &id).await?;
    let p = PageParams {
        limit: Some(100),
        cursor: None,
    };
    let attempts = list_attempts(
        &state,
        &app,
        DeliveryScope::Event(&id),
        &p,
        &DeliveryFilterParams::default(),
    )
    .await?;
    let payload = serde_json::to_string_pretty(&event.event.data).unwrap_or_default();
    let body = html! {
        p { a href="/console/events" { "← Events" } }
        h1 { (event.event.event_type) " on " (event.event.object_type) }
        @if let Some(n) = q.resent { p.notice role="status" { "Queued again for " (n) " webhook(s)." } }
        dl.props {
            dt { "Id" } dd { code { (event.event.id) } }
            dt { "Published" } dd { (time(Some(event.event.timestamp))) }
        }
        div.actions {
            form.inline method="post" action=(format!("/console/events/{}/resend", event.event.id)) {
                (super::page::csrf_field(&s))
                button.secondary type="submit" { "Resend to every matching webhook" }
            }
        }
        h2 { "Data" }
        pre #payload { (payload) }
        h2 { "Status per webhook" }
        div.table-wrap { table #webhook-status {
            thead { tr { th { "Webhook" } th { "Status" } th.num { "Attempts" } th { "Last attempt" } th.num { "Last status" } th { "Next attempt" } } }
            tbody { @for w in &event.webhooks { tr {
                td { a href=(format!("/console/webhooks/{}", w.webhook_id)) { code { (w.webhook_id) } } }
                td { (badge(&w.status)) }
                td.num { (w.attempts) }
                td { (time(w.last_attempt_at)) }
                td.num { (w.last_status_code.map_or("—".to_owned(), |c| c.to_string())) }
                td { (time(w.next_attempt_at)) }
            } } }
        } }
        h2 { "Attempts" }
        (attempts_table(&attempts.data, true))
    };
    Ok(respond(
        StatusCode::OK,
        page("Event", Some(&s), Nav::Events, body),
    ))
}

/// `POST /console/events/{id}/resend`: to every active matching webhook.
pub async fn resend(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted { signed: s, .. }: Posted,
) -> ConsoleResult {
    let app = s.tenant()?;
    let out = resend_event(&state, &app, &id, ResendIn::default()).await?;
    Ok(see_other(&format!(
        "/console/events/{}?resent={}",
        out.event_id,
        out.scheduled.len()
    )))
}
