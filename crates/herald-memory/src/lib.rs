//! Herald in one process, for `herald dev --in-memory`: a queue with SQS's semantics
//! ([`MemoryQueue`]) and the adapters the API, the consumer and the worker use, held in
//! memory. Everything is lost when the process exits; nothing here is ever wired into
//! the Lambda binaries or an AWS deployment.
//!
//! - [`queue`]: the queue (visibility timeout, delays, receive counts, redrive to a
//!   dead-letter queue after the most receives, batch deletes with per-entry results);
//! - [`outbox`]: the publisher's sink and the consumer's outbox onto those queues.

pub mod outbox;
pub mod queue;

pub use outbox::{MemoryOutbox, MemorySink};
pub use queue::{MemoryQueue, QueueSettings};
