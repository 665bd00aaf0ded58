//! Real HTTP receivers on 127.0.0.1 that record every request and answer as told, and
//! the accounting the fault tests print.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

/// A request a receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// The request's headers, names in lower case.
    pub headers: HashMap<String, String>,
    /// The request's body.
    pub body: Bytes,
    /// When the request arrived.
    pub at: Instant,
    /// The status the receiver chose (it may have answered too late to count).
    pub replied: u16,
}

impl Received {
    /// A header's value, or `""`.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(String::as_str)
            .unwrap_or_default()
    }

    /// Whether the receiver chose a 2xx status (it may have answered too late to count).
    pub fn status_is_success(&self) -> bool {
        (200..300).contains(&self.replied)
    }

    /// The body as JSON (`Null` when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// How a receiver answers one request.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status to answer with.
    pub status: StatusCode,
    /// Wait this long before answering (a hanging endpoint).
    pub delay: Duration,
    /// Headers to answer with.
    pub headers: Vec<(String, String)>,
}

impl Reply {
    /// Answer with `code`, at once.
    pub fn status(code: u16) -> Self {
        Self {
            status: StatusCode::from_u16(code).expect("valid status"),
            delay: Duration::ZERO,
            headers: Vec::new(),
        }
    }

    /// Answer only after `delay`.
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Answer with this header too.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// What a receiver knows when deciding its reply.
#[derive(Debug, Clone, Copy)]
pub struct Seen {
    /// Requests received so far, this one included.
    pub total: usize,
    /// Requests with this request's `webhook-id`, this one included (the attempt
    /// number as the receiver sees it).
    pub for_id: usize,
}

/// How a receiver answers each request.
pub type Behaviour = Arc<dyn Fn(Seen) -> Reply + Send + Sync>;

#[derive(Default)]
struct Log {
    received: Vec<Received>,
    per_id: HashMap<String, usize>,
    in_flight_per_id: HashMap<String, usize>,
    max_in_flight_per_id: usize,
    /// Requests in flight now, whatever their `webhook-id`.
    in_flight: usize,
    max_in_flight: usize,
}

struct ReceiverState {
    log: Mutex<Log>,
    behaviour: Behaviour,
}

/// A real HTTP receiver on 127.0.0.1 that records every request and answers as its
/// behaviour says.
pub struct Receiver {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<ReceiverState>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// A receiver that answers 503 while `down` is set and 200 otherwise: an outage
    /// turned on and off by the test.
    pub async fn with_outage(down: Arc<std::sync::atomic::AtomicBool>) -> Self {
        use std::sync::atomic::Ordering;
        Self::start(Arc::new(move |_| {
            Reply::status(if down.load(Ordering::SeqCst) {
                503
            } else {
                200
            })
        }))
        .await
    }

    /// A receiver that answers 200 to everything.
    pub async fn ok() -> Self {
        Self::start(Arc::new(|_| Reply::status(200))).await
    }

