//! The soak test's webhooks (a receiver and its subscription each, healthy, flaky,
//! dead or hanging) and its accounting of what they got and what the DLQ holds.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::Message;
use herald_core::{
    webhook_id, AppId, Event, EventFilter, ObjectTypeFilter, Subscription, SubscriptionId,
};
use herald_store::SubscriptionStore;
use herald_testing::{Accounting, Receiver, Reply};

use super::receives::Receives;
use super::{DEAD_REASON, HEALTHY};

/// How a webhook's receiver behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Healthy,
    /// Fails the first attempt of every delivery with 503.
    Flaky,
    /// Answers 500 to everything.
    Dead,
    /// Holds the first attempt of every delivery past the HTTP timeout.
    Hanging,
}

/// A receiver and the webhook that posts to it.
struct Webhook {
    role: Role,
    receiver: Receiver,
    sub: Subscription,
}

impl Webhook {
    async fn create(store: &SubscriptionStore, app: &AppId, role: Role) -> Self {
        let receiver = Receiver::start(match role {
            Role::Healthy => Arc::new(|_| Reply::status(200)),
            Role::Flaky => Arc::new(|seen| Reply::status(if seen.for_id == 1 { 503 } else { 200 })),
            Role::Dead => Arc::new(|_| Reply::status(500)),
            // Answered long after Herald gave up: not a delivery.
            Role::Hanging => Arc::new(|seen| {
                if seen.for_id == 1 {
                    Reply::status(504).after(Duration::from_secs(3))
                } else {
                    Reply::status(200)
                }
            }),
        })
        .await;
        let sub = Subscription::new(
            app.clone(),
            receiver.url(),
            EventFilter::All,
            ObjectTypeFilter::All,
        );
        store.create(&sub).await.expect("create a webhook");
        Self {
            role,
            receiver,
            sub,
        }
    }
}

/// All twenty webhooks.
pub(super) struct Webhooks(Vec<Webhook>);

impl Webhooks {
    pub(super) async fn create(store: &SubscriptionStore, app: &AppId) -> Self {
        let mut all = Vec::new();
        let roles = [Role::Flaky, Role::Dead, Role::Hanging];
        for role in std::iter::repeat_n(Role::Healthy, HEALTHY).chain(roles) {
            all.push(Webhook::create(store, app, role).await);
        }
        Self(all)
    }

    pub(super) fn requests(&self) -> usize {
        self.0.iter().map(|w| w.receiver.count()).sum()
    }

    /// The webhooks every delivery should reach in the end.
    fn reachable(&self) -> impl Iterator<Item = &Webhook> {
        self.0.iter().filter(|w| w.role != Role::Dead)
    }

    /// The webhooks' subscription ids.
    pub(super) fn sub_ids(&self) -> Vec<SubscriptionId> {
        self.0.iter().map(|w| w.sub.id.clone()).collect()
    }

    fn dead(&self) -> &Webhook {
        self.0
            .iter()
            .find(|w| w.role == Role::Dead)
            .expect("a dead webhook")
    }

    /// Requests per receiver, as one line.
    pub(super) fn summary(&self) -> String {
        let mut healthy: Vec<usize> = self
            .0
            .iter()
            .filter(|w| w.role == Role::Healthy)
            .map(|w| w.receiver.count())
            .collect();
        healthy.sort();
        let others: Vec<String> = self
            .0
            .iter()
            .filter(|w| w.role != Role::Healthy)
            .map(|w| format!("{:?} {}", w.role, w.receiver.count()))
            .collect();
        format!(
            "healthy {}-{}, {}",
            healthy.first().unwrap_or(&0),
            healthy.last().unwrap_or(&0),
            others.join(", ")
        )
    }
}

/// The first bytes of a body: what an undecodable letter keeps of it at least.
pub(super) fn prefix(body: &str) -> String {
    body.chars().take(64).collect()
}

/// What the run came to.
pub(super) struct Report {
    pub(super) acc: Accounting,
    /// Duplicates of deliveries whose message the queue handed out twice at once.
    pub(super) doubled: usize,
    /// Duplicates of deliveries retried after an attempt timed out on Herald's side
    /// (the receiver answered too late).
    pub(super) late: usize,
    /// Duplicates with no kill between their delivery's first request and them, and
    /// no message handed out twice: from neither.
    pub(super) unexplained: usize,
    /// Events whose delivery to the dead webhook was parked because all its attempts
    /// failed, with that reason.
    pub(super) dead: BTreeSet<String>,
    /// Such letters, repeats included.
    pub(super) dead_letters: usize,
    /// Undecodable letters with their reason, by the first bytes of their body.
    pub(super) undecodable: BTreeMap<String, String>,
    /// Such letters, repeats included.
    pub(super) undecodable_letters: usize,
    /// Letters that fit none of the above, as their bodies' first bytes.
    pub(super) other: Vec<String>,
}

/// What one receiver got of the deliveries it should.
struct Tally {
    /// Deliveries answered 2xx.
    delivered: usize,
    /// 2xx requests beyond the first of their delivery.
    duplicates: usize,
    /// Duplicates of deliveries whose message the queue handed out twice at once.
    doubled: usize,
    /// Duplicates of deliveries retried after an attempt timed out on Herald's side.
    late: usize,
    /// Duplicates explained by neither: no kill between the delivery's first request
    /// and them, no message handed out twice.
    unexplained: usize,
}

/// A worker killed: when the test asked, and when the process was gone.
#[derive(Debug, Clone, Copy)]
pub(super) struct Kill {
    pub(super) asked: Instant,
    pub(super) gone: Instant,
}

