//! Writes to the subscriptions table.
//!
//! A *routing change* (create, PATCH, rotation, enable, disable, auto-disable, delete)
//! is one `TransactWriteItems`: the subscription item, conditioned on the `version` it
//! was read at; the route puts and deletes it implies (and, for a delete, the
//! webhook's rate schedule); `ADD version 1` on the app's routing version item (only
//! when some route changes, so that a description-only PATCH does not make every
//! consumer reload). A lost race cancels the whole
//! transaction and the change starts again from a fresh read (up to
//! [`CHANGE_ATTEMPTS`] times, then [`StoreError::Changed`]).
//!
//! A *health write* (a failure counted at park, a reset after a success) is one
//! `UpdateItem` on the subscription item. It bumps that item's own `version` (so a
//! routing change read before it cannot overwrite the count), but neither the app's
//! routing version nor the routes, except the routes' `failing` flag at the two
//! transitions of the count (0 → 1 and back to 0); see the consumer's
//! `CachedSubscriptions` for why that flag exists.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, Put, ReturnValue, TransactWriteItem, Update,
};
use herald_core::endpoint::disable_reason;
use herald_core::{AppId, Secret, Subscription, SubscriptionId};

use super::items::{number, route_changes, route_keys, subscription_item, VERSION};
use super::{SubscriptionChanges, SubscriptionStore, KIND};
use crate::{is_condition_failure, on_condition, transaction_lost_race, Item, PkSk, StoreError};

/// Read-modify-write rounds a routing change makes before it reports `Changed`.
pub const CHANGE_ATTEMPTS: usize = 5;

fn built<T>(r: Result<T, aws_sdk_dynamodb::error::BuildError>) -> Result<T, StoreError> {
    r.map_err(|e| StoreError::unwritable(KIND, e))
}

/// `#version` for expressions.
fn version_name() -> HashMap<String, String> {
    HashMap::from([("#v".to_owned(), VERSION.to_owned())])
}

impl SubscriptionStore {
    /// Stores a new subscription and its routes; `AlreadyExists` if one with its id
    /// exists.
    pub async fn create(&self, sub: &Subscription) -> Result<(), StoreError> {
        if self.commit(None, Some(sub)).await? {
            Ok(())
        } else {
            Err(StoreError::already_exists(KIND, &sub.id))
        }
    }

    /// Applies `changes` to the attributes they name and nothing else: a
    /// read-modify-write guarded by the item's version, started again from a fresh
    /// read when another change lands in between, so a concurrent change of other
    /// attributes (the consumer disabling the endpoint, another PATCH) is never
    /// overwritten. Returns the subscription as stored afterwards; `NotFound` if it is
    /// gone, `Changed` if it kept losing the race.
    pub async fn apply(
        &self,
        app: &AppId,
        id: &SubscriptionId,
        changes: &SubscriptionChanges,
    ) -> Result<Subscription, StoreError> {
        let ((), sub) = self
            .change(app, id, |sub| {
                changes.apply_to(sub);
                Ok(())
            })
            .await?;
        Ok(sub)
    }

    /// Rotates the subscription's secret (see [`Subscription::rotate_secret`]) and
    /// returns the new secret with the subscription as stored. When another change
    /// lands in between, it starts again from the new item, so two concurrent
    /// rotations both take effect (the later one keeps the earlier one's secret as the
    /// previous one). `Changed` if it kept losing that race.
    pub async fn rotate_secret(
        &self,
        app: &AppId,
        id: &SubscriptionId,
        now: chrono::DateTime<chrono::Utc>,
        window: chrono::Duration,
    ) -> Result<(Secret, Subscription), StoreError> {
        self.change(app, id, |sub| Ok(sub.rotate_secret(now, window)))
            .await
    }

    /// The guarded write of one read-modify-write round: stores `after` (and the
    /// routes it implies) if the stored item is still at `before`'s version. Returns
    /// the item as stored, or `None` when another change moved the version on
    /// (nothing written).
    pub async fn write_change(
        &self,
        before: &Subscription,
        after: &Subscription,
    ) -> Result<Option<Subscription>, StoreError> {
        let mut after = after.clone();
        after.version = before.version + 1;
        Ok(self
            .commit(Some(before), Some(&after))
            .await?
            .then_some(after))
    }

