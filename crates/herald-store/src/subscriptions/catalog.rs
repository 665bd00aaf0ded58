//! An app's event-type catalog, in the subscriptions table beside its webhooks: one
//! item per type (`A#{app}` / `T#{name}`), and a count of them (`A#{app}` / `TC`) kept
//! in the same transaction as each create and delete, which bounds the catalog and
//! tells whether it is empty with one small read.

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, Put, ReturnValue, TransactWriteItem, Update,
};
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use herald_core::{AppId, EventType};
use serde::{Deserialize, Serialize};

use super::items::{number, read_number, TYPE_PREFIX};
use super::SubscriptionStore;
use crate::{
    decode_cursor, encode_cursor, from_item, on_condition, to_item, ItemKind, Page, PkSk,
    StoreError, MAX_PAGE_SIZE,
};

const KIND: ItemKind = ItemKind::EventType;
/// The attribute of the count item holding the number of entries.
const COUNT: &str = "n";
/// Catalog entries read at once when checking a webhook's types.
const READS_IN_FLIGHT: usize = 8;

/// An entry of an app's event-type catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventTypeEntry {
    /// The app whose catalog it is in.
    pub app_id: AppId,
    /// The event type.
    pub name: EventType,
    /// What the type means.
    #[serde(default)]
    pub description: String,
    /// The JSON Schema of the `data` of events of this type, as JSON text; `None` when
    /// any data goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// When it was added.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// What an update of a catalog entry changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventTypeChanges {
    /// A new description.
    pub description: Option<String>,
    /// A new schema (`Some(None)`: none).
    pub schema: Option<Option<String>>,
}

