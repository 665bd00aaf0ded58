//! Delivering one signed request over HTTP.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use herald_core::address::{AddressPolicy, RefusedAddress};
use herald_core::AttemptFailure;

/// Most bytes of a response body that are read (and kept for the delivery history).
pub const RESPONSE_BODY_CAP: usize = 4 * 1024;

/// One POST to make.
#[derive(Debug, Clone)]
pub struct DeliveryRequest {
    pub url: String,
    /// Headers in order: the subscription's custom headers first, then the signature
    /// headers, which therefore always win.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// Why a delivery produced no HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    #[error("timed out")]
    Timeout,
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("request failed: {0}")]
    Request(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The destination resolves only to addresses the policy refuses.
    #[error("destination refused: {0}")]
    Refused(String),
}

impl DeliveryError {
    /// A short machine-readable kind, for the delivery history.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connect(_) => "connect",
            Self::Request(_) => "request",
            Self::Invalid(_) => "invalid_url",
            Self::Refused(_) => "refused_address",
        }
    }
}

/// What happened to one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryOutcome {
    /// The HTTP status, when the receiver answered.
    pub status: Option<u16>,
    pub latency: Duration,
    pub error: Option<DeliveryError>,
    /// The start of the response body (at most [`RESPONSE_BODY_CAP`] bytes).
    pub response_body: String,
    /// The response's `Retry-After`, as a delay from now.
    pub retry_after: Option<Duration>,
}

impl DeliveryOutcome {
    /// 2xx is success; anything else (3xx included: redirects are never followed) is not.
    pub fn is_success(&self) -> bool {
        self.error.is_none() && matches!(self.status, Some(200..=299))
    }

    /// The failure as the retry policy sees it; `None` on success.
    pub fn failure(&self) -> Option<AttemptFailure> {
        match (&self.error, self.status) {
            (None, Some(200..=299)) => None,
            (Some(DeliveryError::Refused(_) | DeliveryError::Invalid(_)), _) => {
                Some(AttemptFailure::Refused)
            }
            (Some(_), _) | (None, None) => Some(AttemptFailure::Transport),
            (None, Some(code)) => Some(AttemptFailure::Status {
                code,
                retry_after: self.retry_after,
            }),
        }
    }

    /// A short description for logs: the status, or the error.
    pub fn describe(&self) -> String {
        match (&self.status, &self.error) {
            (_, Some(e)) => e.to_string(),
            (Some(s), None) => format!("HTTP {s}"),
            (None, None) => "no response".to_owned(),
        }
    }
}

/// Makes delivery attempts. The HTTP implementation is [`HttpDeliverer`].
#[async_trait]
pub trait Deliverer: Send + Sync {
    async fn deliver(&self, request: DeliveryRequest) -> DeliveryOutcome;
}

/// Timeouts and limits of the HTTP client.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub connect_timeout: Duration,
    pub total_timeout: Duration,
    pub pool_idle_timeout: Duration,
    pub pool_max_idle_per_host: usize,
    /// Which addresses deliveries may connect to.
    pub address_policy: AddressPolicy,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            total_timeout: Duration::from_secs(15),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 32,
            address_policy: AddressPolicy::strict(),
        }
    }
}

/// Resolves host names and keeps only the addresses the policy allows, so the check
/// applies to the very addresses the client connects to: a name that resolves to a
/// public address when registered and to a private one at delivery (DNS rebinding)
/// is still refused.
struct GuardedResolver {
    policy: AddressPolicy,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refusal = None;
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|a| match policy.check(a.ip()) {
                    Ok(()) => true,
                    Err(e) => {
                        refusal.get_or_insert(e);
                        false
                    }
                })
                .collect();
            match (allowed.is_empty(), refusal) {
                (true, Some(refused)) => {
                    Err(Box::new(refused) as Box<dyn std::error::Error + Send + Sync>)
                }
                _ => Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs),
            }
        })
    }
}

/// Delivers over HTTP(S) with one pooled client: connections are reused across
/// deliveries and batches, redirects are never followed, at most
/// [`RESPONSE_BODY_CAP`] bytes of a response are read, and destinations outside the
/// address policy are refused (host names through the resolver, IP literals before
/// the request).
#[derive(Clone)]
pub struct HttpDeliverer {
    client: reqwest::Client,
    policy: AddressPolicy,
}

