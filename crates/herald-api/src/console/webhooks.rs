//! Webhook pages: the list with each endpoint's health, create (the secret shown once),
//! the detail page (health, test ping, rotate, enable and disable, delete, recover,
//! recent deliveries) and edit.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{TimeDelta, Utc};
use maud::{html, Markup};
use serde::Deserialize;

use super::auth::{Posted, Signed};
use super::deliveries::attempts_table;
use super::page::{
    badge, csrf_field, page, percent, respond, see_other, time, with_query, ConsoleError,
    ConsoleResult, Nav,
};
use super::webhook_form::Draft;
use crate::apps::PageParams;
use crate::deliveries::{list_attempts, DeliveryFilterParams, DeliveryScope};
use crate::error::ApiError;
use crate::recover::{recover_webhook, RecoverIn, RecoverOut};
use crate::state::AppState;
use crate::webhooks::{self as api, RotatedSecret, TestResult, WebhookOut};

/// `?cursor=` of the list.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    cursor: Option<String>,
}

fn state_badge(w: &WebhookOut) -> Markup {
    html! {
        @if w.active { (badge("active")) } @else {
            (badge("disabled"))
            @if let Some(r) = &w.disabled_reason { " " span.muted { (r) } }
        }
    }
}

/// `GET /console/webhooks`.
pub async fn list(
    State(state): State<AppState>,
    s: Signed,
    Query(q): Query<ListQuery>,
) -> ConsoleResult {
    let app = s.tenant()?;
    let p = PageParams {
        limit: Some(api::MAX_WEBHOOKS_PER_PAGE),
        cursor: q.cursor,
    };
    let webhooks = api::list_webhooks(&state, &app, &p).await?;
    let body = html! {
        h1 { "Webhooks" }
        div.actions { a.button href="/console/webhooks/new" { "New webhook" } }
        @if webhooks.data.is_empty() {
            p.muted { "No webhooks yet." }
        } @else {
            div.table-wrap { table #webhooks {
                thead { tr {
                    th { "Webhook" } th { "State" } th.num { "Failures since success" }
                    th { "Last success" } th.num { "24 h success" } th.num { "24 h attempts" }
                } }
                tbody { @for w in &webhooks.data {
                    @let h = w.health.as_ref();
                    tr {
                        td {
                            a href=(format!("/console/webhooks/{}", w.id)) { (w.url) }
                            @if !w.description.is_empty() { br; span.muted.description { (w.description) } }
                        }
                        td { (state_badge(w)) }
                        td.num { (h.map_or(0, |h| h.consecutive_failures)) }
                        td { (time(h.and_then(|h| h.last_success_at))) }
                        td.num { (percent(h.and_then(|h| h.last_24h.success_rate))) }
                        td.num { (h.map_or(0, |h| h.last_24h.attempts)) }
                    }
                } }
            } }
        }
        @if let Some(c) = &webhooks.next_cursor {
            div.pager { a href=(with_query("/console/webhooks", &[("cursor", Some(c))])) { "Next page →" } }
        }
    };
    Ok(respond(
        StatusCode::OK,
        page("Webhooks", Some(&s), Nav::Webhooks, body),
    ))
}

fn form_page(s: &Signed, title: &str, form: Markup) -> Markup {
    page(
        title,
        Some(s),
        Nav::Webhooks,
        html! { h1 { (title) } (form) },
    )
}

/// `GET /console/webhooks/new`.
pub async fn new_form(s: Signed) -> ConsoleResult {
    s.tenant()?;
    let form = Draft::default().render(&s, "/console/webhooks", "Create webhook", None);
    Ok(respond(StatusCode::OK, form_page(&s, "New webhook", form)))
}

/// A refused form: shown again, as typed, with the reason (validation and conflicts);
/// anything else is an error page.
fn refused(
    s: &Signed,
    title: &str,
    draft: &Draft,
    action: &str,
    submit: &str,
    e: ApiError,
) -> ConsoleResult {
    match e.status() {
        StatusCode::UNPROCESSABLE_ENTITY | StatusCode::CONFLICT => {
            let form = draft.render(s, action, submit, Some(&e.to_string()));
            Ok(respond(e.status(), form_page(s, title, form)))
        }
        _ => Err(e.into()),
    }
}

