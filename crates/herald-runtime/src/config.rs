//! The one configuration loader. Every role (consumer, API, re-driver, CLI) has a
//! serde struct of its settings; [`Sources`] layers where they come from —
//! the struct's defaults, then a profile file section, then `HERALD_*` environment
//! variables, then explicit values such as command-line flags — and [`Sources::load`]
//! extracts and validates the struct, with errors that name the variable.
//!
//! Every source gives text; the structs read numbers, flags and durations through
//! `herald_core::settings`, so `HERALD_HTTP_TIMEOUT=15s` in the environment and
//! `http_timeout = "15s"` in a profile file mean the same. A setting's key is its
//! variable without the `HERALD_` prefix, in lower case.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::ops::RangeInclusive;
use std::time::Duration;

use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use herald_core::settings::format_duration;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The prefix of Herald's environment variables.
pub const PREFIX: &str = "HERALD_";

/// A setting that is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required setting has no value in any source.
    #[error("{0} must be set")]
    Missing(String),
    /// None of several alternative settings has a value; one of them must.
    #[error("{} must be set", .0.join(" or "))]
    MissingOneOf(Vec<String>),
    /// A setting has a value that cannot be used.
    #[error("{var}={value:?} is invalid: {reason}")]
    Invalid {
        /// The variable, e.g. `HERALD_HTTP_TIMEOUT`.
        var: String,
        /// The value given (hidden for secrets).
        value: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl ConfigError {
    /// `var` (a key or a variable name) has the unusable `value`.
    pub fn invalid(var: &str, value: impl Display, reason: impl Display) -> Self {
        let var = var_name(var);
        let value = if is_secret(&var) {
            "(hidden)".to_owned()
        } else {
            value.to_string()
        };
        Self::Invalid {
            var,
            value,
            reason: reason.to_string(),
        }
    }
}

/// Checks a setting that was read: its rules beyond its type (ranges, relations).
pub trait Validate {
    /// `Ok` when every setting is usable.
    fn validate(&self) -> Result<(), ConfigError>;
}

/// Loading a settings struct from the usual sources; every `DeserializeOwned +
/// Validate` struct has it.
pub trait Load: DeserializeOwned + Validate + Sized {
    /// From the process's `HERALD_*` environment.
    fn from_env() -> Result<Self, ConfigError> {
        Sources::from_env().load()
    }

    /// From settings given by variable name (`HERALD_X` or `x`): tests, and callers
    /// that gathered their own layers.
    fn from_vars<K: AsRef<str>, V: Into<String>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, ConfigError> {
        Sources::new().vars("settings", vars).load()
    }
}

impl<T: DeserializeOwned + Validate> Load for T {}

/// `Ok` when `value` of setting `var` lies in `range`.
pub fn in_range<T: PartialOrd + Display>(
    var: &str,
    value: T,
    range: RangeInclusive<T>,
) -> Result<(), ConfigError> {
    check_range(var, value, range, |v| v.to_string())
}

/// `Ok` when duration `value` of setting `var` lies in `range`.
pub fn duration_in_range(
    var: &str,
    value: Duration,
    range: RangeInclusive<Duration>,
) -> Result<(), ConfigError> {
    check_range(var, value, range, |d| format_duration(*d))
}

fn check_range<T: PartialOrd>(
    var: &str,
    value: T,
    range: RangeInclusive<T>,
    show: impl Fn(&T) -> String,
) -> Result<(), ConfigError> {
    if range.contains(&value) {
        return Ok(());
    }
    Err(ConfigError::invalid(
        var,
        show(&value),
        format!(
            "must be between {} and {}",
            show(range.start()),
            show(range.end())
        ),
    ))
}

/// The environment variable of a key (`http_timeout` → `HERALD_HTTP_TIMEOUT`).
pub fn var_name(key: &str) -> String {
    if key.starts_with(PREFIX) {
        key.to_owned()
    } else {
        format!("{PREFIX}{}", key.to_ascii_uppercase())
    }
}

/// The key of an environment variable (`HERALD_HTTP_TIMEOUT` → `http_timeout`).
pub fn key_name(var: &str) -> String {
    var.strip_prefix(PREFIX).unwrap_or(var).to_ascii_lowercase()
}

fn is_secret(var: &str) -> bool {
    var.ends_with("_KEY") || var.contains("SECRET")
}

/// One layer of settings: text values by key, and where they came from.
struct Layer {
    origin: String,
    values: BTreeMap<String, String>,
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.origin.clone())
            .interpolater(|_, keys| keys.first().map(|k| var_name(k)).unwrap_or_default())
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let dict: Dict = self
            .values
            .iter()
            // A blank value counts as unset, as it always has.
            .filter(|(_, v)| !v.trim().is_empty())
            .map(|(k, v)| (k.clone(), Value::from(v.clone())))
            .collect();
        Ok(Profile::Default.collect(dict))
    }
}

