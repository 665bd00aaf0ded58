//! The [`Sealer`]: seals and opens values with data keys from a [`KeyProvider`],
//! caching the data key it seals with and the data keys it has opened.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use rand::RngCore as _;

use crate::envelope::NONCE_LEN;
use crate::{
    DataKey, Envelope, KeyBytes, KeyProvider, KmsKeys, LocalKeys, SealError, SealSettings,
};

/// How long one data key seals before the provider is asked for a new one (and how
/// long an opened data key stays cached). Random 96-bit nonces stay far below their
/// collision bound for the values one process seals in that time.
pub const DATA_KEY_LIFETIME: Duration = Duration::from_secs(3_600);

/// Most opened data keys kept in memory.
const OPENED_KEYS: u64 = 10_000;

/// Seals and opens secret strings (see the crate's documentation). Cheap to clone:
/// clones share the provider and the caches.
#[derive(Clone)]
pub struct Sealer {
    inner: Arc<Inner>,
}

struct Inner {
    provider: Box<dyn KeyProvider>,
    current: tokio::sync::Mutex<Option<(SealingKey, Instant)>>,
    opened: moka::future::Cache<Vec<u8>, Arc<KeyBytes>>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer")
    }
}

impl Sealer {
    /// A sealer with data keys from `provider`.
    pub fn new(provider: impl KeyProvider) -> Self {
        Self {
            inner: Arc::new(Inner {
                provider: Box::new(provider),
                current: tokio::sync::Mutex::new(None),
                opened: moka::future::Cache::builder()
                    .max_capacity(OPENED_KEYS)
                    .time_to_live(DATA_KEY_LIFETIME)
                    .build(),
            }),
        }
    }

    /// The sealer the settings name: AWS KMS (`HERALD_KMS_KEY_ID`, through `aws`) or a
    /// local key file (`HERALD_SEAL_KEY_FILE`, read now).
    pub fn connect(
        settings: &SealSettings,
        aws: &aws_config::SdkConfig,
    ) -> Result<Self, SealError> {
        match (&settings.kms_key_id, &settings.seal_key_file) {
            (Some(key_id), _) => Ok(Self::new(KmsKeys::new(
                aws_sdk_kms::Client::new(aws),
                key_id,
            ))),
            (None, Some(path)) => Ok(Self::new(LocalKeys::from_file(path)?)),
            (None, None) => Err(SealError::Provider(
                "no master key: set HERALD_KMS_KEY_ID or HERALD_SEAL_KEY_FILE".into(),
            )),
        }
    }

    /// The data key to seal with now: the cached one while it is younger than
    /// [`DATA_KEY_LIFETIME`], else a new one from the provider.
    pub async fn sealing_key(&self) -> Result<SealingKey, SealError> {
        let mut current = self.inner.current.lock().await;
        if let Some((key, at)) = current.as_ref() {
            if at.elapsed() < DATA_KEY_LIFETIME {
                return Ok(key.clone());
            }
        }
        let data_key = self.inner.provider.generate_data_key().await?;
        self.inner
            .opened
            .insert(
                data_key.encrypted.clone(),
                Arc::new(data_key.plaintext.clone()),
            )
            .await;
        let key = SealingKey(Arc::new(data_key));
        *current = Some((key.clone(), Instant::now()));
        Ok(key)
    }

    /// Seals `plaintext`, bound to `context`.
    pub async fn seal(&self, plaintext: &str, context: &str) -> Result<String, SealError> {
        Ok(self.sealing_key().await?.seal(plaintext, context))
    }

    /// Opens a value sealed under `context`. A changed value, another context or
    /// another data key is [`SealError::Tampered`]; a master key this process does
    /// not hold is [`SealError::UnknownKey`].
    pub async fn open(&self, sealed: &str, context: &str) -> Result<String, SealError> {
        let envelope = Envelope::parse(sealed)?;
        let provider = &self.inner.provider;
        let key = self
            .inner
            .opened
            .try_get_with(envelope.encrypted_key.clone(), async {
                provider
                    .decrypt_data_key(&envelope.key_id, &envelope.encrypted_key)
                    .await
                    .map(Arc::new)
            })
            .await
            .map_err(|e| (*e).clone())?;
        let plaintext = aead_open(
            &key,
            &envelope.nonce,
            &envelope.ciphertext,
            context.as_bytes(),
        )?;
        String::from_utf8(plaintext).map_err(|_| SealError::Tampered)
    }
}

/// A data key to seal with (from [`Sealer::sealing_key`]); sealing with it needs no
/// call to the provider.
#[derive(Clone)]
pub struct SealingKey(Arc<DataKey>);

impl SealingKey {
    /// Seals `plaintext`, bound to `context`: the `hs1:` text form.
    pub fn seal(&self, plaintext: &str, context: &str) -> String {
        let (nonce, ciphertext) =
            aead_seal(&self.0.plaintext, plaintext.as_bytes(), context.as_bytes());
        Envelope {
            key_id: self.0.key_id.clone(),
            encrypted_key: self.0.encrypted.clone(),
            nonce,
            ciphertext,
        }
        .to_text()
    }

