//! Subscriptions in DynamoDB: one item per subscription, keyed by `app_id` (partition)
//! and `id` (sort); the item is the serialized [`Subscription`] itself.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_dynamodb::Client;
use herald_core::{AppId, Event, Subscription, SubscriptionId};

use crate::{
    decode_cursor, decode_items, encode_cursor, from_item, is_condition_failure, on_condition,
    to_item, Item, ItemKind, Page, StoreError, MAX_PAGE_SIZE,
};

const KIND: ItemKind = ItemKind::Subscription;

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

    /// Replaces an existing subscription; `NotFound` if it is gone.
    pub async fn update(&self, sub: &Subscription) -> Result<(), StoreError> {
        self.put(sub, "attribute_exists(id)", |kind, id| {
            StoreError::not_found(kind, id)
        })
        .await
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
