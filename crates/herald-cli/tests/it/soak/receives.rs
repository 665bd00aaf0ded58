//! What the workers received from the events queue, seen on the proxy between them and
//! the emulator: which message carried which deliveries, and when. The emulator's SQS
//! can hand one message to two receives at once (moto checks and marks a message's
//! visibility without a lock, and two workers receive concurrently), as SQS itself
//! occasionally does; the duplicates that follow are the queue's, not a kill's.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herald_core::{webhook_id, QueueMessage, SubscriptionId};
use herald_testing::Observer;

/// Receives of one message id closer together than this were not a redelivery after
/// the visibility timeout (20 s): the queue handed the message out twice.
const TOGETHER: Duration = Duration::from_secs(15);

/// Every receive of a message that carried a delivery, by the delivery's `webhook-id`.
#[derive(Default)]
pub(super) struct Receives {
    by_delivery: Mutex<HashMap<String, Vec<(String, Instant)>>>,
    /// Deliveries retried because an attempt timed out on Herald's side: a receiver
    /// that answered after `HERALD_HTTP_TIMEOUT` (a healthy one, on a machine too busy
    /// to read its answer in time) got a request Herald counts as failed, and the
    /// retry repeats it. At-least-once, as any sender with a timeout.
    timed_out: Mutex<BTreeSet<String>>,
}

impl Receives {
    /// An observer for the proxy that records the messages of every `ReceiveMessage`
    /// answer; an event message carries a delivery to each of `subs`.
    pub(super) fn observer(self: &Arc<Self>, subs: Vec<SubscriptionId>) -> Observer {
        let receives = Arc::clone(self);
        Arc::new(move |target, _, status, body| {
            if target == "AmazonSQS.ReceiveMessage" && status.is_success() {
                receives.record(body, &subs);
            }
        })
    }

    fn record(&self, answer: &[u8], subs: &[SubscriptionId]) {
        let at = Instant::now();
        let answer: serde_json::Value = serde_json::from_slice(answer).unwrap_or_default();
        let mut by_delivery = self.by_delivery.lock().unwrap();
        for m in answer["Messages"].as_array().into_iter().flatten() {
            let id = m["MessageId"].as_str().unwrap_or_default().to_owned();
            let deliveries = match QueueMessage::decode(m["Body"].as_str().unwrap_or_default()) {
                Ok(QueueMessage::Event { event }) => {
                    subs.iter().map(|s| webhook_id(&event.id, s)).collect()
                }
                Ok(QueueMessage::Delivery { delivery }) => {
                    let id = webhook_id(&delivery.event.id, &delivery.subscription_id);
                    if delivery.last_result.as_deref() == Some("timed out") {
                        self.timed_out.lock().unwrap().insert(id.to_string());
                    }
                    vec![id]
                }
                Err(_) => Vec::new(),
            };
            for d in deliveries {
                by_delivery
                    .entry(d.to_string())
                    .or_default()
                    .push((id.clone(), at));
            }
        }
    }

    /// The `webhook-id`s of deliveries whose message the queue handed out twice at
    /// once, and how many such messages there were.
    pub(super) fn doubled(&self) -> (BTreeSet<String>, usize) {
        let by_delivery = self.by_delivery.lock().unwrap();
        let mut deliveries = BTreeSet::new();
        let mut messages = BTreeSet::new();
        for (delivery, receives) in by_delivery.iter() {
            for (i, (id, at)) in receives.iter().enumerate() {
                let twice = receives[i + 1..].iter().any(|(other, then)| {
                    other == id && then.saturating_duration_since(*at) < TOGETHER
                });
                if twice {
                    deliveries.insert(delivery.clone());
                    messages.insert(id.clone());
                }
            }
        }
        (deliveries, messages.len())
    }

    /// The deliveries seen carried by some message.
    /// Deliveries retried after an attempt that timed out on Herald's side.
    pub(super) fn timed_out(&self) -> BTreeSet<String> {
        self.timed_out.lock().unwrap().clone()
    }

    pub(super) fn deliveries(&self) -> usize {
        self.by_delivery.lock().unwrap().len()
    }

    /// The receives of the messages that carried a delivery, as "message id at
    /// seconds since `t0`".
    pub(super) fn of(&self, delivery: &str, t0: Instant) -> Vec<String> {
        self.by_delivery
            .lock()
            .unwrap()
            .get(delivery)
            .into_iter()
            .flatten()
            .map(|(id, at)| format!("{id} at {:.2}s", (*at - t0).as_secs_f64()))
            .collect()
    }
}
