//! Signing and verification per the Standard Webhooks specification.
//!
//! A delivery carries three headers: `webhook-id`, `webhook-timestamp` (Unix seconds)
//! and `webhook-signature`, a space-separated list of `v1,<base64 HMAC-SHA256>` over
//! `"{id}.{timestamp}.{body}"`, one per active secret. Any Standard Webhooks or Svix
//! library verifies what [`Signer`] produces.

use std::fmt;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Prefix of every Herald secret, as the Standard Webhooks spec recommends.
pub const SECRET_PREFIX: &str = "whsec_";
/// Fewest and most random bytes a secret may hold.
pub const SECRET_LEN: std::ops::RangeInclusive<usize> = 24..=64;
/// Bytes in a freshly generated secret.
pub const GENERATED_SECRET_LEN: usize = 32;
/// Default tolerance between a delivery's timestamp and the verifier's clock.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

pub const HEADER_ID: &str = "webhook-id";
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
pub const HEADER_SIGNATURE: &str = "webhook-signature";

/// Why a secret could not be parsed or a delivery did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("secret must be `whsec_` followed by base64")]
    SecretNotBase64,
    #[error("secret must hold 24 to 64 bytes, it holds {0}")]
    SecretLength(usize),
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("webhook-timestamp is not a Unix time in seconds")]
    BadTimestamp,
    #[error("webhook-timestamp is {skew_secs} s away from now, beyond the tolerance of {tolerance_secs} s")]
    TimestampOutOfTolerance { skew_secs: i64, tolerance_secs: u64 },
    #[error("no v1 signature in webhook-signature matches")]
    NoMatchingSignature,
    #[error("X-Webhook-Signature does not match the payload")]
    NoMatchingParaSignature,
    #[error("the form body has no payload field")]
    NoFormPayload,
}

/// A signing secret. Its bytes never appear in `Debug` output or logs; only
/// [`Secret::expose`] reveals it, for showing to its owner once.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// A new secret of 32 random bytes from the OS generator.
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; GENERATED_SECRET_LEN];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Parses `whsec_<base64>` (the prefix is optional, as in other implementations).
    pub fn parse(s: &str) -> Result<Self, SignatureError> {
        let b64 = s.strip_prefix(SECRET_PREFIX).unwrap_or(s);
        let bytes = BASE64
            .decode(b64)
            .map_err(|_| SignatureError::SecretNotBase64)?;
        Self::from_bytes(bytes)
    }

    /// Wraps raw key bytes (24 to 64 of them).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, SignatureError> {
        if !SECRET_LEN.contains(&bytes.len()) {
            return Err(SignatureError::SecretLength(bytes.len()));
        }
        Ok(Self(bytes))
    }

    /// The secret in its `whsec_` form. Show it to its owner; never log it.
    pub fn expose(&self) -> String {
        format!("{SECRET_PREFIX}{}", BASE64.encode(&self.0))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(whsec_…redacted)")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.expose().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The three Standard Webhooks headers of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub id: String,
    pub timestamp: i64,
    pub signature: String,
}

impl SignedHeaders {
    /// Header name and value pairs, ready to put on a request.
    pub fn pairs(&self) -> [(&'static str, String); 3] {
        [
            (HEADER_ID, self.id.clone()),
            (HEADER_TIMESTAMP, self.timestamp.to_string()),
            (HEADER_SIGNATURE, self.signature.clone()),
        ]
    }
}

/// A secret's HMAC-SHA256 key schedule, computed once: each signature clones it
/// rather than keying a new MAC. Like the secret, it never appears in `Debug` output.
#[derive(Clone)]
pub struct SigningKey(HmacSha256);

impl SigningKey {
    /// The key schedule of `secret`.
    pub fn new(secret: &Secret) -> Self {
        Self::from_key_bytes(&secret.0)
    }

