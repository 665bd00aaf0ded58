//! Inbound sources ([`SourceStore`]): their settings in the subscriptions table, the
//! log of the requests they received in the history table, and the sender delivery
//! ids seen in the last 24 hours in the idempotency table. No new table: each item
//! kind has a key prefix no other kind of its table uses.
//!
//! | item | table | `pk` | `sk` | attributes |
//! | --- | --- | --- | --- | --- |
//! | source (listing) | subscriptions | `A#{app}` | `I#{id}` | the [`Source`], `auth` sealed |
//! | source (ingest lookup) | subscriptions | `I#{id}` | `I` | the same |
//! | received request | history | `I#{app}#{id}` | `{time}#{random}` | a [`SourceRequest`], `expires_at` |
//! | delivery id seen | idempotency | `#in#{id}#{delivery id}` | — | `event_id`, `expires_at`, `lease_until`, `queued` |
//!
//! The credentials (`auth`) are sealed with `herald-seal` as one JSON string bound
//! to `{app}/{id}/auth`, like webhook secrets: a value copied to another source does
//! not open. App ids cannot contain `#` and idempotency keys are `{app}#…`, so none of
//! these keys meets another kind's.

mod requests;

pub use requests::{DeliveryClaim, SourceRequest, MAX_REQUEST_PAGE, SEEN_WINDOW};

use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use herald_core::inbound::{EventTypeRule, Source, SourceAuth, SourceId};
use herald_core::{AppId, ObjectType};
use herald_seal::Sealer;
use serde::{Deserialize, Serialize};

use crate::{
    decode_cursor, encode_cursor, from_item, to_item, transaction_lost_race, Item, ItemKind, Page,
    PkSk, StoreError, MAX_PAGE_SIZE,
};

const KIND: ItemKind = ItemKind::Source;
/// Sort key prefix of sources in their app's partition.
const LISTING_PREFIX: &str = "I#";

impl PkSk {
    /// A source in its app's partition (for listing).
    fn source(app: &AppId, id: &SourceId) -> Self {
        Self {
            pk: format!("A#{app}"),
            sk: format!("{LISTING_PREFIX}{id}"),
        }
    }

    /// A source under its id alone (for the ingest, which knows nothing else).
    fn source_lookup(id: &SourceId) -> Self {
        Self {
            pk: format!("I#{id}"),
            sk: "I".to_owned(),
        }
    }
}

/// A source as stored: its `auth` sealed.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SourceItem {
    id: SourceId,
    app_id: AppId,
    name: String,
    auth: String,
    event_type: EventTypeRule,
    object_type: ObjectType,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

fn auth_context(app: &AppId, id: &SourceId) -> String {
    format!("{app}/{id}/auth")
}

/// Sources, their request logs and the delivery ids they saw, in DynamoDB.
#[derive(Clone, Debug)]
pub struct SourceStore {
    client: Client,
    sources_table: String,
    history_table: String,
    seen_table: String,
    retention: std::time::Duration,
    sealer: Sealer,
}

impl SourceStore {
    /// A store keeping sources in `sources_table` (the subscriptions table), request
    /// logs for `retention` in `history_table`, and seen delivery ids in `seen_table`
    /// (the idempotency table), credentials sealed with `sealer`.
    pub fn new(
        client: Client,
        sources_table: impl Into<String>,
        history_table: impl Into<String>,
        seen_table: impl Into<String>,
        retention: std::time::Duration,
        sealer: Sealer,
    ) -> Self {
        Self {
            client,
            sources_table: sources_table.into(),
            history_table: history_table.into(),
            seen_table: seen_table.into(),
            retention,
            sealer,
        }
    }

    async fn encode(&self, source: &Source) -> Result<SourceItem, StoreError> {
        let key = self
            .sealer
            .sealing_key()
            .await
            .map_err(|e| StoreError::Keys {
                message: e.to_string(),
            })?;
        let auth =
            serde_json::to_string(&source.auth).map_err(|e| StoreError::unwritable(KIND, e))?;
        Ok(SourceItem {
            id: source.id.clone(),
            app_id: source.app_id.clone(),
            name: source.name.clone(),
            auth: key.seal(&auth, &auth_context(&source.app_id, &source.id)),
            event_type: source.event_type.clone(),
            object_type: source.object_type.clone(),
            created_at: source.created_at,
            updated_at: source.updated_at,
        })
    }

    async fn decode(&self, item: Item) -> Result<Source, StoreError> {
        let stored: SourceItem = from_item(KIND, item)?;
        let context = auth_context(&stored.app_id, &stored.id);
        let auth = self
            .sealer
            .open(&stored.auth, &context)
            .await
            .map_err(|e| {
                if e.is_transient() {
                    StoreError::Keys {
                        message: e.to_string(),
                    }
                } else {
                    StoreError::corrupt(KIND, format!("auth: {e}"))
                }
            })?;
        let auth: SourceAuth =
            serde_json::from_str(&auth).map_err(|e| StoreError::corrupt(KIND, e))?;
        Ok(Source {
            id: stored.id,
            app_id: stored.app_id,
            name: stored.name,
            auth,
            event_type: stored.event_type,
            object_type: stored.object_type,
            created_at: stored.created_at,
            updated_at: stored.updated_at,
        })
    }

