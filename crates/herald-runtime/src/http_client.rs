//! The one HTTP client stack of Herald's services: hyper's pooled HTTP/1.1 client on
//! rustls (*ring*, the bundled web PKI roots). The deliveries
//! (`herald-delivery`, with its guarded resolver and egress proxy) and the AWS SDK
//! ([`crate::SdkHttpClient`]) build their clients from these parts.
//!
//! hyper rather than reqwest (which is built on the same hyper client, TLS stack and
//! pool): for each request reqwest formats its URI and parses it back into a URL
//! twice (once in its redirect layer, which runs although no redirect is followed,
//! once for the response) and moves it through retry and redirect layers neither
//! caller wants; `make bench` measured that at about a sixth of a delivery's CPU on
//! one endpoint (docs/perf/README.md).

use std::time::Duration;

use bytes::Bytes;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// A request's body: bytes, whole.
pub type RequestBody = http_body_util::Full<Bytes>;

/// TLS 1.2 and 1.3 on *ring*, trusting the bundled web PKI roots, HTTP/1.1 by ALPN.
pub fn tls_config() -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports TLS 1.2 and 1.3")
    .with_root_certificates(roots)
    .with_no_client_auth()
}

/// `inner` with TLS (`tls`) on `https://` URIs; other URIs pass through.
pub fn with_tls<C>(tls: &rustls::ClientConfig, inner: C) -> HttpsConnector<C> {
    HttpsConnectorBuilder::new()
        .with_tls_config(tls.clone())
        .https_or_http()
        .enable_http1()
        .wrap_connector(inner)
}

/// Sets what every connection of Herald's clients has: `TCP_NODELAY` (a request goes
/// out in one write and waits for its answer), `connect_timeout` on the TCP connect,
/// and URIs of any scheme handed on (TLS is the wrapping connector's).
pub fn tune<R>(http: &mut HttpConnector<R>, connect_timeout: Duration) {
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
}

/// A pooled client on `connector`: idle connections kept `idle_timeout`, at most
/// `max_idle_per_host` of them per host.
pub fn pooled<C>(
    connector: C,
    idle_timeout: Duration,
    max_idle_per_host: usize,
) -> Client<C, RequestBody>
where
    C: hyper_util::client::legacy::connect::Connect + Clone,
{
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .pool_idle_timeout(idle_timeout)
        .pool_max_idle_per_host(max_idle_per_host)
        .build(connector)
}

/// Whether `error`, or an error it wraps, is an I/O time-out (a connect timeout).
pub fn is_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(e) = source {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        source = e.source();
    }
    false
}