/// How long after a worker is gone a request it sent may still be read and recorded.
const IN_TRANSIT: Duration = Duration::from_millis(500);

/// Tallies a receiver's requests for the `wanted` webhook ids. A batch killed in flight
/// comes back whole: each of its deliveries may be made again after the kill, though
/// it was first attempted before it. The queue may also hand a message out twice.
/// Prints each duplicate neither explains, with its requests, its messages' receives
/// and the kills (seconds since `t0`).
fn tally(r: &Receiver, wanted: &BTreeSet<String>, seen: &Seen, t0: Instant) -> Tally {
    let mut requests: HashMap<&str, Vec<(Instant, u16)>> = HashMap::new();
    let received = r.received();
    for req in &received {
        let id = req.header("webhook-id");
        if wanted.contains(id) {
            requests.entry(id).or_default().push((req.at, req.replied));
        }
    }
    let mut t = Tally {
        delivered: 0,
        duplicates: 0,
        doubled: 0,
        late: 0,
        unexplained: 0,
    };
    let secs = |at: Instant| (at - t0).as_secs_f64();
    for (id, reqs) in &requests {
        let first = reqs[0].0;
        let ok: Vec<Instant> = reqs
            .iter()
            .filter(|(_, status)| (200..300).contains(status))
            .map(|(at, _)| *at)
            .collect();
        t.delivered += usize::from(!ok.is_empty());
        for repeat in ok.iter().skip(1) {
            t.duplicates += 1;
            let killed = seen
                .kills
                .iter()
                .any(|k| first <= k.gone + IN_TRANSIT && k.asked <= *repeat);
            if killed {
                continue;
            }
            if seen.doubled.contains(*id) {
                t.doubled += 1;
                continue;
            }
            if seen.timed_out.contains(*id) {
                t.late += 1;
                continue;
            }
            t.unexplained += 1;
            let requests: Vec<String> = reqs
                .iter()
                .map(|(at, status)| format!("{:.2}s {status}", secs(*at)))
                .collect();
            let kills: Vec<String> = seen
                .kills
                .iter()
                .map(|k| format!("{:.2}-{:.2}s", secs(k.asked), secs(k.gone)))
                .collect();
            println!(
                "[soak] a duplicate nothing explains: {} {id}: requests {requests:?}; \
                 received {:?}; kills {kills:?}",
                r.url(),
                seen.receives.of(id, t0)
            );
        }
    }
    t
}

/// What explains a duplicate: the kills, and the deliveries whose message the queue
/// handed out twice at once.
pub(super) struct Seen<'a> {
    pub(super) kills: &'a [Kill],
    pub(super) receives: &'a Receives,
    pub(super) doubled: BTreeSet<String>,
    /// Deliveries retried after an attempt timed out on Herald's side.
    pub(super) timed_out: BTreeSet<String>,
}

/// Counts what the receivers got and what the DLQ holds.
pub(super) fn account(
    hooks: &Webhooks,
    events: &[Event],
    letters: &[Message],
    seen: &Seen,
    t0: Instant,
) -> Report {
    let mut acc = Accounting::default();
    let mut unexplained = 0;
    let mut doubled = 0;
    let mut late = 0;
    for hook in hooks.reachable() {
        let wanted: BTreeSet<String> = events
            .iter()
            .map(|e| webhook_id(&e.id, &hook.sub.id).to_string())
            .collect();
        let t = tally(&hook.receiver, &wanted, seen, t0);
        if t.delivered < wanted.len() || t.duplicates > 0 {
            println!(
                "[soak] {:?} {}: {} of {} delivered, {} duplicates ({} of a message handed \
                 out twice, {} retried after a timeout, {} unexplained)",
                hook.role,
                hook.receiver.url(),
                t.delivered,
                wanted.len(),
                t.duplicates,
                t.doubled,
                t.late,
                t.unexplained
            );
        }
        acc.expected += wanted.len();
        acc.delivered += t.delivered;
        acc.duplicates += t.duplicates;
        acc.lost += wanted.len() - t.delivered;
        unexplained += t.unexplained;
        doubled += t.doubled;
        late += t.late;
    }
    acc.parked = letters.len();
    let mut report = Report {
        acc,
        doubled,
        late,
        unexplained,
        dead: BTreeSet::new(),
        dead_letters: 0,
        undecodable: BTreeMap::new(),
        undecodable_letters: 0,
        other: Vec::new(),
    };
    let dead_sub = hooks.dead().sub.id.as_str();
    for m in letters {
        let body = m.body().unwrap_or_default();
        let letter: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        let reason = letter["reason"].as_str().unwrap_or_default();
        let attribute = m
            .message_attributes()
            .and_then(|a| a.get("herald_reason"))
            .and_then(|a| a.string_value());
        let reasoned = !reason.is_empty() && attribute == Some(reason);
        match letter["kind"].as_str() {
            Some("failed")
                if reasoned
                    && reason == DEAD_REASON
                    && letter["delivery"]["subscription_id"] == dead_sub =>
            {
                report.dead_letters += 1;
                let event = letter["delivery"]["event"]["id"]
                    .as_str()
                    .unwrap_or_default();
                report.dead.insert(event.to_owned());
            }
            Some("undecodable") if reasoned => {
                report.undecodable_letters += 1;
                let kept = letter["body"].as_str().unwrap_or_default();
                report.undecodable.insert(prefix(kept), reason.to_owned());
            }
            _ => report.other.push(body.chars().take(300).collect()),
        }
    }
    report
}
