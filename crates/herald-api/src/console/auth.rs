//! Signing in and out, and what every console request is checked for: a valid
//! session whose key still exists (extractor [`Signed`]) and, for each form post, the
//! session's CSRF token and a same-origin request (extractor [`Posted`]).

use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use herald_core::AppId;
use maud::html;

use super::page::{page, respond, see_other, ConsoleError, ConsoleResult, Nav};
use super::session::{cookie_value, set_cookie, Role, Session};
use crate::extract::{authenticate, check_rate, Caller};
use crate::state::AppState;

/// A signed-in request: its session, whose key was checked to still exist.
#[derive(Debug, Clone)]
pub struct Signed {
    /// The session.
    pub session: Session,
    /// Its CSRF token, for the page's forms.
    pub csrf: String,
}

impl Signed {
    /// The app of a tenant session; a 403 page for the operator's.
    pub fn tenant(&self) -> ConsoleResult<AppId> {
        match &self.session.role {
            Role::App { app, .. } => AppId::parse(app).map_err(|_| ConsoleError::SignIn),
            Role::Operator { .. } => Err(ConsoleError::new(
                StatusCode::FORBIDDEN,
                "this page is an app's: sign in with an app key to see it",
            )),
        }
    }

    /// Nothing for the operator's session; a 403 page for a tenant's, which never
    /// reaches an operator page.
    pub fn operator(&self) -> ConsoleResult<()> {
        if self.is_operator() {
            Ok(())
        } else {
            Err(ConsoleError::new(
                StatusCode::FORBIDDEN,
                "this page is the operator's: sign in with the admin key to see it",
            ))
        }
    }

    /// Whether this is the operator's session.
    pub fn is_operator(&self) -> bool {
        matches!(self.session.role, Role::Operator { .. })
    }

    /// Who is signed in, for the header.
    pub fn label(&self) -> String {
        match &self.session.role {
            Role::App { app, .. } => format!("app {app}"),
            Role::Operator { .. } => "operator".to_owned(),
        }
    }
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ConsoleResult<Self> {
        let cookies = parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok());
        let value = cookie_value(cookies).ok_or(ConsoleError::SignIn)?;
        let session = state
            .console_key
            .open(&value, Utc::now())
            .ok_or(ConsoleError::SignIn)?;
        match &session.role {
            Role::App { app, key_id } => {
                let app = AppId::parse(app).map_err(|_| ConsoleError::SignIn)?;
                // A revoked key or a deleted app ends its sessions at once.
                if !state
                    .apps
                    .key_is_live(&app, key_id)
                    .await
                    .map_err(crate::ApiError::from)?
                {
                    return Err(ConsoleError::SignIn);
                }
                check_rate(state, &app)?;
            }
            Role::Operator { admin_tag } => {
                let current = state.config.admin_key.as_deref();
                if current.map(|k| state.console_key.admin_tag(k)).as_ref() != Some(admin_tag) {
                    return Err(ConsoleError::SignIn);
                }
            }
        }
        let csrf = state.console_key.csrf_token(&session);
        Ok(Self { session, csrf })
    }
}

impl axum::extract::OptionalFromRequestParts<AppState> for Signed {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(
            <Self as FromRequestParts<AppState>>::from_request_parts(parts, state)
                .await
                .ok(),
        )
    }
}

/// An `application/x-www-form-urlencoded` body: every field in order.
#[derive(Debug, Default, Clone)]
pub struct FormData(Vec<(String, String)>);

impl FormData {
    /// Parses a form body.
    pub fn parse(body: &[u8]) -> Self {
        Self(url::form_urlencoded::parse(body).into_owned().collect())
    }

    /// The first value of `name`, trimmed; `None` when absent or blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// Every value of `name` (checkboxes), in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// A form post of a signed-in session, its CSRF token and origin checked.
pub struct Posted {
    /// The session.
    pub signed: Signed,
    /// The form's fields.
    pub form: FormData,
}

/// Refuses cross-site requests. `Sec-Fetch-Site`, which every current browser sends,
/// decides when present: `same-origin`, or `none` (typed by the user). Without it, an
/// `Origin` must name this host. (Under `Referrer-Policy: no-referrer` browsers send
/// `Origin: null` even for the console's own forms, so `Origin` alone cannot decide.)
fn same_origin(headers: &HeaderMap) -> ConsoleResult<()> {
    let refused = || {
        ConsoleError::new(
            StatusCode::FORBIDDEN,
            "cross-site form posts are refused: use the console's own pages",
        )
    };
    if let Some(site) = headers.get("sec-fetch-site") {
        return match site.as_bytes() {
            b"same-origin" | b"none" => Ok(()),
            _ => Err(refused()),
        };
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().map_err(|_| refused())?;
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let origin_host = origin.split_once("://").map(|(_, h)| h);
        if origin_host.is_none() || origin_host != host {
            return Err(refused());
        }
    }
    Ok(())
}

impl FromRequest<AppState> for Posted {
    type Rejection = ConsoleError;

