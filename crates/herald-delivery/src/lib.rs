//! Delivering one signed request over HTTP.
//!
//! [`HttpDeliverer`] is the one HTTP client of deliveries (the consumer's and the
//! API's test pings): pooled, no redirects, bounded timeouts and response sizes, and
//! the address policy enforced on the addresses it actually connects to.

mod client;
mod request;
#[cfg(test)]
mod request_formats;
mod settings;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use herald_core::address::{AddressPolicy, PortPolicy, RefusedAddress};
use herald_core::delivery::{parse_retry_after, RESPONSE_BODY_CAP};
use herald_core::{DeliveryError, DeliveryOutcome};
use http::header::{HeaderValue, PROXY_AUTHORIZATION, RETRY_AFTER};
use http_body_util::BodyExt;

pub use request::{DeliveryRequest, PreparedRoute};
pub use settings::HttpSettings;

/// Makes delivery attempts. The HTTP implementation is [`HttpDeliverer`].
#[async_trait]
pub trait Deliverer: Send + Sync {
    /// Makes one attempt; every way it can end is in the outcome.
    async fn deliver(&self, request: DeliveryRequest) -> DeliveryOutcome;
}

/// Delivers over HTTP(S) with one pooled client: connections are reused across
/// deliveries and batches, redirects are never followed, at most
/// [`RESPONSE_BODY_CAP`] bytes of a response are read, and destinations outside the
/// address policy are refused (host names through the resolver, IP literals before
/// the request).
#[derive(Clone)]
pub struct HttpDeliverer {
    client: client::HttpClient,
    /// Plain `http://` requests through the egress proxy carry its credentials.
    proxy_auth: Option<HeaderValue>,
    policy: AddressPolicy,
    ports: PortPolicy,
    total_timeout: Duration,
}

/// The HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("building the HTTP client: {0}")]
pub struct ClientError(String);

impl HttpDeliverer {
    /// A client with `settings`. It never takes a proxy from the environment
    /// (`HTTP_PROXY`…), which would connect on its behalf and so bypass the guarded
    /// resolver; only `settings.egress_proxy`, when set, which then resolves the
    /// destinations itself (the client resolves only the proxy's name, unguarded: an
    /// egress proxy commonly sits at a private address). Redirects are never
    /// followed and nothing is retried inside the client: a delivery that fails is
    /// Herald's to retry, on its schedule.
    pub fn new(settings: &HttpSettings) -> Result<Self, ClientError> {
        let (client, proxy_auth) = client::build(settings).map_err(ClientError)?;
        Ok(Self {
            client,
            proxy_auth,
            policy: settings.address_policy.clone(),
            ports: settings.allowed_ports.clone(),
            total_timeout: settings.total_timeout,
        })
    }

