//! The operator's apps and their keys: list and create apps, delete one (after a
//! confirmation page), list an app's keys (metadata only), create a key (shown once,
//! on the page that answers the form post, never in a URL) and revoke one. Every
//! action calls the same function as the admin route of the API (`crate::apps`).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use maud::html;
use serde::Deserialize;

use super::auth::{Posted, Signed};
use super::page::{csrf_field, page, respond, see_other, time, with_query, ConsoleResult, Nav};
use crate::apps::{
    apps_page, keys_page, new_app, new_key, remove_app, revoke_key, AppIn, PageParams,
};
use crate::error::ApiError;
use crate::state::AppState;

/// The query of the apps and app pages: a page cursor and what was just done.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    cursor: Option<String>,
    done: Option<String>,
}

fn notice(done: Option<&str>) -> Option<&'static str> {
    match done? {
        "deleted" => Some("App deleted, with its keys and webhooks."),
        "revoked" => Some("Key revoked: it no longer works, and its sessions have ended."),
        _ => None,
    }
}

/// `GET /console/ops/apps`.
pub async fn list(
    State(state): State<AppState>,
    s: Signed,
    Query(q): Query<ListQuery>,
) -> ConsoleResult {
    s.operator()?;
    list_page(&state, &s, &q, None, StatusCode::OK).await
}

async fn list_page(
    state: &AppState,
    s: &Signed,
    q: &ListQuery,
    error: Option<ApiError>,
    status: StatusCode,
) -> ConsoleResult {
    let p = PageParams {
        limit: Some(50),
        cursor: q.cursor.clone(),
    };
    let apps = apps_page(state, &p).await?;
    let body = html! {
        h1 { "Apps" }
        @if let Some(n) = notice(q.done.as_deref()) { p.notice role="status" { (n) } }
        div.table-wrap { table #apps {
            thead { tr { th { "Id" } th { "Name" } th { "Created" } } }
            tbody {
                @for a in &apps.data { tr {
                    td { a href=(format!("/console/ops/apps/{}", a.id)) { code { (a.id) } } }
                    td { (a.name) }
                    td { (time(Some(a.created_at))) }
                } }
                @if apps.data.is_empty() { tr { td colspan="3" .muted { "No apps yet." } } }
            }
        } }
        @if let Some(c) = &apps.next_cursor {
            div.pager { a href=(with_query("/console/ops/apps", &[("cursor", Some(c))])) { "Next page" } }
        }
        h2 { "New app" }
        @if let Some(e) = &error { p.error role="alert" { (e) } }
        form.narrow method="post" action="/console/ops/apps" {
            (csrf_field(s))
            label for="app-id" { "Id " span.muted { "(letters, digits, - and _; generated when blank)" } }
            input #app-id type="text" name="id" maxlength="64";
            label for="app-name" { "Name" }
            input #app-name type="text" name="name" maxlength="256" required;
            p { button type="submit" { "Create app" } }
        }
    };
    Ok(respond(status, page("Apps", Some(s), Nav::Apps, body)))
}

/// `POST /console/ops/apps`: to the new app's page, or the list with the error.
pub async fn create(
    State(state): State<AppState>,
    Posted { signed: s, form }: Posted,
) -> ConsoleResult {
    s.operator()?;
    let input = AppIn {
        id: form.get("id").map(str::to_owned),
        name: form.get("name").unwrap_or_default().to_owned(),
    };
    match new_app(&state, &input).await {
        Ok(app) => Ok(see_other(&format!("/console/ops/apps/{}", app.id))),
        Err(e @ (ApiError::Validation(_) | ApiError::Conflict(_))) => {
            let status = e.status();
            list_page(&state, &s, &ListQuery::default(), Some(e), status).await
        }
        Err(e) => Err(e.into()),
    }
}

