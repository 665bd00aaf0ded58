//! A typed client of Herald's management API. Requests and responses are herald-api's
//! own types (the structs its handlers take and serialize); its errors
//! ([`ErrorBody`], `{"error": {"code", "message"}}`) map to exit codes.

use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use herald_api::apps::{AppIn, AppOut, KeyOut, Page, PageParams};
use herald_api::deliveries::{AttemptOut, DeliveryFilterParams};
use herald_api::error::ErrorBody;
use herald_api::event_listing::{EventListParams, EventSummaryOut};
use herald_api::event_status::EventOut;
use herald_api::event_types::{EventTypeIn, EventTypeOut, EventTypePatch};
use herald_api::events::{PublishIn, Published};
use herald_api::recover::{RecoverIn, RecoverOut};
use herald_api::sources::{SourceIn, SourceOut, SourcePatch, SourceRequestOut};
use herald_api::webhooks::{RotatedSecret, TestResult, WebhookIn, WebhookOut, WebhookPatch};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;

use crate::config::Settings;
use crate::failure::{usage, Failure};

/// Which page of a list to fetch, or every page.
#[derive(Debug, Clone, Default)]
pub struct Paging {
    /// The API's paging parameters (`limit`, `cursor`) of the first request.
    pub params: PageParams,
    /// Follow `next_cursor` to the end and answer one page without a cursor.
    pub all: bool,
}

/// One API endpoint and the key it is called with.
pub struct ApiClient {
    base: String,
    key: String,
    http: reqwest::Client,
}

impl ApiClient {
    /// A client of the API at `base` (an http(s) URL) with the bearer `key`.
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

    /// A client with the admin key (apps and keys).
    pub fn admin(settings: &Settings) -> Result<Self> {
        Self::new(&settings.api_url(), settings.admin_key()?)
    }

    /// A client with the app's key (webhooks, events, deliveries).
    pub fn app(settings: &Settings) -> Result<Self> {
        Self::new(&settings.api_url(), settings.app_key()?)
    }

    // Apps and keys (admin key).

    /// `POST /v1/apps`.
    pub async fn create_app(&self, app: &AppIn) -> Result<AppOut> {
        self.call(Method::POST, "/v1/apps", |r| r.json(app)).await
    }

    /// `GET /v1/apps`.
    pub async fn list_apps(&self, paging: &Paging) -> Result<Page<AppOut>> {
        self.list("/v1/apps", paging).await
    }

    /// `GET /v1/apps/{id}`.
    pub async fn get_app(&self, id: &str) -> Result<AppOut> {
        self.call(Method::GET, &format!("/v1/apps/{}", seg(id)), |r| r)
            .await
    }

    /// `DELETE /v1/apps/{id}`: the app and its webhooks.
    pub async fn delete_app(&self, id: &str) -> Result<()> {
        self.send(Method::DELETE, &format!("/v1/apps/{}", seg(id)), |r| r)
            .await
            .map(drop)
    }

    /// `POST /v1/apps/{id}/keys`: the answer holds the key, shown only here.
    pub async fn create_key(&self, app: &str) -> Result<KeyOut> {
        self.call(Method::POST, &keys_path(app), |r| r).await
    }

    /// `GET /v1/apps/{id}/keys`.
    pub async fn list_keys(&self, app: &str, paging: &Paging) -> Result<Page<KeyOut>> {
        self.list(&keys_path(app), paging).await
    }

    /// `DELETE /v1/apps/{id}/keys/{key_id}`.
    pub async fn delete_key(&self, app: &str, key_id: &str) -> Result<()> {
        let path = format!("{}/{}", keys_path(app), seg(key_id));
        self.send(Method::DELETE, &path, |r| r).await.map(drop)
    }

    // Webhooks (app key).

