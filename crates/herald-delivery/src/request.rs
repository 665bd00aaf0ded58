//! The request of one delivery: the webhook's route prepared once (URL parsed, custom
//! headers and content type as header types, secrets keyed as its format signs), and
//! per delivery only what changes (the webhook id, the timestamp, the signature and the
//! shared body).
//!
//! A standard-format delivery carries the three Standard Webhooks headers, signed over
//! the exact body sent (the JSON, or the form `payload=…`); a Para-format one carries
//! `webhook-id`, `X-Webhook-Signature` (over the payload JSON, as Para signs it) and
//! `X-Para-Event` ([`herald_core::para`]).

use std::ops::Deref;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use herald_core::signing::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use herald_core::{
    is_credential_header, is_reserved_header, para, Body, DeliveryError, EventType, PayloadFormat,
    Route, SigningKeys, WebhookId,
};
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, USER_AGENT};
use http::{Method, Uri};
use url::Url;

use herald_runtime::http_client::RequestBody;

/// The `user-agent` of every delivery (a reserved header: custom headers cannot set
/// it).
const HERALD_USER_AGENT: &str = concat!("Herald-Webhooks/", env!("CARGO_PKG_VERSION"));

/// A webhook's route made ready for many deliveries: its URL parsed and its scheme
/// checked, its custom headers (less the reserved ones) turned into header types, its
/// secrets keyed. The consumer keeps these in its route cache, so this work is done
/// once per route load, not per delivery. The address and port policies are the
/// deliverer's, checked on every delivery against the parsed URL. Derefs to the route.
#[derive(Debug, Clone)]
pub struct PreparedRoute {
    route: Route,
    /// Where and with which fixed headers deliveries go, or why none can be made.
    target: Result<Target, DeliveryError>,
    keys: SigningKeys,
}

/// The parts of every delivery's request that do not change between deliveries.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The URL, parsed: what the address and port policies are checked against.
    pub url: Url,
    /// The same URL as the request's URI.
    uri: Uri,
    /// `content-type` (the route's), then its custom headers (reserved names left out).
    headers: HeaderMap,
}

impl PreparedRoute {
    /// Prepares `route`. A URL or custom header that cannot be sent makes every
    /// delivery of the route fail as invalid, as it did when parsed per request.
    pub fn new(route: Route) -> Self {
        let target = Target::of(&route);
        let keys = match route.format {
            PayloadFormat::Standard => route.signing_keys(),
            PayloadFormat::Para => route.para_keys(),
        };
        Self {
            route,
            target,
            keys,
        }
    }

    /// The route as loaded.
    pub fn route(&self) -> &Route {
        &self.route
    }

    /// Where and with which fixed headers deliveries go, or why none can be made.
    pub(crate) fn target(&self) -> Result<&Target, DeliveryError> {
        self.target.as_ref().map_err(Clone::clone)
    }

    /// The signed request of one delivery of `body` (shared by every delivery of its
    /// event in the route's format and content type, [`herald_core::Bodies`]) to this
    /// route, with webhook id `webhook_id`, signed at `now`.
    pub fn sign(
        self: &Arc<Self>,
        webhook_id: WebhookId,
        body: Body,
        now: DateTime<Utc>,
    ) -> DeliveryRequest {
        let (signature, para_event) = match (self.route.format, body.para) {
            (PayloadFormat::Para, Some(parts)) => {
                (self.keys.para_sign(now, &parts.payload), Some(parts.event))
            }
            // A Para route handed a body without Para's parts signs what it sends.
            (PayloadFormat::Para, None) => (self.keys.para_sign(now, &body.sent), None),
            (PayloadFormat::Standard, _) => {
                (self.keys.sign(webhook_id.as_str(), now, &body.sent), None)
            }
        };
        DeliveryRequest {
            route: Arc::clone(self),
            webhook_id,
            timestamp: now.timestamp(),
            signature,
            body: body.sent,
            para_event,
        }
    }
}

impl From<Route> for PreparedRoute {
    fn from(route: Route) -> Self {
        Self::new(route)
    }
}

impl Deref for PreparedRoute {
    type Target = Route;

    fn deref(&self) -> &Route {
        &self.route
    }
}

