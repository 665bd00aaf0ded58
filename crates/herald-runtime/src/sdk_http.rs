//! The AWS SDK's HTTP client: the SDK's requests sent through reqwest, the HTTP/1.1
//! client on rustls and *ring* every Herald binary already carries for deliveries.
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

/// How long a connection to an AWS endpoint may take to open when the SDK sets no
/// connect timeout (the SDK's own default).
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(3_100);

/// The connect and read timeouts a connector was built for.
type TimeoutKey = (Option<Duration>, Option<Duration>);

/// An [`HttpClient`] for the AWS SDK over reqwest: one connector (and connection pool)
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

/// Sends the SDK's requests on one reqwest client.
#[derive(Debug)]
struct Connector {
    client: reqwest::Client,
}

impl Connector {
    /// A connector with the given connect and read timeouts (the read timeout bounds
    /// each read of the response, as the SDK means it). It goes to the endpoint
    /// directly, as the SDK's own client does unless given a proxy: no proxy from the
    /// environment sits between Herald and its queues.
    fn new((connect, read): TimeoutKey) -> Self {
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(connect.unwrap_or(DEFAULT_CONNECT_TIMEOUT))
            .tcp_nodelay(true);
        if let Some(read) = read {
            builder = builder.read_timeout(read);
        }
        let client = builder
            .build()
            .expect("a TLS client on the bundled roots builds");
        Self { client }
    }
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.client.clone();
        HttpConnectorFuture::new(async move { send(&client, request).await })
    }
}

/// Sends one request and reads its whole response (AWS's JSON and query-protocol
/// answers are small; none of the calls Herald makes streams).
async fn send(
    client: &reqwest::Client,
    request: HttpRequest,
) -> Result<HttpResponse, ConnectorError> {
    let request = request
        .try_into_http1x()
        .map_err(|e| ConnectorError::user(e.into()))?;
    let (parts, body) = request.into_parts();
    let body = body
        .bytes()
        .ok_or_else(|| ConnectorError::user("a streaming request body is not supported".into()))?
        .to_vec();
    let response = client
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .map_err(connector_error)?;
    let mut answer = http::Response::builder().status(response.status());
    if let Some(headers) = answer.headers_mut() {
        headers.extend(response.headers().clone());
    }
    let bytes = response.bytes().await.map_err(connector_error)?;
    let answer = answer
        .body(SdkBody::from(bytes))
        .map_err(|e| ConnectorError::other(e.into(), None))?;
    HttpResponse::try_from(answer).map_err(|e| ConnectorError::other(e.into(), None))
}

/// Classifies a reqwest error the way the SDK's retry policy expects: timeouts and
/// connection failures are transient, the rest is not.
fn connector_error(e: reqwest::Error) -> ConnectorError {
    if e.is_timeout() {
        ConnectorError::timeout(e.into())
    } else if e.is_connect() || e.is_request() || e.is_body() {
        ConnectorError::io(e.into())
    } else {
        ConnectorError::other(e.into(), None)
    }
}
