//! Master keys in AWS KMS: `GenerateDataKey` for a data key to seal with, `Decrypt`
//! for the data keys of stored values (both with Herald's encryption context, which
//! key policies and IAM conditions can require).

use async_trait::async_trait;
use aws_sdk_kms::error::DisplayErrorContext;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use zeroize::Zeroizing;

use crate::{DataKey, KeyBytes, KeyProvider, SealError, DATA_KEY_LEN};

/// The encryption context of every data key Herald asks KMS for: (key, value).
pub const ENCRYPTION_CONTEXT: (&str, &str) = ("purpose", "herald-secrets");

/// A KMS key as the master key.
#[derive(Clone, Debug)]
pub struct KmsKeys {
    client: aws_sdk_kms::Client,
    key_id: String,
}

impl KmsKeys {
    /// Data keys under KMS key `key_id` (an id, ARN or alias).
    pub fn new(client: aws_sdk_kms::Client, key_id: impl Into<String>) -> Self {
        Self {
            client,
            key_id: key_id.into(),
        }
    }
}

fn key_bytes(blob: Option<Blob>) -> Result<KeyBytes, SealError> {
    let bytes = Zeroizing::new(blob.map(Blob::into_inner).unwrap_or_default());
    let key: [u8; DATA_KEY_LEN] = bytes.as_slice().try_into().map_err(|_| {
        SealError::Provider(format!("KMS returned a data key of {} bytes", bytes.len()))
    })?;
    Ok(Zeroizing::new(key))
}

#[async_trait]
impl KeyProvider for KmsKeys {
    async fn generate_data_key(&self) -> Result<DataKey, SealError> {
        let out = self
            .client
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .encryption_context(ENCRYPTION_CONTEXT.0, ENCRYPTION_CONTEXT.1)
            .send()
            .await
            .map_err(|e| {
                SealError::Provider(format!("GenerateDataKey: {}", DisplayErrorContext(e)))
            })?;
        let key_id = out.key_id.clone().unwrap_or_else(|| self.key_id.clone());
        let encrypted = out
            .ciphertext_blob
            .clone()
            .map(Blob::into_inner)
            .ok_or_else(|| SealError::Provider("GenerateDataKey returned no ciphertext".into()))?;
        Ok(DataKey {
            key_id,
            encrypted,
            plaintext: key_bytes(out.plaintext)?,
        })
    }

    async fn decrypt_data_key(
        &self,
        key_id: &str,
        encrypted: &[u8],
    ) -> Result<KeyBytes, SealError> {
        let out = self
            .client
            .decrypt()
            .key_id(key_id)
            .ciphertext_blob(Blob::new(encrypted))
            .encryption_context(ENCRYPTION_CONTEXT.0, ENCRYPTION_CONTEXT.1)
            .send()
            .await
            .map_err(|e| {
                let tampered = e
                    .as_service_error()
                    .is_some_and(|se| se.is_invalid_ciphertext_exception());
                if tampered {
                    SealError::Tampered
                } else {
                    SealError::Provider(format!("Decrypt: {}", DisplayErrorContext(e)))
                }
            })?;
        key_bytes(out.plaintext)
    }
}
