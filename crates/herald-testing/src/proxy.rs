//! An HTTP proxy between AWS clients and the emulator that forwards every request
//! unchanged, unless a rule says to fail it or hold it back first: how tests make SQS
//! refuse part of a publish, or DynamoDB answer slowly.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// What to do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer 500 with an AWS `InternalFailure` error, without forwarding.
    Fail,
    /// Wait this long, then forward.
    Delay(Duration),
}

/// DynamoDB's write operations, as they appear in `X-Amz-Target` after the service
/// prefix.
const DYNAMODB_WRITES: [&str; 5] = [
    "BatchWriteItem",
    "UpdateItem",
    "TransactWriteItems",
    "PutItem",
    "DeleteItem",
];

/// Whether an operation (`X-Amz-Target`, such as `DynamoDB_20120810.UpdateItem`) is a
/// DynamoDB write: how tests slow down or hold back the writes and nothing else.
pub fn is_dynamodb_write(target: &str) -> bool {
    target.split_once('.').is_some_and(|(service, op)| {
        service.starts_with("DynamoDB") && DYNAMODB_WRITES.contains(&op)
    })
}

/// A rule: given the request's operation (`X-Amz-Target`, such as
/// `AmazonSQS.SendMessageBatch`) and body, the fault to inject, if any.
pub type Rule = Arc<dyn Fn(&str, &[u8]) -> Option<Fault> + Send + Sync>;

/// Called after every forwarded request with its operation, request body, status and
/// response body (the bench counts billed units with it).
pub type Observer = Arc<dyn Fn(&str, &[u8], StatusCode, &[u8]) + Send + Sync>;

struct ProxyState {
    upstream: String,
    client: reqwest::Client,
    rule: Mutex<Option<Rule>>,
    observer: Option<Observer>,
    /// Sequence numbers of the requests under way upstream.
    running: Mutex<BTreeSet<u64>>,
    next: AtomicU64,
}

/// The proxy, listening on 127.0.0.1; stops when dropped.
pub struct FaultProxy {
    /// `http://127.0.0.1:<port>`: the endpoint to give AWS clients.
    pub url: String,
    state: Arc<ProxyState>,
    task: tokio::task::JoinHandle<()>,
}

/// Headers that belong to one connection and are not passed on.
const HOP_BY_HOP: [&str; 4] = ["connection", "content-length", "transfer-encoding", "host"];

impl FaultProxy {
    /// A proxy to `upstream` (the emulator's endpoint) that forwards everything.
    pub async fn start(upstream: &str) -> Result<Self> {
        Self::start_observed(upstream, None).await
    }

    /// As [`FaultProxy::start`], calling `observer` after every forwarded request.
    pub async fn start_observed(upstream: &str, observer: Option<Observer>) -> Result<Self> {
        let state = Arc::new(ProxyState {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .context("building the proxy's client")?,
            rule: Mutex::new(None),
            observer,
            running: Mutex::default(),
            next: AtomicU64::new(0),
        });
        let app = axum::Router::new()
            .fallback(forward)
            .layer(axum::extract::DefaultBodyLimit::disable())
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the proxy")?;
        let url = format!("http://{}", listener.local_addr()?);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { url, state, task })
    }

    /// Injects faults by `rule` from now on (replacing any rule before it).
    pub fn set_rule(&self, rule: impl Fn(&str, &[u8]) -> Option<Fault> + Send + Sync + 'static) {
        *self.state.rule.lock().expect("rule lock") = Some(Arc::new(rule));
    }

    /// Forwards everything again.
    pub fn clear_rule(&self) {
        *self.state.rule.lock().expect("rule lock") = None;
    }

    /// Waits (up to `timeout`) until every request that started before this call has
    /// ended upstream; whether they all did. A request whose client went away (a
    /// stopped worker's long poll, say) still runs to its end in the emulator, where
    /// it can take messages published meanwhile.
    pub async fn wait_started_before_now(&self, timeout: Duration) -> bool {
        let mark = self.state.next.load(Ordering::SeqCst);
        let deadline = Instant::now() + timeout;
        loop {
            let oldest = self
                .state
                .running
                .lock()
                .expect("running lock")
                .first()
                .copied();
            if oldest.is_none_or(|seq| seq >= mark) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Forwards in a task of its own, so a request whose client goes away still runs to
/// its end (as it does in the emulator) and is known to have ended.
async fn forward(
    State(state): State<Arc<ProxyState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let seq = state.next.fetch_add(1, Ordering::SeqCst);
    state.running.lock().expect("running lock").insert(seq);
    let task = tokio::spawn(async move {
        let response = forward_upstream(&state, method, uri, headers, body).await;
        state.running.lock().expect("running lock").remove(&seq);
        response
    });
    task.await
        .unwrap_or_else(|e| (StatusCode::BAD_GATEWAY, e.to_string()).into_response())
}

/// Applies the rule, then sends the request upstream and reports it to the observer.
async fn forward_upstream(
    state: &ProxyState,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let rule = state.rule.lock().expect("rule lock").clone();
    match rule.and_then(|rule| rule(&target, &body)) {
        Some(Fault::Fail) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                [("content-type", "application/x-amz-json-1.0")],
                r#"{"__type":"InternalFailure","message":"injected by the test proxy"}"#,
            )
                .into_response()
        }
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        None => {}
    }
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut request = state
        .client
        .request(method, format!("{}{path}", state.upstream))
        .body(body.clone());
    for (name, value) in &headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            request = request.header(name, value);
        }
    }
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = response.status();
    let response_headers = response.headers().clone();
    let response_body = match response.bytes().await {
        Ok(b) => b,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    if let Some(observe) = &state.observer {
        observe(&target, &body, status, &response_body);
    }
    let mut out = (status, response_body).into_response();
    for (name, value) in &response_headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            out.headers_mut().insert(name, value.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamodb_writes_are_told_from_reads_and_from_other_services() {
        assert!(is_dynamodb_write("DynamoDB_20120810.BatchWriteItem"));
        assert!(is_dynamodb_write("DynamoDB_20120810.UpdateItem"));
        assert!(!is_dynamodb_write("DynamoDB_20120810.Query"));
        assert!(!is_dynamodb_write("DynamoDB_20120810.GetItem"));
        assert!(!is_dynamodb_write("AmazonSQS.SendMessage"));
        assert!(!is_dynamodb_write(""));
    }
}
