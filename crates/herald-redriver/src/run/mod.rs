//! The run itself: receive from the DLQ, classify and filter, send to the target
//! queue at the given rate, delete what was sent, and release what was held.

mod outgoing;
mod pacer;

use std::collections::{HashMap, HashSet};

use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    MessageSystemAttributeName, SendMessageBatchRequestEntry,
};
use chrono::{DateTime, Utc};

use crate::{classify, Outcome, Plan, RedriveError, RedriveOptions, RedriveReport, ReportItem};
use herald_queue::sqs::{
    entry_results, error_reason as sdk_reason, message_size, string_attribute_value, EntryResult,
    MAX_BATCH_ENTRIES, MAX_MESSAGE_BYTES as MAX_BATCH_BYTES,
};
pub use outgoing::outgoing_attributes;
use outgoing::Pending;
use pacer::Pacer;

/// Moves messages from a dead-letter queue to a target queue.
#[derive(Debug, Clone)]
pub struct Redriver {
    sqs: aws_sdk_sqs::Client,
    dlq_url: String,
    target_queue_url: String,
}

impl Redriver {
    /// A re-driver from `dlq_url` to `target_queue_url` (normally the events queue).
    pub fn new(
        sqs: aws_sdk_sqs::Client,
        dlq_url: impl Into<String>,
        target_queue_url: impl Into<String>,
    ) -> Self {
        Self {
            sqs,
            dlq_url: dlq_url.into(),
            target_queue_url: target_queue_url.into(),
        }
    }

    /// Runs one re-drive. See the crate documentation for what it guarantees.
    pub async fn run(&self, opts: &RedriveOptions) -> Result<RedriveReport, RedriveError> {
        opts.validate()?;
        let mut report = RedriveReport {
            dry_run: opts.dry_run,
            ..RedriveReport::default()
        };
        let mut pacer = Pacer::new(opts.rate_per_sec);
        let mut seen: HashSet<String> = HashSet::new();
        // Received messages to make visible again at the end: id -> latest receipt handle.
        let mut held: HashMap<String, String> = HashMap::new();
        let limit_reached = |report: &RedriveReport| {
            opts.max_messages.is_some_and(|max| report.matched >= max)
                || opts.max_examined.is_some_and(|max| report.examined >= max)
        };

        while !limit_reached(&report) {
            let received = self
                .sqs
                .receive_message()
                .queue_url(&self.dlq_url)
                .max_number_of_messages(MAX_BATCH_ENTRIES as i32)
                .wait_time_seconds(1)
                .visibility_timeout(opts.visibility_timeout_secs)
                .message_attribute_names("All")
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await;
            let messages = match received {
                Ok(out) => out.messages.unwrap_or_default(),
                Err(e) => {
                    let reason = sdk_reason(&e);
                    self.release(&held).await;
                    return Err(RedriveError::Receive {
                        moved: report.moved,
                        reason,
                    });
                }
            };
            if messages.is_empty() {
                break;
            }
            let mut fresh = Vec::with_capacity(messages.len());
            for m in messages {
                let (Some(id), Some(handle)) = (m.message_id.clone(), m.receipt_handle.clone())
                else {
                    continue;
                };
                if seen.contains(&id) {
                    // Its visibility ran out and it came back: keep the newest handle,
                    // which is the one SQS honours.
                    if let Some(h) = held.get_mut(&id) {
                        *h = handle;
                    }
                } else {
                    seen.insert(id.clone());
                    fresh.push((id, handle, m));
                }
            }
            if fresh.is_empty() {
                tracing::info!("the DLQ only returned messages already seen; stopping");
                break;
            }

            let now = Utc::now();
            let mut pending = Vec::new();
            for (id, handle, m) in fresh {
                if limit_reached(&report) {
                    held.insert(id, handle);
                    continue;
                }
                report.examined += 1;
                let Some(p) = self.examine(id, handle, &m, opts, now, &mut report, &mut held)
                else {
                    continue;
                };
                pending.push(p);
            }
            self.move_all(pending, &mut pacer, &mut report, &mut held)
                .await;
        }
        self.release(&held).await;
        tracing::info!(
            examined = report.examined,
            matched = report.matched,
            moved = report.moved,
            unmovable = report.skipped_unmovable.len(),
            send_failed = report.send_failed.len(),
            delete_failed = report.delete_failed.len(),
            dry_run = report.dry_run,
            "re-drive done"
        );
        Ok(report)
    }

    /// Classifies and filters one message; returns it when it is to be sent now,
    /// otherwise records it (in the report and/or as held).
    #[allow(clippy::too_many_arguments)]
    fn examine(
        &self,
        id: String,
        handle: String,
        m: &Message,
        opts: &RedriveOptions,
        now: DateTime<Utc>,
        report: &mut RedriveReport,
        held: &mut HashMap<String, String>,
    ) -> Option<Pending> {
        let empty = HashMap::new();
        let dlq_attributes = m.message_attributes.as_ref().unwrap_or(&empty);
        let classified = classify(m.body.as_deref().unwrap_or_default(), now);
        let mut facts = classified.facts;
        facts.fill_from_attributes(
            dlq_attributes,
            m.attributes
                .as_ref()
                .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
                .map(String::as_str),
        );
        if !opts.filter.matches(&facts, now) {
            held.insert(id, handle);
            return None;
        }
        report.matched += 1;
        let mut item = ReportItem {
            message_id: id.clone(),
            kind: classified.kind,
            outcome: Outcome::WouldMove,
            app_id: facts.app_id.clone(),
            subscription_id: facts.subscription_id.clone(),
            event_type: facts.event_type.clone(),
            event_id: facts.event_id.clone(),
            parked_at: facts.timestamp,
            reason: classified.reason.or_else(|| {
                string_attribute_value(dlq_attributes, "herald_reason").map(str::to_owned)
            }),
        };
        match classified.plan {
            Plan::Unmovable { why } => {
                item.outcome = Outcome::Unmovable;
                report.skipped_unmovable.push((id.clone(), why));
                report.items.push(item);
                held.insert(id, handle);
                None
            }
            Plan::Move { .. } if opts.dry_run => {
                report.items.push(item);
                held.insert(id, handle);
                None
            }
            Plan::Move {
                body,
                copy_attributes,
            } => {
                let attributes =
                    outgoing_attributes(&facts, copy_attributes.then_some(dlq_attributes));
                Some(Pending {
                    message_id: id,
                    receipt_handle: handle,
                    body,
                    attributes,
                    item,
                })
            }
        }
    }

