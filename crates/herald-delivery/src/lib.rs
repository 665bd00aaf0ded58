//! Delivering one signed request over HTTP.
//!
//! [`HttpDeliverer`] is the one HTTP client of deliveries (the consumer's and the
//! API's test pings): pooled, no redirects, bounded timeouts and response sizes, and
//! the address policy enforced on the addresses it actually connects to.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use herald_core::address::{AddressPolicy, RefusedAddress};
use herald_core::delivery::{parse_retry_after, RESPONSE_BODY_CAP};
use herald_core::settings;
use herald_core::{DeliveryError, DeliveryOutcome, DeliveryRequest};
use herald_runtime::config::{duration_in_range, ConfigError, Validate};

/// Makes delivery attempts. The HTTP implementation is [`HttpDeliverer`].
#[async_trait]
pub trait Deliverer: Send + Sync {
    /// Makes one attempt; every way it can end is in the outcome.
    async fn deliver(&self, request: DeliveryRequest) -> DeliveryOutcome;
}

/// Timeouts and limits of the HTTP client: settings `HERALD_HTTP_CONNECT_TIMEOUT`
/// (default 5s), `HERALD_HTTP_TIMEOUT` (15s) and `HERALD_ALLOW_PRIVATE_NETWORKS`,
/// shared by the consumer and the API's test pings.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(default)]
pub struct HttpSettings {
    /// Longest wait for a connection.
    #[serde(
        rename = "http_connect_timeout",
        deserialize_with = "settings::duration",
        serialize_with = "settings::write_duration"
    )]
    pub connect_timeout: Duration,
    /// Longest a whole attempt may take, connecting and reading included.
    #[serde(
        rename = "http_timeout",
        deserialize_with = "settings::duration",
        serialize_with = "settings::write_duration"
    )]
    pub total_timeout: Duration,
    /// How long an idle pooled connection is kept.
    #[serde(skip)]
    pub pool_idle_timeout: Duration,
    /// Idle connections kept per host.
    #[serde(skip)]
    pub pool_max_idle_per_host: usize,
    /// Which addresses deliveries may connect to (a comma-separated allowlist of
    /// networks; the default refuses every private address).
    #[serde(
        rename = "allow_private_networks",
        deserialize_with = "settings::parsed",
        serialize_with = "settings::write_display"
    )]
    pub address_policy: AddressPolicy,
}

impl Validate for HttpSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        duration_in_range(
            "http_connect_timeout",
            self.connect_timeout,
            Duration::from_millis(1)..=Duration::from_secs(60),
        )?;
        duration_in_range(
            "http_timeout",
            self.total_timeout,
            Duration::from_millis(1)..=Duration::from_secs(300),
        )
    }
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
    /// A client with `settings`.
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
            return DeliveryOutcome::failed(error, started.elapsed());
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
            Err(e) => return DeliveryOutcome::failed(classify(&e), started.elapsed()),
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
        DeliveryOutcome::answered(
            status,
            String::from_utf8_lossy(&body).into_owned(),
            retry_after,
            started.elapsed(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