    /// Deletes a subscription and its routes; `NotFound` if the app has no such
    /// subscription.
    pub async fn delete(&self, app: &AppId, id: &SubscriptionId) -> Result<(), StoreError> {
        for _ in 0..CHANGE_ATTEMPTS {
            let before = self
                .get(app, id)
                .await?
                .ok_or_else(|| StoreError::not_found(KIND, id))?;
            if self.commit(Some(&before), None).await? {
                return Ok(());
            }
            backoff().await;
        }
        Err(changed(id))
    }

    /// Disables a subscription, recording why; `NotFound` if it is gone.
    pub async fn disable(
        &self,
        app: &AppId,
        id: &SubscriptionId,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.change(app, id, |sub| {
            sub.disable(reason);
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// Re-enables a subscription and clears its failure count and disabled reason;
    /// `NotFound` if it is gone.
    pub async fn enable(&self, app: &AppId, id: &SubscriptionId) -> Result<(), StoreError> {
        let changes = SubscriptionChanges {
            active: Some(true),
            ..SubscriptionChanges::default()
        };
        self.apply(app, id, &changes).await?;
        Ok(())
    }

    /// Counts a delivery that failed for good (a health write: no routing change,
    /// unless it disables). Once `disable_after` such deliveries come in a row, the
    /// subscription is disabled with a reason (a routing change). Returns the new
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
            .set_key(Some(PkSk::subscription(app, id).into_item()))
            .update_expression("ADD consecutive_failures :one, #v :one")
            .condition_expression("attribute_exists(pk)")
            .set_expression_attribute_names(Some(version_name()))
            .expression_attribute_values(":one", number(1))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| on_condition(e, "UpdateItem", || StoreError::not_found(KIND, id)))?;
        let sub: Subscription = self.decode(out.attributes.unwrap_or_default()).await?;
        let count = sub.consecutive_failures;
        if count == 1 {
            self.flag_routes(&sub, true).await?;
        }
        if let Some(reason) = disable_reason(count, disable_after) {
            self.disable(app, id, &reason).await?;
            return Ok((count, true));
        }
        Ok((count, false))
    }

    /// Resets the failure count after a success (a health write). When the count is
    /// already zero (or the subscription is gone) the condition fails and nothing
    /// else is written.
    pub async fn reset_failures(&self, app: &AppId, id: &SubscriptionId) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(PkSk::subscription(app, id).into_item()))
            .update_expression("SET consecutive_failures = :zero ADD #v :one")
            .condition_expression("attribute_exists(pk) AND consecutive_failures > :zero")
            .set_expression_attribute_names(Some(version_name()))
            .expression_attribute_values(":zero", number(0))
            .expression_attribute_values(":one", number(1))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => {
                let sub: Subscription = self.decode(out.attributes.unwrap_or_default()).await?;
                self.flag_routes(&sub, false).await
            }
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(StoreError::dynamo("UpdateItem", e)),
        }
    }

    /// Sets the `failing` flag of a subscription's routes, where they still exist
    /// (a routing change may have moved them meanwhile; it wrote the flag itself from
    /// the count it read). No version bump: see the module's documentation.
    async fn flag_routes(&self, sub: &Subscription, failing: bool) -> Result<(), StoreError> {
        for key in route_keys(sub) {
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key.into_item()))
                .update_expression("SET failing = :f")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_values(":f", AttributeValue::Bool(failing))
                .send()
                .await;
            match result {
                Ok(_) => {}
                Err(e) if is_condition_failure(&e) => {}
                Err(e) => return Err(StoreError::dynamo("UpdateItem", e)),
            }
        }
        Ok(())
    }

    /// A routing change of an existing subscription as a read-modify-write: `edit`
    /// changes a fresh copy, which is committed if the item did not change meanwhile;
    /// otherwise it starts again. Returns what `edit` returned and the stored item.
    async fn change<T>(
        &self,
        app: &AppId,
        id: &SubscriptionId,
        mut edit: impl FnMut(&mut Subscription) -> Result<T, StoreError>,
    ) -> Result<(T, Subscription), StoreError> {
        for _ in 0..CHANGE_ATTEMPTS {
            let before = self
                .get(app, id)
                .await?
                .ok_or_else(|| StoreError::not_found(KIND, id))?;
            let mut after = before.clone();
            let out = edit(&mut after)?;
            if let Some(stored) = self.write_change(&before, &after).await? {
                return Ok((out, stored));
            }
            backoff().await;
        }
        Err(changed(id))
    }

    /// Commits one routing change from `before` (`None`: a create) to `after`
    /// (`None`: a delete) in one transaction. Returns false when the subscription
    /// item's condition failed (it exists already, changed or went away).
    async fn commit(
        &self,
        before: Option<&Subscription>,
        after: Option<&Subscription>,
    ) -> Result<bool, StoreError> {
        let (app, id) = match after.or(before) {
            Some(s) => (&s.app_id, &s.id),
            None => return Ok(true),
        };
        let seal = self.sealing_key().await?;
        let mut names = None;
        let mut values = None;
        let condition = match before {
            None => "attribute_not_exists(pk)",
            Some(b) => {
                names = Some(version_name());
                values = Some(HashMap::from([(":seen".to_owned(), number(b.version))]));
                "#v = :seen"
            }
        };
        let subscription = match after {
            Some(a) => TransactWriteItem::builder()
                .put(built(
                    Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(subscription_item(a, &seal)?))
                        .condition_expression(condition)
                        .set_expression_attribute_names(names)
                        .set_expression_attribute_values(values)
                        .build(),
                )?)
                .build(),
            None => TransactWriteItem::builder()
                .delete(built(
                    Delete::builder()
                        .table_name(&self.table)
                        .set_key(Some(PkSk::subscription(app, id).into_item()))
                        .condition_expression(condition)
                        .set_expression_attribute_names(names)
                        .set_expression_attribute_values(values)
                        .build(),
                )?)
                .build(),
        };
        let (deletes, puts) = route_changes(before, after, &seal)?;
        let routes_change = !deletes.is_empty() || !puts.is_empty();
        let mut items = vec![subscription];
        for key in deletes {
            items.push(self.delete_op(key.into_item())?);
        }
        for item in puts {
            items.push(self.put_op(item)?);
        }
        if routes_change {
            items.push(self.bump_op(app)?);
        }
        if after.is_none() {
            // A deleted webhook's rate schedule goes with it (if it has one).
            items.push(self.delete_op(PkSk::rate_schedule(app, id).into_item())?);
        }
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if transaction_lost_race(&e) => Ok(false),
            Err(e) => Err(StoreError::dynamo("TransactWriteItems", e)),
        }
    }

    fn delete_op(&self, key: Item) -> Result<TransactWriteItem, StoreError> {
        let delete = built(
            Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key))
                .build(),
        )?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    fn put_op(&self, item: Item) -> Result<TransactWriteItem, StoreError> {
        let put = built(
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .build(),
        )?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// `ADD version 1` on the app's routing version item.
    fn bump_op(&self, app: &AppId) -> Result<TransactWriteItem, StoreError> {
        let update = built(
            Update::builder()
                .table_name(&self.table)
                .set_key(Some(PkSk::routing_version(app).into_item()))
                .update_expression("ADD #v :one")
                .set_expression_attribute_names(Some(version_name()))
                .expression_attribute_values(":one", number(1))
                .build(),
        )?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}

/// `Changed` for subscription `id`.
fn changed(id: &SubscriptionId) -> StoreError {
    StoreError::Changed {
        kind: KIND,
        id: id.to_string(),
    }
}

/// A short random pause before another read-modify-write round, so that racing
/// writers do not meet again at once.
pub(super) async fn backoff() {
    let ms = rand::random::<u64>() % 20 + 5;
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subscriptions::items::read_number;

    #[test]
    fn a_version_number_reads_back() {
        let item: Item = HashMap::from([(VERSION.to_owned(), number(7))]);
        assert_eq!(read_number(&item, VERSION), Some(7));
        assert_eq!(read_number(&Item::new(), VERSION), None);
    }
}
