//! Herald's DynamoDB adapter.
//!
//! Subscriptions live in one table keyed by `app_id` (partition) and `id` (sort), so
//! every tenant's webhooks sit in one partition: listing is a paginated `Query`, and
//! finding the subscriptions that match an event is one `Query` on the event's app
//! followed by in-memory filtering (callers cache the result). Nothing scans the table.
//!
//! The delivery history ([`AttemptStore`]) has one item per attempt, keyed by
//! subscription (`pk = app#subscription`, `sk = time#event#attempt`, newest last) with a
//! `by_event` index (`event_pk = app#event`), so both listings are single `Query`s.

mod apps;
mod attempts;
mod idempotency;
pub use apps::{ApiKey, App, AppStore, NewKey, KEY_PREFIX};
pub use attempts::AttemptStore;
pub use idempotency::{Claim, IdempotencyStore, IDEMPOTENCY_WINDOW};

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as CURSOR;
use base64::Engine as _;
use herald_core::{AppId, Event, Subscription, SubscriptionId};

/// Largest page [`SubscriptionStore::list`] returns.
pub const MAX_PAGE_SIZE: i32 = 250;

/// Store failures.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("subscription {0} not found")]
    NotFound(SubscriptionId),
    #[error("subscription {0} already exists")]
    AlreadyExists(SubscriptionId),
    #[error("{0}")]
    Conflict(String),
    #[error("{0} not found")]
    Missing(String),
    #[error("invalid pagination cursor")]
    BadCursor,
    #[error("stored item is not a valid subscription: {0}")]
    Corrupt(String),
    #[error("DynamoDB {operation} failed: {message}")]
    Dynamo {
        operation: &'static str,
        message: String,
    },
}

impl StoreError {
    fn dynamo<E: std::error::Error + 'static>(operation: &'static str, e: E) -> Self {
        Self::Dynamo {
            operation,
            message: DisplayErrorContext(e).to_string(),
        }
    }
}

/// One page of a listing; `next_cursor` is present when more items follow.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Subscriptions in DynamoDB.
#[derive(Clone, Debug)]
pub struct SubscriptionStore {
    client: Client,
    table: String,
}

impl SubscriptionStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Stores a new subscription; fails if one with its id exists.
    pub async fn create(&self, sub: &Subscription) -> Result<(), StoreError> {
        self.put(sub, "attribute_not_exists(id)", StoreError::AlreadyExists)
            .await
    }

    /// Replaces an existing subscription; fails with `NotFound` if it is gone.
    pub async fn update(&self, sub: &Subscription) -> Result<(), StoreError> {
        self.put(sub, "attribute_exists(id)", StoreError::NotFound)
            .await
    }

    /// `PutItem` under a condition; `on_conflict` names the error when it fails.
    async fn put(
        &self,
        sub: &Subscription,
        condition: &str,
        on_conflict: fn(SubscriptionId) -> StoreError,
    ) -> Result<(), StoreError> {
        let item = serde_dynamo::to_item(sub).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .send()
            .await
            .map_err(|e| on_condition(e, "PutItem", || on_conflict(sub.id.clone())))?;
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
            .key("app_id", AttributeValue::S(app.to_string()))
            .key("id", AttributeValue::S(id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        out.item
            .map(|item| {
                serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .transpose()
    }

    /// Deletes a subscription; `NotFound` if the app has no such subscription.
    pub async fn delete(&self, app: &AppId, id: &SubscriptionId) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("app_id", AttributeValue::S(app.to_string()))
            .key("id", AttributeValue::S(id.to_string()))
            .condition_expression("attribute_exists(id)")
            .send()
            .await
            .map_err(|e| on_condition(e, "DeleteItem", || StoreError::NotFound(id.clone())))?;
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
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("app_id = :app")
            .expression_attribute_values(":app", AttributeValue::S(app.to_string()))
            .limit(limit.clamp(1, MAX_PAGE_SIZE));
        if let Some(cursor) = cursor {
            let id = decode_cursor(cursor)?;
            query = query
                .exclusive_start_key("app_id", AttributeValue::S(app.to_string()))
                .exclusive_start_key("id", AttributeValue::S(id));
        }
        let out = query
            .send()
            .await
            .map_err(|e| StoreError::dynamo("Query", e))?;
        let items = decode_items::<Subscription>(out.items)?;
        let next_cursor = out.last_evaluated_key.and_then(|key| match key.get("id") {
            Some(AttributeValue::S(id)) => Some(CURSOR.encode(id)),
            _ => None,
        });
        Ok(Page { items, next_cursor })
    }

    /// Every subscription of an app: one `Query`, followed through its pages.
    pub async fn for_app(&self, app: &AppId) -> Result<Vec<Subscription>, StoreError> {
        let mut all = Vec::new();
        let mut start: Option<std::collections::HashMap<String, AttributeValue>> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("app_id = :app")
                .expression_attribute_values(":app", AttributeValue::S(app.to_string()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| StoreError::dynamo("Query", e))?;
            all.extend(decode_items::<Subscription>(out.items)?);
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(all),
            }
        }
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
            .key("app_id", AttributeValue::S(app.to_string()))
            .key("id", AttributeValue::S(id.to_string()))
            .update_expression("ADD consecutive_failures :one")
            .condition_expression("attribute_exists(id)")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| on_condition(e, "UpdateItem", || StoreError::NotFound(id.clone())))?;
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

    /// Resets the failure count after a success (a no-op write-free condition when it
    /// is already zero).
    pub async fn reset_failures(&self, app: &AppId, id: &SubscriptionId) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("app_id", AttributeValue::S(app.to_string()))
            .key("id", AttributeValue::S(id.to_string()))
            .update_expression("SET consecutive_failures = :zero")
            .condition_expression("attribute_exists(id) AND consecutive_failures > :zero")
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(StoreError::dynamo("UpdateItem", e)),
        }
    }

    /// Disables a subscription, recording why.
    pub async fn disable(
        &self,
        app: &AppId,
        id: &SubscriptionId,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("app_id", AttributeValue::S(app.to_string()))
            .key("id", AttributeValue::S(id.to_string()))
            .update_expression("SET active = :false, disabled_reason = :reason, updated_at = :now")
            .condition_expression("attribute_exists(id)")
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":reason", AttributeValue::S(reason.to_owned()))
            .expression_attribute_values(":now", AttributeValue::S(now_rfc3339()))
            .send()
            .await
            .map_err(|e| on_condition(e, "UpdateItem", || StoreError::NotFound(id.clone())))?;
        Ok(())
    }

    /// Re-enables a subscription and clears its failure count and disabled reason.
    pub async fn enable(&self, app: &AppId, id: &SubscriptionId) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("app_id", AttributeValue::S(app.to_string()))
            .key("id", AttributeValue::S(id.to_string()))
            .update_expression("SET active = :true, consecutive_failures = :zero, updated_at = :now REMOVE disabled_reason")
            .condition_expression("attribute_exists(id)")
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":now", AttributeValue::S(now_rfc3339()))
            .send()
            .await
            .map_err(|e| on_condition(e, "UpdateItem", || StoreError::NotFound(id.clone())))?;
        Ok(())
    }

    /// The subscriptions that want `event` (one query on its app).
    pub async fn matching(&self, event: &Event) -> Result<Vec<Subscription>, StoreError> {
        let mut subs = self.for_app(&event.app_id).await?;
        subs.retain(|s| s.matches(event));
        Ok(subs)
    }
}