    /// The key schedule of raw key bytes of any length (Para keys its HMAC with the
    /// secret's text, [`crate::para::key_of`]).
    pub fn from_key_bytes(key: &[u8]) -> Self {
        Self(HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length"))
    }

    /// The raw HMAC-SHA256 of `message`.
    pub fn digest(&self, message: &[u8]) -> [u8; 32] {
        let mut mac = self.0.clone();
        mac.update(message);
        mac.finalize().into_bytes().into()
    }

    /// The raw HMAC-SHA256 of `"{msg_id}.{timestamp}.{body}"`.
    fn tag(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> [u8; 32] {
        let mut mac = self.0.clone();
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(itoa::Buffer::new().format(timestamp).as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }

    /// Appends `v1,<base64 tag>` to `out`.
    fn sign_into(&self, out: &mut String, msg_id: &str, timestamp: i64, body: &[u8]) {
        out.push_str("v1,");
        BASE64.encode_string(self.tag(msg_id, timestamp, body), out);
    }
}

impl From<&Secret> for SigningKey {
    fn from(secret: &Secret) -> Self {
        Self::new(secret)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(…redacted)")
    }
}

/// Length of one `v1,<base64 of 32 bytes>` signature.
const SIGNATURE_LEN: usize = 3 + 44;

/// Signs payloads.
pub struct Signer;

impl Signer {
    /// `v1,<base64 HMAC-SHA256(secret, "{msg_id}.{timestamp}.{body}")>`.
    pub fn sign(secret: &Secret, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        Self::signature(&[SigningKey::new(secret)], msg_id, timestamp, body)
    }

    /// The `webhook-signature` value: one `v1,…` signature per key, space-separated,
    /// built in one allocation.
    pub fn signature(keys: &[SigningKey], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut out = String::with_capacity(keys.len() * (SIGNATURE_LEN + 1));
        for (i, key) in keys.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            key.sign_into(&mut out, msg_id, timestamp, body);
        }
        out
    }

    /// Headers for one delivery, with one signature per secret, space-separated.
    pub fn headers(secrets: &[Secret], msg_id: &str, timestamp: i64, body: &[u8]) -> SignedHeaders {
        let keys: Vec<SigningKey> = secrets.iter().map(SigningKey::new).collect();
        SignedHeaders {
            id: msg_id.to_owned(),
            timestamp,
            signature: Self::signature(&keys, msg_id, timestamp, body),
        }
    }
}

/// Verifies deliveries as a receiver would: any `v1` signature made with any of the
/// given secrets, and a timestamp within the tolerance in either direction.
#[derive(Debug, Clone)]
pub struct Verifier {
    keys: Vec<SigningKey>,
    tolerance: Duration,
}

impl Verifier {
    /// A verifier accepting signatures by any of `secrets`, with the default 5-minute tolerance.
    pub fn new(secrets: Vec<Secret>) -> Self {
        Self {
            keys: secrets.iter().map(SigningKey::new).collect(),
            tolerance: DEFAULT_TOLERANCE,
        }
    }

    pub fn with_tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// Verifies against the current clock.
    pub fn verify(
        &self,
        id: &str,
        timestamp: &str,
        signature: &str,
        body: &[u8],
    ) -> Result<(), SignatureError> {
        self.verify_at(
            id,
            timestamp,
            signature,
            body,
            chrono::Utc::now().timestamp(),
        )
    }

    /// Verifies as if the clock read `now` (Unix seconds).
    pub fn verify_at(
        &self,
        id: &str,
        timestamp: &str,
        signature: &str,
        body: &[u8],
        now: i64,
    ) -> Result<(), SignatureError> {
        if id.is_empty() {
            return Err(SignatureError::MissingHeader(HEADER_ID));
        }
        if signature.trim().is_empty() {
            return Err(SignatureError::MissingHeader(HEADER_SIGNATURE));
        }
        let ts: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| SignatureError::BadTimestamp)?;
        let skew = now.saturating_sub(ts);
        if skew.unsigned_abs() > self.tolerance.as_secs() {
            return Err(SignatureError::TimestampOutOfTolerance {
                skew_secs: skew,
                tolerance_secs: self.tolerance.as_secs(),
            });
        }
        let candidates: Vec<Vec<u8>> = signature
            .split_whitespace()
            .filter_map(|entry| entry.strip_prefix("v1,"))
            .filter_map(|b64| BASE64.decode(b64).ok())
            .collect();
        for key in &self.keys {
            let expected = key.tag(id, ts, body);
            if candidates
                .iter()
                .any(|c| bool::from(c.as_slice().ct_eq(expected.as_slice())))
            {
                return Ok(());
            }
        }
        Err(SignatureError::NoMatchingSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn matches_the_standard_webhooks_reference_vector() {
        // The example from the Standard Webhooks specification.
        let secret = Secret::parse(SPEC_SECRET).unwrap();
        let body = br#"{"test": 2432232314}"#;
        let sig = Signer::sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn secrets_round_trip_and_enforce_length() {
        let s = Secret::generate();
        assert!(s.expose().starts_with("whsec_"));
        assert_eq!(Secret::parse(&s.expose()).unwrap(), s);
        assert_eq!(
            Secret::parse(&format!("whsec_{}", BASE64.encode([0u8; 23]))),
            Err(SignatureError::SecretLength(23))
        );
        assert_eq!(
            Secret::parse(&format!("whsec_{}", BASE64.encode([0u8; 65]))),
            Err(SignatureError::SecretLength(65))
        );
        assert!(Secret::parse(&format!("whsec_{}", BASE64.encode([0u8; 64]))).is_ok());
        assert_eq!(
            Secret::parse("whsec_!!notbase64"),
            Err(SignatureError::SecretNotBase64)
        );
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let s = Secret::generate();
        let shown = format!("{s:?}");
        assert!(!shown.contains(&s.expose()[6..]));
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn verifier_accepts_any_listed_secret_and_rejects_tampering() {
        let (old, new) = (Secret::generate(), Secret::generate());
        let body = br#"{"type":"update"}"#;
        let h = Signer::headers(&[new.clone(), old.clone()], "msg_1", 1_000, body);
        assert_eq!(h.signature.split(' ').count(), 2);
        let ts = h.timestamp.to_string();
        for holder in [&old, &new] {
            let v = Verifier::new(vec![holder.clone()]);
            assert_eq!(v.verify_at("msg_1", &ts, &h.signature, body, 1_000), Ok(()));
        }
        let v = Verifier::new(vec![new.clone()]);
        let stranger = Verifier::new(vec![Secret::generate()]);
        assert_eq!(
            stranger.verify_at("msg_1", &ts, &h.signature, body, 1_000),
            Err(SignatureError::NoMatchingSignature)
        );
        assert_eq!(
            v.verify_at("msg_1", &ts, &h.signature, b"{}", 1_000),
            Err(SignatureError::NoMatchingSignature)
        );
        assert_eq!(
            v.verify_at("msg_2", &ts, &h.signature, body, 1_000),
            Err(SignatureError::NoMatchingSignature)
        );
        assert_eq!(
            v.verify_at("msg_1", "1001", &h.signature, body, 1_000),
            Err(SignatureError::NoMatchingSignature)
        );
    }

    #[test]
    fn timestamp_tolerance_applies_in_both_directions() {
        let s = Secret::generate();
        let h = Signer::headers(std::slice::from_ref(&s), "msg_1", 10_000, b"x");
        let v = Verifier::new(vec![s]);
        let ts = h.timestamp.to_string();
        assert!(v
            .verify_at("msg_1", &ts, &h.signature, b"x", 10_300)
            .is_ok());
        assert!(v.verify_at("msg_1", &ts, &h.signature, b"x", 9_700).is_ok());
        assert!(matches!(
            v.verify_at("msg_1", &ts, &h.signature, b"x", 10_301),
            Err(SignatureError::TimestampOutOfTolerance { .. })
        ));
        assert!(matches!(
            v.verify_at("msg_1", &ts, &h.signature, b"x", 9_699),
            Err(SignatureError::TimestampOutOfTolerance { .. })
        ));
        assert_eq!(
            v.verify_at("msg_1", "soon", &h.signature, b"x", 10_000),
            Err(SignatureError::BadTimestamp)
        );
        assert_eq!(
            v.verify_at("msg_1", &ts, "", b"x", 10_000),
            Err(SignatureError::MissingHeader(HEADER_SIGNATURE))
        );
    }

    #[test]
    fn unknown_signature_versions_and_garbage_entries_are_ignored() {
        let s = Secret::generate();
        let h = Signer::headers(std::slice::from_ref(&s), "msg_1", 5, b"x");
        let mixed = format!("v2,abc v1,@@@ {} v1a,zzz", h.signature);
        assert!(Verifier::new(vec![s])
            .verify_at("msg_1", "5", &mixed, b"x", 5)
            .is_ok());
    }

    /// Interoperability with the reference `standardwebhooks` crate, both ways.
    mod interop {
        use super::*;
        use http::HeaderMap;
        use standardwebhooks::Webhook;

        fn header_map(h: &SignedHeaders) -> HeaderMap {
            let mut map = HeaderMap::new();
            for (name, value) in h.pairs() {
                map.insert(name, value.parse().unwrap());
            }
            map
        }

        #[test]
        fn the_reference_crate_verifies_what_we_sign() {
            let secret = Secret::generate();
            let body = br#"{"type":"update","data":{"id":"42"}}"#;
            let now = chrono::Utc::now().timestamp();
            let ours = Signer::headers(std::slice::from_ref(&secret), "msg_abc", now, body);
            let wh = Webhook::new(&secret.expose()).unwrap();
            wh.verify(body, &header_map(&ours)).unwrap();

            // With two secrets (rotation), a receiver holding either verifies.
            let other = Secret::generate();
            let both = Signer::headers(&[other.clone(), secret.clone()], "msg_abc", now, body);
            Webhook::new(&secret.expose())
                .unwrap()
                .verify(body, &header_map(&both))
                .unwrap();
            Webhook::new(&other.expose())
                .unwrap()
                .verify(body, &header_map(&both))
                .unwrap();

            // And a tampered body fails there too.
            assert!(wh.verify(b"{}", &header_map(&ours)).is_err());
        }

        #[test]
        fn we_verify_what_the_reference_crate_signs() {
            let secret = Secret::generate();
            let wh = Webhook::new(&secret.expose()).unwrap();
            let body = br#"{"type":"invoice.paid"}"#;
            let now = chrono::Utc::now().timestamp();
            let sig = wh.sign("msg_xyz", now, body).unwrap();
            Verifier::new(vec![secret])
                .verify("msg_xyz", &now.to_string(), &sig, body)
                .unwrap();
        }
    }
}
