//! Subscriptions in DynamoDB: one item per subscription, keyed by `app_id` (partition)
//! and `id` (sort); the item is the serialized [`Subscription`] itself.

use std::collections::HashMap;

use std::collections::BTreeMap;

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_dynamodb::Client;
use herald_core::{
    AppId, Event, EventFilter, ObjectTypeFilter, Secret, Subscription, SubscriptionId,
};

use crate::{
    decode_cursor, decode_items, encode_cursor, from_item, is_condition_failure, on_condition,
    to_item, Item, ItemKind, Page, StoreError, MAX_PAGE_SIZE,
};

const KIND: ItemKind = ItemKind::Subscription;

/// Read-modify-write rounds a secret rotation makes before it reports `Changed`.
const ROTATION_ATTEMPTS: usize = 5;

/// What a PATCH changes; `None` leaves an attribute as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubscriptionChanges {
    /// A new URL.
    pub url: Option<String>,
    /// A new event filter.
    pub events: Option<EventFilter>,
    /// A new object-type filter.
    pub object_types: Option<ObjectTypeFilter>,
    /// A new description.
    pub description: Option<String>,
    /// New custom headers (replacing all of them).
    pub headers: Option<BTreeMap<String, String>>,
    /// Enabled (which also clears the failure count and the disabled reason) or
    /// disabled.
    pub active: Option<bool>,
}

/// An `UpdateItem` expression built attribute by attribute; every update also bumps
/// the item's `version`.
#[derive(Default)]
struct Update {
    set: Vec<String>,
    remove: Vec<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Update {
    fn set(&mut self, attribute: &str, value: AttributeValue) {
        self.names
            .insert(format!("#{attribute}"), attribute.to_owned());
        self.values.insert(format!(":{attribute}"), value);
        self.set.push(format!("#{attribute} = :{attribute}"));
    }

    fn remove(&mut self, attribute: &str) {
        self.names
            .insert(format!("#{attribute}"), attribute.to_owned());
        self.remove.push(format!("#{attribute}"));
    }

    /// The request on `table`'s item `key`, ready for its condition.
    fn send(
        mut self,
        request: UpdateItemFluentBuilder,
        table: &str,
        key: Item,
    ) -> UpdateItemFluentBuilder {
        self.names.insert("#version".into(), "version".into());
        self.values
            .insert(":one".into(), AttributeValue::N("1".into()));
        let mut expression = format!("SET {} ADD #version :one", self.set.join(", "));
        if !self.remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", self.remove.join(", ")));
        }
        request
            .table_name(table)
            .set_key(Some(key))
            .update_expression(expression)
            .set_expression_attribute_names(Some(self.names))
            .set_expression_attribute_values(Some(self.values))
    }
}

/// One attribute's value, as `serde_dynamo` writes it in whole items.
fn to_value<T: serde::Serialize>(value: &T) -> Result<AttributeValue, StoreError> {
    serde_dynamo::to_attribute_value(value).map_err(|e| StoreError::unwritable(KIND, e))
}

/// The key of one subscription; the only place the table's key is spelled out.
fn key(app: &AppId, id: &SubscriptionId) -> Item {
    HashMap::from([
        ("app_id".to_owned(), AttributeValue::S(app.to_string())),
        ("id".to_owned(), AttributeValue::S(id.to_string())),
    ])
}

/// Subscriptions in DynamoDB.
#[derive(Clone, Debug)]
pub struct SubscriptionStore {
    client: Client,
    table: String,
}

impl SubscriptionStore {
    /// A store on the subscriptions table `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Stores a new subscription; `AlreadyExists` if one with its id exists.
    pub async fn create(&self, sub: &Subscription) -> Result<(), StoreError> {
        self.put(sub, "attribute_not_exists(id)", |kind, id| {
            StoreError::already_exists(kind, id)
        })
        .await
    }

