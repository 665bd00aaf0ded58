//! A small client of Herald's management API, mapping its errors
//! (`{"error": {"code", "message"}}`) to exit codes.

use std::time::Duration;

use anyhow::Result;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::failure::{usage, Failure};

/// One API endpoint and key.
pub struct Api {
    base: String,
    key: String,
    http: reqwest::Client,
}

/// An extra request header (the `Idempotency-Key`).
pub type Header<'a> = (&'a str, &'a str);

impl Api {
    pub fn new(base: &str, key: String) -> Result<Self> {
        let parsed = url::Url::parse(base).map_err(|e| {
            usage(format!(
                "the API URL {base:?} is not a URL ({e}); pass --api-url or set HERALD_API_URL"
            ))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(usage(format!("the API URL {base:?} must be http(s)")));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("herald-cli/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            key,
            http,
        })
    }

    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value> {
        self.call(Method::GET, path, query, None, &[]).await
    }

    pub async fn post(&self, path: &str, body: Option<&Value>) -> Result<Value> {
        self.call(Method::POST, path, &[], body, &[]).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Result<Value> {
        self.call(Method::PATCH, path, &[], Some(body), &[]).await
    }

    pub async fn delete(&self, path: &str) -> Result<Value> {
        self.call(Method::DELETE, path, &[], None, &[]).await
    }

    /// Sends a request; returns the JSON body (`Null` when empty) of a 2xx answer.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        headers: &[Header<'_>],
    ) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut req = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(&self.key)
            .query(query);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await.map_err(|e| unreachable(&self.base, &e))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| unreachable(&self.base, &e))?;
        if status.is_success() {
            if bytes.is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_slice(&bytes).map_err(|e| {
                Failure::Failed(format!(
                    "{method} {path}: the API answered {status} with a body that is not JSON: {e}"
                ))
                .into()
            });
        }
        Err(api_error(&method, path, status, &bytes))
    }

    /// Every item of a paged list (`{"data": [...], "next_cursor"}`).
    pub async fn all_pages(
        &self,
        path: &str,
        mut query: Vec<(&str, String)>,
    ) -> Result<Vec<Value>> {
        let mut items = Vec::new();
        loop {
            let page = self.get(path, &query).await?;
            if let Some(data) = page["data"].as_array() {
                items.extend(data.iter().cloned());
            }
            match page["next_cursor"].as_str() {
                Some(c) if !c.is_empty() => {
                    query.retain(|(k, _)| *k != "cursor");
                    query.push(("cursor", c.to_owned()));
                }
                _ => return Ok(items),
            }
        }
    }
}

fn unreachable(base: &str, e: &reqwest::Error) -> anyhow::Error {
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        source = s.source();
    }
    Failure::Unreachable(format!(
        "could not reach the Herald API at {base}: {detail}\n\
         (is `herald serve` running? --api-url or HERALD_API_URL selects the API)"
    ))
    .into()
}

/// The API's error as a message and an exit code: 401/403 exit with 4, the rest with 1.
pub fn api_error(method: &Method, path: &str, status: StatusCode, body: &[u8]) -> anyhow::Error {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let (code, message) = match parsed.as_ref().map(|v| &v["error"]) {
        Some(err) if err.is_object() => (
            err["code"].as_str().unwrap_or("error").to_owned(),
            err["message"].as_str().unwrap_or_default().to_owned(),
        ),
        _ => (
            status
                .canonical_reason()
                .unwrap_or("error")
                .to_ascii_lowercase(),
            String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned(),
        ),
    };
    let msg = format!(
        "the API refused {method} {path}: {} {code}: {message}",
        status.as_u16()
    );
    let failure = match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Failure::Auth(format!(
            "{msg}\n(check the key: --api-key / HERALD_API_KEY for app routes, \
             --admin-key / HERALD_ADMIN_KEY for apps and keys)"
        )),
        _ => Failure::Failed(msg),
    };
    Refused {
        status: status.as_u16(),
        failure,
    }
    .into()
}

/// An error answer of the API: its status, and the [`Failure`] it maps to.
#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    failure: Failure,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.failure.fmt(f)
    }
}

impl std::error::Error for Refused {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.failure)
    }
}

/// The HTTP status of an API error answer, if `e` is one.
pub fn refused_status(e: &anyhow::Error) -> Option<u16> {
    e.chain()
        .find_map(|c| c.downcast_ref::<Refused>())
        .map(|r| r.status)
}

/// Percent-encodes one path segment (ids are plain, but be safe with what users type).
pub fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::{exit_code, EXIT_AUTH, EXIT_FAILED};

    #[test]
    fn api_errors_map_to_exit_codes() {
        let body = br#"{"error":{"code":"not_found","message":"webhook sub_x not found"}}"#;
        let e = api_error(
            &Method::GET,
            "/v1/webhooks/sub_x",
            StatusCode::NOT_FOUND,
            body,
        );
        assert_eq!(exit_code(&e), EXIT_FAILED);
        assert_eq!(refused_status(&e), Some(404));
        assert!(
            e.to_string()
                .contains("404 not_found: webhook sub_x not found"),
            "{e}"
        );
        let e = api_error(&Method::GET, "/v1/webhooks", StatusCode::UNAUTHORIZED, b"");
        assert_eq!(exit_code(&e), EXIT_AUTH);
        let e = api_error(&Method::GET, "/v1/apps", StatusCode::FORBIDDEN, b"<html>");
        assert_eq!(exit_code(&e), EXIT_AUTH);
        assert!(e.to_string().contains("403 forbidden: <html>"), "{e}");
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(seg("sub_0190ab-x"), "sub_0190ab-x");
        assert_eq!(seg("a/b c"), "a%2Fb%20c");
    }
}