    /// `POST /v1/webhooks`: the answer holds the secret, shown only here.
    pub async fn create_webhook(&self, webhook: &WebhookIn) -> Result<WebhookOut> {
        self.call(Method::POST, "/v1/webhooks", |r| r.json(webhook))
            .await
    }

    /// `GET /v1/webhooks`.
    pub async fn list_webhooks(&self, paging: &Paging) -> Result<Page<WebhookOut>> {
        self.list("/v1/webhooks", paging).await
    }

    /// `GET /v1/webhooks/{id}`.
    pub async fn get_webhook(&self, id: &str) -> Result<WebhookOut> {
        self.call(Method::GET, &webhook_path(id, ""), |r| r).await
    }

    /// `PATCH /v1/webhooks/{id}`: only the fields present in `patch` change.
    pub async fn update_webhook(&self, id: &str, patch: &WebhookPatch) -> Result<WebhookOut> {
        self.call(Method::PATCH, &webhook_path(id, ""), |r| r.json(patch))
            .await
    }

    /// `DELETE /v1/webhooks/{id}`.
    pub async fn delete_webhook(&self, id: &str) -> Result<()> {
        self.send(Method::DELETE, &webhook_path(id, ""), |r| r)
            .await
            .map(drop)
    }

    // The event-type catalog (app key).

    /// `POST /v1/event-types`.
    pub async fn create_event_type(&self, input: &EventTypeIn) -> Result<EventTypeOut> {
        self.call(Method::POST, "/v1/event-types", |r| r.json(input))
            .await
    }

    /// `GET /v1/event-types`.
    pub async fn list_event_types(&self, paging: &Paging) -> Result<Page<EventTypeOut>> {
        self.list("/v1/event-types", paging).await
    }

    /// `GET /v1/event-types/{name}`.
    pub async fn get_event_type(&self, name: &str) -> Result<EventTypeOut> {
        self.call(Method::GET, &event_type_path(name), |r| r).await
    }

    /// `PATCH /v1/event-types/{name}`: only the fields present in `patch` change.
    pub async fn update_event_type(
        &self,
        name: &str,
        patch: &EventTypePatch,
    ) -> Result<EventTypeOut> {
        self.call(Method::PATCH, &event_type_path(name), |r| r.json(patch))
            .await
    }

    /// `DELETE /v1/event-types/{name}`.
    pub async fn delete_event_type(&self, name: &str) -> Result<()> {
        self.send(Method::DELETE, &event_type_path(name), |r| r)
            .await
            .map(drop)
    }

    /// `POST /v1/webhooks/{id}/enable`.
    pub async fn enable_webhook(&self, id: &str) -> Result<WebhookOut> {
        self.call(Method::POST, &webhook_path(id, "/enable"), |r| r)
            .await
    }

    /// `POST /v1/webhooks/{id}/disable`.
    pub async fn disable_webhook(&self, id: &str) -> Result<WebhookOut> {
        self.call(Method::POST, &webhook_path(id, "/disable"), |r| r)
            .await
    }

    /// `POST /v1/webhooks/{id}/secret/rotate`.
    pub async fn rotate_secret(&self, id: &str) -> Result<RotatedSecret> {
        self.call(Method::POST, &webhook_path(id, "/secret/rotate"), |r| r)
            .await
    }

    /// `POST /v1/app/callback-secret/rotate`: the app's new callback secret.
    pub async fn rotate_callback_secret(&self) -> Result<RotatedSecret> {
        self.call(Method::POST, "/v1/app/callback-secret/rotate", |r| r)
            .await
    }

    /// `POST /v1/webhooks/{id}/test`: a signed test delivery, made now.
    pub async fn test_webhook(&self, id: &str) -> Result<TestResult> {
        self.call(Method::POST, &webhook_path(id, "/test"), |r| r)
            .await
    }

    // Inbound sources (app key).

    /// `POST /v1/sources`.
    pub async fn create_source(&self, source: &SourceIn) -> Result<SourceOut> {
        self.call(Method::POST, "/v1/sources", |r| r.json(source))
            .await
    }