    /// Applies `changes` to the attributes they name and nothing else, in one
    /// `UpdateItem`, so a concurrent change of other attributes (the consumer disabling
    /// the endpoint, another PATCH) is never overwritten. Returns the subscription as
    /// stored afterwards; `NotFound` if it is gone.
    pub async fn apply(
        &self,
        app: &AppId,
        id: &SubscriptionId,
        changes: &SubscriptionChanges,
    ) -> Result<Subscription, StoreError> {
        let mut update = Update::default();
        if let Some(url) = &changes.url {
            update.set("url", to_value(url)?);
        }
        if let Some(events) = &changes.events {
            update.set("events", to_value(events)?);
        }
        if let Some(types) = &changes.object_types {
            update.set("object_types", to_value(types)?);
        }
        if let Some(description) = &changes.description {
            update.set("description", to_value(description)?);
        }
        if let Some(headers) = &changes.headers {
            update.set("headers", to_value(headers)?);
        }
        match changes.active {
            Some(true) => {
                update.set("active", AttributeValue::Bool(true));
                update.set("consecutive_failures", AttributeValue::N("0".into()));
                update.remove("disabled_reason");
            }
            Some(false) => update.set("active", AttributeValue::Bool(false)),
            None => {}
        }
        update.set("updated_at", now());
        let out = update
            .send(self.client.update_item(), &self.table, key(app, id))
            .condition_expression("attribute_exists(id)")
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| on_condition(e, "UpdateItem", || StoreError::not_found(KIND, id)))?;
        from_item(KIND, out.attributes.unwrap_or_default())
    }

    /// Rotates the subscription's secret (see [`Subscription::rotate_secret`]) and
    /// returns the new secret with the subscription as stored. A read-modify-write
    /// guarded by the item's version: when another change lands in between, it starts
    /// again from the new item, so two concurrent rotations both take effect (the
    /// later one keeps the earlier one's secret as the previous one). `Changed` if it
    /// kept losing that race.
    pub async fn rotate_secret(
        &self,
        app: &AppId,
        id: &SubscriptionId,
        now: chrono::DateTime<chrono::Utc>,
        window: chrono::Duration,
    ) -> Result<(Secret, Subscription), StoreError> {
        for _ in 0..ROTATION_ATTEMPTS {
            let mut sub = self
                .get(app, id)
                .await?
                .ok_or_else(|| StoreError::not_found(KIND, id))?;
            let seen = sub.version;
            let secret = sub.rotate_secret(now, window);
            if let Some(stored) = self.write_secrets(&sub, seen).await? {
                return Ok((secret, stored));
            }
        }
        Err(StoreError::Changed {
            kind: KIND,
            id: id.to_string(),
        })
    }

    /// Writes `sub`'s secrets (and their expiry) if the stored item is still at
    /// version `seen`: the guarded write of a read-modify-write. Returns the item as
    /// stored, or `None` when another change moved the version on (nothing written).
    pub async fn write_secrets(
        &self,
        sub: &Subscription,
        seen: u64,
    ) -> Result<Option<Subscription>, StoreError> {
        let mut update = Update::default();
        update.set("secrets", to_value(&sub.secrets)?);
        update.set(
            "previous_secrets_expire_at",
            to_value(&sub.previous_secrets_expire_at)?,
        );
        update.set("updated_at", to_value(&sub.updated_at)?);
        let result = update
            .send(
                self.client.update_item(),
                &self.table,
                key(&sub.app_id, &sub.id),
            )
            .condition_expression(
                "attribute_exists(id) AND (attribute_not_exists(#version) OR #version = :seen)",
            )
            .expression_attribute_values(":seen", AttributeValue::N(seen.to_string()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Some(from_item(KIND, out.attributes.unwrap_or_default())?)),
            Err(e) if is_condition_failure(&e) => Ok(None),
            Err(e) => Err(StoreError::dynamo("UpdateItem", e)),
        }
    }

    /// `PutItem` under a condition; `on_conflict` names the error when it fails.
    async fn put(
        &self,
        sub: &Subscription,
        condition: &str,
        on_conflict: fn(ItemKind, &SubscriptionId) -> StoreError,
    ) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(KIND, sub)?))
            .condition_expression(condition)
            .send()
            .await
            .map_err(|e| on_condition(e, "PutItem", || on_conflict(KIND, &sub.id)))?;
        Ok(())
    }

    /// One subscription of one app, or `None`. Another app's id is simply not found.
    pub async fn get(
        &self,
        app: &AppId,
        id: &SubscriptionId,
    ) -> Result<Option<Subscription>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(app, id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        out.item.map(|item| from_item(KIND, item)).transpose()
    }

    /// Deletes a subscription; `NotFound` if the app has no such subscription.
    pub async fn delete(&self, app: &AppId, id: &SubscriptionId) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(app, id)))
            .condition_expression("attribute_exists(id)")
            .send()
            .await
            .map_err(|e| on_condition(e, "DeleteItem", || StoreError::not_found(KIND, id)))?;
        Ok(())
    }

    /// A page of an app's subscriptions in id order (ids are time-ordered, so oldest
    /// first). `limit` is clamped to 1..=250; pass the previous page's cursor to go on.
    pub async fn list(
        &self,
        app: &AppId,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<Subscription>, StoreError> {
        let start = cursor
            .map(|c| Ok::<_, StoreError>(key(app, &SubscriptionId::new(decode_cursor(c)?))))
            .transpose()?;
        let out = self
            .query_app(app)
            .limit(limit.clamp(1, MAX_PAGE_SIZE))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("Query", e))?;
        let items = decode_items(KIND, out.items)?;
        let next_cursor = out.last_evaluated_key.and_then(|key| match key.get("id") {
            Some(AttributeValue::S(id)) => Some(encode_cursor(id)),
            _ => None,
        });
        Ok(Page { items, next_cursor })
    }

    /// Every subscription of an app: one `Query`, followed through its pages.
    pub async fn for_app(&self, app: &AppId) -> Result<Vec<Subscription>, StoreError> {
        self.query_app(app)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| StoreError::dynamo("Query", e))?
            .into_iter()
            .map(|item| from_item(KIND, item))
            .collect()
    }

    /// How many subscriptions an app has: a `Query` that counts, reading no attributes
    /// back (each page still costs the read units of the items it passes over).
    pub async fn count(&self, app: &AppId) -> Result<usize, StoreError> {
        let pages: Vec<_> = self
            .query_app(app)
            .select(aws_sdk_dynamodb::types::Select::Count)
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| StoreError::dynamo("Query", e))?;
        Ok(pages.iter().map(|page| page.count().max(0) as usize).sum())
    }

    /// The `Query` for an app's subscriptions, in id order.
    fn query_app(&self, app: &AppId) -> QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .key_condition_expression("app_id = :app")
            .expression_attribute_values(":app", AttributeValue::S(app.to_string()))
    }

    /// Counts a delivery that failed for good. Once `disable_after` such deliveries
    /// come in a row, the subscription is disabled with a reason. Returns the new
    /// count and whether this call disabled it.
    pub async fn record_failed_delivery(
        &self,
        app: &AppId,
        id: &SubscriptionId,
        disable_after: u32,
    ) -> Result<(u32, bool), StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(app, id)))
            .update_expression("ADD consecutive_failures :one")
            .condition_expression("attribute_exists(id)")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| on_condition(e, "UpdateItem", || StoreError::not_found(KIND, id)))?;
        let count = out
            .attributes
            .as_ref()
            .and_then(|a| a.get("consecutive_failures"))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0);
        if disable_after > 0 && count >= disable_after {
            let reason = format!("disabled automatically after {count} failed deliveries in a row");
            self.disable(app, id, &reason).await?;
            return Ok((count, true));
        }
        Ok((count, false))
    }

    /// Resets the failure count after a success. When the count is already zero (or
    /// the subscription is gone) the condition fails and nothing is written.
    pub async fn reset_failures(&self, app: &AppId, id: &SubscriptionId) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(app, id)))
            .update_expression("SET consecutive_failures = :zero")
            .condition_expression("attribute_exists(id) AND consecutive_failures > :zero")
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(StoreError::dynamo("UpdateItem", e)),
        }
    }

    /// Disables a subscription, recording why; `NotFound` if it is gone.
    pub async fn disable(
        &self,
        app: &AppId,
        id: &SubscriptionId,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(app, id)))
            .update_expression("SET active = :false, disabled_reason = :reason, updated_at = :now")
            .condition_expression("attribute_exists(id)")
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":reason", AttributeValue::S(reason.to_owned()))
            .expression_attribute_values(":now", now())
            .send()
            .await
            .map_err(|e| on_condition(e, "UpdateItem", || StoreError::not_found(KIND, id)))?;
        Ok(())
    }

    /// Re-enables a subscription and clears its failure count and disabled reason;
    /// `NotFound` if it is gone.
    pub async fn enable(&self, app: &AppId, id: &SubscriptionId) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(app, id)))
            .update_expression("SET active = :true, consecutive_failures = :zero, updated_at = :now REMOVE disabled_reason")
            .condition_expression("attribute_exists(id)")
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":now", now())
            .send()
            .await
            .map_err(|e| on_condition(e, "UpdateItem", || StoreError::not_found(KIND, id)))?;
        Ok(())
    }

    /// The subscriptions that want `event` (one query on its app).
    pub async fn matching(&self, event: &Event) -> Result<Vec<Subscription>, StoreError> {
        let mut subs = self.for_app(&event.app_id).await?;
        subs.retain(|s| s.matches(event));
        Ok(subs)
    }
}

