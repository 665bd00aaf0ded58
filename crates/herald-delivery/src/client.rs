//! The deliveries' HTTP client: Herald's client stack
//! ([`herald_runtime::http_client`]: hyper's pooled HTTP/1.1 client on rustls),
//! connecting directly through the guarded resolver or through the egress proxy.

use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use herald_core::address::AddressPolicy;
use herald_runtime::http_client::{pooled, tls_config, tune, with_tls, RequestBody};
use http::header::HeaderValue;
use http::uri::Scheme;
use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower_service::Service;

use crate::HttpSettings;

/// The pooled client every delivery goes through.
pub(crate) type HttpClient = Client<Connector, RequestBody>;

/// Errors of connecting (boxed, as hyper's connectors report them).
type BoxError = Box<dyn StdError + Send + Sync>;

/// A TCP connection, TLS or not.
type Tcp = MaybeHttpsStream<TokioIo<TcpStream>>;

/// Builds the client for `settings`, and the `Proxy-Authorization` header that plain
/// `http://` requests through the egress proxy carry (its URL's credentials).
pub(crate) fn build(settings: &HttpSettings) -> Result<(HttpClient, Option<HeaderValue>), String> {
    let tls = tls_config();
    let (connector, proxy_auth) = match &settings.egress_proxy {
        None => {
            let mut http = HttpConnector::new_with_resolver(GuardedResolver {
                policy: settings.address_policy.clone(),
            });
            tune(&mut http, settings.connect_timeout);
            (Connector::Direct(with_tls(&tls, http)), None)
        }
        Some(proxy) => {
            let (proxy, auth) = proxy_uri(proxy)?;
            // The proxy's own name is resolved unguarded: an egress proxy commonly
            // sits at a private address.
            let mut http = HttpConnector::new();
            tune(&mut http, settings.connect_timeout);
            let mut tunnel = Tunnel::new(proxy.clone(), with_tls(&tls, http.clone()));
            if let Some(auth) = &auth {
                tunnel = tunnel.with_auth(auth.clone());
            }
            let egress = Egress {
                to_proxy: with_tls(&tls, http),
                tunneled: with_tls(&tls, tunnel),
                proxy,
            };
            (Connector::Egress(Box::new(egress)), auth)
        }
    };
    let client = pooled(
        connector,
        settings.pool_idle_timeout,
        settings.pool_max_idle_per_host,
    );
    Ok((client, proxy_auth))
}

/// The egress proxy's URI, without credentials, and the `Basic` authorization its
/// URL's credentials make.
fn proxy_uri(proxy: &str) -> Result<(Uri, Option<HeaderValue>), String> {
    let url = url::Url::parse(proxy.trim()).map_err(|e| format!("egress proxy: {e}"))?;
    let auth = (!url.username().is_empty()).then(|| {
        use base64::Engine;
        let user = percent_decoded(url.username());
        let password = percent_decoded(url.password().unwrap_or_default());
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let mut value =
            HeaderValue::from_str(&format!("Basic {token}")).expect("base64 is a header value");
        value.set_sensitive(true);
        value
    });
    let host = url.host_str().ok_or("egress proxy: no host")?;
    let port = url.port_or_known_default().ok_or("egress proxy: no port")?;
    let uri = format!("{}://{host}:{port}", url.scheme())
        .parse()
        .map_err(|e| format!("egress proxy: {e}"))?;
    Ok((uri, auth))
}

