//! Herald on SQS.
//!
//! - [`publisher`]: events onto the events queue (`SendMessageBatch`, retries, never
//!   drops silently);
//! - [`outbox`]: what the consumer hands back to the queues (delayed retries, dead
//!   letters);
//! - [`sqs`]: the one copy of the SQS plumbing every queue user shares: message
//!   attributes, size limits, matching batch results to entries, error reasons, and
//!   turning received messages into the event Lambda passes.

pub mod outbox;
pub mod publisher;
pub mod sqs;

pub use outbox::{Outbox, SqsOutbox};
pub use publisher::{PublishError, Publisher, RETRY_HEADROOM};
pub use sqs::{EntryResult, QueueError, MAX_BATCH_ENTRIES, MAX_DELAY, MAX_MESSAGE_BYTES};
