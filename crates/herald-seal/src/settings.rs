//! `HERALD_KMS_KEY_ID` and `HERALD_SEAL_KEY_FILE`, read through the one loader.

use herald_core::settings;
use herald_runtime::config::{ConfigError, Validate};
use serde::{Deserialize, Serialize};

/// Where the master key is: exactly one of the two must be set. There is no
/// unsealed mode: a process that reads or writes webhooks refuses to start without
/// a master key.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct SealSettings {
    /// `HERALD_KMS_KEY_ID`: the KMS key (id, ARN or alias) that data keys are
    /// generated under (on AWS; infra/herald.yaml sets it).
    #[serde(default, deserialize_with = "settings::optional_text")]
    pub kms_key_id: Option<String>,
    /// `HERALD_SEAL_KEY_FILE`: a local key file (the emulator and development;
    /// `herald up` writes one and names it in the stack's settings).
    #[serde(default, deserialize_with = "settings::optional_text")]
    pub seal_key_file: Option<String>,
}

impl Validate for SealSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        match (&self.kms_key_id, &self.seal_key_file) {
            (Some(_), Some(file)) => Err(ConfigError::invalid(
                "seal_key_file",
                file,
                "set HERALD_KMS_KEY_ID or HERALD_SEAL_KEY_FILE, not both",
            )),
            (None, None) => Err(ConfigError::MissingOneOf(vec![
                "HERALD_KMS_KEY_ID".into(),
                "HERALD_SEAL_KEY_FILE".into(),
            ])),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_runtime::Load;

    #[test]
    fn exactly_one_master_key_is_required() {
        let err = SealSettings::from_vars(Vec::<(String, String)>::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "HERALD_KMS_KEY_ID or HERALD_SEAL_KEY_FILE must be set"
        );
        let err = SealSettings::from_vars([
            ("HERALD_KMS_KEY_ID", "alias/herald"),
            ("HERALD_SEAL_KEY_FILE", "/k"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("not both"), "{err}");
        let kms = SealSettings::from_vars([("HERALD_KMS_KEY_ID", "alias/herald")]).unwrap();
        assert_eq!(kms.kms_key_id.as_deref(), Some("alias/herald"));
        let file = SealSettings::from_vars([("HERALD_SEAL_KEY_FILE", "/k")]).unwrap();
        assert_eq!(file.seal_key_file.as_deref(), Some("/k"));
    }
}