impl HttpDeliverer {
    pub fn new(settings: &HttpSettings) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver {
                policy: settings.address_policy.clone(),
            }))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.total_timeout)
            .pool_idle_timeout(settings.pool_idle_timeout)
            .pool_max_idle_per_host(settings.pool_max_idle_per_host)
            .user_agent(concat!("Herald-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            policy: settings.address_policy.clone(),
        })
    }

    /// Refuses malformed URLs, schemes other than http(s), and IP-literal hosts
    /// outside the policy (those never reach the resolver).
    fn check_url(&self, url: &str) -> Result<(), DeliveryError> {
        let parsed =
            reqwest::Url::parse(url).map_err(|e| DeliveryError::Invalid(format!("{url}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(DeliveryError::Invalid(format!(
                "scheme {} is not http(s)",
                parsed.scheme()
            )));
        }
        let ip = match parsed.host() {
            Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
            Some(url::Host::Domain(_)) => return Ok(()),
            None => return Err(DeliveryError::Invalid(format!("{url} has no host"))),
        };
        self.policy
            .check(ip)
            .map_err(|e| DeliveryError::Refused(e.to_string()))
    }
}

/// Parses `Retry-After`: a number of seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or_default())
}

fn classify(e: &reqwest::Error) -> DeliveryError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(refused) = s.downcast_ref::<RefusedAddress>() {
            return DeliveryError::Refused(refused.to_string());
        }
        source = s.source();
    }
    if e.is_timeout() {
        DeliveryError::Timeout
    } else if e.is_connect() {
        DeliveryError::Connect(error_chain(e))
    } else if e.is_builder() {
        DeliveryError::Invalid(error_chain(e))
    } else {
        DeliveryError::Request(error_chain(e))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[async_trait]
impl Deliverer for HttpDeliverer {
    async fn deliver(&self, request: DeliveryRequest) -> DeliveryOutcome {
        let started = Instant::now();
        if let Err(error) = self.check_url(&request.url) {
            return DeliveryOutcome {
                status: None,
                latency: started.elapsed(),
                error: Some(error),
                response_body: String::new(),
                retry_after: None,
            };
        }
        let mut builder = self
            .client
            .post(&request.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let result = builder.body(request.body).send().await;
        let mut response = match result {
            Ok(r) => r,
            Err(e) => {
                return DeliveryOutcome {
                    status: None,
                    latency: started.elapsed(),
                    error: Some(classify(&e)),
                    response_body: String::new(),
                    retry_after: None,
                }
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let mut body = Vec::new();
        // The status decides the outcome; a body cut short (or refused) changes nothing.
        while body.len() < RESPONSE_BODY_CAP {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        body.truncate(RESPONSE_BODY_CAP);
        DeliveryOutcome {
            status: Some(status),
            latency: started.elapsed(),
            error: None,
            response_body: String::from_utf8_lossy(&body).into_owned(),
            retry_after,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_or_an_http_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    fn deliverer(allow: &str) -> HttpDeliverer {
        HttpDeliverer::new(&HttpSettings {
            address_policy: AddressPolicy::with_allowlist(allow).unwrap(),
            ..HttpSettings::default()
        })
        .unwrap()
    }

    #[test]
    fn urls_are_checked_before_any_request() {
        let strict = deliverer("");
        assert!(matches!(
            strict.check_url("http://127.0.0.1:9/x"),
            Err(DeliveryError::Refused(_))
        ));
        assert!(matches!(
            strict.check_url("http://[::ffff:10.0.0.1]/"),
            Err(DeliveryError::Refused(_))
        ));
        assert!(matches!(
            strict.check_url("ftp://example.com/"),
            Err(DeliveryError::Invalid(_))
        ));
        assert!(matches!(
            strict.check_url("not a url"),
            Err(DeliveryError::Invalid(_))
        ));
        assert!(
            strict.check_url("https://example.com/hook").is_ok(),
            "names are checked at resolution"
        );
        assert!(deliverer("127.0.0.1/32")
            .check_url("http://127.0.0.1:9/x")
            .is_ok());
    }

    fn outcome(status: Option<u16>, error: Option<DeliveryError>) -> DeliveryOutcome {
        DeliveryOutcome {
            status,
            latency: Duration::ZERO,
            error,
            response_body: String::new(),
            retry_after: Some(Duration::from_secs(7)),
        }
    }

    #[test]
    fn outcomes_map_onto_the_retry_policy() {
        assert_eq!(outcome(Some(204), None).failure(), None);
        assert_eq!(
            outcome(Some(503), None).failure(),
            Some(AttemptFailure::Status {
                code: 503,
                retry_after: Some(Duration::from_secs(7))
            })
        );
        assert_eq!(
            outcome(None, Some(DeliveryError::Timeout)).failure(),
            Some(AttemptFailure::Transport)
        );
        assert_eq!(
            outcome(None, Some(DeliveryError::Refused("x".into()))).failure(),
            Some(AttemptFailure::Refused)
        );
        assert!(!outcome(Some(301), None).is_success());
    }
}
