//! The delivery history in DynamoDB: one table, five kinds of item, all written by
//! [`HistoryStore::record`] once per batch; all but the health counters expire with the
//! retention.
//!
//! - **Event group** (`E#…`): the batch's events of one app and UTC minute that
//!   matched a webhook, zstd-compressed, with the webhooks each went to. Found by event
//!   id: the minute comes from the id (a UUIDv7), the batch's shard is one of 8.
//! - **Webhook record** (`W#…`): everything that happened to one webhook in one batch,
//!   newest first, zstd-compressed; successes compact, failures with their detail.
//!   Spread over 8 shard partitions per webhook; a webhook's listing merges them.
//! - **Trail item** (`T#…`): points from an event to a record holding attempts of it
//!   made outside its first fan-out (retries, re-sends, re-drives). Recovery markers
//!   live beside them (`recovery`).
//! - **Index entry** (`D#…`): per app and batch, the webhooks whose records the batch
//!   wrote, for the app-wide listing.
//! - **Health counters** (`H#…`): one webhook's attempts, successes, failures and
//!   latency histogram of one UTC hour, added to by every batch (`UpdateItem`), kept
//!   49 hours; read for the endpoint health ([`HistoryStore::health`]).
//!
//! Keys are spelled in `keys`; the table has no index.

mod batch;
mod by_event;
mod cursor;
mod event_listing;
mod filter;
mod health;
mod items;
mod keys;
mod listing;
mod recovery;
mod scope;
mod write;

use std::time::Duration;

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use chrono::Utc;

pub use batch::{BatchAttempt, BatchHistory};
pub use by_event::StoredEvent;
pub use event_listing::{EventQuery, ListedEvent};
pub use filter::AttemptFilter;
pub use items::{item_size, write_units, EXCERPT_BYTES};
pub use keys::SHARDS;
pub use recovery::{
    recovery_share, DeliveryTrail, RecoveryCandidate, RecoveryPage, RecoveryState, RECOVERY_PAGE,
};
pub use scope::ListingScope;

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

impl HistoryStore {
    /// A `Query` of partition `pk`, within the sort key range `lo..=hi` if given, that
    /// hides expired items (`filter` is added to that condition).
    fn query(&self, pk: &str, range: Option<(&str, &str)>, filter: &str) -> QueryFluentBuilder {
        let q = self
            .client
            .query()
            .table_name(&self.table)
            .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
            .expression_attribute_values(":now", now());
        let q = if filter.is_empty() {
            q.filter_expression("expires_at > :now")
        } else {
            q.filter_expression(format!("{filter} AND expires_at > :now"))
        };
        match range {
            None => q.key_condition_expression("pk = :pk"),
            Some((lo, hi)) => q
                .key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
                .expression_attribute_values(":lo", AttributeValue::S(lo.to_owned()))
                .expression_attribute_values(":hi", AttributeValue::S(hi.to_owned())),
        }
    }
}

/// Now in Unix seconds, for the expiry filter: TTL deletion lags (up to days on AWS,
/// never on some emulators), so expired items are hidden at read time too.
fn now() -> AttributeValue {
    AttributeValue::N(Utc::now().timestamp().to_string())
}