/// `text` with its percent-escapes decoded (a URL's user name and password).
fn percent_decoded(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// Resolves host names and keeps only the addresses the policy allows, so the check
/// applies to the very addresses the client connects to: a name that resolves to a
/// public address when registered and to a private one at delivery (DNS rebinding)
/// is still refused.
#[derive(Clone)]
pub(crate) struct GuardedResolver {
    policy: AddressPolicy,
}

impl Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let policy = self.policy.clone();
        Box::pin(async move {
            let resolved = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let mut refusal = None;
            let allowed: Vec<SocketAddr> = resolved
                .filter(|a| match policy.check(a.ip()) {
                    Ok(()) => true,
                    Err(e) => {
                        refusal.get_or_insert(e);
                        false
                    }
                })
                .collect();
            match (allowed.is_empty(), refusal) {
                (true, Some(refused)) => Err(Box::new(refused) as BoxError),
                _ => Ok(allowed.into_iter()),
            }
        })
    }
}

/// Opens the connections of deliveries.
#[derive(Clone)]
pub(crate) enum Connector {
    /// To the destination, its names through the guarded resolver.
    Direct(HttpsConnector<HttpConnector<GuardedResolver>>),
    /// Through the egress proxy.
    Egress(Box<Egress>),
}

/// The connectors through the egress proxy: `https://` destinations through a
/// `CONNECT` tunnel (TLS end to end), `http://` ones as absolute-form requests to the
/// proxy.
#[derive(Clone)]
pub(crate) struct Egress {
    to_proxy: HttpsConnector<HttpConnector>,
    tunneled: HttpsConnector<Tunnel<HttpsConnector<HttpConnector>>>,
    proxy: Uri,
}

impl Service<Uri> for Connector {
    type Response = Conn;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Every inner connector is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        match self {
            Self::Direct(direct) => {
                let connecting = direct.call(dst);
                Box::pin(async move {
                    Ok(Conn {
                        io: Io::Direct(connecting.await?),
                        proxied: false,
                    })
                })
            }
            Self::Egress(egress) if dst.scheme() == Some(&Scheme::HTTPS) => {
                let connecting = egress.tunneled.call(dst);
                Box::pin(async move {
                    Ok(Conn {
                        io: Io::Tunneled(Box::new(connecting.await?)),
                        proxied: false,
                    })
                })
            }
            Self::Egress(egress) => {
                let connecting = egress.to_proxy.call(egress.proxy.clone());
                Box::pin(async move {
                    Ok(Conn {
                        io: Io::Direct(connecting.await?),
                        proxied: true,
                    })
                })
            }
        }
    }
}

/// A delivery's connection.
pub(crate) struct Conn {
    io: Io,
    /// To the egress proxy, for absolute-form requests.
    proxied: bool,
}

/// The streams a connection can be. The direct one, every connection's but through a
/// proxy's tunnel, is kept inline.
#[allow(clippy::large_enum_variant)]
enum Io {
    /// TCP, TLS or not, to the destination or to the proxy.
    Direct(Tcp),
    /// Through a `CONNECT` tunnel (itself over TLS when the proxy is `https://`).
    Tunneled(Box<MaybeHttpsStream<Tcp>>),
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        let connected = match &self.io {
            Io::Direct(io) => io.connected(),
            Io::Tunneled(io) => io.connected(),
        };
        connected.proxy(self.proxied)
    }
}

/// Runs `$body` on the connection's stream, pinned as `$io`.
macro_rules! on_stream {
    ($conn:expr, $io:ident => $body:expr) => {
        match &mut $conn.get_mut().io {
            Io::Direct(s) => {
                let $io = Pin::new(s);
                $body
            }
            Io::Tunneled(s) => {
                let $io = Pin::new(&mut **s);
                $body
            }
        }
    };
}

impl Read for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        on_stream!(self, io => io.poll_read(cx, buf))
    }
}

impl Write for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        on_stream!(self, io => io.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        on_stream!(self, io => io.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Direct(s) => s.is_write_vectored(),
            Io::Tunneled(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        on_stream!(self, io => io.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        on_stream!(self, io => io.poll_shutdown(cx))
    }
}

/// Whether `proxy` is a URL the client can use as its egress proxy.
pub(crate) fn check_proxy(proxy: &str) -> Result<(), String> {
    proxy_uri(proxy).map(drop)
}