impl Target {
    fn of(route: &Route) -> Result<Self, DeliveryError> {
        let url = Url::parse(&route.url)
            .map_err(|e| DeliveryError::Invalid(format!("{}: {e}", route.url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(DeliveryError::Invalid(format!(
                "scheme {} is not http(s)",
                url.scheme()
            )));
        }
        if !url.has_host() {
            return Err(DeliveryError::Invalid(format!("{} has no host", route.url)));
        }
        let uri = url
            .as_str()
            .parse()
            .map_err(|e| DeliveryError::Invalid(format!("{}: {e}", route.url)))?;
        let mut headers = HeaderMap::with_capacity(route.headers.len() + 4);
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(route.content_type.mime()),
        );
        for (name, value) in route.headers.iter().filter(|(n, _)| !is_reserved_header(n)) {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| DeliveryError::Invalid(format!("header name {name:?}: {e}")))?;
            let mut value = HeaderValue::from_str(value)
                .map_err(|e| DeliveryError::Invalid(format!("the value of header {name}: {e}")))?;
            value.set_sensitive(is_credential_header(name));
            headers.append(header, value);
        }
        Ok(Self { url, uri, headers })
    }
}

/// One signed POST to make.
#[derive(Debug, Clone)]
pub struct DeliveryRequest {
    /// The webhook's prepared route: URL, fixed headers.
    pub route: Arc<PreparedRoute>,
    /// The `webhook-id` header.
    pub webhook_id: WebhookId,
    /// The `webhook-timestamp` header (Unix seconds).
    pub timestamp: i64,
    /// The signature header's value: `webhook-signature` (one `v1,…` per signing
    /// secret), or Para's `X-Webhook-Signature`.
    pub signature: String,
    /// The exact bytes sent (and, but for Para's form body, signed).
    pub body: Bytes,
    /// Para's format: the `X-Para-Event` header.
    pub para_event: Option<EventType>,
}

impl DeliveryRequest {
    /// The webhook's URL, as registered.
    pub fn url(&self) -> &str {
        &self.route.url
    }

    /// Every header of the request as sent (the deliverer adds `user-agent`, the HTTP
    /// client `content-length` and `host`): `content-type`, the custom headers, then
    /// the signature headers of the route's format; or why the request cannot be
    /// made.
    pub fn headers(&self) -> Result<HeaderMap, DeliveryError> {
        let target = self.route.target()?;
        let signature = Bytes::from(self.signature.clone());
        Ok(self.signed_headers(target, signature))
    }

