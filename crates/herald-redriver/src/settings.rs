//! The re-driver Lambda's settings, read through the one loader.

use herald_queue::QueueSettings;
use herald_runtime::config::{ConfigError, Validate};
use serde::{Deserialize, Serialize};

/// Where the re-driver moves messages from (`HERALD_DLQ_URL`) and back to
/// (`HERALD_EVENTS_QUEUE_URL`).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct RedriverConfig {
    /// The two queues.
    #[serde(flatten)]
    pub queues: QueueSettings,
}

impl Validate for RedriverConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }
}
