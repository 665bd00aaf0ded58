//! The console's page shell, its error pages and the small formatting helpers every
//! page uses. Everything is rendered with maud, which escapes every value; nothing a
//! user typed is ever inserted unescaped.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use maud::{html, Markup, DOCTYPE};

use super::assets;
use super::auth::Signed;
use crate::error::ApiError;

/// Which part of the navigation a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    /// The tenant's overview.
    Overview,
    /// Webhooks.
    Webhooks,
    /// Deliveries.
    Deliveries,
    /// Events.
    Events,
    /// The operator's system status.
    Status,
    /// The operator's apps and keys.
    Apps,
    /// The operator's dead-letter queue.
    DeadLetters,
    /// No section (sign-in, errors).
    None,
}

/// A whole page: `title`, the navigation of `who` (none when signed out) and `body`.
pub fn page(title: &str, who: Option<&Signed>, nav: Nav, body: Markup) -> Markup {
    // The CSRF token rides on every htmx request as a header, besides each form's field.
    let hx_headers = who.map(|s| format!(r#"{{"X-CSRF-Token":"{}"}}"#, s.csrf));
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                // No inline styles or eval: the CSP allows neither.
                meta name="htmx-config" content=r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false}"#;
                title { (title) " · Herald" }
                link rel="stylesheet" href=(assets::css_path());
                script src=(assets::htmx_path()) defer {}
            }
            body hx-headers=[hx_headers] {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/console" { "Herald" }
                    @if let Some(s) = who {
                        nav aria-label="Sections" {
                            @if s.is_operator() {
                                (link("/console/ops", "Status", nav == Nav::Status))
                                (link("/console/ops/apps", "Apps", nav == Nav::Apps))
                                (link("/console/ops/dlq", "Dead letters", nav == Nav::DeadLetters))
                            } @else {
                                (link("/console/overview", "Overview", nav == Nav::Overview))
                                (link("/console/webhooks", "Webhooks", nav == Nav::Webhooks))
                                (link("/console/deliveries", "Deliveries", nav == Nav::Deliveries))
                                (link("/console/events", "Events", nav == Nav::Events))
                            }
                        }
                        div.who {
                            span { (s.label()) }
                            form method="post" action="/console/sign-out" {
                                (csrf_field(s))
                                button.link type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main #main { (body) }
            }
        }
    }
}

fn link(href: &str, text: &str, current: bool) -> Markup {
    html! { a href=(href) aria-current=[current.then_some("page")] { (text) } }
}

/// The hidden CSRF field every form of a signed-in page carries.
pub fn csrf_field(s: &Signed) -> Markup {
    html! { input type="hidden" name="_csrf" value=(s.csrf); }
}

/// A page as a response with `status`.
pub fn respond(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

/// A `303 See Other` to `to`: the end of every successful form post (POST, redirect,
/// GET), so reloading a page never repeats an action.
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// Why a console request did not get its page.
#[derive(Debug)]
pub enum ConsoleError {
    /// Not signed in (or the session ended): to the sign-in page.
    SignIn,
    /// An error page with its status.
    Page {
        /// The HTTP status.
        status: StatusCode,
        /// What went wrong, for the reader.
        message: String,
    },
}

impl ConsoleError {
    /// An error page with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self::Page {
            status,
            message: message.into(),
        }
    }
}

impl From<ApiError> for ConsoleError {
    fn from(e: ApiError) -> Self {
        Self::new(e.status(), e.to_string())
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        match self {
            Self::SignIn => see_other("/console/sign-in"),
            Self::Page { status, message } => {
                let title = status.canonical_reason().unwrap_or("Error");
                let body = html! {
                    h1 { (status.as_u16()) " " (title) }
                    p.error role="alert" { (message) }
                    p { a href="/console" { "Back to the console" } }
                };
                respond(status, page(title, None, Nav::None, body))
            }
        }
    }
}

/// The result type of console handlers.
pub type ConsoleResult<T = Response> = Result<T, ConsoleError>;

/// A time as the console shows it (UTC, to the second), or a dash.
pub fn time(t: Option<DateTime<Utc>>) -> Markup {
    match t {
        Some(t) => html! { time datetime=(t.to_rfc3339()) { (t.format("%Y-%m-%d %H:%M:%S UTC")) } },
        None => html! { "—" },
    }
}

/// A rate from 0 to 1 as a percentage, or a dash.
pub fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "—".to_owned(), |r| format!("{:.1}%", r * 100.0))
}

/// A badge for a delivery outcome or status.
pub fn badge(text: &str) -> Markup {
    let class = match text {
        "succeeded" | "active" => "badge ok",
        "failed" | "parked" | "disabled" => "badge bad",
        "failing" | "not_sent" | "pending" => "badge warn",
        _ => "badge",
    };
    html! { span class=(class) { (text.replace('_', " ")) } }
}

/// `path` with the query `pairs` (empty values left out), each value encoded.
pub fn with_query(path: &str, pairs: &[(&str, Option<&str>)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (k, v) in pairs {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            q.append_pair(k, v);
            any = true;
        }
    }
    if any {
        format!("{path}?{}", q.finish())
    } else {
        path.to_owned()
    }
}
