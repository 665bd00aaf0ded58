//! Herald's DynamoDB adapter.
//!
//! Subscriptions ([`SubscriptionStore`]) live in one table keyed by `pk`/`sk`: each
//! tenant's webhooks in its `A#{app}` partition (listing is a paginated `Query`), each
//! webhook's route (what delivery needs) under every event type it takes
//! (`R#{app}#{type}`, or `R#{app}#*`), so finding the webhooks of an event reads only
//! those, and an app routing version item that every routing change moves on in the
//! same transaction (a consumer's cache is confirmed with one `GetItem`). Nothing
//! scans the table.
//!
//! The delivery history ([`HistoryStore`]) keeps, per batch, the events that matched a
//! webhook (grouped and compressed), one record per webhook of what happened to it, and
//! trail items for retries, over 8 shard partitions and without an index; see
//! [`history`](HistoryStore) for its layout.
//!
//! Apps and their API keys ([`AppStore`]) share one table, and `Idempotency-Key` records
//! ([`IdempotencyStore`]) have their own.
//!
//! Webhook signing secrets and credential header values are sealed at rest with
//! `herald-seal` (envelope encryption; see the `subscriptions` module).
//!
//! Every item is a typed struct converted with `serde_dynamo`; each table has one place
//! that builds its keys.

mod settings;
pub use settings::DeliveryTables;
mod apps;
mod history;
mod idempotency;
mod sources;
mod storage;
mod subscriptions;
pub use apps::{hash_key, mint_key, ApiKey, App, AppStore, NewKey, KEY_PREFIX};
pub use history::{
    item_size, recovery_share, write_units, AttemptFilter, BatchAttempt, BatchHistory,
    DeliveryTrail, EventQuery, HistoryStore, ListedEvent, ListingScope, RecoveryCandidate,
    RecoveryPage, RecoveryState, StoredEvent, EXCERPT_BYTES, RECOVERY_PAGE, SHARDS,
};
pub use idempotency::{Claim, IdempotencyStore, PlannedEvent, CLAIM_LEASE, IDEMPOTENCY_WINDOW};
pub use sources::{DeliveryClaim, SourceRequest, SourceStore, MAX_REQUEST_PAGE, SEEN_WINDOW};
pub use storage::{AppStorage, HistoryStorage, IdempotencyStorage, SubscriptionStorage};
pub use subscriptions::{
    EventTypeChanges, EventTypeEntry, SubscriptionChanges, SubscriptionStore, CHANGE_ATTEMPTS,
};

use std::collections::HashMap;
use std::fmt;

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as CURSOR;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Largest page a listing returns.
pub const MAX_PAGE_SIZE: i32 = 250;

/// A DynamoDB item (or key): attribute names to values.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// The kinds of stored item, named in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    /// A subscription (a webhook, in the API's words).
    Subscription,
    /// An app (tenant).
    App,
    /// An API key's metadata or its authentication lookup.
    ApiKey,
    /// A group of events of one batch kept in the history (and for re-sending).
    EventGroup,
    /// What happened to one webhook in one batch.
    WebhookRecord,
    /// A pointer from an event to a webhook record with its later attempts.
    Trail,
    /// An app's index entry of one batch, naming the webhook records it wrote.
    BatchIndex,
    /// A webhook's endpoint health counters of one hour.
    HealthCounters,
    /// An `Idempotency-Key` record.
    IdempotencyKey,
    /// A rate-limited webhook's schedule of delivery slots.
    RateSchedule,
    /// An entry of an app's event-type catalog.
    EventType,
    /// An inbound source.
    Source,
    /// An entry of an inbound source's request log.
    SourceRequest,
    /// A sender's delivery id seen by an inbound source.
    InboundDelivery,
}

