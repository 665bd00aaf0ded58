//! When the counting proxy saw each SQS `ReceiveMessage` open and close, and when it
//! handed each event to the client that received it: what section 2 needs to split an
//! event's publish → receipt time, per event, into the emulator's part and Herald's.
//!
//! For one event, published (the send call returned) at `s`, handed to the worker in a
//! `ReceiveMessage` answer at `h` and arriving at the receiver at `r`:
//!
//! - **Herald's own time** is `r − h`: decoding, looking up, signing, the POST.
//! - **Waiting for a poll** is the part of `s..h` during which the worker had no
//!   `ReceiveMessage` open on the queue (it was finishing a batch): time the event sat
//!   in the queue because of the worker, not the emulator.
//! - The rest of `s..h` is the emulator's own send → receive, with a poll open.
//!
//! Herald's share beyond the emulator is the first two, per event. Unlike the
//! difference of two runs' percentiles, it does not depend on two samples of the
//! emulator's latency taken at different times agreeing in their tails.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use herald_core::QueueMessage;
use serde_json::Value;

/// The receives of every queue, and when each event was first handed over.
#[derive(Debug, Default)]
pub struct ReceiveLog {
    /// Event id → when its first `ReceiveMessage` answer left the proxy.
    handed: HashMap<String, Instant>,
    /// Queue URL → (when a receive opened, +1) and (when one closed, −1).
    edges: HashMap<String, Vec<(Instant, i32)>>,
}

/// The `QueueUrl` of an SQS JSON-protocol request body.
fn queue_url(request: &[u8]) -> String {
    serde_json::from_slice::<Value>(request)
        .ok()
        .and_then(|v| v["QueueUrl"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

impl ReceiveLog {
    /// A `ReceiveMessage` request arrived at the proxy.
    pub fn opened(&mut self, request: &[u8], at: Instant) {
        self.edges
            .entry(queue_url(request))
            .or_default()
            .push((at, 1));
    }

    /// A `ReceiveMessage` answer is leaving the proxy: notes the events in it.
    pub fn closed(&mut self, request: &[u8], response: &[u8], at: Instant) {
        self.edges
            .entry(queue_url(request))
            .or_default()
            .push((at, -1));
        let parsed: Value = serde_json::from_slice(response).unwrap_or(Value::Null);
        for m in parsed["Messages"].as_array().into_iter().flatten() {
            let decoded = m["Body"].as_str().map(QueueMessage::decode);
            if let Some(Ok(QueueMessage::Event { event })) = decoded {
                self.handed.entry(event.id.to_string()).or_insert(at);
            }
        }
    }

    /// When the event `id` was first handed to a client.
    pub fn handed(&self, id: &str) -> Option<Instant> {
        self.handed.get(id).copied()
    }

    /// How long within `from..to` no receive was open on `queue`.
    pub fn idle(&self, queue: &str, from: Instant, to: Instant) -> Duration {
        let Some(edges) = self.edges.get(queue) else {
            return to.saturating_duration_since(from);
        };
        idle_within(edges, from, to)
    }
}

/// Time within `from..to` during which the count of open receives (the running sum of
/// `edges`, +1 at an opening and −1 at a closing) was zero.
fn idle_within(edges: &[(Instant, i32)], from: Instant, to: Instant) -> Duration {
    if to <= from {
        return Duration::ZERO;
    }
    let mut sorted = edges.to_vec();
    // At equal instants, close before open: a receive that ends as the next begins
    // leaves no gap.
    sorted.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut open = 0;
    let mut idle = Duration::ZERO;
    let mut cursor = from;
    for (at, step) in sorted {
        if at > cursor {
            let end = at.min(to);
            if open <= 0 && end > cursor {
                idle += end - cursor;
            }
            cursor = cursor.max(end);
        }
        open += step;
        if cursor >= to {
            break;
        }
    }
    if cursor < to && open <= 0 {
        idle += to - cursor;
    }
    idle
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_time_is_where_no_receive_was_open() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        // Receives open 10..20 and 30..50 (overlapping 40..60 too).
        let edges = [
            (ms(10), 1),
            (ms(20), -1),
            (ms(30), 1),
            (ms(40), 1),
            (ms(50), -1),
            (ms(60), -1),
        ];
        let idle = |a, b| idle_within(&edges, ms(a), ms(b)).as_millis();
        assert_eq!(idle(0, 100), 10 + 10 + 40);
        assert_eq!(idle(12, 18), 0, "inside a receive");
        assert_eq!(idle(15, 35), 10, "the gap 20..30");
        assert_eq!(idle(45, 55), 0, "overlapping receives");
        assert_eq!(idle(20, 30), 10);
        assert_eq!(idle(30, 20), 0);
        // A receive closing as the next opens leaves no gap.
        let back_to_back = [(ms(0), 1), (ms(10), -1), (ms(10), 1), (ms(20), -1)];
        assert_eq!(idle_within(&back_to_back, ms(0), ms(20)).as_millis(), 0);
    }

    #[test]
    fn events_are_noted_when_first_handed() {
        let app = herald_core::AppId::parse("bench").unwrap();
        let event = crate::payload::event_1k(&app, 1).unwrap();
        let body = QueueMessage::Event {
            event: event.clone(),
        }
        .encode();
        let request = br#"{"QueueUrl":"http://q/events"}"#;
        let response = serde_json::json!({ "Messages": [{ "Body": body }] }).to_string();
        let mut log = ReceiveLog::default();
        let t0 = Instant::now();
        log.opened(request, t0);
        log.closed(request, response.as_bytes(), t0 + Duration::from_millis(5));
        log.closed(request, response.as_bytes(), t0 + Duration::from_millis(9));
        assert_eq!(
            log.handed(&event.id.to_string()),
            Some(t0 + Duration::from_millis(5))
        );
        assert_eq!(
            log.idle("http://q/events", t0, t0 + Duration::from_millis(5)),
            Duration::ZERO
        );
        assert_eq!(
            log.idle("http://q/other", t0, t0 + Duration::from_millis(5)),
            Duration::from_millis(5)
        );
    }
}
