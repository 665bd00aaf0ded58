//! Batches from the ordered (FIFO) queue (docs/delivery.md, "Ordered delivery"): the
//! records of one message group are handled one after the other, in the batch's order,
//! and the first that must come back (a delivery waiting for its retry, held
//! invisible on the queue; a hand-off that failed) stops its group: every record
//! after it comes back too, unattempted, released at once (the queue hands none of
//! them out again before the one that stopped them). Groups are handled concurrently.

use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::future::join_all;

use super::calls::within;
use super::{BatchError, Consumer};

/// Whether `batch` came from a FIFO queue: its records carry a message group.
pub(super) fn is_fifo(batch: &SqsEvent) -> bool {
    batch
        .records
        .iter()
        .any(|r| r.attributes.contains_key("MessageGroupId"))
}

/// The records of each message group, in batch order; groups in order of first
/// appearance.
fn groups(records: Vec<SqsMessage>) -> Vec<Vec<SqsMessage>> {
    let mut out: Vec<(String, Vec<SqsMessage>)> = Vec::new();
    for record in records {
        let group = record
            .attributes
            .get("MessageGroupId")
            .cloned()
            .unwrap_or_default();
        match out.iter_mut().find(|(g, _)| *g == group) {
            Some((_, members)) => members.push(record),
            None => out.push((group, vec![record])),
        }
    }
    out.into_iter().map(|(_, members)| members).collect()
}

/// What one group came to: the ids of its records that must come back, and how many
/// of those have no id.
#[derive(Default)]
struct GroupResult {
    failed: Vec<String>,
    unnamed: usize,
}

impl Consumer {
    /// Handles a batch of the FIFO queue by message group (see the module's doc),
    /// every delivery starting within the start deadline and every call ending by
    /// `deadline`.
    pub(super) async fn handle_groups(
        &self,
        batch: SqsEvent,
        deadline: Instant,
    ) -> Result<SqsBatchResponse, BatchError> {
        let records = batch.records.len();
        let start_by = Instant::now() + self.policy.start_deadline;
        let results = join_all(
            groups(batch.records)
                .into_iter()
                .map(|members| self.handle_group(members, start_by, deadline)),
        )
        .await;
        let mut response = SqsBatchResponse::default();
        let mut unnamed = 0;
        for result in results {
            for id in result.failed {
                response.add_failure(id);
            }
            unnamed += result.unnamed;
        }
        if unnamed > 0 {
            return Err(BatchError { unnamed, records });
        }
        Ok(response)
    }

    async fn handle_group(
        &self,
        members: Vec<SqsMessage>,
        start_by: Instant,
        deadline: Instant,
    ) -> GroupResult {
        let mut result = GroupResult::default();
        let mut stopped = false;
        for record in members {
            let id = record.message_id.clone().filter(|id| !id.is_empty());
            if stopped || Instant::now() >= start_by {
                stopped = true;
                self.release(&record, deadline).await;
                match id {
                    Some(id) => result.failed.push(id),
                    None => result.unnamed += 1,
                }
                continue;
            }
            let mut one = SqsEvent::default();
            one.records = vec![record];
            match self.handle_by(one, start_by, deadline).await {
                Ok(response) if response.batch_item_failures.is_empty() => {}
                Ok(response) => {
                    stopped = true;
                    result.failed.extend(
                        response
                            .batch_item_failures
                            .into_iter()
                            .map(|f| f.item_identifier),
                    );
                }
                Err(e) => {
                    stopped = true;
                    result.unnamed += e.unnamed;
                }
            }
        }
        result
    }

    /// Makes a record that comes back unattempted visible again at once (best effort:
    /// otherwise it comes back after the queue's visibility timeout).
    async fn release(&self, record: &SqsMessage, deadline: Instant) {
        let Some(receipt) = record.receipt_handle.as_deref() else {
            return;
        };
        if let Err(e) = within(deadline, self.adapters.outbox.hold(receipt, Duration::ZERO)).await {
            tracing::warn!(message_id = record.message_id.as_deref().unwrap_or_default(), error = %e, "could not release an ordered record behind a blocked one");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, group: Option<&str>) -> SqsMessage {
        let mut r = SqsMessage::default();
        r.message_id = Some(id.to_owned());
        if let Some(g) = group {
            r.attributes.insert("MessageGroupId".into(), g.into());
        }
        r
    }

    #[test]
    fn records_are_grouped_in_batch_order() {
        let mut batch = SqsEvent::default();
        batch.records = vec![
            record("1", Some("a")),
            record("2", Some("b")),
            record("3", Some("a")),
        ];
        assert!(is_fifo(&batch));
        let ids: Vec<Vec<String>> = groups(batch.records)
            .into_iter()
            .map(|g| g.into_iter().map(|r| r.message_id.unwrap()).collect())
            .collect();
        assert_eq!(ids, vec![vec!["1", "3"], vec!["2"]]);
        let mut plain = SqsEvent::default();
        plain.records = vec![record("1", None)];
        assert!(!is_fifo(&plain));
    }
}