impl SubscriptionStore {
    /// Adds `entry` to its app's catalog; `AlreadyExists` if the type is in it,
    /// `TooMany` if the catalog holds `max` entries already.
    pub async fn create_event_type(
        &self,
        entry: &EventTypeEntry,
        max: u64,
    ) -> Result<(), StoreError> {
        let mut item = to_item(KIND, entry)?;
        item.extend(PkSk::event_type(&entry.app_id, &entry.name).into_item());
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| StoreError::unwritable(KIND, e))?;
        let count = self.count_op(&entry.app_id, 1, Some(max))?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(count)
            .send()
            .await;
        match failed_conditions(result)?.as_slice() {
            [] => Ok(()),
            [0, ..] => Err(StoreError::already_exists(KIND, &entry.name)),
            _ => Err(StoreError::TooMany {
                kind: KIND,
                max,
                hint: "delete one first",
            }),
        }
    }

    /// One entry of `app`'s catalog, or `None`; `consistent` for a strongly consistent
    /// read.
    pub async fn get_event_type(
        &self,
        app: &AppId,
        name: &EventType,
        consistent: bool,
    ) -> Result<Option<EventTypeEntry>, StoreError> {
        self.get_item(PkSk::event_type(app, name), consistent)
            .await?
            .map(|item| from_item(KIND, item))
            .transpose()
    }

    /// A page of `app`'s catalog in name order; `limit` is clamped to 1..=250.
    pub async fn list_event_types(
        &self,
        app: &AppId,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<EventTypeEntry>, StoreError> {
        let start = cursor
            .map(|c| {
                let name =
                    EventType::parse(&decode_cursor(c)?).map_err(|_| StoreError::BadCursor)?;
                Ok::<_, StoreError>(PkSk::event_type(app, &name).into_item())
            })
            .transpose()?;
        let out = crate::prefix_query(
            &self.client,
            &self.table,
            &PkSk::app_partition(app),
            TYPE_PREFIX,
        )
        .limit(limit.clamp(1, MAX_PAGE_SIZE))
        .set_exclusive_start_key(start)
        .send()
        .await
        .map_err(|e| StoreError::dynamo("Query", e))?;
        let items = crate::decode_items::<EventTypeEntry>(KIND, out.items)?;
        let next_cursor = out.last_evaluated_key.and_then(|key| match key.get("sk") {
            Some(AttributeValue::S(sk)) => sk.strip_prefix(TYPE_PREFIX).map(encode_cursor),
            _ => None,
        });
        Ok(Page { items, next_cursor })
    }

    /// Changes the fields `changes` names of an entry; `NotFound` if `app`'s catalog
    /// has no such type. Returns the entry as stored.
    pub async fn update_event_type(
        &self,
        app: &AppId,
        name: &EventType,
        changes: &EventTypeChanges,
    ) -> Result<EventTypeEntry, StoreError> {
        let mut set = vec!["updated_at = :now"];
        let mut remove = Vec::new();
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(PkSk::event_type(app, name).into_item()))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(
                ":now",
                AttributeValue::S(Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
            );
        if let Some(description) = &changes.description {
            set.push("description = :d");
            request =
                request.expression_attribute_values(":d", AttributeValue::S(description.clone()));
        }
        match &changes.schema {
            Some(Some(schema)) => {
                set.push("#schema = :s");
                request = request
                    .expression_attribute_names("#schema", "schema")
                    .expression_attribute_values(":s", AttributeValue::S(schema.clone()));
            }
            Some(None) => {
                remove.push("#schema");
                request = request.expression_attribute_names("#schema", "schema");
            }
            None => {}
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        let out = request
            .update_expression(expression)
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| on_condition(e, "UpdateItem", || StoreError::not_found(KIND, name)))?;
        from_item(KIND, out.attributes.unwrap_or_default())
    }

    /// Removes a type from `app`'s catalog; `NotFound` if it is not in it. Webhooks
    /// listing it keep it.
    pub async fn delete_event_type(&self, app: &AppId, name: &EventType) -> Result<(), StoreError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(PkSk::event_type(app, name).into_item()))
            .condition_expression("attribute_exists(pk)")
            .build()
            .map_err(|e| StoreError::unwritable(KIND, e))?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().delete(delete).build())
            .transact_items(self.count_op(app, -1, None)?)
            .send()
            .await;
        match failed_conditions(result)?.as_slice() {
            [] => Ok(()),
            _ => Err(StoreError::not_found(KIND, name)),
        }
    }

    /// Removes every type of `app`'s catalog (when the app is deleted): a page at a
    /// time, each entry as [`SubscriptionStore::delete_event_type`] does.
    pub async fn delete_event_types(&self, app: &AppId) -> Result<(), StoreError> {
        loop {
            let page = self.list_event_types(app, MAX_PAGE_SIZE, None).await?;
            if page.items.is_empty() {
                return Ok(());
            }
            for entry in page.items {
                match self.delete_event_type(app, &entry.name).await {
                    Ok(()) | Err(StoreError::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }

    /// How many types `app`'s catalog holds: one strongly consistent `GetItem` of its
    /// count item (1 read unit), so a type just added or removed counts at once.
    pub async fn count_event_types(&self, app: &AppId) -> Result<u64, StoreError> {
        let item = self.get_item(PkSk::event_type_count(app), true).await?;
        Ok(item
            .as_ref()
            .and_then(|item| read_number(item, COUNT))
            .unwrap_or(0))
    }

    /// The types of `types` that are not in `app`'s catalog: none when the catalog is
    /// empty (one read of its count), else one `GetItem` per type, a few at a time;
    /// strongly consistent reads, so a type just added is found.
    /// Returns whether the catalog has entries, and the types missing from it.
    pub async fn missing_event_types(
        &self,
        app: &AppId,
        types: &[&EventType],
    ) -> Result<(bool, Vec<EventType>), StoreError> {
        if types.is_empty() || self.count_event_types(app).await? == 0 {
            return Ok((false, Vec::new()));
        }
        let owned: Vec<EventType> = types.iter().map(|t| (*t).clone()).collect();
        let found: Vec<(EventType, bool)> = futures::stream::iter(owned)
            .map(|t: EventType| async move {
                let entry = self.get_event_type(app, &t, true).await?;
                Ok::<_, StoreError>((t, entry.is_some()))
            })
            .buffered(READS_IN_FLIGHT)
            .try_collect()
            .await?;
        Ok((
            true,
            found
                .into_iter()
                .filter(|(_, known)| !known)
                .map(|(t, _)| t)
                .collect(),
        ))
    }

    /// `ADD n :delta` on the app's count item; with `max`, on condition that the
    /// count is under it.
    fn count_op(
        &self,
        app: &AppId,
        delta: i64,
        max: Option<u64>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(PkSk::event_type_count(app).into_item()))
            .update_expression("ADD #n :delta")
            .expression_attribute_names("#n", COUNT)
            .expression_attribute_values(":delta", AttributeValue::N(delta.to_string()));
        if let Some(max) = max {
            update = update
                .condition_expression("attribute_not_exists(#n) OR #n < :max")
                .expression_attribute_values(":max", number(max));
        }
        let update = update
            .build()
            .map_err(|e| StoreError::unwritable(KIND, e))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}

/// The indexes of the transaction's items whose condition failed (empty: it was
/// written); other failures are errors.
fn failed_conditions<T, R: std::fmt::Debug + Send + Sync + 'static>(
    result: Result<T, aws_sdk_dynamodb::error::SdkError<TransactWriteItemsError, R>>,
) -> Result<Vec<usize>, StoreError> {
    match result {
        Ok(_) => Ok(Vec::new()),
        Err(e) => {
            if let Some(TransactWriteItemsError::TransactionCanceledException(c)) =
                e.as_service_error()
            {
                let failed: Vec<usize> = c
                    .cancellation_reasons()
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.code() == Some("ConditionalCheckFailed"))
                    .map(|(i, _)| i)
                    .collect();
                if !failed.is_empty() {
                    return Ok(failed);
                }
            }
            Err(StoreError::dynamo("TransactWriteItems", e))
        }
    }
}
