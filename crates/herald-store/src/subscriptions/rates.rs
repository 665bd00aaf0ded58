//! Rate-limited webhooks' schedules: one item per webhook (`L#{app}#{id}` / `L`) whose
//! `end` is when the webhook's next delivery may start, in microseconds since the epoch
//! (the arithmetic is `herald_core::rate`'s). Every consumer instance reserves from the
//! same item with an atomic write, so the limit holds however many run.
//!
//! A reservation of `span` is one `UpdateItem` when the schedule lies ahead of now
//! (`ADD end :span`, on condition that it does): the webhook is busy, the reservation
//! queues behind what is reserved. When it lies behind now or does not exist (an idle
//! webhook owes no burst), that condition fails and a second `UpdateItem` starts the
//! schedule now (`SET end = :now + :span`, on condition that it is still behind); if
//! another instance moved it in between, the round starts again. The item is deleted
//! with its webhook; unlimited webhooks have none and pay nothing.

use aws_sdk_dynamodb::types::ReturnValue;
use chrono::{DateTime, Utc};
use herald_core::{AppId, RateLimit, SubscriptionId};

use super::items::{number, read_number};
use super::SubscriptionStore;
use crate::{is_condition_failure, Item, ItemKind, PkSk, StoreError};

/// The attribute holding a schedule's end.
const END: &str = "end";

/// Rounds of the two writes a reservation makes before it reports `Changed` (each
/// round is lost only to another instance's reservation landing in between).
const RESERVE_ROUNDS: usize = 5;

impl SubscriptionStore {
    /// Reserves `count` consecutive delivery slots of webhook `id`, limited to
    /// `limit`, at `now`; returns the first, to the microsecond (the others follow
    /// one [`RateLimit::interval`] apart).
    pub async fn reserve_slots(
        &self,
        app: &AppId,
        id: &SubscriptionId,
        limit: RateLimit,
        count: u32,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, StoreError> {
        let span = limit.span(count);
        // Both positive: a span is at most u32::MAX seconds, and now is after 1970.
        let span_us = span.num_microseconds().unwrap_or(i64::MAX).max(0) as u64;
        let now_us = now.timestamp_micros().max(0) as u64;
        let key = PkSk::rate_schedule(app, id).into_item();
        for _ in 0..RESERVE_ROUNDS {
            let queued = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key.clone()))
                .update_expression("ADD #end :span")
                .condition_expression("#end >= :now")
                .expression_attribute_names("#end", END)
                .expression_attribute_values(":span", number(span_us))
                .expression_attribute_values(":now", number(now_us))
                .return_values(ReturnValue::UpdatedNew)
                .send()
                .await;
            match queued {
                Ok(out) => {
                    let end = read_end(&out.attributes.unwrap_or_default())?;
                    return from_micros(end.saturating_sub(span_us));
                }
                Err(e) if is_condition_failure(&e) => {}
                Err(e) => return Err(StoreError::dynamo("UpdateItem", e)),
            }
            let started = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key.clone()))
                .update_expression("SET #end = :end")
                .condition_expression("attribute_not_exists(#end) OR #end < :now")
                .expression_attribute_names("#end", END)
                .expression_attribute_values(":end", number(now_us + span_us))
                .expression_attribute_values(":now", number(now_us))
                .send()
                .await;
            match started {
                Ok(_) => return from_micros(now_us),
                Err(e) if is_condition_failure(&e) => {}
                Err(e) => return Err(StoreError::dynamo("UpdateItem", e)),
            }
        }
        Err(StoreError::Changed {
            kind: ItemKind::RateSchedule,
            id: id.to_string(),
        })
    }
}

/// The `end` of a schedule item an update returned.
fn read_end(item: &Item) -> Result<u64, StoreError> {
    read_number(item, END).ok_or_else(|| StoreError::Corrupt {
        kind: ItemKind::RateSchedule,
        reason: format!("no numeric {END} attribute"),
    })
}

/// The time `us` microseconds after the epoch.
fn from_micros(us: u64) -> Result<DateTime<Utc>, StoreError> {
    i64::try_from(us)
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(|| StoreError::Corrupt {
            kind: ItemKind::RateSchedule,
            reason: format!("{END} {us} is not a time"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedule_end_reads_back_as_a_time() {
        let item: Item = Item::from([(END.to_owned(), number(1_700_000_000_123_456))]);
        let end = read_end(&item).unwrap();
        assert_eq!(from_micros(end).unwrap().timestamp_micros() as u64, end);
        assert!(read_end(&Item::new()).is_err());
    }
}
