//! Sealing secrets at rest with envelope encryption.
//!
//! A secret string is encrypted with AES-256-GCM under a *data key*; the data key is
//! itself encrypted under a *master key* held by a [`KeyProvider`]: AWS KMS on AWS
//! ([`KmsKeys`]), a local key file for the emulator and development ([`LocalKeys`]).
//! The sealed text carries everything needed to open it again except the master key:
//! the master key's id, the encrypted data key, the nonce and the ciphertext, in a
//! versioned text form (`hs1:`, see [`Envelope`]).
//!
//! A [`Sealer`] asks its provider for one data key and seals with it for a bounded time
//! ([`DATA_KEY_LIFETIME`]), so sealing costs no call per value; opened data keys are
//! cached by their encrypted form, so opening costs one call per data key, not per
//! value. Each sealed value is bound to a *context* (additional authenticated data,
//! e.g. the webhook and field it belongs to): opened under another context, or
//! changed in any byte, it is an error, never a wrong secret.

mod envelope;
mod kms;
mod local;
mod sealer;
mod settings;

pub use envelope::{Envelope, PREFIX};
pub use kms::{KmsKeys, ENCRYPTION_CONTEXT};
pub use local::LocalKeys;
pub use sealer::{Sealer, SealingKey, DATA_KEY_LIFETIME};
pub use settings::SealSettings;

use async_trait::async_trait;
use zeroize::Zeroizing;

/// Bytes of a data key (AES-256).
pub const DATA_KEY_LEN: usize = 32;

/// A data key's plaintext, wiped from memory when dropped.
pub type KeyBytes = Zeroizing<[u8; DATA_KEY_LEN]>;

/// A fresh data key from a [`KeyProvider`]: its plaintext, and the same key encrypted
/// under the master key `key_id`.
pub struct DataKey {
    /// The master key's id, as the provider names it (a KMS key ARN, `local:…`).
    pub key_id: String,
    /// The data key encrypted under the master key.
    pub encrypted: Vec<u8>,
    /// The data key itself.
    pub plaintext: KeyBytes,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey")
            .field("key_id", &self.key_id)
            .field("plaintext", &"(hidden)")
            .finish_non_exhaustive()
    }
}

/// Where data keys come from: generates them under a master key, and decrypts them.
#[async_trait]
pub trait KeyProvider: Send + Sync + 'static {
    /// A new data key, in plaintext and encrypted under the current master key.
    async fn generate_data_key(&self) -> Result<DataKey, SealError>;

    /// The plaintext of a data key `encrypted` under master key `key_id`.
    async fn decrypt_data_key(&self, key_id: &str, encrypted: &[u8])
        -> Result<KeyBytes, SealError>;
}

/// Why a value could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The text is not a sealed value of a version this code reads.
    #[error("not a sealed value: {0}")]
    Malformed(String),
    /// The value does not open: it was changed, belongs to another context, or its
    /// data key is not the one it was sealed with.
    #[error("sealed value does not open: changed, moved, or sealed under another key")]
    Tampered,
    /// The value was sealed under a master key this process does not hold.
    #[error("sealed under master key {0}, which this process does not hold")]
    UnknownKey(String),
    /// The key file cannot be used.
    #[error("key file {path}: {reason}")]
    KeyFile {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The key service failed or refused (KMS unreachable, access denied, …).
    #[error("key service: {0}")]
    Provider(String),
}

impl SealError {
    /// Whether the failure is the key service's (worth retrying), not the value's.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Provider(_))
    }
}
