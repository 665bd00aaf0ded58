//! Delivering one signed request over HTTP.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;

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
}

impl DeliveryOutcome {
    /// 2xx is success; anything else (3xx included: redirects are never followed) is not.
    pub fn is_success(&self) -> bool {
        self.error.is_none() && matches!(self.status, Some(200..=299))
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
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            total_timeout: Duration::from_secs(15),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 32,
        }
    }
}

/// Delivers over HTTP(S) with one pooled client: connections are reused across
/// deliveries and batches, redirects are never followed, and at most
/// [`RESPONSE_BODY_CAP`] bytes of a response are read.
#[derive(Clone)]
pub struct HttpDeliverer {
    client: reqwest::Client,
}

impl HttpDeliverer {
    pub fn new(settings: &HttpSettings) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.total_timeout)
            .pool_idle_timeout(settings.pool_idle_timeout)
            .pool_max_idle_per_host(settings.pool_max_idle_per_host)
            .user_agent(concat!("Herald-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { client })
    }
}

fn classify(e: &reqwest::Error) -> DeliveryError {
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
                }
            }
        };
        let status = response.status().as_u16();
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
        }
    }
}