/// Where settings come from, lowest precedence first.
#[derive(Default)]
pub struct Sources {
    layers: Vec<Layer>,
}

impl Sources {
    /// No sources yet: only the structs' defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The process's `HERALD_*` environment variables.
    pub fn from_env() -> Self {
        Self::new().env()
    }

    /// Adds the process's `HERALD_*` environment variables.
    pub fn env(self) -> Self {
        let vars = std::env::vars().filter(|(k, _)| k.starts_with(PREFIX));
        self.vars("environment", vars)
    }

    /// Adds variables given by name (`HERALD_X` or `x`), e.g. a test's settings or
    /// command-line flags; they take precedence over the layers before them.
    pub fn vars<K: AsRef<str>, V: Into<String>>(
        mut self,
        origin: &str,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.layers.push(Layer {
            origin: origin.to_owned(),
            values: vars
                .into_iter()
                .map(|(k, v)| (key_name(k.as_ref()), v.into()))
                .collect(),
        });
        self
    }

    /// The text value of a setting (by key or variable name), from the layer of
    /// highest precedence that has one.
    pub fn get(&self, key: &str) -> Option<String> {
        let key = key_name(key);
        self.layers
            .iter()
            .rev()
            .find_map(|l| l.values.get(&key).filter(|v| !v.trim().is_empty()))
            .cloned()
    }

    /// Reads and validates settings struct `T`.
    pub fn load<T: DeserializeOwned + Validate>(&self) -> Result<T, ConfigError> {
        let figment = self
            .layers
            .iter()
            .fold(Figment::new(), |f, layer| f.merge(layer));
        let config: T = figment.extract().map_err(|e| self.explain::<T>(e))?;
        config.validate()?;
        Ok(config)
    }

    fn explain<T: DeserializeOwned>(&self, e: figment::Error) -> ConfigError {
        use figment::error::Kind;
        let reason = match &e.kind {
            Kind::MissingField(field) => return ConfigError::Missing(var_name(field)),
            Kind::Message(m) => m.clone(),
            other => other.to_string(),
        };
        // Errors inside a flattened struct come without their key: it is the key
        // whose removal changes the outcome.
        let key = match e.path.last() {
            Some(key) => key.clone(),
            None => self.culprit::<T>(&e.to_string()).unwrap_or_default(),
        };
        let value = self.get(&key).unwrap_or_default();
        ConfigError::invalid(&key, value, reason)
    }

    /// The key without which loading `T` no longer fails with `error` (nor fails for
    /// lack of that key).
    fn culprit<T: DeserializeOwned>(&self, error: &str) -> Option<String> {
        let keys: std::collections::BTreeSet<&String> =
            self.layers.iter().flat_map(|l| l.values.keys()).collect();
        keys.into_iter()
            .find(|key| {
                let without = self.layers.iter().fold(Figment::new(), |f, layer| {
                    let mut values = layer.values.clone();
                    values.remove(*key);
                    f.merge(Layer {
                        origin: layer.origin.clone(),
                        values,
                    })
                });
                // Leaving out a required key only says it is required.
                without.extract::<T>().map_or_else(
                    |e| {
                        !matches!(e.kind, figment::error::Kind::MissingField(_))
                            && e.to_string() != error
                    },
                    |_| true,
                )
            })
            .cloned()
    }
}

