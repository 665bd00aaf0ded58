//! One delivery as data: what came of it, and which headers a webhook may not set.
//!
//! Pure: the signed request and the HTTP client that makes it live in
//! `herald-delivery`; the consumer and the API's test ping read outcomes through these
//! types.

use std::time::{Duration, SystemTime};

use crate::retry::AttemptFailure;

/// Most bytes of a response body that are read (and kept for the delivery history).
pub const RESPONSE_BODY_CAP: usize = 4 * 1024;

/// Why a delivery produced no HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// The attempt outlasted its total timeout.
    #[error("timed out")]
    Timeout,
    /// No connection could be made (refused, reset, DNS, TLS).
    #[error("could not connect: {0}")]
    Connect(String),
    /// The request failed after connecting.
    #[error("request failed: {0}")]
    Request(String),
    /// The URL cannot be requested (malformed, not http(s)).
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

/// How an attempt ended: the receiver answered, or no answer came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryResult {
    /// The receiver answered with an HTTP status.
    Answered {
        /// The HTTP status.
        status: u16,
        /// The start of the response body (at most [`RESPONSE_BODY_CAP`] bytes).
        body: String,
        /// The response's `Retry-After`, as a delay from now.
        retry_after: Option<Duration>,
    },
    /// No HTTP status: the request could not be made or got no answer.
    Failed(DeliveryError),
}

/// What happened to one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryOutcome {
    /// From the start of the attempt to its end.
    pub latency: Duration,
    /// The answer, or why there was none.
    pub result: DeliveryResult,
}

impl DeliveryOutcome {
    /// The receiver answered `status`.
    pub fn answered(
        status: u16,
        body: String,
        retry_after: Option<Duration>,
        latency: Duration,
    ) -> Self {
        Self {
            latency,
            result: DeliveryResult::Answered {
                status,
                body,
                retry_after,
            },
        }
    }

    /// No answer came, because of `error`.
    pub fn failed(error: DeliveryError, latency: Duration) -> Self {
        Self {
            latency,
            result: DeliveryResult::Failed(error),
        }
    }

    /// The HTTP status, when the receiver answered.
    pub fn status(&self) -> Option<u16> {
        match &self.result {
            DeliveryResult::Answered { status, .. } => Some(*status),
            DeliveryResult::Failed(_) => None,
        }
    }

    /// Why there was no answer, if there was none.
    pub fn error(&self) -> Option<&DeliveryError> {
        match &self.result {
            DeliveryResult::Answered { .. } => None,
            DeliveryResult::Failed(e) => Some(e),
        }
    }

    /// The start of the response body (empty when there was no answer).
    pub fn response_body(&self) -> &str {
        match &self.result {
            DeliveryResult::Answered { body, .. } => body,
            DeliveryResult::Failed(_) => "",
        }
    }

    /// 2xx is success; anything else (3xx included: redirects are never followed) is not.
    pub fn is_success(&self) -> bool {
        matches!(self.status(), Some(200..=299))
    }

    /// The failure as the retry policy sees it; `None` on success.
    pub fn failure(&self) -> Option<AttemptFailure> {
        match &self.result {
            DeliveryResult::Answered {
                status: 200..=299, ..
            } => None,
            DeliveryResult::Answered {
                status,
                retry_after,
                ..
            } => Some(AttemptFailure::Status {
                code: *status,
                retry_after: *retry_after,
            }),
            DeliveryResult::Failed(DeliveryError::Refused(_) | DeliveryError::Invalid(_)) => {
                Some(AttemptFailure::Refused)
            }
            DeliveryResult::Failed(_) => Some(AttemptFailure::Transport),
        }
    }