    /// The two puts of a source; `guard` conditions the listing item (create: absent;
    /// update: unchanged since `updated_at` was read).
    async fn puts(
        &self,
        source: &Source,
        before: Option<&Source>,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let stored = to_item(KIND, &self.encode(source).await?)?;
        let mut items = Vec::new();
        for (key, listing) in [
            (PkSk::source(&source.app_id, &source.id), true),
            (PkSk::source_lookup(&source.id), false),
        ] {
            let mut item = stored.clone();
            item.extend(key.into_item());
            let mut put = Put::builder()
                .table_name(&self.sources_table)
                .set_item(Some(item));
            put = match before {
                None => put.condition_expression("attribute_not_exists(pk)"),
                Some(b) if listing => put
                    .condition_expression("updated_at = :u")
                    .expression_attribute_values(":u", AttributeValue::S(stamp(b.updated_at))),
                Some(_) => put,
            };
            let put = put.build().map_err(|e| StoreError::unwritable(KIND, e))?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        Ok(items)
    }

    async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
        lost: StoreError,
    ) -> Result<(), StoreError> {
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if transaction_lost_race(&e) => Err(lost),
            Err(e) => Err(StoreError::dynamo("TransactWriteItems", e)),
        }
    }

    /// Stores a new source; `AlreadyExists` if its id is taken.
    pub async fn create(&self, source: &Source) -> Result<(), StoreError> {
        let items = self.puts(source, None).await?;
        self.transact(items, StoreError::already_exists(KIND, &source.id))
            .await
    }

    /// Replaces `before` with `after` (same app and id); `Changed` if another write
    /// landed since `before` was read.
    pub async fn update(&self, before: &Source, after: &Source) -> Result<(), StoreError> {
        let items = self.puts(after, Some(before)).await?;
        self.transact(
            items,
            StoreError::Changed {
                kind: KIND,
                id: after.id.to_string(),
            },
        )
        .await
    }

    /// Deletes a source; `NotFound` if the app has none with this id. Its request log
    /// expires with the history.
    pub async fn delete(&self, app: &AppId, id: &SourceId) -> Result<(), StoreError> {
        let mut items = Vec::new();
        for (key, guard) in [
            (PkSk::source(app, id), true),
            (PkSk::source_lookup(id), false),
        ] {
            let mut d = Delete::builder()
                .table_name(&self.sources_table)
                .set_key(Some(key.into_item()));
            if guard {
                d = d.condition_expression("attribute_exists(pk)");
            }
            let d = d.build().map_err(|e| StoreError::unwritable(KIND, e))?;
            items.push(TransactWriteItem::builder().delete(d).build());
        }
        self.transact(items, StoreError::not_found(KIND, id)).await
    }

    async fn get_item(&self, key: PkSk) -> Result<Option<Source>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.sources_table)
            .set_key(Some(key.into_item()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        match out.item {
            Some(item) => Ok(Some(self.decode(item).await?)),
            None => Ok(None),
        }
    }

    /// One source of one app, or `None`: another app's source is not found.
    pub async fn get(&self, app: &AppId, id: &SourceId) -> Result<Option<Source>, StoreError> {
        self.get_item(PkSk::source(app, id)).await
    }

    /// The source with this id, whichever app it belongs to (for the ingest).
    pub async fn lookup(&self, id: &SourceId) -> Result<Option<Source>, StoreError> {
        self.get_item(PkSk::source_lookup(id)).await
    }

    /// A page of an app's sources in id order; `limit` is clamped to 1..=250.
    pub async fn list(
        &self,
        app: &AppId,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<Source>, StoreError> {
        let start = cursor
            .map(|c| {
                let id = SourceId::parse(&decode_cursor(c)?).ok_or(StoreError::BadCursor)?;
                Ok::<_, StoreError>(PkSk::source(app, &id).into_item())
            })
            .transpose()?;
        let out = crate::prefix_query(
            &self.client,
            &self.sources_table,
            &format!("A#{app}"),
            LISTING_PREFIX,
        )
        .limit(limit.clamp(1, MAX_PAGE_SIZE))
        .set_exclusive_start_key(start)
        .send()
        .await
        .map_err(|e| StoreError::dynamo("Query", e))?;
        let mut items = Vec::new();
        for item in out.items.unwrap_or_default() {
            items.push(self.decode(item).await?);
        }
        let next_cursor = out.last_evaluated_key.and_then(|key| match key.get("sk") {
            Some(AttributeValue::S(sk)) => sk.strip_prefix(LISTING_PREFIX).map(encode_cursor),
            _ => None,
        });
        Ok(Page { items, next_cursor })
    }
}

/// A time as stored by `serde_dynamo` (chrono's RFC 3339 form), for conditions.
fn stamp(at: DateTime<Utc>) -> String {
    match serde_json::to_value(at) {
        Ok(serde_json::Value::String(s)) => s,
        _ => at.to_rfc3339(),
    }
}