/// The keys settings struct `T` reads (`http_timeout`, …), found by loading it with
/// placeholders for its required settings and writing it out. Used to check the
/// configuration reference against the structs and to warn of unknown profile keys.
pub fn keys<T: DeserializeOwned + Validate + Serialize>() -> Vec<String> {
    let mut required: Vec<(String, String)> = Vec::new();
    let sample = loop {
        match Sources::new()
            .vars("placeholders", required.clone())
            .load::<T>()
        {
            Ok(sample) => break sample,
            Err(ConfigError::Missing(var)) if !required.iter().any(|(k, _)| *k == var) => {
                required.push((var, "placeholder".to_owned()));
            }
            // One of alternatives: the last one stands in.
            Err(ConfigError::MissingOneOf(vars))
                if !required.iter().any(|(k, _)| vars.contains(k)) =>
            {
                let var = vars.last().cloned().unwrap_or_default();
                required.push((var, "placeholder".to_owned()));
            }
            Err(e) => panic!("settings struct cannot be loaded with placeholders: {e}"),
        }
    };
    match serde_json::to_value(&sample) {
        Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
        _ => panic!("a settings struct must serialize to a map"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Serialize, Debug)]
    struct Example {
        #[serde(deserialize_with = "herald_core::settings::text")]
        queue_url: String,
        #[serde(default = "ten", deserialize_with = "herald_core::settings::parsed")]
        batch_size: u32,
        #[serde(default, deserialize_with = "herald_core::settings::optional_text")]
        admin_key: Option<String>,
    }

    fn ten() -> u32 {
        10
    }

    impl Validate for Example {
        fn validate(&self) -> Result<(), ConfigError> {
            in_range("batch_size", self.batch_size, 1..=10)
        }
    }

    #[test]
    fn later_layers_win_and_defaults_fill_in() {
        let c: Example = Sources::new()
            .vars("file", [("queue_url", "q1"), ("batch_size", "5")])
            .vars("env", [("HERALD_QUEUE_URL", "q2")])
            .load()
            .unwrap();
        assert_eq!(c.queue_url, "q2");
        assert_eq!(c.batch_size, 5);
        let c: Example = Sources::new()
            .vars("env", [("HERALD_QUEUE_URL", "q")])
            .load()
            .unwrap();
        assert_eq!(c.batch_size, 10);
        assert_eq!(c.admin_key, None);
    }

    /// The error of loading `T` from `vars`.
    fn error_of<T: DeserializeOwned + Validate + std::fmt::Debug>(vars: &[(&str, &str)]) -> String {
        Sources::new()
            .vars("env", vars.iter().copied())
            .load::<T>()
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn errors_name_the_variable_and_hide_secrets() {
        assert_eq!(error_of::<Example>(&[]), "HERALD_QUEUE_URL must be set");
        let err = error_of::<Example>(&[("HERALD_QUEUE_URL", "q"), ("HERALD_BATCH_SIZE", "lots")]);
        assert!(
            err.starts_with("HERALD_BATCH_SIZE=\"lots\" is invalid"),
            "{err}"
        );
        assert_eq!(
            error_of::<Example>(&[("HERALD_QUEUE_URL", "q"), ("HERALD_BATCH_SIZE", "11")]),
            "HERALD_BATCH_SIZE=\"11\" is invalid: must be between 1 and 10"
        );
        assert!(ConfigError::invalid("admin_key", "short", "too short")
            .to_string()
            .contains("(hidden)"));
    }

    #[derive(Deserialize, Serialize, Debug)]
    struct Outer {
        #[serde(deserialize_with = "herald_core::settings::text")]
        name: String,
        #[serde(flatten)]
        inner: Example,
    }

    impl Validate for Outer {
        fn validate(&self) -> Result<(), ConfigError> {
            self.inner.validate()
        }
    }

    #[test]
    fn errors_in_flattened_settings_still_name_the_variable() {
        let err = error_of::<Outer>(&[
            ("HERALD_NAME", "n"),
            ("HERALD_QUEUE_URL", "q"),
            ("HERALD_BATCH_SIZE", "lots"),
        ]);
        assert!(
            err.starts_with("HERALD_BATCH_SIZE=\"lots\" is invalid"),
            "{err}"
        );
        let err = Sources::new()
            .vars("env", [("HERALD_NAME", "n")])
            .load::<Outer>()
            .unwrap_err();
        assert_eq!(err, ConfigError::Missing("HERALD_QUEUE_URL".into()));
    }

    #[test]
    fn keys_are_read_off_the_struct() {
        assert_eq!(keys::<Example>(), ["admin_key", "batch_size", "queue_url"]);
    }

    #[test]
    fn blank_values_count_as_unset() {
        let err = Sources::new()
            .vars("env", [("HERALD_QUEUE_URL", "  ")])
            .load::<Example>()
            .unwrap_err();
        assert_eq!(err, ConfigError::Missing("HERALD_QUEUE_URL".into()));
    }
}