    async fn from_request(req: Request, state: &AppState) -> ConsoleResult<Self> {
        let (mut parts, body) = req.into_parts();
        same_origin(&parts.headers)?;
        let signed = Signed::from_request_parts(&mut parts, state).await?;
        let limit = state.config.max_body_bytes;
        let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
            ConsoleError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the form is over {limit} bytes"),
            )
        })?;
        let form = FormData::parse(&bytes);
        let token = form.get("_csrf").map(str::to_owned).or_else(|| {
            parts
                .headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        });
        if !token.is_some_and(|t| state.console_key.csrf_ok(&signed.session, &t)) {
            return Err(ConsoleError::new(
                StatusCode::FORBIDDEN,
                "the form's CSRF token is missing or wrong: reload the page and try again",
            ));
        }
        Ok(Self { signed, form })
    }
}

fn sign_in_form(error: Option<&str>) -> maud::Markup {
    let body = html! {
        section.narrow {
            h1 { "Sign in" }
            p { "With one of your app's API keys (your app's console), or the admin key (the operator's)." }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form method="post" action="/console/sign-in" {
                label for="key" { "API key" }
                input #key type="password" name="key" autocomplete="off" required autofocus;
                button type="submit" { "Sign in" }
            }
        }
    };
    page("Sign in", None, Nav::None, body)
}

/// `GET /console/sign-in`.
pub async fn sign_in_page() -> Response {
    respond(StatusCode::OK, sign_in_form(None))
}

/// `POST /console/sign-in`: the key is checked as the API checks it and exchanged for
/// a session cookie; the key itself goes no further.
pub async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ConsoleResult {
    same_origin(&headers)?;
    let form = FormData::parse(&body);
    let key = form.get("key").unwrap_or_default();
    let role = match authenticate(&state, key).await? {
        Some(Caller::App(k)) => Role::App {
            app: k.app_id.to_string(),
            key_id: k.id,
        },
        Some(Caller::Admin) => Role::Operator {
            admin_tag: state.console_key.admin_tag(key),
        },
        None => {
            return Ok(respond(
                StatusCode::UNAUTHORIZED,
                sign_in_form(Some("That key is not valid.")),
            ))
        }
    };
    let session = Session::new(role, Utc::now());
    let cookie = set_cookie(
        Some(&state.console_key.seal(&session)),
        !state.config.console_insecure_cookie,
    );
    Ok(([(header::SET_COOKIE, cookie)], see_other("/console")).into_response())
}

/// `POST /console/sign-out`: clears the cookie.
pub async fn sign_out(State(state): State<AppState>, _: Posted) -> Response {
    let cookie = set_cookie(None, !state.config.console_insecure_cookie);
    (
        [(header::SET_COOKIE, cookie)],
        see_other("/console/sign-in"),
    )
        .into_response()
}

/// `GET /console`: the signed-in session's first page, or the sign-in page.
pub async fn home(signed: Option<Signed>) -> Response {
    match signed {
        Some(s) if s.is_operator() => see_other("/console/ops"),
        Some(_) => see_other("/console/overview"),
        None => see_other("/console/sign-in"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn cross_site_posts_are_refused() {
        assert!(same_origin(&headers(&[])).is_ok());
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-origin")])).is_ok());
        assert!(same_origin(&headers(&[("host", "a:1"), ("origin", "http://a:1")])).is_ok());
        assert!(same_origin(&headers(&[("sec-fetch-site", "cross-site")])).is_err());
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-site")])).is_err());
        assert!(same_origin(&headers(&[("host", "a:1"), ("origin", "http://b:1")])).is_err());
        assert!(same_origin(&headers(&[("host", "a:1"), ("origin", "null")])).is_err());
        let own_form = [("sec-fetch-site", "same-origin"), ("origin", "null")];
        assert!(same_origin(&headers(&own_form)).is_ok());
        let forged = [
            ("sec-fetch-site", "cross-site"),
            ("host", "a:1"),
            ("origin", "http://a:1"),
        ];
        assert!(same_origin(&headers(&forged)).is_err());
    }

    #[test]
    fn form_fields_keep_repeats() {
        let f = FormData::parse(b"events=create&events=update&url=+x+&empty=");
        assert_eq!(f.all("events"), ["create", "update"]);
        assert_eq!(f.get("url"), Some("x"));
        assert_eq!(f.get("empty"), None);
    }
}
