//! The tables of the delivery path, as the consumer and the API both read them.

use std::time::Duration;

use herald_core::settings;
use herald_runtime::config::{duration_in_range, ConfigError, Validate};
use serde::{Deserialize, Serialize};

/// `HERALD_SUBSCRIPTIONS_TABLE`, `HERALD_HISTORY_TABLE` and `HERALD_HISTORY_RETENTION`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct DeliveryTables {
    /// `HERALD_SUBSCRIPTIONS_TABLE`.
    #[serde(deserialize_with = "settings::text")]
    pub subscriptions_table: String,
    /// `HERALD_HISTORY_TABLE`: the delivery history (and the events kept for
    /// re-sending).
    #[serde(deserialize_with = "settings::text")]
    pub history_table: String,
    /// `HERALD_HISTORY_RETENTION` (default 30d): how long the history and the kept
    /// events live.
    #[serde(
        default = "default_retention",
        deserialize_with = "settings::duration",
        serialize_with = "settings::write_duration"
    )]
    pub history_retention: Duration,
}

fn default_retention() -> Duration {
    Duration::from_secs(30 * 86_400)
}

impl Validate for DeliveryTables {
    fn validate(&self) -> Result<(), ConfigError> {
        let days = |d: u64| Duration::from_secs(d * 86_400);
        duration_in_range(
            "history_retention",
            self.history_retention,
            days(1)..=days(3_650),
        )
    }
}