/// `POST /console/webhooks`: creates it and shows its secret, once.
pub async fn create(
    State(state): State<AppState>,
    Posted { signed: s, form }: Posted,
) -> ConsoleResult {
    let app = s.tenant()?;
    let draft = Draft::from_form(&form);
    let (title, action, submit) = ("New webhook", "/console/webhooks", "Create webhook");
    let input = match draft.to_input() {
        Ok(input) => input,
        Err(e) => return refused(&s, title, &draft, action, submit, ApiError::Validation(e)),
    };
    let created = match api::create_webhook(&state, &app, input).await {
        Ok(w) => w,
        Err(e) => return refused(&s, title, &draft, action, submit, e),
    };
    let secret = created.secret.clone().unwrap_or_default();
    let body = html! {
        h1 { "Webhook created" }
        div.secret #secret role="status" {
            p { "Its signing secret, shown this once: copy it now." }
            code #secret-value { (secret) }
        }
        p { a href=(format!("/console/webhooks/{}", created.id)) { "Open the webhook" } }
    };
    Ok(respond(
        StatusCode::CREATED,
        page("Webhook created", Some(&s), Nav::Webhooks, body),
    ))
}

/// What the detail page says after an action (the redirect's query).
#[derive(Debug, Default, Deserialize)]
pub struct DetailQuery {
    done: Option<String>,
    queued: Option<usize>,
    already: Option<usize>,
    retrying: Option<usize>,
    succeeded: Option<usize>,
    expired: Option<usize>,
}

/// What the detail page shows besides the webhook, once.
#[derive(Default)]
struct Extra {
    notice: Option<String>,
    secret: Option<RotatedSecret>,
    ping: Option<TestResult>,
}

fn notice_of(q: &DetailQuery) -> Option<String> {
    match q.done.as_deref()? {
        "updated" => Some("Webhook saved.".into()),
        "enabled" => Some("Webhook enabled.".into()),
        "disabled" => Some("Webhook disabled.".into()),
        "recovered" => Some(format!(
            "Recovery: {} queued again, {} already queued, {} still retrying, {} succeeded since, {} expired.",
            q.queued.unwrap_or(0),
            q.already.unwrap_or(0),
            q.retrying.unwrap_or(0),
            q.succeeded.unwrap_or(0),
            q.expired.unwrap_or(0)
        )),
        _ => None,
    }
}

/// `GET /console/webhooks/{id}`.
pub async fn detail(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
    Query(q): Query<DetailQuery>,
) -> ConsoleResult {
    let extra = Extra {
        notice: notice_of(&q),
        ..Extra::default()
    };
    detail_page(&state, &s, &id, extra).await
}

fn ping_result(ping: Option<&TestResult>) -> Markup {
    html! {
        div #ping-result aria-live="polite" {
            @if let Some(p) = ping {
                p.notice {
                    "Test ping: " (badge(if p.success { "succeeded" } else { "failed" }))
                    " status " (p.status_code.map_or("none".to_owned(), |c| c.to_string()))
                    " in " (p.latency_ms) " ms"
                    @if let Some(e) = &p.error { " — " (e) }
                }
                @if !p.response_body.is_empty() { pre { (p.response_body) } }
            }
        }
    }
}

