//! Recovering a webhook's failed deliveries: which deliveries of a time window are due
//! to be sent again, and a marker per (event, webhook) so that the same recovery,
//! repeated or run twice at once, never queues one twice.
//!
//! A delivery is due when its newest attempt at the webhook did not succeed and no
//! retry of it is pending: it was parked (every attempt failed, a 410, a refused
//! address) or not sent (the endpoint was disabled). Its newest attempt is found
//! through the event's trail (attempts after the first fan-out point there), so an
//! attempt newer than the window, even one of a later page, is never missed. A marker
//! (`pk = T#{app}#{event}`, `sk = {webhook}#recover`) records when a recovery queued
//! it; it is due again only once an attempt newer than the marker has failed too.

use std::collections::HashSet;
use std::future::Future;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use futures::future::try_join_all;
use herald_core::{AppId, Attempt, AttemptOutcome, EventId, SubscriptionId};
use serde::{Deserialize, Serialize};

use super::filter::AttemptFilter;
use super::items::{unpack, Entry, TrailItem};
use super::keys::{record_subscription, trail_partition};
use super::HistoryStore;
use crate::{decode_items, is_condition_failure, to_item, Item, ItemKind, Page, PkSk, StoreError};

/// Attempts one recovery call examines at most; the rest is a continuation.
pub const RECOVERY_PAGE: i32 = 100;
/// Candidates whose newest attempt is looked up at once.
const LOOKUPS_AT_ONCE: usize = 16;
/// The sort key suffix of a recovery marker in an event's trail partition.
const MARKER: &str = "recover";

/// Where a delivery that failed in the window stands now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryState {
    /// Parked or not sent, not queued by a recovery since: due.
    Due,
    /// A retry of it is pending (its newest attempt names a next attempt).
    Retrying,
    /// A later attempt succeeded.
    Succeeded,
    /// A recovery queued it after its newest attempt.
    Queued,
}

impl RecoveryState {
    /// The state of a delivery whose newest attempt is `newest`, queued by a recovery
    /// at `marker` if ever.
    pub fn of(newest: &Attempt, marker: Option<DateTime<Utc>>) -> Self {
        if newest.outcome == AttemptOutcome::Succeeded {
            Self::Succeeded
        } else if marker.is_some_and(|q| q >= newest.attempted_at) {
            Self::Queued
        } else if newest.outcome == AttemptOutcome::Failed && newest.next_attempt_at.is_some() {
            Self::Retrying
        } else {
            Self::Due
        }
    }
}

/// A delivery that failed in a recovery's window, with where it stands now.
#[derive(Debug, Clone, PartialEq)]
pub struct RecoveryCandidate {
    /// The event.
    pub event_id: EventId,
    /// Its newest attempt at the webhook.
    pub newest: Attempt,
    /// Where it stands.
    pub state: RecoveryState,
}

/// One call's share of a recovery.
#[derive(Debug, Clone, PartialEq)]
pub struct RecoveryPage {
    /// The distinct deliveries whose newest attempt of the window that did not succeed
    /// is in this share (each delivery is in one share only).
    pub candidates: Vec<RecoveryCandidate>,
    /// Pass it back to go on with the window; `None` when it is done.
    pub next_cursor: Option<String>,
}

/// Marks a delivery as queued by a recovery at `q` (Unix ms).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct MarkerItem {
    #[serde(flatten)]
    key: PkSk,
    q: i64,
    expires_at: i64,
}

impl PkSk {
    /// The recovery marker of `event`'s delivery to `sub`.
    fn recovery(app: &AppId, event: &EventId, sub: &SubscriptionId) -> Self {
        Self {
            pk: trail_partition(app, event),
            sk: format!("{sub}#{MARKER}"),
        }
    }
}

/// Whether an item of an event's trail partition is a recovery marker (the others
/// are trail items).
pub(super) fn is_marker(item: &Item) -> bool {
    item.get("sk")
        .and_then(|v| v.as_s().ok())
        .is_some_and(|sk| sk.ends_with(&format!("#{MARKER}")))
}

/// What a store knows of a delivery after one of its attempts that did not succeed
/// in a recovery's window: the input of [`recovery_share`]'s decision.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeliveryTrail {
    /// Its attempts at the webhook made after that one, in any order.
    pub later: Vec<Attempt>,
    /// When a recovery last queued it, if ever.
    pub marker: Option<DateTime<Utc>>,
}

