//! The sealed text form, version 1:
//!
//! ```text
//! hs1:<key id>.<encrypted data key>.<nonce>.<ciphertext and tag>
//! ```
//!
//! each part base64url without padding (so none contains `.` or `:`). The ciphertext is
//! AES-256-GCM of the UTF-8 plaintext under the data key, with the caller's context as
//! additional authenticated data; the 16-byte tag is at its end.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;

use crate::SealError;

/// How every sealed value of this version starts.
pub const PREFIX: &str = "hs1:";

/// Bytes of an AES-GCM nonce.
pub(crate) const NONCE_LEN: usize = 12;
/// Bytes of an AES-GCM tag.
const TAG_LEN: usize = 16;

/// A sealed value, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The master key's id.
    pub key_id: String,
    /// The data key, encrypted under the master key.
    pub encrypted_key: Vec<u8>,
    /// The AES-GCM nonce.
    pub nonce: [u8; NONCE_LEN],
    /// The ciphertext, tag included.
    pub ciphertext: Vec<u8>,
}

impl Envelope {
    /// Whether `text` looks like a sealed value (of any version).
    pub fn is_sealed(text: &str) -> bool {
        text.starts_with("hs") && text.find(':').is_some_and(|i| i <= 6)
    }

    /// The text form.
    pub fn to_text(&self) -> String {
        format!(
            "{PREFIX}{}.{}.{}.{}",
            B64.encode(&self.key_id),
            B64.encode(&self.encrypted_key),
            B64.encode(self.nonce),
            B64.encode(&self.ciphertext)
        )
    }

    /// Parses the text form; [`SealError::Malformed`] for anything else (another
    /// version included).
    pub fn parse(text: &str) -> Result<Self, SealError> {
        let malformed = |why: &str| SealError::Malformed(why.to_owned());
        let body = text.strip_prefix(PREFIX).ok_or_else(|| {
            if Self::is_sealed(text) {
                malformed("a version this code does not read")
            } else {
                malformed("no hs1: prefix")
            }
        })?;
        let parts: Vec<&str> = body.split('.').collect();
        let [key_id, encrypted_key, nonce, ciphertext] = parts[..] else {
            return Err(malformed("expected four parts"));
        };
        let decode = |part: &str, what: &str| {
            B64.decode(part)
                .map_err(|_| malformed(&format!("{what} is not base64url")))
        };
        let key_id = String::from_utf8(decode(key_id, "key id")?)
            .map_err(|_| malformed("key id is not UTF-8"))?;
        let nonce: [u8; NONCE_LEN] = decode(nonce, "nonce")?
            .try_into()
            .map_err(|_| malformed("nonce is not 12 bytes"))?;
        let ciphertext = decode(ciphertext, "ciphertext")?;
        if key_id.is_empty() || ciphertext.len() < TAG_LEN {
            return Err(malformed("empty key id or ciphertext shorter than its tag"));
        }
        Ok(Self {
            key_id,
            encrypted_key: decode(encrypted_key, "encrypted data key")?,
            nonce,
            ciphertext,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Envelope {
        Envelope {
            key_id: "arn:aws:kms:eu-west-1:123456789012:key/abc".into(),
            encrypted_key: vec![1, 2, 3],
            nonce: [7; NONCE_LEN],
            ciphertext: vec![9; 20],
        }
    }

    #[test]
    fn the_text_form_round_trips_and_is_versioned() {
        let e = sample();
        let text = e.to_text();
        assert!(text.starts_with("hs1:"), "{text}");
        assert_eq!(text.matches('.').count(), 3);
        assert_eq!(Envelope::parse(&text).unwrap(), e);
        assert!(Envelope::is_sealed(&text));
    }

    #[test]
    fn other_versions_and_garbage_are_refused() {
        let text = sample().to_text();
        let v2 = text.replacen("hs1:", "hs2:", 1);
        assert!(Envelope::is_sealed(&v2));
        assert_eq!(
            Envelope::parse(&v2),
            Err(SealError::Malformed(
                "a version this code does not read".into()
            ))
        );
        for bad in [
            "whsec_abc",
            "",
            "hs1:",
            "hs1:a.b.c",
            "hs1:a.b.c.d.e",
            "hs1:!!.AQ.BwcHBwcHBwcHBwcH.CQkJCQkJCQkJCQkJCQkJCQkJ",
        ] {
            assert!(
                matches!(Envelope::parse(bad), Err(SealError::Malformed(_))),
                "{bad}"
            );
        }
        assert!(!Envelope::is_sealed("whsec_abc"));
    }
}
