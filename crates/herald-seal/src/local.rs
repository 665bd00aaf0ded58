//! Master keys from a local key file, for the emulator and development.
//!
//! The file holds one key per line: 32 random bytes in standard base64 (`herald up`
//! writes one; `head -c 32 /dev/urandom | base64` makes another). The first line
//! seals; every line opens, so a key is rotated by putting a new line first and
//! keeping the old one until nothing sealed under it is left. A key's id is
//! `local:` and the first 16 hex digits of its SHA-256.

use std::sync::Arc;

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand::RngCore as _;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::envelope::NONCE_LEN;
use crate::sealer::{aead_open, aead_seal};
use crate::{DataKey, KeyBytes, KeyProvider, SealError, DATA_KEY_LEN};

/// What a data key's encryption under a local key is bound to.
const WRAP_CONTEXT: &[u8] = b"herald-seal local data key";

/// Master keys read from a key file; the first seals, all open.
#[derive(Clone)]
pub struct LocalKeys {
    keys: Arc<Vec<(String, KeyBytes)>>,
}

impl LocalKeys {
    /// Reads the key file at `path`.
    pub fn from_file(path: &str) -> Result<Self, SealError> {
        let bad = |reason: String| SealError::KeyFile {
            path: path.to_owned(),
            reason,
        };
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?);
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bytes = Zeroizing::new(
                STANDARD
                    .decode(line)
                    .map_err(|_| bad(format!("line {} is not base64", n + 1)))?,
            );
            let key: [u8; DATA_KEY_LEN] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| bad(format!("line {} is not {DATA_KEY_LEN} bytes", n + 1)))?;
            keys.push(Zeroizing::new(key));
        }
        if keys.is_empty() {
            return Err(bad("holds no key".into()));
        }
        Ok(Self::of(keys))
    }

    /// One fresh random key (tests, and tools that write a key file).
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; DATA_KEY_LEN]);
        rand::rngs::OsRng.fill_bytes(key.as_mut_slice());
        Self::of(vec![key])
    }

    /// The key file's text for these keys.
    pub fn to_file_text(&self) -> Zeroizing<String> {
        let mut text = Zeroizing::new(String::new());
        for (_, key) in self.keys.iter() {
            text.push_str(&STANDARD.encode(key.as_slice()));
            text.push('\n');
        }
        text
    }

    /// The id of the key that seals.
    pub fn key_id(&self) -> &str {
        &self.keys[0].0
    }

    fn of(keys: Vec<KeyBytes>) -> Self {
        let keys = keys
            .into_iter()
            .map(|key| {
                let digest = Sha256::digest(key.as_slice());
                let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
                (format!("local:{hex}"), key)
            })
            .collect();
        Self {
            keys: Arc::new(keys),
        }
    }
}

#[async_trait]
impl KeyProvider for LocalKeys {
    async fn generate_data_key(&self) -> Result<DataKey, SealError> {
        let (key_id, master) = &self.keys[0];
        let mut plaintext = Zeroizing::new([0u8; DATA_KEY_LEN]);
        rand::rngs::OsRng.fill_bytes(plaintext.as_mut_slice());
        let (nonce, wrapped) = aead_seal(master, plaintext.as_slice(), WRAP_CONTEXT);
        Ok(DataKey {
            key_id: key_id.clone(),
            encrypted: [nonce.as_slice(), &wrapped].concat(),
            plaintext,
        })
    }

    async fn decrypt_data_key(
        &self,
        key_id: &str,
        encrypted: &[u8],
    ) -> Result<KeyBytes, SealError> {
        let (_, master) = self
            .keys
            .iter()
            .find(|(id, _)| id == key_id)
            .ok_or_else(|| SealError::UnknownKey(key_id.to_owned()))?;
        if encrypted.len() < NONCE_LEN {
            return Err(SealError::Tampered);
        }
        let (nonce, wrapped) = encrypted.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SealError::Tampered)?;
        let bytes = Zeroizing::new(aead_open(master, &nonce, wrapped, WRAP_CONTEXT)?);
        let key: [u8; DATA_KEY_LEN] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| SealError::Tampered)?;
        Ok(Zeroizing::new(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Sealer;

    fn write(name: &str, text: &str) -> String {
        let path = std::env::temp_dir().join(format!("herald-seal-{name}-{}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    }

    #[tokio::test]
    async fn a_rotated_key_file_seals_with_its_first_key_and_opens_with_all() {
        let old = LocalKeys::generate();
        let new = LocalKeys::generate();
        let sealed_before = Sealer::new(old.clone()).seal("whsec_x", "c").await.unwrap();
        let rotated = write(
            "rotated",
            &format!(
                "# newest first\n{}{}",
                *new.to_file_text(),
                *old.to_file_text()
            ),
        );
        let keys = LocalKeys::from_file(&rotated).unwrap();
        assert_eq!(keys.key_id(), new.key_id());
        assert!(keys.key_id().starts_with("local:") && keys.key_id().len() == 22);
        let sealer = Sealer::new(keys);
        assert_eq!(sealer.open(&sealed_before, "c").await.unwrap(), "whsec_x");
        let sealed_after = sealer.seal("whsec_y", "c").await.unwrap();
        assert_eq!(
            crate::Envelope::parse(&sealed_after).unwrap().key_id,
            new.key_id()
        );
    }

    #[test]
    fn unusable_key_files_are_refused_with_the_reason() {
        for (name, text, reason) in [
            ("empty", "\n", "holds no key"),
            ("short", "AAAA\n", "line 1 is not 32 bytes"),
            ("garbage", "not base64!\n", "line 1 is not base64"),
        ] {
            let err = LocalKeys::from_file(&write(name, text)).err().unwrap();
            assert!(err.to_string().ends_with(reason), "{err}");
        }
        assert!(LocalKeys::from_file("/nonexistent/herald.key").is_err());
    }
}