    /// `GET /v1/sources`.
    pub async fn list_sources(&self, paging: &Paging) -> Result<Page<SourceOut>> {
        self.list("/v1/sources", paging).await
    }

    /// `GET /v1/sources/{id}`.
    pub async fn get_source(&self, id: &str) -> Result<SourceOut> {
        self.call(Method::GET, &source_path(id, ""), |r| r).await
    }

    /// `PATCH /v1/sources/{id}`: only the fields present in `patch` change.
    pub async fn update_source(&self, id: &str, patch: &SourcePatch) -> Result<SourceOut> {
        self.call(Method::PATCH, &source_path(id, ""), |r| r.json(patch))
            .await
    }

    /// `DELETE /v1/sources/{id}`.
    pub async fn delete_source(&self, id: &str) -> Result<()> {
        self.send(Method::DELETE, &source_path(id, ""), |r| r)
            .await
            .map(drop)
    }

    /// `GET /v1/sources/{id}/requests`: what the source received, newest first.
    pub async fn source_requests(
        &self,
        id: &str,
        paging: &Paging,
    ) -> Result<Page<SourceRequestOut>> {
        self.list(&source_path(id, "/requests"), paging).await
    }

    // Events and deliveries (app key).

    /// `POST /v1/events`, with an `Idempotency-Key` when given.
    pub async fn publish(
        &self,
        events: &PublishIn,
        idempotency_key: Option<&str>,
    ) -> Result<Published> {
        self.call(Method::POST, "/v1/events", |r| {
            let r = r.json(events);
            match idempotency_key {
                Some(key) => r.header("Idempotency-Key", key),
                None => r,
            }
        })
        .await
    }

    /// `GET /v1/webhooks/{id}/deliveries`: the webhook's attempts, newest first.
    pub async fn webhook_deliveries(
        &self,
        id: &str,
        filter: &DeliveryFilterParams,
        paging: &Paging,
    ) -> Result<Page<AttemptOut>> {
        self.list_with(&webhook_path(id, "/deliveries"), filter, paging)
            .await
    }

    /// `GET /v1/events/{id}`: the event as published and its status per webhook.
    pub async fn get_event(&self, id: &str) -> Result<EventOut> {
        self.call(Method::GET, &format!("/v1/events/{}", seg(id)), |r| r)
            .await
    }

    /// `GET /v1/events`: the app's events, newest first, filtered.
    pub async fn list_events(
        &self,
        filter: &EventListParams,
        paging: &Paging,
    ) -> Result<Page<EventSummaryOut>> {
        self.list_with("/v1/events", filter, paging).await
    }

    /// `GET /v1/deliveries`: every attempt of the app's webhooks, newest first.
    pub async fn app_deliveries(
        &self,
        filter: &DeliveryFilterParams,
        paging: &Paging,
    ) -> Result<Page<AttemptOut>> {
        self.list_with("/v1/deliveries", filter, paging).await
    }

    /// `POST /v1/webhooks/{id}/recover`: one call of a recovery.
    pub async fn recover(&self, id: &str, input: &RecoverIn) -> Result<RecoverOut> {
        self.call(Method::POST, &webhook_path(id, "/recover"), |r| {
            r.json(input)
        })
        .await
    }

    /// `GET /v1/events/{id}/deliveries`: the event's attempts, newest first.
    pub async fn event_deliveries(
        &self,
        id: &str,
        filter: &DeliveryFilterParams,
        paging: &Paging,
    ) -> Result<Page<AttemptOut>> {
        let path = format!("/v1/events/{}/deliveries", seg(id));
        self.list_with(&path, filter, paging).await
    }

    // The plumbing.

    /// One page of a list, or with [`Paging::all`] every page as one without a cursor.
    async fn list<T: DeserializeOwned>(&self, path: &str, paging: &Paging) -> Result<Page<T>> {
        self.list_with(path, &[] as &[(&str, &str)], paging).await
    }