    /// A receiver that answers each request as `behaviour` says.
    pub async fn start(behaviour: Behaviour) -> Self {
        let state = Arc::new(ReceiverState {
            log: Mutex::new(Log::default()),
            behaviour,
        });
        let app = axum::Router::new()
            .fallback(axum::routing::any(record))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a receiver");
        let addr = listener.local_addr().expect("receiver address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, state, task }
    }

    /// Its URL, `http://127.0.0.1:<port>/hook`.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Every request so far, in order of arrival.
    pub fn received(&self) -> Vec<Received> {
        self.state.log.lock().expect("lock").received.clone()
    }

    /// How many requests it got.
    pub fn count(&self) -> usize {
        self.state.log.lock().expect("lock").received.len()
    }

    /// The `webhook-id`s it answered 2xx to, and the 2xx requests beyond the first for
    /// each (duplicates, which receivers dedupe on `webhook-id`).
    pub fn delivered(&self) -> (BTreeSet<String>, usize) {
        let log = self.state.log.lock().expect("lock");
        let mut ok: HashMap<&str, usize> = HashMap::new();
        for req in log.received.iter().filter(|r| r.status_is_success()) {
            *ok.entry(req.header("webhook-id")).or_default() += 1;
        }
        let duplicates = ok.values().map(|n| n - 1).sum();
        (ok.into_keys().map(str::to_owned).collect(), duplicates)
    }

    /// Distinct `webhook-id`s received.
    pub fn distinct(&self) -> usize {
        self.state.log.lock().expect("lock").per_id.len()
    }

    /// The most requests with one `webhook-id` that were ever in flight at once.
    pub fn max_in_flight_per_delivery(&self) -> usize {
        self.state.log.lock().expect("lock").max_in_flight_per_id
    }

    /// The most requests that were ever in flight at once, whatever their `webhook-id`.
    pub fn max_in_flight(&self) -> usize {
        self.state.log.lock().expect("lock").max_in_flight
    }

    /// Requests in flight now (received, not yet answered).
    pub fn in_flight(&self) -> usize {
        self.state.log.lock().expect("lock").in_flight
    }

    /// Stops listening: when this returns, its port refuses connections.
    pub async fn stop(mut self) {
        self.task.abort();
        // Once an aborted task reports, it has been dropped, its listener with it.
        let _ = (&mut self.task).await;
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Decrements the in-flight count when the request ends, even if the client gave up
/// and the handler was dropped.
struct InFlight {
    state: Arc<ReceiverState>,
    id: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut log) = self.state.log.lock() {
            if let Some(n) = log.in_flight_per_id.get_mut(&self.id) {
                *n = n.saturating_sub(1);
            }
            log.in_flight = log.in_flight.saturating_sub(1);
        }
    }
}

async fn record(
    State(state): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let headers: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let id = headers.get("webhook-id").cloned().unwrap_or_default();
    let seen = {
        let mut log = state.log.lock().expect("lock");
        log.received.push(Received {
            headers,
            body,
            at: Instant::now(),
            replied: 0,
        });
        let for_id = {
            let n = log.per_id.entry(id.clone()).or_insert(0);
            *n += 1;
            *n
        };
        let in_flight = {
            let n = log.in_flight_per_id.entry(id.clone()).or_insert(0);
            *n += 1;
            *n
        };
        log.max_in_flight_per_id = log.max_in_flight_per_id.max(in_flight);
        log.in_flight += 1;
        log.max_in_flight = log.max_in_flight.max(log.in_flight);
        Seen {
            total: log.received.len(),
            for_id,
        }
    };
    let _guard = InFlight {
        state: Arc::clone(&state),
        id,
    };
    let reply = (state.behaviour)(seen);
    if let Some(r) = state
        .log
        .lock()
        .expect("lock")
        .received
        .get_mut(seen.total - 1)
    {
        r.replied = reply.status.as_u16();
    }
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut response = reply.status.into_response();
    for (k, v) in reply.headers {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::try_from(k),
            axum::http::HeaderValue::try_from(v),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// What a fault test accounts for, printed at its end.
#[derive(Debug, Default)]
pub struct Accounting {
    /// Deliveries that should succeed.
    pub expected: usize,
    /// Distinct deliveries that were answered 2xx.
    pub delivered: usize,
    /// Extra requests for a delivery already answered 2xx.
    pub duplicates: usize,
    /// Deliveries parked on the DLQ.
    pub parked: usize,
    /// Expected deliveries neither delivered nor parked.
    pub lost: usize,
}

impl Accounting {
    /// Prints the accounting as one line, tagged with the test's name.
    pub fn print(&self, test: &str) {
        println!(
            "[{test}] accounting: expected={} delivered={} duplicates={} parked={} lost={}",
            self.expected, self.delivered, self.duplicates, self.parked, self.lost
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_requests_answers_as_told_and_stops_listening() {
        let receiver = Receiver::start(Arc::new(|seen| {
            Reply::status(if seen.for_id == 1 { 503 } else { 200 }).header("x-seen", "yes")
        }))
        .await;
        let client = reqwest::Client::new();
        let mut statuses = Vec::new();
        for _ in 0..2 {
            let r = client
                .post(receiver.url())
                .header("webhook-id", "msg_1")
                .body(r#"{"id":"e1"}"#)
                .send()
                .await
                .unwrap();
            assert_eq!(r.headers()["x-seen"], "yes");
            statuses.push(r.status().as_u16());
        }
        assert_eq!(statuses, [503, 200]);
        assert_eq!((receiver.count(), receiver.distinct()), (2, 1));
        let got = receiver.received();
        assert_eq!(got[0].header("webhook-id"), "msg_1");
        assert_eq!(got[0].json()["id"], "e1");
        assert_eq!((got[0].replied, got[1].replied), (503, 200));
        let (delivered, duplicates) = receiver.delivered();
        assert_eq!(
            (delivered.into_iter().collect::<Vec<_>>(), duplicates),
            (vec!["msg_1".to_owned()], 0)
        );
        assert_eq!(receiver.max_in_flight_per_delivery(), 1);

        let addr = receiver.addr;
        receiver.stop().await;
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }
}