    /// The HTTP request to `target` (this request's route's).
    pub(crate) fn into_http(self, target: &Target) -> http::Request<RequestBody> {
        let mut headers = self.signed_headers(target, Bytes::from(self.signature.clone()));
        headers.insert(USER_AGENT, HeaderValue::from_static(HERALD_USER_AGENT));
        let mut request = http::Request::new(RequestBody::new(self.body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = target.uri.clone();
        *request.headers_mut() = headers;
        request
    }

    /// The target's fixed headers and the signature headers: `webhook-id`, then
    /// `webhook-timestamp` and `webhook-signature` (standard format), or
    /// `X-Webhook-Signature` and `X-Para-Event` (Para's). They replace custom headers
    /// of the same names.
    fn signed_headers(&self, target: &Target, signature: Bytes) -> HeaderMap {
        let mut headers = target.headers.clone();
        headers.insert(
            HeaderName::from_static(HEADER_ID),
            HeaderValue::from_str(self.webhook_id.as_str()).expect("a webhook id is ASCII"),
        );
        let signature =
            HeaderValue::from_maybe_shared(signature).expect("a signature is base64 text");
        match self.route.format {
            PayloadFormat::Standard => {
                headers.insert(
                    HeaderName::from_static(HEADER_TIMESTAMP),
                    HeaderValue::from(self.timestamp),
                );
                headers.insert(HeaderName::from_static(HEADER_SIGNATURE), signature);
            }
            PayloadFormat::Para => {
                headers.insert(HeaderName::from_static(para::HEADER_SIGNATURE), signature);
                if let Some(event) = &self.para_event {
                    headers.insert(
                        HeaderName::from_static(para::HEADER_EVENT),
                        HeaderValue::from_str(event.as_str()).expect("an event type is ASCII"),
                    );
                }
            }
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use herald_core::signing::Signer;
    use herald_core::{
        webhook_id, AppId, Event, EventFilter, EventType, ObjectType, ObjectTypeFilter, Secret,
        Subscription,
    };

    use super::*;

    fn event() -> Event {
        Event::new(
            AppId::parse("shop").unwrap(),
            EventType::parse("invoice.paid").unwrap(),
            ObjectType::parse("invoice").unwrap(),
            serde_json::json!({"total": 3}),
        )
    }

    fn subscription(headers: &[(&str, &str)]) -> Subscription {
        let mut s = Subscription::new(
            AppId::parse("shop").unwrap(),
            "https://hooks.example.com/in?x=1",
            EventFilter::All,
            ObjectTypeFilter::All,
        );
        s.headers = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>();
        s
    }

    /// The headers of a delivery as they were built per request before routes were
    /// prepared: `content-type` (set by the deliverer), the custom headers less the
    /// reserved ones, then the signature headers.
    fn headers_as_before(
        route: &Route,
        event: &Event,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> HeaderMap {
        let msg_id = webhook_id(&event.id, &route.id).to_string();
        let signed = Signer::headers(route.signing_secrets(now), &msg_id, now.timestamp(), body);
        let mut pairs: Vec<(String, String)> =
            vec![("content-type".into(), "application/json".into())];
        pairs.extend(
            route
                .headers
                .iter()
                .filter(|(name, _)| !is_reserved_header(name))
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        pairs.extend(signed.pairs().into_iter().map(|(k, v)| (k.to_owned(), v)));
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(&value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn prepared_headers_are_the_headers_of_before() {
        let custom = [
            ("x-team", "billing"),
            ("X-Trace", "a b c"),
            ("Authorization", "Bearer t0ken"),
            ("Webhook-Id", "forged"),
            ("content-type", "text/plain"),
            ("Connection", "close"),
        ];
        let now = Utc::now();
        for headers in [&custom[..], &[], &custom[..1]] {
            let mut sub = subscription(headers);
            let t0 = now - chrono::Duration::hours(1);
            for rotations in 0..3 {
                let event = event();
                let route = sub.route();
                let body = herald_core::Envelope::body_of(&event);
                let prepared = Arc::new(PreparedRoute::new(route.clone()));
                let request =
                    prepared.sign(webhook_id(&event.id, &route.id), body.clone().into(), now);
                assert_eq!(
                    request.headers().unwrap(),
                    headers_as_before(&route, &event, &body, now),
                    "{headers:?}, {rotations} rotations"
                );
                assert_eq!(request.url(), "https://hooks.example.com/in?x=1");
                // A rotation window that has ended (the second time round) and one
                // that has not (the third).
                let window = if rotations == 0 { 1 } else { 2 };
                sub.rotate_secret(t0, chrono::Duration::hours(window));
            }
        }
    }

    #[test]
    fn credential_header_values_are_marked_sensitive() {
        let prepared = PreparedRoute::new(
            subscription(&[("Authorization", "Bearer x"), ("x-team", "a")]).route(),
        );
        let headers = &prepared.target.as_ref().unwrap().headers;
        assert!(headers["authorization"].is_sensitive());
        assert!(!headers["x-team"].is_sensitive());
    }

    #[test]
    fn signatures_verify_with_the_reference_crate() {
        let mut sub = subscription(&[]);
        let old = sub.secrets[0].clone();
        let new = sub.rotate_secret(Utc::now(), chrono::Duration::hours(1));
        let prepared = Arc::new(PreparedRoute::new(sub.route()));
        let event = event();
        let body = herald_core::Envelope::body_of(&event);
        let request = prepared.sign(
            webhook_id(&event.id, &sub.id),
            body.clone().into(),
            Utc::now(),
        );
        let headers = request.headers().unwrap();
        for secret in [&old, &new] {
            standardwebhooks::Webhook::new(&secret.expose())
                .unwrap()
                .verify(&body, &headers)
                .unwrap();
        }
        let stranger = Secret::generate();
        assert!(standardwebhooks::Webhook::new(&stranger.expose())
            .unwrap()
            .verify(&body, &headers)
            .is_err());
    }

    #[test]
    fn unsendable_urls_and_headers_fail_every_delivery_as_invalid() {
        for (url, headers) in [
            ("not a url", &[][..]),
            ("ftp://example.com/x", &[]),
            ("https://example.com/x", &[("bad header", "x")]),
            ("https://example.com/x", &[("x-ok", "line\nbreak")]),
        ] {
            let mut sub = subscription(headers);
            sub.url = url.to_owned();
            let prepared = Arc::new(PreparedRoute::new(sub.route()));
            let event = event();
            let request =
                prepared.sign(webhook_id(&event.id, &sub.id), Body::default(), Utc::now());
            assert!(
                matches!(request.headers(), Err(DeliveryError::Invalid(_))),
                "{url} {headers:?}"
            );
            assert!(matches!(
                request.route.target(),
                Err(DeliveryError::Invalid(_))
            ));
        }
    }
}