    /// [`ApiClient::list`] with more query parameters, `query`, on every request.
    async fn list_with<T: DeserializeOwned, Q: serde::Serialize + ?Sized>(
        &self,
        path: &str,
        query: &Q,
        paging: &Paging,
    ) -> Result<Page<T>> {
        let mut params = paging.params.clone();
        let mut page: Page<T> = self
            .call(Method::GET, path, |r| r.query(&params).query(query))
            .await?;
        if !paging.all {
            return Ok(page);
        }
        let mut data = std::mem::take(&mut page.data);
        while let Some(cursor) = page.next_cursor.take().filter(|c| !c.is_empty()) {
            params.cursor = Some(cursor);
            page = self
                .call(Method::GET, path, |r| r.query(&params).query(query))
                .await?;
            data.append(&mut page.data);
        }
        Ok(Page {
            data,
            next_cursor: None,
        })
    }

    /// Sends a request and decodes the JSON of its 2xx answer as a `T`.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        build: impl FnOnce(RequestBuilder) -> RequestBuilder,
    ) -> Result<T> {
        let (status, body) = self.send(method.clone(), path, build).await?;
        serde_json::from_slice(&body).map_err(|e| {
            let what = match e.classify() {
                serde_json::error::Category::Data => "the expected JSON",
                _ => "JSON",
            };
            Failure::Failed(format!(
                "{method} {path}: the API answered {status} with a body that is not {what}: {e}"
            ))
            .into()
        })
    }

    /// Sends a request; the status and body of a 2xx answer, else the API's error.
    async fn send(
        &self,
        method: Method,
        path: &str,
        build: impl FnOnce(RequestBuilder) -> RequestBuilder,
    ) -> Result<(StatusCode, Bytes)> {
        let url = format!("{}{path}", self.base);
        let req = build(
            self.http
                .request(method.clone(), &url)
                .bearer_auth(&self.key),
        );
        let resp = req.send().await.map_err(|e| unreachable(&self.base, &e))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| unreachable(&self.base, &e))?;
        if status.is_success() {
            Ok((status, body))
        } else {
            Err(api_error(&method, path, status, &body))
        }
    }
}

fn keys_path(app: &str) -> String {
    format!("/v1/apps/{}/keys", seg(app))
}

fn event_type_path(name: &str) -> String {
    format!("/v1/event-types/{}", seg(name))
}

fn source_path(id: &str, rest: &str) -> String {
    format!("/v1/sources/{}{rest}", seg(id))
}

