//! The delivery history in DynamoDB: one table, three kinds of item, all written by
//! [`HistoryStore::record`] once per batch and expiring with the retention.
//!
//! - **Event group** (`E#…`): the batch's events of one app and UTC minute that
//!   matched a webhook, zstd-compressed, with the webhooks each went to. Found by event
//!   id: the minute comes from the id (a UUIDv7), the batch's shard is one of 8.
//! - **Webhook record** (`W#…`): everything that happened to one webhook in one batch,
//!   newest first, zstd-compressed; successes compact, failures with their detail.
//!   Spread over 8 shard partitions per webhook; a webhook's listing merges them.
//! - **Trail item** (`T#…`): points from an event to a record holding attempts of it
//!   made outside its first fan-out (retries, re-sends, re-drives).
//!
//! Keys are spelled in `keys`; the table has no index.

mod batch;
mod cursor;
mod items;
mod keys;
mod listing;
mod write;

use std::time::Duration;

use aws_sdk_dynamodb::Client;

pub use batch::{BatchAttempt, BatchHistory};
pub use items::{item_size, write_units, EXCERPT_BYTES};
pub use keys::SHARDS;

/// The delivery history: event groups, webhook records and trail items.
#[derive(Clone, Debug)]
pub struct HistoryStore {
    client: Client,
    table: String,
    retention: Duration,
}

impl HistoryStore {
    /// `retention` sets each item's `expires_at` (the table's TTL attribute) and
    /// hides older items from reads.
    pub fn new(client: Client, table: impl Into<String>, retention: Duration) -> Self {
        Self {
            client,
            table: table.into(),
            retention,
        }
    }
}