async fn detail_page(state: &AppState, s: &Signed, id: &str, extra: Extra) -> ConsoleResult {
    let app = s.tenant()?;
    let w = api::get_webhook(state, &app, id).await?;
    let recent = list_attempts(
        state,
        &app,
        DeliveryScope::Webhook(id),
        &PageParams {
            limit: Some(10),
            cursor: None,
        },
        &DeliveryFilterParams::default(),
    )
    .await?;
    let base = format!("/console/webhooks/{}", w.id);
    let post = |action: &str, label: &str, class: &str| {
        html! {
            form.inline method="post" action=(format!("{base}/{action}")) {
                (csrf_field(s))
                button class=(class) type="submit" { (label) }
            }
        }
    };
    let h = w.health.as_ref();
    let title = if w.description.is_empty() {
        w.url.clone()
    } else {
        w.description.clone()
    };
    let body = html! {
        p { a href="/console/webhooks" { "← Webhooks" } }
        h1 { (title) }
        @if let Some(n) = &extra.notice { p.notice role="status" { (n) } }
        @if let Some(r) = &extra.secret {
            div.secret #secret role="status" {
                p { "The new signing secret, shown this once. The previous one also signs until " (time(Some(r.previous_secret_expires_at))) "." }
                code #secret-value { (r.secret) }
            }
        }
        dl.props {
            dt { "Id" } dd { code { (w.id) } }
            dt { "URL" } dd { (w.url) }
            dt { "State" } dd #state { (state_badge(&w)) }
            dt { "Events" } dd { (w.events.join(", ")) }
            dt { "Object types" } dd { (w.object_types.join(", ")) }
            @if let Some(filter) = &w.filter {
                dt { "Payload filter" } dd #filter { code { (filter) } br; span.muted { "set with the API or herald webhooks update --filter" } }
            }
            dt { "Description" } dd #description { (w.description) }
            dt { "Headers" } dd { @for (k, v) in &w.headers { code { (k) ": " (v) } br; } }
            dt { "Created" } dd { (time(Some(w.created_at))) }
            dt { "Updated" } dd { (time(Some(w.updated_at))) }
        }
        div.actions {
            a.button href=(format!("{base}/edit")) { "Edit" }
            form.inline method="post" action=(format!("{base}/test")) hx-post=(format!("{base}/test"))
                hx-target="#ping-result" hx-select="#ping-result" hx-swap="outerHTML" {
                (csrf_field(s))
                button.secondary type="submit" { "Send test ping" }
            }
            (post("rotate", "Rotate secret", "secondary"))
            @if w.active { (post("disable", "Disable", "secondary")) } @else { (post("enable", "Enable", "secondary")) }
            (post("delete", "Delete", "danger"))
        }
        (ping_result(extra.ping.as_ref()))
        h2 { "Health" }
        dl.props {
            dt { "Failed attempts since the last success" } dd #consecutive-failures { (h.map_or(0, |h| h.consecutive_failures)) }
            dt { "Failed deliveries in a row" } dd { (h.map_or(0, |h| h.failed_deliveries_in_a_row)) }
            dt { "Last success" } dd { (time(h.and_then(|h| h.last_success_at))) }
            dt { "Last failure" } dd { (time(h.and_then(|h| h.last_failure_at))) }
            dt { "Last 24 h" } dd {
                @if let Some(h) = h {
                    (h.last_24h.attempts) " attempts, " (percent(h.last_24h.success_rate)) " succeeded"
                    @if let (Some(p50), Some(p95)) = (h.last_24h.latency_p50_ms, h.last_24h.latency_p95_ms) {
                        ", p50 " (p50) " ms, p95 " (p95) " ms"
                    }
                }
            }
        }
        h2 { "Recover failures" }
        p.muted { "Sends again, once each, every delivery that failed for good or was not sent since then and has not succeeded since." }
        form.filters method="post" action=(format!("{base}/recover")) {
            (csrf_field(s))
            div { label for="since" { "Since" }
                select #since name="since" {
                    option value="1h" { "1 hour ago" } option value="6h" { "6 hours ago" }
                    option value="24h" selected { "24 hours ago" } option value="7d" { "7 days ago" }
                } }
            button type="submit" { "Recover" }
        }
        h2 { "Recent deliveries" }
        (attempts_table(&recent.data, false))
        p { a href=(format!("{base}/deliveries")) { "All deliveries of this webhook →" } }
    };
    Ok(respond(
        StatusCode::OK,
        page(&title, Some(s), Nav::Webhooks, body),
    ))
}