fn now_rfc3339() -> String {
    // The same format serde gives `DateTime<Utc>` in stored subscriptions.
    serde_json::to_value(chrono::Utc::now())
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Maps a failed conditional write to `conflict`, anything else to a DynamoDB error.
/// Decodes the items a `Query` returned.
pub(crate) fn decode_items<T: serde::de::DeserializeOwned>(
    items: Option<Vec<std::collections::HashMap<String, AttributeValue>>>,
) -> Result<Vec<T>, StoreError> {
    items
        .unwrap_or_default()
        .into_iter()
        .map(|item| serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt(e.to_string())))
        .collect()
}

pub(crate) fn on_condition<E, R>(
    e: aws_sdk_dynamodb::error::SdkError<E, R>,
    operation: &'static str,
    conflict: impl FnOnce() -> StoreError,
) -> StoreError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    if e.as_service_error().and_then(|se| se.code()) == Some("ConditionalCheckFailedException") {
        conflict()
    } else {
        StoreError::dynamo(operation, e)
    }
}

pub(crate) fn decode_cursor(cursor: &str) -> Result<String, StoreError> {
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
        let c = CURSOR.encode("sub_123");
        assert_eq!(decode_cursor(&c).unwrap(), "sub_123");
        assert!(matches!(decode_cursor("!!!"), Err(StoreError::BadCursor)));
        assert!(matches!(decode_cursor(""), Err(StoreError::BadCursor)));
    }

    #[test]
    fn subscriptions_convert_to_items_and_back() {
        let sub = Subscription::new(
            AppId::parse("app").unwrap(),
            "https://example.com",
            herald_core::EventFilter::parse(&["update"]).unwrap(),
            herald_core::ObjectTypeFilter::parse(&["user"]).unwrap(),
        );
        let item: std::collections::HashMap<String, AttributeValue> =
            serde_dynamo::to_item(&sub).unwrap();
        assert_eq!(item["app_id"], AttributeValue::S("app".into()));
        assert_eq!(item["id"], AttributeValue::S(sub.id.to_string()));
        let back: Subscription = serde_dynamo::from_item(item).unwrap();
        assert_eq!(back, sub);
    }
}