/// The current time as the `updated_at` of a stored subscription: the same encoding
/// `serde_dynamo` gives the `DateTime<Utc>` fields of a whole item.
fn now() -> AttributeValue {
    serde_dynamo::to_attribute_value(chrono::Utc::now())
        .unwrap_or_else(|_| AttributeValue::S(chrono::Utc::now().to_rfc3339()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_convert_to_items_and_back() {
        let sub = Subscription::new(
            AppId::parse("app").unwrap(),
            "https://example.com",
            herald_core::EventFilter::parse(&["update"]).unwrap(),
            herald_core::ObjectTypeFilter::parse(&["user"]).unwrap(),
        );
        let item = to_item(KIND, &sub).unwrap();
        for (name, value) in key(&sub.app_id, &sub.id) {
            assert_eq!(item[&name], value, "the key attribute {name} is the item's");
        }
        let back: Subscription = from_item(KIND, item).unwrap();
        assert_eq!(back, sub);
    }

    #[test]
    fn updated_at_is_encoded_like_a_whole_item_encodes_it() {
        let AttributeValue::S(now) = now() else {
            panic!("a timestamp is a string attribute");
        };
        assert!(now.ends_with('Z'), "{now}");
        assert!(now.parse::<chrono::DateTime<chrono::Utc>>().is_ok());
    }
}