/// One call's share of a recovery, whatever the store: `page` is the page of the
/// webhook's attempts that `window` keeps (newest first, up to [`RECOVERY_PAGE`]);
/// each delivery in it counts once, with its newest attempt of the page, and `trail`
/// tells what became of it after that attempt. A delivery one of whose later attempts
/// `window` keeps too is left out (it is counted with that one, on this page or an
/// earlier one); the others stand with their newest attempt and where they stand
/// ([`RecoveryState::of`]). Trails are looked up [`LOOKUPS_AT_ONCE`] at a time.
pub async fn recovery_share<F, Fut>(
    page: Page<Attempt>,
    window: &AttemptFilter,
    trail: F,
) -> Result<RecoveryPage, StoreError>
where
    F: Fn(Attempt) -> Fut,
    Fut: Future<Output = Result<DeliveryTrail, StoreError>>,
{
    let mut seen = HashSet::new();
    let failed: Vec<Attempt> = page
        .items
        .into_iter()
        .filter(|a| seen.insert(a.event_id.clone()))
        .collect();
    let mut candidates = Vec::with_capacity(failed.len());
    for chunk in failed.chunks(LOOKUPS_AT_ONCE) {
        let trails = try_join_all(chunk.iter().map(|a| trail(a.clone()))).await?;
        candidates.extend(
            chunk
                .iter()
                .zip(trails)
                .filter_map(|(failed, trail)| candidate(failed.clone(), trail, window)),
        );
    }
    Ok(RecoveryPage {
        candidates,
        next_cursor: page.next_cursor,
    })
}

/// Where the delivery of `failed`'s event stands after `trail`; `None` when a later
/// attempt that `window` keeps did not succeed either.
fn candidate(
    failed: Attempt,
    trail: DeliveryTrail,
    window: &AttemptFilter,
) -> Option<RecoveryCandidate> {
    let event_id = failed.event_id.clone();
    let failed_at = failed.attempted_at;
    let mut newest = failed;
    for later in trail.later {
        if later.attempted_at <= failed_at {
            continue;
        }
        if window.matches(&later) {
            return None;
        }
        if later.attempted_at > newest.attempted_at {
            newest = later;
        }
    }
    Some(RecoveryCandidate {
        event_id,
        state: RecoveryState::of(&newest, trail.marker),
        newest,
    })
}

impl HistoryStore {
    /// The next share of the deliveries to webhook `sub` that did not succeed between
    /// `since` and `until` (up to [`RECOVERY_PAGE`] attempts of the window, newest
    /// first), each with its newest attempt at the webhook and where it stands.
    pub async fn recovery_page(
        &self,
        app: &AppId,
        sub: &SubscriptionId,
        since: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
        cursor: Option<&str>,
    ) -> Result<RecoveryPage, StoreError> {
        let window = AttemptFilter::recovery_window(since, until);
        let page = self
            .for_subscription(app, sub, &window, RECOVERY_PAGE, cursor)
            .await?;
        recovery_share(page, &window, |failed| {
            self.delivery_trail(app, sub, failed)
        })
        .await
    }