    /// Sends the pending messages in paced batches, then deletes from the DLQ those
    /// whose send succeeded.
    async fn move_all(
        &self,
        pending: Vec<Pending>,
        pacer: &mut Pacer,
        report: &mut RedriveReport,
        held: &mut HashMap<String, String>,
    ) {
        let mut batch: Vec<Pending> = Vec::new();
        let mut bytes = 0;
        for p in pending {
            let size = message_size(&p.body, &p.attributes);
            if !batch.is_empty()
                && (batch.len() == pacer.batch_size() || bytes + size > MAX_BATCH_BYTES)
            {
                self.move_batch(std::mem::take(&mut batch), pacer, report, held)
                    .await;
                bytes = 0;
            }
            bytes += size;
            batch.push(p);
        }
        if !batch.is_empty() {
            self.move_batch(batch, pacer, report, held).await;
        }
    }

    /// Sends one batch (after waiting for the pacer), then deletes from the DLQ the
    /// messages whose send succeeded and holds the others.
    async fn move_batch(
        &self,
        batch: Vec<Pending>,
        pacer: &mut Pacer,
        report: &mut RedriveReport,
        held: &mut HashMap<String, String>,
    ) {
        pacer.wait(batch.len()).await;
        let entries = batch
            .iter()
            .enumerate()
            .map(|(i, p)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(&p.body)
                    .set_message_attributes(
                        (!p.attributes.is_empty()).then(|| p.attributes.clone()),
                    )
                    .build()
                    .expect("id and body are set")
            })
            .collect::<Vec<_>>();
        let results = match self
            .sqs
            .send_message_batch()
            .queue_url(&self.target_queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Err(e) => {
                let why = sdk_reason(&e);
                tracing::warn!(error = %why, "SendMessageBatch to the target queue failed");
                vec![Err(why); batch.len()]
            }
            Ok(out) => entry_results(batch.len(), &out)
                .into_iter()
                .map(EntryResult::into_result)
                .collect(),
        };

        let mut to_delete = Vec::new();
        for (mut p, result) in batch.into_iter().zip(results) {
            if let Err(why) = result {
                tracing::warn!(message_id = %p.message_id, reason = %why, "send failed; the message stays on the DLQ");
                p.item.outcome = Outcome::SendFailed;
                report.items.push(p.item);
                report.send_failed.push((p.message_id.clone(), why));
                held.insert(p.message_id, p.receipt_handle);
            } else {
                report.moved += 1;
                p.item.outcome = Outcome::Moved;
                report.items.push(p.item);
                to_delete.push((p.message_id, p.receipt_handle));
            }
        }
        if !to_delete.is_empty() {
            self.delete(to_delete, report).await;
        }
    }

    /// Deletes sent messages from the DLQ (at most ten).
    async fn delete(&self, sent: Vec<(String, String)>, report: &mut RedriveReport) {
        let entries = sent
            .iter()
            .enumerate()
            .map(|(i, (_, handle))| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(handle)
                    .build()
                    .expect("id and receipt handle are set")
            })
            .collect::<Vec<_>>();
        let results = match self
            .sqs
            .delete_message_batch()
            .queue_url(&self.dlq_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Err(e) => vec![Err(sdk_reason(&e)); sent.len()],
            Ok(out) => entry_results(sent.len(), &out)
                .into_iter()
                .map(EntryResult::into_result)
                .collect(),
        };
        for ((id, _), result) in sent.into_iter().zip(results) {
            if let Err(why) = result {
                tracing::warn!(message_id = %id, reason = %why, "sent, but not deleted from the DLQ: it will be there again (a duplicate)");
                report.delete_failed.push((id, why));
            }
        }
    }

    /// Makes held messages visible again at once (best effort: a message this fails
    /// for becomes visible when its visibility timeout runs out).
    async fn release(&self, held: &HashMap<String, String>) {
        let handles: Vec<&String> = held.values().collect();
        for chunk in handles.chunks(MAX_BATCH_ENTRIES) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, handle)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(handle.as_str())
                        .visibility_timeout(0)
                        .build()
                        .expect("id and receipt handle are set")
                })
                .collect::<Vec<_>>();
            match self
                .sqs
                .change_message_visibility_batch()
                .queue_url(&self.dlq_url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Err(e) => tracing::warn!(
                    error = %sdk_reason(&e),
                    "could not make held DLQ messages visible again; they will be when their visibility timeout runs out"
                ),
                Ok(out) => {
                    for bad in out.failed() {
                        tracing::warn!(
                            code = bad.code(),
                            message = bad.message().unwrap_or_default(),
                            "could not make a held DLQ message visible again"
                        );
                    }
                }
            }
        }
    }
}
