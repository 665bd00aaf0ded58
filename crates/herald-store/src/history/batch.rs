//! What one batch hands to the history: its identity and everything it did.

use chrono::{DateTime, SubsecRound as _, Utc};
use herald_core::{new_id, Attempt, Event};
use rand::Rng as _;

use super::keys::{BATCH_PREFIX, SHARDS};

/// What one batch of the consumer (one call of its handler), or one test ping of the
/// API, did: written by [`super::HistoryStore::record`] in one go.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchHistory {
    /// `b_` and a UUIDv7: unique, and part of every key the batch writes.
    pub id: String,
    /// When the batch started, to the microsecond: its records' sort key.
    pub at: DateTime<Utc>,
    /// The shard (0..8) all of the batch's groups and records go to.
    pub shard: u8,
    /// Freshly published events fanned out in this batch that matched at least one
    /// webhook (delivered to, or not sent because disabled). They are kept, so they
    /// can be re-sent; events that matched nothing are not given.
    pub events: Vec<Event>,
    /// Every attempt the batch made or recorded as not sent.
    pub attempts: Vec<BatchAttempt>,
}

/// One attempt of a batch, and whether it belongs to its event's first fan-out (from
/// an `Event` message) or came later (a retry, re-send or re-drive, from a `Delivery`
/// message).
#[derive(Debug, Clone, PartialEq)]
pub struct BatchAttempt {
    /// The attempt record.
    pub attempt: Attempt,
    /// Made while fanning out a fresh event.
    pub first_fan_out: bool,
}

impl BatchHistory {
    /// A batch starting now, with a fresh id and a random shard.
    pub fn start() -> Self {
        Self {
            id: new_id(BATCH_PREFIX),
            at: Utc::now().trunc_subsecs(6),
            shard: rand::thread_rng().gen_range(0..SHARDS),
            events: Vec::new(),
            attempts: Vec::new(),
        }
    }

    /// Adds a freshly published event that matched at least one webhook.
    pub fn fanned_out(&mut self, event: Event) {
        self.events.push(event);
    }

    /// Adds an attempt; `first_fan_out` when made while fanning out a fresh event.
    pub fn attempted(&mut self, attempt: Attempt, first_fan_out: bool) {
        self.attempts.push(BatchAttempt {
            attempt,
            first_fan_out,
        });
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.attempts.is_empty()
    }
}