impl fmt::Display for ItemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Subscription => "subscription",
            Self::App => "app",
            Self::ApiKey => "key",
            Self::EventGroup => "event group",
            Self::WebhookRecord => "webhook record",
            Self::Trail => "trail item",
            Self::BatchIndex => "batch index entry",
            Self::HealthCounters => "health counters",
            Self::IdempotencyKey => "idempotency key",
            Self::RateSchedule => "rate schedule",
            Self::EventType => "event type",
            Self::Source => "source",
            Self::SourceRequest => "source request",
            Self::InboundDelivery => "inbound delivery id",
        })
    }
}

/// Store failures, one variant per meaning.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The item a write or delete needs does not exist.
    #[error("{kind} {id} not found")]
    NotFound { kind: ItemKind, id: String },
    /// An item with this id exists already.
    #[error("{kind} {id} already exists")]
    AlreadyExists { kind: ItemKind, id: String },
    /// The item changed while a read-modify-write of it was under way, again and
    /// again; the caller may try again.
    #[error("{kind} {id} was changed by another request at the same time; try again")]
    Changed { kind: ItemKind, id: String },
    /// A collection that holds as many items as it may.
    #[error("at most {max} {kind}s; {hint}")]
    TooMany {
        kind: ItemKind,
        max: u64,
        hint: &'static str,
    },
    /// A pagination cursor that this store did not hand out.
    #[error("invalid pagination cursor")]
    BadCursor,
    /// A stored item that does not decode as its kind.
    #[error("stored {kind} item is not valid: {reason}")]
    Corrupt { kind: ItemKind, reason: String },
    /// A value that cannot be turned into a DynamoDB item or request.
    #[error("{kind} cannot be written as a DynamoDB item: {reason}")]
    Unwritable { kind: ItemKind, reason: String },
    /// The key service that seals secrets failed or refused (KMS); the caller may
    /// try again.
    #[error("sealing secrets failed: {message}")]
    Keys { message: String },
    /// What this store does not keep (memory mode keeps no event-type catalog,
    /// callback secrets or inbound sources).
    #[error(
        "{what} is not available in memory mode (herald dev --in-memory); run herald dev for it"
    )]
    Unsupported { what: &'static str },
    /// DynamoDB refused or failed a call.
    #[error("DynamoDB {operation} failed: {message}")]
    Dynamo {
        operation: &'static str,
        message: String,
    },
}

impl StoreError {
    /// `NotFound` for an item of `kind`.
    pub fn not_found(kind: ItemKind, id: impl fmt::Display) -> Self {
        Self::NotFound {
            kind,
            id: id.to_string(),
        }
    }

    /// `AlreadyExists` for an item of `kind`.
    pub fn already_exists(kind: ItemKind, id: impl fmt::Display) -> Self {
        Self::AlreadyExists {
            kind,
            id: id.to_string(),
        }
    }

    pub(crate) fn corrupt(kind: ItemKind, reason: impl fmt::Display) -> Self {
        Self::Corrupt {
            kind,
            reason: reason.to_string(),
        }
    }

    pub(crate) fn unwritable(kind: ItemKind, reason: impl fmt::Display) -> Self {
        Self::Unwritable {
            kind,
            reason: reason.to_string(),
        }
    }

    pub(crate) fn dynamo<E: std::error::Error + 'static>(operation: &'static str, e: E) -> Self {
        Self::Dynamo {
            operation,
            message: DisplayErrorContext(e).to_string(),
        }
    }
}

/// One page of a listing; `next_cursor` is present when more items follow.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items of this page, in the listing's order.
    pub items: Vec<T>,
    /// Pass it back to get the next page.
    pub next_cursor: Option<String>,
}

/// The key of a table keyed by the string attributes `pk` (partition) and `sk` (sort).
/// Each such table's module adds the constructors of its kinds of item.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) struct PkSk {
    pub(crate) pk: String,
    pub(crate) sk: String,
}

impl PkSk {
    /// The key as the attribute map of a `GetItem`, `DeleteItem` or start key.
    pub(crate) fn into_item(self) -> Item {
        HashMap::from([
            ("pk".to_owned(), AttributeValue::S(self.pk)),
            ("sk".to_owned(), AttributeValue::S(self.sk)),
        ])
    }
}