/// `GET /console/ops/apps/{id}`: the app and its keys.
pub async fn detail(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> ConsoleResult {
    s.operator()?;
    let app = crate::apps::app(&state, &id).await?;
    let p = PageParams {
        limit: Some(100),
        cursor: q.cursor.clone(),
    };
    let keys = keys_page(&state, &id, &p).await?;
    let base = format!("/console/ops/apps/{}", app.id);
    let body = html! {
        h1 { "App " code { (app.id) } }
        @if let Some(n) = notice(q.done.as_deref()) { p.notice role="status" { (n) } }
        dl.props {
            dt { "Name" } dd { (app.name) }
            dt { "Created" } dd { (time(Some(app.created_at))) }
        }
        h2 { "API keys" }
        div.table-wrap { table #keys {
            thead { tr { th { "Id" } th { "Starts with" } th { "Created" } th { } } }
            tbody {
                @for k in &keys.data { tr {
                    td { code { (k.id) } }
                    td { code { (k.prefix) "…" } }
                    td { (time(Some(k.created_at))) }
                    td { form.inline method="post" action=(format!("{base}/keys/{}/revoke", k.id)) {
                        (csrf_field(&s))
                        button.danger type="submit" { "Revoke" }
                    } }
                } }
                @if keys.data.is_empty() { tr { td colspan="4" .muted { "No keys." } } }
            }
        } }
        @if let Some(c) = &keys.next_cursor {
            div.pager { a href=(with_query(&base, &[("cursor", Some(c))])) { "More keys" } }
        }
        div.actions {
            form.inline method="post" action=(format!("{base}/keys")) {
                (csrf_field(&s))
                button type="submit" { "Create key" }
            }
            a.button href=(format!("{base}/delete")) { "Delete app…" }
        }
    };
    Ok(respond(
        StatusCode::OK,
        page(&format!("App {}", app.id), Some(&s), Nav::Apps, body),
    ))
}

/// `GET /console/ops/apps/{id}/delete`: the confirmation step.
pub async fn confirm_delete(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
) -> ConsoleResult {
    s.operator()?;
    let app = crate::apps::app(&state, &id).await?;
    let base = format!("/console/ops/apps/{}", app.id);
    let body = html! {
        h1 { "Delete app " code { (app.id) } "?" }
        p { "This deletes the app " b { (app.name) } ", every one of its API keys and every one of its webhooks. Its id is never given out again. It cannot be undone." }
        div.actions {
            form.inline method="post" action=(format!("{base}/delete")) {
                (csrf_field(&s))
                button.danger type="submit" { "Delete the app" }
            }
            a.button href=(base) { "Cancel" }
        }
    };
    Ok(respond(
        StatusCode::OK,
        page("Delete app", Some(&s), Nav::Apps, body),
    ))
}

/// `POST /console/ops/apps/{id}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted { signed: s, .. }: Posted,
) -> ConsoleResult {
    s.operator()?;
    remove_app(&state, &id).await?;
    Ok(see_other("/console/ops/apps?done=deleted"))
}

/// `POST /console/ops/apps/{id}/keys`: the new key, shown this once on this page (the
/// answer to the post, `no-store`); it is in no URL and never shown again.
pub async fn create_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted { signed: s, .. }: Posted,
) -> ConsoleResult {
    s.operator()?;
    let key = new_key(&state, &id).await?;
    let body = html! {
        h1 { "Key created" }
        div.secret #secret role="status" {
            p { "The new API key of app " code { (key.app_id) } ", shown this once: copy it now." }
            code #secret-value { (key.key.as_deref().unwrap_or_default()) }
        }
        p { "Its id is " code { (key.id) } "." }
        p { a href=(format!("/console/ops/apps/{}", key.app_id)) { "Back to the app" } }
    };
    Ok(respond(
        StatusCode::CREATED,
        page("Key created", Some(&s), Nav::Apps, body),
    ))
}

/// `POST /console/ops/apps/{id}/keys/{key_id}/revoke`.
pub async fn revoke(
    State(state): State<AppState>,
    Path((id, key_id)): Path<(String, String)>,
    Posted { signed: s, .. }: Posted,
) -> ConsoleResult {
    s.operator()?;
    revoke_key(&state, &id, &key_id).await?;
    Ok(see_other(&format!("/console/ops/apps/{id}?done=revoked")))
}
