//! Moves messages from Herald's dead-letter queue (DLQ) back onto the events queue.
//!
//! A run receives the DLQ ten messages at a time, classifies each body, applies a
//! [`Filter`], and re-sends what matches to the target queue:
//!
//! * a [`DeadLetter::Failed`] delivery goes back as a fresh
//!   [`QueueMessage::Delivery`]: attempt 1, due now, with the reason it was parked in
//!   `last_result`;
//! * a [`DeadLetter::Undecodable`] goes back as its original body, unless that body
//!   was cut when it was parked: such a message cannot be restored and stays on the
//!   DLQ (reported in [`RedriveReport::skipped_unmovable`]);
//! * anything else (typically a raw queue message SQS moved itself after
//!   `maxReceiveCount` receives, or garbage) goes back as it is, with its message
//!   attributes.
//!
//! # Never losing a message
//!
//! Each message is sent to the target queue *before* it is deleted from the DLQ, and
//! only entries whose send succeeded are deleted. A failed send leaves the message on
//! the DLQ (reported in [`RedriveReport::send_failed`]). The price is that a crash, or
//! a failed delete, between the send and the delete leaves the message on both queues,
//! so it can be delivered twice; receivers dedupe on the `webhook-id` header, which is
//! stable per event and subscription.
//!
//! Messages received but not moved (they did not match, the run is a dry run, they
//! cannot be moved, or their send failed) are made visible again at the end of the run
//! with `ChangeMessageVisibility(0)`. Until then they are held in flight for at most
//! [`RedriveOptions::visibility_timeout_secs`]: a run over a DLQ so large that it
//! outlasts that timeout sees held messages come back, and stops there (it never
//! handles a message twice). The re-driver only uses the basic SQS API
//! (receive, send, delete, change visibility), not `StartMessageMoveTask`.

#![warn(missing_docs)]

#[cfg(doc)]
use herald_core::{DeadLetter, QueueMessage};

mod classify;
mod options;
mod report;
mod run;
pub mod settings;

pub use classify::{classify, Classified, Facts, Kind, Plan};
pub use herald_queue::MAX_BATCH_ENTRIES;
pub use options::{
    parse_age, Filter, RedriveFlags, RedriveOptions, DEFAULT_RATE_PER_SEC,
    DEFAULT_VISIBILITY_TIMEOUT_SECS,
};
pub use report::{Outcome, RedriveReport, ReportItem};
pub use run::{outgoing_attributes, Redriver};
pub use settings::RedriverConfig;

/// Why a re-drive failed as a whole. Failures of single messages are reported in the
/// [`RedriveReport`] instead.
#[derive(Debug, thiserror::Error)]
pub enum RedriveError {
    /// The options make no sense (a rate that is not positive, a visibility timeout
    /// outside what SQS accepts, ...).
    #[error("invalid re-drive options: {0}")]
    InvalidOptions(String),
    /// A duration that is not a number followed by `s`, `m`, `h` or `d`.
    #[error("bad duration {0:?}: expected a number with a unit s, m, h or d, such as 30m or 1h")]
    BadDuration(String),
    /// Receiving from the DLQ failed. Messages moved before the failure stay moved;
    /// messages held by the run were made visible again (best effort).
    #[error("receiving from the dead-letter queue failed after moving {moved} messages: {reason}")]
    Receive {
        /// Messages moved before the failure.
        moved: usize,
        /// What SQS (or the connection) said.
        reason: String,
    },
}