    /// Refuses ports outside the port policy and IP-literal hosts outside the address
    /// policy (those never reach the resolver), and, though a prepared route already
    /// did, schemes other than http(s). `url` is the one parsed when the route was
    /// prepared.
    fn check_url(&self, url: &url::Url) -> Result<(), DeliveryError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(DeliveryError::Invalid(format!(
                "scheme {} is not http(s)",
                url.scheme()
            )));
        }
        if let Some(port) = url.port_or_known_default() {
            self.ports
                .check(port)
                .map_err(|e| DeliveryError::Refused(e.to_string()))?;
        }
        let ip = match url.host() {
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

fn classify(e: &hyper_util::client::legacy::Error) -> DeliveryError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(refused) = s.downcast_ref::<RefusedAddress>() {
            return DeliveryError::Refused(refused.to_string());
        }
        source = s.source();
    }
    if herald_runtime::http_client::is_timeout(e) {
        DeliveryError::Timeout
    } else if e.is_connect() {
        DeliveryError::Connect(error_chain(e))
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
        let deadline = tokio::time::Instant::from_std(started) + self.total_timeout;
        let route = Arc::clone(&request.route);
        let target = match route.target() {
            Ok(target) => target,
            Err(error) => return DeliveryOutcome::failed(error, started.elapsed()),
        };
        if let Err(error) = self.check_url(&target.url) {
            return DeliveryOutcome::failed(error, started.elapsed());
        }
        let mut http = request.into_http(target);
        if let Some(auth) = &self.proxy_auth {
            if target.url.scheme() == "http" {
                http.headers_mut().insert(PROXY_AUTHORIZATION, auth.clone());
            }
        }
        let response = match tokio::time::timeout_at(deadline, self.client.request(http)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return DeliveryOutcome::failed(classify(&e), started.elapsed()),
            Err(_) => return DeliveryOutcome::failed(DeliveryError::Timeout, started.elapsed()),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let mut stream = response.into_body();
        let mut body = Vec::new();
        // The status decides the outcome; a body cut short (or refused, or still
        // coming when the attempt's time is up) changes nothing.
        while body.len() < RESPONSE_BODY_CAP {
            match tokio::time::timeout_at(deadline, stream.frame()).await {
                Ok(Some(Ok(frame))) => {
                    if let Some(chunk) = frame.data_ref() {
                        body.extend_from_slice(chunk);
                    }
                }
                _ => break,
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

    /// A signed request of `{}` to `url`.
    fn request(url: &str) -> DeliveryRequest {
        signed(herald_core::testing::route(url))
    }

    /// A signed request of `{}` by `route`.
    fn signed(route: herald_core::Route) -> DeliveryRequest {
        let route = Arc::new(PreparedRoute::new(route));
        let event = herald_core::testing::event("shop", "update");
        route.sign(
            herald_core::webhook_id(&event.id, &route.id),
            bytes::Bytes::from_static(b"{}").into(),
            chrono::Utc::now(),
        )
    }

    /// What `deliverer` says of `url` before making any request.
    fn check(deliverer: &HttpDeliverer, url: &str) -> Result<(), DeliveryError> {
        deliverer.check_url(&request(url).route.target()?.url)
    }

    fn deliverer(allow: &str) -> HttpDeliverer {
        HttpDeliverer::new(&HttpSettings {
            address_policy: AddressPolicy::with_allowlist(allow).unwrap(),
            ..HttpSettings::default()
        })
        .unwrap()
    }

    /// A deliverer whose egress proxy is `proxy` (settings validated as at start-up).
    fn via_proxy(proxy: &str) -> HttpDeliverer {
        let settings = HttpSettings {
            egress_proxy: Some(proxy.to_owned()),
            ..HttpSettings::default()
        };
        herald_runtime::config::Validate::validate(&settings).unwrap();
        HttpDeliverer::new(&settings).unwrap()
    }

    /// The first lines of the requests `seen`.
    fn first_lines(seen: &std::sync::Mutex<Vec<String>>) -> Vec<String> {
        let seen = seen.lock().unwrap();
        seen.iter()
            .map(|head| head.lines().next().unwrap_or_default().to_owned())
            .collect()
    }

    /// Answers every request 204 and keeps each request's head (its first line and
    /// headers).
    async fn recording_server() -> (u16, Arc<std::sync::Mutex<Vec<String>>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                log.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&head).into_owned());
                let _ = conn
                    .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            }
        });
        (port, seen)
    }

    #[tokio::test]
    async fn with_an_egress_proxy_deliveries_go_through_it() {
        let (port, seen) = recording_server().await;
        // The proxy's own name resolves to loopback: the policy is the proxy's job
        // then, not applied to the proxy itself.
        let deliverer = via_proxy(&format!("http://127.0.0.1:{port}"));
        let outcome = deliverer
            .deliver(request("http://hooks.example.invalid/hook"))
            .await;
        assert_eq!(outcome.status(), Some(204), "{outcome:?}");
        assert_eq!(
            first_lines(&seen),
            ["POST http://hooks.example.invalid/hook HTTP/1.1"]
        );
        // IP literals outside the policy are still refused before any request.
        let outcome = deliverer.deliver(request("http://10.0.0.1/hook")).await;
        assert!(
            matches!(outcome.error(), Some(DeliveryError::Refused(_))),
            "{outcome:?}"
        );
        assert_eq!(seen.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn an_egress_proxy_may_be_named_and_private() {
        let (port, seen) = recording_server().await;
        let deliverer = via_proxy(&format!("http://localhost:{port}"));
        let outcome = deliverer
            .deliver(request("http://hooks.example.invalid/x"))
            .await;
        assert_eq!(outcome.status(), Some(204), "{outcome:?}");
        assert_eq!(seen.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn https_deliveries_tunnel_through_the_egress_proxy_with_its_credentials() {
        let (port, seen) = recording_server().await;
        let deliverer = via_proxy(&format!("http://herald:s%40cret@127.0.0.1:{port}"));
        // The recording proxy answers 204, not 200, to the CONNECT: no tunnel.
        let outcome = deliverer
            .deliver(request("https://hooks.example.invalid/x"))
            .await;
        assert!(
            matches!(outcome.error(), Some(DeliveryError::Connect(_))),
            "{outcome:?}"
        );
        let outcome = deliverer
            .deliver(request("http://hooks.example.invalid/y"))
            .await;
        assert_eq!(outcome.status(), Some(204), "{outcome:?}");
        assert_eq!(
            first_lines(&seen),
            [
                "CONNECT hooks.example.invalid:443 HTTP/1.1",
                "POST http://hooks.example.invalid/y HTTP/1.1"
            ]
        );
        // herald:s@cret, percent-decoded, in both.
        let credentials = "proxy-authorization: Basic aGVyYWxkOnNAY3JldA==";
        for head in seen.lock().unwrap().iter() {
            assert!(
                head.to_ascii_lowercase()
                    .contains(&credentials.to_ascii_lowercase()),
                "{head}"
            );
        }
    }

    #[tokio::test]
    async fn requests_carry_herald_user_agent_even_when_a_webhook_sets_one() {
        let (port, seen) = recording_server().await;
        let deliverer = deliverer("127.0.0.1/32");
        let url = format!("http://127.0.0.1:{port}/hook");
        let outcome = deliverer.deliver(request(&url)).await;
        assert_eq!(outcome.status(), Some(204), "{outcome:?}");
        let mut custom = herald_core::testing::route(&url);
        custom
            .headers
            .insert("User-Agent".to_owned(), "acme-relay/2".to_owned());
        let outcome = deliverer.deliver(signed(custom)).await;
        assert_eq!(outcome.status(), Some(204), "{outcome:?}");
        let heads = seen.lock().unwrap().clone();
        let agents: Vec<Vec<&str>> = heads
            .iter()
            .map(|h| {
                h.lines()
                    .filter(|l| l.to_ascii_lowercase().starts_with("user-agent:"))
                    .collect()
            })
            .collect();
        let herald = [concat!(
            "user-agent: Herald-Webhooks/",
            env!("CARGO_PKG_VERSION")
        )];
        assert_eq!(agents, [herald, herald]);
    }

    #[tokio::test]
    async fn ports_outside_the_port_policy_are_refused_before_any_request() {
        let (port, seen) = recording_server().await;
        let deliverer = |ports: &str| {
            HttpDeliverer::new(&HttpSettings {
                address_policy: AddressPolicy::with_allowlist("127.0.0.1/32").unwrap(),
                allowed_ports: ports.parse().unwrap(),
                ..HttpSettings::default()
            })
            .unwrap()
        };
        let request = || request(&format!("http://127.0.0.1:{port}/hook"));
        let outcome = deliverer("443,8000-8999").deliver(request()).await;
        match outcome.error() {
            Some(DeliveryError::Refused(msg)) => assert!(
                msg.contains(&port.to_string()) && msg.contains("HERALD_ALLOWED_PORTS"),
                "{msg}"
            ),
            other => panic!("not refused: {other:?}"),
        }
        assert!(seen.lock().unwrap().is_empty(), "nothing was sent");
        // Names are checked too, and a URL without a port uses its scheme's.
        let strict = deliverer("443");
        assert!(matches!(
            check(&strict, "https://example.com:8443/x"),
            Err(DeliveryError::Refused(_))
        ));
        assert!(matches!(
            check(&strict, "http://example.com/x"),
            Err(DeliveryError::Refused(_))
        ));
        assert!(check(&strict, "https://example.com/x").is_ok());
        // Its port allowed (or the default, any port), the delivery goes out.
        let allowed = format!("443,{port}");
        for ports in [allowed.as_str(), ""] {
            let outcome = deliverer(ports).deliver(request()).await;
            assert_eq!(outcome.status(), Some(204), "{ports}: {outcome:?}");
        }
        assert_eq!(seen.lock().unwrap().len(), 2);
    }

    #[test]
    fn urls_are_checked_before_any_request() {
        let strict = deliverer("");
        assert!(matches!(
            check(&strict, "http://127.0.0.1:9/x"),
            Err(DeliveryError::Refused(_))
        ));
        assert!(matches!(
            check(&strict, "http://[::ffff:10.0.0.1]/"),
            Err(DeliveryError::Refused(_))
        ));
        assert!(matches!(
            check(&strict, "ftp://example.com/"),
            Err(DeliveryError::Invalid(_))
        ));
        assert!(matches!(
            check(&strict, "not a url"),
            Err(DeliveryError::Invalid(_))
        ));
        assert!(
            check(&strict, "https://example.com/hook").is_ok(),
            "names are checked at resolution"
        );
        assert!(check(&deliverer("127.0.0.1/32"), "http://127.0.0.1:9/x").is_ok());
    }
}