    /// A short description for logs: the status, or the error.
    pub fn describe(&self) -> String {
        match &self.result {
            DeliveryResult::Answered { status, .. } => format!("HTTP {status}"),
            DeliveryResult::Failed(e) => e.to_string(),
        }
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

/// Header names a webhook's custom headers may not use, by group, each with the reason
/// the API gives. One list: the API refuses them when a webhook is created or changed,
/// and deliveries leave them out of the headers of webhooks stored before
/// (`herald_delivery::PreparedRoute`).
const RESERVED_HEADERS: &[(&str, &[&str])] = &[
    // Herald sets these on every delivery (and `webhook-*`, below): the signature
    // covers the body as sent, in the content type and encoding Herald chose, to the
    // URL's host; an override would break verification or misroute the request.
    (
        "set by Herald",
        &[
            "content-type",
            "content-length",
            "content-encoding",
            "host",
            "user-agent",
        ],
    ),
    // Hop-by-hop and transport headers (RFC 9110 §7.6.1, RFC 9112): they describe one
    // connection or the message framing, which the HTTP client owns; set by hand
    // they desynchronise the framing (request smuggling) or change the exchange.
    (
        "a transport (hop-by-hop) header",
        &[
            "connection",
            "keep-alive",
            "proxy-connection",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
            "expect",
        ],
    ),
    // Proxy headers: receivers behind a proxy trust these to say who the client is,
    // so a tenant could spoof an origin; Proxy-Authorization is a credential meant
    // for a proxy on Herald's side.
    (
        "a proxy header",
        &[
            "proxy-authorization",
            "forwarded",
            "x-forwarded-for",
            "x-forwarded-host",
            "x-forwarded-proto",
        ],
    ),
    // AWS request credentials: Herald runs on AWS, and a session token in a delivery
    // could make a receiver behind AWS authorisation act on a credential not Herald's.
    ("an AWS credential header", &["x-amz-security-token"]),
];

/// Why a custom header name is reserved (case-insensitive), or `None` when a webhook
/// may set it.
pub fn reserved_header_reason(name: &str) -> Option<&'static str> {
    let name = name.to_ascii_lowercase();
    if name.starts_with("webhook-") {
        return Some("set by Herald");
    }
    RESERVED_HEADERS
        .iter()
        .find(|(_, names)| names.contains(&name.as_str()))
        .map(|(reason, _)| *reason)
}

/// Headers custom headers may not set: Herald's own, transport, proxy and AWS
/// credential headers ([`reserved_header_reason`] says which).
pub fn is_reserved_header(name: &str) -> bool {
    reserved_header_reason(name).is_some()
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

    fn answered(status: u16) -> DeliveryOutcome {
        DeliveryOutcome::answered(
            status,
            String::new(),
            Some(Duration::from_secs(7)),
            Duration::ZERO,
        )
    }

    #[test]
    fn outcomes_map_onto_the_retry_policy() {
        assert_eq!(answered(204).failure(), None);
        assert_eq!(
            answered(503).failure(),
            Some(AttemptFailure::Status {
                code: 503,
                retry_after: Some(Duration::from_secs(7))
            })
        );
        let timeout = DeliveryOutcome::failed(DeliveryError::Timeout, Duration::ZERO);
        assert_eq!(timeout.failure(), Some(AttemptFailure::Transport));
        assert_eq!(timeout.status(), None);
        assert_eq!(timeout.describe(), "timed out");
        assert_eq!(
            DeliveryOutcome::failed(DeliveryError::Refused("x".into()), Duration::ZERO).failure(),
            Some(AttemptFailure::Refused)
        );
        assert!(!answered(301).is_success());
        assert!(answered(200).is_success());
    }

    #[test]
    fn reserved_headers_are_case_insensitive() {
        for name in ["Webhook-Signature", "CONTENT-TYPE", "host", "Connection"] {
            assert!(is_reserved_header(name), "{name}");
        }
        for name in [
            "Keep-Alive",
            "Proxy-Authorization",
            "proxy-connection",
            "TE",
            "Trailer",
            "Transfer-Encoding",
            "Upgrade",
            "Expect",
            "Content-Length",
            "Content-Encoding",
            "Forwarded",
            "X-Forwarded-For",
            "x-forwarded-host",
            "X-FORWARDED-PROTO",
            "X-Amz-Security-Token",
        ] {
            assert!(is_reserved_header(name), "{name}");
        }
        assert_eq!(reserved_header_reason("Webhook-Id"), Some("set by Herald"));
        assert_eq!(
            reserved_header_reason("Upgrade"),
            Some("a transport (hop-by-hop) header")
        );
        assert_eq!(reserved_header_reason("Forwarded"), Some("a proxy header"));
        for allowed in ["x-team", "Authorization", "Cookie", "X-Forwarded", "tea"] {
            assert!(!is_reserved_header(allowed), "{allowed}");
        }
    }
}