/// Encodes a typed item (or key) of `kind` with `serde_dynamo`.
pub(crate) fn to_item<T: Serialize>(kind: ItemKind, value: &T) -> Result<Item, StoreError> {
    serde_dynamo::to_item(value).map_err(|e| StoreError::unwritable(kind, e))
}

/// Decodes a stored item of `kind` with `serde_dynamo`.
pub(crate) fn from_item<T: DeserializeOwned>(kind: ItemKind, item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::corrupt(kind, e))
}

/// Decodes the items a `Query` returned.
pub(crate) fn decode_items<T: DeserializeOwned>(
    kind: ItemKind,
    items: Option<Vec<Item>>,
) -> Result<Vec<T>, StoreError> {
    items
        .unwrap_or_default()
        .into_iter()
        .map(|item| from_item(kind, item))
        .collect()
}

/// Whether a call failed only because its condition expression did not hold.
pub(crate) fn is_condition_failure<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.as_service_error().and_then(|se| se.code()) == Some("ConditionalCheckFailedException")
}

/// Whether a cancelled transaction lost a race (one of its conditions failed, or
/// another transaction touched the same items) rather than failing.
pub(crate) fn transaction_lost_race(
    e: &SdkError<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError>,
) -> bool {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    match e.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
            c.cancellation_reasons().iter().any(|r| {
                matches!(
                    r.code(),
                    Some("ConditionalCheckFailed" | "TransactionConflict")
                )
            })
        }
        _ => false,
    }
}

/// Maps a failed conditional write to `conflict`, anything else to a DynamoDB error.
pub(crate) fn on_condition<E, R>(
    e: SdkError<E, R>,
    operation: &'static str,
    conflict: impl FnOnce() -> StoreError,
) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: fmt::Debug + Send + Sync + 'static,
{
    if is_condition_failure(&e) {
        conflict()
    } else {
        StoreError::dynamo(operation, e)
    }
}

/// The `Query` on `table` for the items of partition `pk` whose sort key starts with
/// `sk_prefix`, in sort key order.
pub(crate) fn prefix_query(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    pk: &str,
    sk_prefix: &str,
) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
    client
        .query()
        .table_name(table)
        .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
        .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
        .expression_attribute_values(":prefix", AttributeValue::S(sk_prefix.to_owned()))
}

/// The cursor of a listing that resumes after the sort key value `sort_key`.
pub fn encode_cursor(sort_key: &str) -> String {
    CURSOR.encode(sort_key)
}

/// The sort key value a cursor from [`encode_cursor`] carries.
pub fn decode_cursor(cursor: &str) -> Result<String, StoreError> {
    let bytes = CURSOR.decode(cursor).map_err(|_| StoreError::BadCursor)?;
    let id = String::from_utf8(bytes).map_err(|_| StoreError::BadCursor)?;
    if id.is_empty() || id.len() > 256 {
        return Err(StoreError::BadCursor);
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let c = encode_cursor("sub_123");
        assert_eq!(decode_cursor(&c).unwrap(), "sub_123");
        assert!(matches!(decode_cursor("!!!"), Err(StoreError::BadCursor)));
        assert!(matches!(decode_cursor(""), Err(StoreError::BadCursor)));
    }

    #[test]
    fn errors_read_as_before() {
        assert_eq!(
            StoreError::not_found(ItemKind::Subscription, "sub_1").to_string(),
            "subscription sub_1 not found"
        );
        assert_eq!(
            StoreError::already_exists(ItemKind::App, "shop").to_string(),
            "app shop already exists"
        );
        assert_eq!(
            StoreError::corrupt(ItemKind::ApiKey, "missing field `prefix`").to_string(),
            "stored key item is not valid: missing field `prefix`"
        );
    }
}