/// `GET /console/webhooks/{id}/edit`.
pub async fn edit_form(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
) -> ConsoleResult {
    let app = s.tenant()?;
    let w = api::get_webhook(&state, &app, &id).await?;
    let form =
        Draft::from_webhook(&w).render(&s, &format!("/console/webhooks/{}", w.id), "Save", None);
    Ok(respond(StatusCode::OK, form_page(&s, "Edit webhook", form)))
}

/// `POST /console/webhooks/{id}`: saves the form.
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted { signed: s, form }: Posted,
) -> ConsoleResult {
    let app = s.tenant()?;
    let draft = Draft::from_form(&form);
    let action = format!("/console/webhooks/{id}");
    let patch = match draft.to_patch() {
        Ok(p) => p,
        Err(e) => {
            return refused(
                &s,
                "Edit webhook",
                &draft,
                &action,
                "Save",
                ApiError::Validation(e),
            )
        }
    };
    match api::update_webhook(&state, &app, &id, patch).await {
        Ok(w) => Ok(see_other(&format!(
            "/console/webhooks/{}?done=updated",
            w.id
        ))),
        Err(e) => refused(&s, "Edit webhook", &draft, &action, "Save", e),
    }
}

/// The window start of a recovery: `1h`, `6h`, `24h` or `7d` ago.
fn since(choice: Option<&str>) -> ConsoleResult<String> {
    let hours = match choice {
        Some("1h") => 1,
        Some("6h") => 6,
        Some("24h") | None => 24,
        Some("7d") => 24 * 7,
        Some(other) => {
            return Err(ConsoleError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("since must be 1h, 6h, 24h or 7d, not {other:?}"),
            ))
        }
    };
    Ok((Utc::now() - TimeDelta::hours(hours)).to_rfc3339())
}

fn recovered(base: &str, out: &RecoverOut) -> Response {
    let n = |v: usize| v.to_string();
    see_other(&with_query(
        base,
        &[
            ("done", Some("recovered")),
            ("queued", Some(&n(out.queued))),
            ("already", Some(&n(out.already_queued))),
            ("retrying", Some(&n(out.retrying))),
            ("succeeded", Some(&n(out.succeeded_since))),
            ("expired", Some(&n(out.expired))),
        ],
    ))
}

/// `POST /console/webhooks/{id}/{action}`: `enable`, `disable`, `delete`, `rotate`
/// (the new secret shown once), `test` (the ping's result) and `recover`.
pub async fn action(
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    Posted { signed: s, form }: Posted,
) -> ConsoleResult {
    let app = s.tenant()?;
    let base = format!("/console/webhooks/{id}");
    match action.as_str() {
        "enable" => {
            api::enable_webhook(&state, &app, &id).await?;
            Ok(see_other(&format!("{base}?done=enabled")))
        }
        "disable" => {
            api::disable_webhook(&state, &app, &id).await?;
            Ok(see_other(&format!("{base}?done=disabled")))
        }
        "delete" => {
            api::delete_webhook(&state, &app, &id).await?;
            Ok(see_other("/console/webhooks"))
        }
        "rotate" => {
            let secret = api::rotate_secret(&state, &app, &id).await?;
            let extra = Extra {
                secret: Some(secret),
                ..Extra::default()
            };
            detail_page(&state, &s, &id, extra).await
        }
        "test" => {
            let ping = api::test_webhook(&state, &app, &id).await?;
            let extra = Extra {
                ping: Some(ping),
                ..Extra::default()
            };
            detail_page(&state, &s, &id, extra).await
        }
        "recover" => {
            let input = RecoverIn {
                since: since(form.get("since"))?,
                until: None,
                cursor: None,
            };
            let out = recover_webhook(&state, &app, &id, input).await?;
            Ok(recovered(&base, &out))
        }
        _ => Err(ConsoleError::new(
            StatusCode::NOT_FOUND,
            "there is no such page",
        )),
    }
}