    /// The master key's id.
    pub fn key_id(&self) -> &str {
        &self.0.key_id
    }
}

/// AES-256-GCM of `plaintext` with a random nonce; returns the nonce and the
/// ciphertext (tag included).
pub(crate) fn aead_seal(
    key: &KeyBytes,
    plaintext: &[u8],
    aad: &[u8],
) -> ([u8; NONCE_LEN], Vec<u8>) {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key.as_slice()));
    let ciphertext = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("AES-GCM encrypts any message shorter than 64 GiB");
    (nonce, ciphertext)
}

/// Opens what [`aead_seal`] made; [`SealError::Tampered`] when the tag does not match.
pub(crate) fn aead_open(
    key: &KeyBytes,
    nonce: &[u8; NONCE_LEN],
    ciphertext: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>, SealError> {
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key.as_slice()))
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map_err(|_| SealError::Tampered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PREFIX;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Local keys that count the provider calls.
    struct Counting {
        keys: LocalKeys,
        generated: Arc<AtomicUsize>,
        decrypted: Arc<AtomicUsize>,
    }

    #[async_trait::async_trait]
    impl KeyProvider for Counting {
        async fn generate_data_key(&self) -> Result<DataKey, SealError> {
            self.generated.fetch_add(1, Ordering::SeqCst);
            self.keys.generate_data_key().await
        }
        async fn decrypt_data_key(
            &self,
            key_id: &str,
            encrypted: &[u8],
        ) -> Result<KeyBytes, SealError> {
            self.decrypted.fetch_add(1, Ordering::SeqCst);
            self.keys.decrypt_data_key(key_id, encrypted).await
        }
    }

    fn counting(keys: LocalKeys) -> (Sealer, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        let generated = Arc::new(AtomicUsize::new(0));
        let decrypted = Arc::new(AtomicUsize::new(0));
        let sealer = Sealer::new(Counting {
            keys,
            generated: generated.clone(),
            decrypted: decrypted.clone(),
        });
        (sealer, generated, decrypted)
    }

    #[tokio::test]
    async fn values_round_trip_under_one_cached_data_key() {
        let keys = LocalKeys::generate();
        let (sealer, generated, decrypted) = counting(keys.clone());
        let a = sealer.seal("whsec_abc", "shop/sub_1/secret").await.unwrap();
        let b = sealer.seal("whsec_abc", "shop/sub_1/secret").await.unwrap();
        assert_ne!(a, b, "a fresh nonce each time");
        assert!(!a.contains("whsec_abc"));
        assert_eq!(
            sealer.open(&a, "shop/sub_1/secret").await.unwrap(),
            "whsec_abc"
        );
        assert_eq!(
            sealer.open(&b, "shop/sub_1/secret").await.unwrap(),
            "whsec_abc"
        );
        assert_eq!(
            generated.load(Ordering::SeqCst),
            1,
            "one data key per process"
        );
        assert_eq!(
            decrypted.load(Ordering::SeqCst),
            0,
            "its own key is already open"
        );

        // Another process with the same master key opens it with one decrypt per data key.
        let (other, _, decrypted) = counting(keys);
        for value in [&a, &b, &a] {
            assert_eq!(
                other.open(value, "shop/sub_1/secret").await.unwrap(),
                "whsec_abc"
            );
        }
        assert_eq!(decrypted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_changed_value_or_another_context_does_not_open() {
        let sealer = Sealer::new(LocalKeys::generate());
        let sealed = sealer
            .seal("Bearer t0k3n", "shop/sub_1/header/authorization")
            .await
            .unwrap();
        assert_eq!(
            sealer
                .open(&sealed, "shop/sub_2/header/authorization")
                .await,
            Err(SealError::Tampered),
            "moved to another webhook"
        );
        // Flip one character of each part in turn.
        let body = sealed.strip_prefix(PREFIX).unwrap();
        let parts: Vec<&str> = body.split('.').collect();
        for i in 1..4 {
            let mut changed = parts.clone();
            let flipped: String = changed[i]
                .chars()
                .enumerate()
                .map(|(j, c)| {
                    if j == 2 {
                        if c == 'A' {
                            'B'
                        } else {
                            'A'
                        }
                    } else {
                        c
                    }
                })
                .collect();
            changed[i] = &flipped;
            let text = format!("{PREFIX}{}", changed.join("."));
            let err = sealer
                .open(&text, "shop/sub_1/header/authorization")
                .await
                .unwrap_err();
            assert!(
                matches!(err, SealError::Tampered | SealError::Malformed(_)),
                "part {i}: {err}"
            );
        }
    }

    #[tokio::test]
    async fn another_master_key_does_not_open_it() {
        let sealed = Sealer::new(LocalKeys::generate())
            .seal("s", "c")
            .await
            .unwrap();
        let err = Sealer::new(LocalKeys::generate())
            .open(&sealed, "c")
            .await
            .unwrap_err();
        assert!(matches!(err, SealError::UnknownKey(_)), "{err}");
    }
}