    /// What became of the delivery of `failed`'s event to `sub`: its attempts from
    /// the records its trail points at after `failed`, and its marker.
    async fn delivery_trail(
        &self,
        app: &AppId,
        sub: &SubscriptionId,
        failed: Attempt,
    ) -> Result<DeliveryTrail, StoreError> {
        let event = failed.event_id.clone();
        let lo = format!("{sub}#");
        let hi = format!("{sub}#~");
        let mut records = Vec::new();
        let mut marker = None;
        let mut start = None;
        loop {
            let out = self
                .query(&trail_partition(app, &event), Some((&lo, &hi)), "")
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StoreError::dynamo("Query", e))?;
            let (markers, trails): (Vec<Item>, Vec<Item>) = out
                .items
                .unwrap_or_default()
                .into_iter()
                .partition(is_marker);
            for m in decode_items::<MarkerItem>(ItemKind::Trail, Some(markers))? {
                marker = DateTime::from_timestamp_millis(m.q);
            }
            for t in decode_items::<TrailItem>(ItemKind::Trail, Some(trails))? {
                // A record is keyed by its batch's start: one that began after the
                // failed attempt holds a later attempt.
                let batch_start =
                    t.r.sk
                        .get(..27)
                        .and_then(|s| s.parse::<DateTime<Utc>>().ok());
                if batch_start.is_some_and(|b| b > failed.attempted_at) {
                    records.push(t.r);
                }
            }
            start = out.last_evaluated_key.filter(|k| !k.is_empty());
            if start.is_none() {
                break;
            }
        }
        let mut later = Vec::new();
        for record in self.get_records(records).await? {
            if record_subscription(app, &record.key.pk).as_ref() != Some(sub) {
                continue;
            }
            let entries: Vec<Entry> = unpack(ItemKind::WebhookRecord, &record.z)?;
            later.extend(
                entries
                    .into_iter()
                    .filter(|e| e.event == event && e.at > failed.attempted_at)
                    .map(|e| e.into_attempt(app, sub)),
            );
        }
        Ok(DeliveryTrail { later, marker })
    }

    /// Marks the delivery of `event` to `sub` as queued by a recovery now, unless a
    /// recovery did so after `newest_at` (its newest attempt): whether this call did.
    pub async fn claim_recovery(
        &self,
        app: &AppId,
        sub: &SubscriptionId,
        event: &EventId,
        newest_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let now = Utc::now();
        let marker = MarkerItem {
            key: PkSk::recovery(app, event, sub),
            q: now.timestamp_millis().max(newest_at.timestamp_millis() + 1),
            expires_at: now.timestamp() + self.retention.as_secs() as i64,
        };
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(ItemKind::Trail, &marker)?))
            .condition_expression("attribute_not_exists(pk) OR q < :t")
            .expression_attribute_values(
                ":t",
                AttributeValue::N(newest_at.timestamp_millis().to_string()),
            )
            .send()
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(StoreError::dynamo("PutItem", e)),
        }
    }

    /// Takes back a claim whose delivery could not be queued, so a later recovery
    /// queues it.
    pub async fn release_recovery(
        &self,
        app: &AppId,
        sub: &SubscriptionId,
        event: &EventId,
    ) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(PkSk::recovery(app, event, sub).into_item()))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("DeleteItem", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;
    use herald_core::testing;

    use super::*;

    #[test]
    fn a_delivery_is_due_when_its_newest_attempt_failed_for_good_and_no_recovery_followed() {
        let t = Utc::now();
        let event = testing::event("shop", "invoice.paid");
        let at = |outcome| testing::attempt(&event, "sub_1", outcome, t);
        let parked = at(AttemptOutcome::Failed);
        let mut retrying = parked.clone();
        retrying.next_attempt_at = Some(t + TimeDelta::minutes(5));
        let not_sent = at(AttemptOutcome::NotSent);
        let ok = at(AttemptOutcome::Succeeded);
        assert_eq!(RecoveryState::of(&parked, None), RecoveryState::Due);
        assert_eq!(RecoveryState::of(&not_sent, None), RecoveryState::Due);
        assert_eq!(RecoveryState::of(&retrying, None), RecoveryState::Retrying);
        assert_eq!(RecoveryState::of(&ok, None), RecoveryState::Succeeded);
        let after = Some(t + TimeDelta::seconds(1));
        let before = Some(t - TimeDelta::seconds(1));
        assert_eq!(RecoveryState::of(&parked, after), RecoveryState::Queued);
        assert_eq!(
            RecoveryState::of(&parked, before),
            RecoveryState::Due,
            "failed again since"
        );
        assert_eq!(RecoveryState::of(&ok, after), RecoveryState::Succeeded);
    }

    #[tokio::test]
    async fn a_share_counts_each_delivery_once_and_leaves_out_those_failing_later_in_the_window() {
        let t = Utc::now();
        let window = AttemptFilter::recovery_window(t - TimeDelta::hours(1), None);
        let (a, b, c) = (
            testing::event("shop", "invoice.paid"),
            testing::event("shop", "invoice.paid"),
            testing::event("shop", "invoice.paid"),
        );
        let at = |e: &herald_core::Event, outcome, s| {
            testing::attempt(e, "sub_1", outcome, t + TimeDelta::seconds(s))
        };
        // Newest first: `a` twice on the page, `b` and `c` once.
        let page = Page {
            items: vec![
                at(&a, AttemptOutcome::Failed, -10),
                at(&b, AttemptOutcome::Failed, -20),
                at(&a, AttemptOutcome::Failed, -30),
                at(&c, AttemptOutcome::NotSent, -40),
            ],
            next_cursor: Some("more".into()),
        };
        let marker = t - TimeDelta::seconds(5);
        let share = recovery_share(page, &window, |failed| {
            let (a, b) = (a.id.clone(), b.id.clone());
            let event = testing::event("shop", "invoice.paid");
            let (ok, again) = (
                at(&event, AttemptOutcome::Succeeded, -1),
                at(&event, AttemptOutcome::Failed, -2),
            );
            async move {
                Ok(if failed.event_id == a {
                    // Queued by a recovery after its newest attempt.
                    DeliveryTrail {
                        later: Vec::new(),
                        marker: Some(marker),
                    }
                } else if failed.event_id == b {
                    // Succeeded since.
                    let mut ok = ok;
                    ok.event_id = b;
                    DeliveryTrail {
                        later: vec![ok],
                        marker: None,
                    }
                } else {
                    // Failed again, later in the window: counted with that attempt.
                    let mut again = again;
                    again.event_id = failed.event_id;
                    DeliveryTrail {
                        later: vec![again],
                        marker: None,
                    }
                })
            }
        })
        .await
        .unwrap();
        let states: Vec<_> = share
            .candidates
            .iter()
            .map(|c| (c.event_id.clone(), c.state))
            .collect();
        assert_eq!(
            states,
            vec![
                (a.id.clone(), RecoveryState::Queued),
                (b.id.clone(), RecoveryState::Succeeded)
            ]
        );
        assert_eq!(
            share.candidates[1].newest.outcome,
            AttemptOutcome::Succeeded
        );
        assert_eq!(share.next_cursor.as_deref(), Some("more"));
    }
}
