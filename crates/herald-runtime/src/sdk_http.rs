//! The AWS SDK's HTTP client: the SDK's requests sent through hyper's HTTP/1.1 client
//! on rustls and *ring* ([`crate::http_client`]), the stack every Herald binary already
//! carries for deliveries.
//!
//! Written here rather than taken from `aws-smithy-http-client` because that crate
//! always brings hyper's HTTP/2 client and `h2` (about 0.7 MB of the consumer's
//! binary, a sixth of its Lambda zip) although every AWS endpoint Herald calls
//! (SQS, DynamoDB, KMS, SSM, STS) speaks HTTP/1.1, and a second TLS client
//! configuration. The SDK drives everything else (signing, retries, timeouts); this
//! only moves bytes.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::client::legacy::Client;

use crate::http_client::{self, RequestBody};

/// How long a connection to an AWS endpoint may take to open when the SDK sets no
/// connect timeout (the SDK's own default).
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(3_100);

/// How long an idle pooled connection to an AWS endpoint is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The connect and read timeouts a connector was built for.
type TimeoutKey = (Option<Duration>, Option<Duration>);

/// An [`HttpClient`] for the AWS SDK over hyper: one connector (and connection pool)
/// per distinct pair of connect and read timeouts the SDK asks for, kept for reuse.
#[derive(Debug, Default, Clone)]
pub struct SdkHttpClient {
    connectors: Arc<RwLock<HashMap<TimeoutKey, SharedHttpConnector>>>,
}

impl HttpClient for SdkHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let key = (settings.connect_timeout(), settings.read_timeout());
        if let Some(connector) = self.connectors.read().expect("not poisoned").get(&key) {
            return connector.clone();
        }
        self.connectors
            .write()
            .expect("not poisoned")
            .entry(key)
            .or_insert_with(|| SharedHttpConnector::new(Connector::new(key)))
            .clone()
    }
}

/// The pooled client of one connector.
type AwsClient = Client<HttpsConnector<TcpConnector>, RequestBody>;

/// Sends the SDK's requests on one pooled client.
#[derive(Debug)]
struct Connector {
    client: AwsClient,
    /// Bounds the wait for the response's head and for each part of its body.
    read_timeout: Option<Duration>,
}

impl Connector {
    /// A connector with the given connect and read timeouts (the read timeout bounds
    /// each wait for the response, as the SDK means it). It goes to the endpoint
    /// directly, as the SDK's own client does unless given a proxy: no proxy from the
    /// environment sits between Herald and its queues.
    fn new((connect, read): TimeoutKey) -> Self {
        let mut http = TcpConnector::new();
        http_client::tune(&mut http, connect.unwrap_or(DEFAULT_CONNECT_TIMEOUT));
        let connector = http_client::with_tls(&http_client::tls_config(), http);
        Self {
            client: http_client::pooled(connector, POOL_IDLE_TIMEOUT, usize::MAX),
            read_timeout: read,
        }
    }
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.client.clone();
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move { send(&client, read_timeout, request).await })
    }
}

/// Sends one request and reads its whole response (AWS's JSON and query-protocol
/// answers are small; none of the calls Herald makes streams).
async fn send(
    client: &Client<
        HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        RequestBody,
    >,
    read_timeout: Option<Duration>,
    request: HttpRequest,
) -> Result<HttpResponse, ConnectorError> {
    let request = request
        .try_into_http1x()
        .map_err(|e| ConnectorError::user(e.into()))?;
    let (parts, body) = request.into_parts();
    let body = body
        .bytes()
        .map(Bytes::copy_from_slice)
        .ok_or_else(|| ConnectorError::user("a streaming request body is not supported".into()))?;
    let request = http::Request::from_parts(parts, RequestBody::new(body));
    let response = within(read_timeout, client.request(request))
        .await?
        .map_err(|e| {
            if http_client::is_timeout(&e) {
                ConnectorError::timeout(e.into())
            } else {
                // Failing to connect or to send: transient, the SDK retries.
                ConnectorError::io(e.into())
            }
        })?;
    let (parts, mut stream) = response.into_parts();
    let mut bytes = Vec::new();
    while let Some(frame) = within(read_timeout, stream.frame()).await? {
        let frame = frame.map_err(|e| ConnectorError::io(e.into()))?;
        if let Some(data) = frame.data_ref() {
            bytes.extend_from_slice(data);
        }
    }
    let answer = http::Response::from_parts(parts, SdkBody::from(bytes));
    HttpResponse::try_from(answer).map_err(|e| ConnectorError::other(e.into(), None))
}

/// `work`, bounded by `timeout` if there is one (a time-out is the SDK's transient
/// kind).
async fn within<F: std::future::Future>(
    timeout: Option<Duration>,
    work: F,
) -> Result<F::Output, ConnectorError> {
    match timeout {
        None => Ok(work.await),
        Some(limit) => tokio::time::timeout(limit, work)
            .await
            .map_err(|_| ConnectorError::timeout(format!("no answer within {limit:?}").into())),
    }
}
