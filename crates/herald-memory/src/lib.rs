//! Herald in one process, for `herald dev --in-memory`: a queue with SQS's semantics
//! ([`MemoryQueue`]) and the adapters the API, the consumer and the worker use, held in
//! memory. Everything is lost when the process exits; nothing here is ever wired into
//! the Lambda binaries or an AWS deployment.
//!
//! - [`queue`]: the queue (visibility timeout, delays, receive counts, redrive to a
//!   dead-letter queue after the most receives, batch deletes with per-entry results);
//! - [`outbox`]: the publisher's sink and the consumer's outbox onto those queues;
//! - [`apps`], [`idempotency`], …: the stores, behind `herald_store`'s storage traits;
//! - [`system`]: all of them wired together, with the worker.

pub mod apps;
pub mod history;
pub mod idempotency;
pub mod outbox;
mod page;
pub mod queue;
pub mod subscriptions;
pub mod system;

pub use apps::MemoryApps;
pub use history::MemoryHistory;
pub use idempotency::MemoryIdempotency;
pub use outbox::{MemoryOutbox, MemorySink};
pub use queue::{MemoryQueue, QueueSettings};
pub use subscriptions::{MemorySource, MemorySubscriptions};
pub use system::System;

use std::sync::{Mutex, MutexGuard};

/// Locks a store's state; no code panics while holding it, so a poisoned lock still
/// guards consistent state.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
