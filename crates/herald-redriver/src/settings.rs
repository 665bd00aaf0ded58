//! The re-driver Lambda's settings, read through the one loader.

use herald_core::settings;
use herald_runtime::config::{ConfigError, Sources, Validate};
use serde::{Deserialize, Serialize};

/// Where the re-driver moves messages from and to.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct RedriverConfig {
    /// `HERALD_DLQ_URL`: the dead-letter queue to move messages from.
    #[serde(deserialize_with = "settings::text")]
    pub dlq_url: String,
    /// `HERALD_EVENTS_QUEUE_URL`: where they go back to.
    #[serde(deserialize_with = "settings::text")]
    pub events_queue_url: String,
}

impl Validate for RedriverConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }
}

impl RedriverConfig {
    /// From the process's `HERALD_*` environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Sources::from_env().load()
    }
}