fn webhook_path(id: &str, rest: &str) -> String {
    format!("/v1/webhooks/{}{rest}", seg(id))
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
    let (code, message) = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody { error }) => (error.code, error.message),
        Err(_) => (
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
    /// The HTTP status.
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
fn seg(s: &str) -> String {
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
    use herald_api::health::{HealthOut, HealthWindowOut};

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

    /// The `--json` output re-serializes what the client decoded: the API's own
    /// types give back the very text the API sent.
    fn round_trips<T: serde::Serialize + DeserializeOwned>(sent: &T) {
        let text = serde_json::to_string(sent).unwrap();
        let decoded: T = serde_json::from_str(&text).unwrap();
        assert_eq!(serde_json::to_string(&decoded).unwrap(), text);
    }

    #[test]
    fn answers_round_trip_unchanged() {
        use herald_api::error::ErrorDetail;
        let now = chrono::Utc::now();
        let app = || AppOut {
            id: "shop".into(),
            name: "The shop".into(),
            created_at: now,
        };
        round_trips(&app());
        round_trips(&Page {
            data: vec![app(), app()],
            next_cursor: Some("c1".into()),
        });
        round_trips(&Page::<AppOut> {
            data: vec![],
            next_cursor: None,
        });
        for key in [None, Some("hk_secret".to_owned())] {
            round_trips(&KeyOut {
                id: "key_1".into(),
                app_id: "shop".into(),
                prefix: "hk_0190".into(),
                created_at: now,
                key,
            });
        }
        for (secret, reason, rate_limit) in
            [(Some("whsec_x"), None, None), (None, Some("gone"), Some(5))]
        {
            round_trips(&WebhookOut {
                id: "sub_1".into(),
                url: "https://example.com/h".into(),
                events: vec!["update".into()],
                object_types: vec![],
                description: "d".into(),
                headers: [("x-team".to_owned(), "billing".to_owned())].into(),
                active: reason.is_none(),
                disabled_reason: reason.map(str::to_owned),
                rate_limit,
                format: if rate_limit.is_some() {
                    "para"
                } else {
                    "standard"
                }
                .into(),
                content_type: if rate_limit.is_some() { "form" } else { "json" }.into(),
                filter: rate_limit.map(|_| serde_json::json!({"path": "/data/a", "eq": 1})),
                ordered: rate_limit.is_some(),
                created_at: now,
                updated_at: now,
                secret: secret.map(str::to_owned),
                // The webhook the listing and GET show has its health.
                health: reason.map(|_| HealthOut {
                    consecutive_failures: 3,
                    failed_deliveries_in_a_row: 1,
                    last_success_at: None,
                    last_failure_at: Some(now),
                    last_24h: HealthWindowOut {
                        attempts: 7,
                        successes: 4,
                        failures: 3,
                        success_rate: Some(4.0 / 7.0),
                        latency_p50_ms: Some(80),
                        latency_p95_ms: Some(1_300),
                    },
                    hours: Vec::new(),
                }),
            });
        }
        round_trips(&RotatedSecret {
            secret: "whsec_y".into(),
            previous_secret_expires_at: now,
        });
        round_trips(&TestResult {
            success: false,
            webhook_id: "msg_1".into(),
            status_code: None,
            latency_ms: 12,
            error: Some("connection refused".into()),
            response_body: String::new(),
        });
        round_trips(&Published {
            ids: vec!["evt_1".into(), "evt_2".into()],
        });
        round_trips(&AttemptOut {
            event_id: "evt_1".into(),
            event_type: "update".into(),
            subscription_id: "sub_1".into(),
            webhook_id: "msg_1".into(),
            attempt: 2,
            attempted_at: now,
            outcome: "failed".into(),
            status_code: Some(500),
            latency_ms: 7,
            error_kind: Some("http_status".into()),
            error: None,
            response_body: "oops".into(),
            next_attempt_at: Some(now),
        });
        round_trips(&ErrorBody {
            error: ErrorDetail {
                code: "not_found".into(),
                message: "webhook sub_x not found".into(),
            },
        });
    }

    #[test]
    fn requests_carry_only_what_is_given() {
        let app = serde_json::to_value(AppIn {
            id: None,
            name: "Shop".into(),
        })
        .unwrap();
        assert_eq!(app, serde_json::json!({"name": "Shop"}));
        let patch = serde_json::to_value(WebhookPatch {
            events: Some(vec!["update".into()]),
            headers: Some(Default::default()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            patch,
            serde_json::json!({"events": ["update"], "headers": {}})
        );
        let query = |params: &PageParams| {
            reqwest::Client::new()
                .get("http://api.test/v1/webhooks")
                .query(params)
                .build()
                .unwrap()
                .url()
                .query()
                .map(str::to_owned)
        };
        assert_eq!(query(&PageParams::default()), None);
        let params = PageParams {
            limit: Some(10),
            cursor: Some("a b".into()),
        };
        assert_eq!(query(&params).as_deref(), Some("limit=10&cursor=a+b"));
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(seg("sub_0190ab-x"), "sub_0190ab-x");
        assert_eq!(seg("a/b c"), "a%2Fb%20c");
    }
}
