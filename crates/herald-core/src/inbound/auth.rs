//! How a source authenticates requests: [`SourceAuth`] and its settings.

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// Default timestamp tolerance of the timestamped presets (Standard Webhooks, Stripe):
/// five minutes, as both senders' own libraries use.
pub const DEFAULT_TOLERANCE_SECS: u32 = 300;
/// Longest credential (password, key, secret), in bytes.
pub const MAX_CREDENTIAL: usize = 1024;

/// The hash of a generic HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HmacAlgorithm {
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SHA1, for legacy senders.
    Sha1,
}

/// How a generic HMAC signature is written in its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HmacEncoding {
    /// Lowercase or uppercase hex digits.
    Hex,
    /// Standard base64 (padded or not).
    Base64,
}

/// Where an API key is presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiKeyLocation {
    /// In a request header.
    Header,
    /// In a query parameter of the ingest URL.
    Query,
}

/// A source's authentication: a mode and its credentials. The credentials (`password`,
/// `key`, `secret`) are write-only: the API masks them, the store seals them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceAuth {
    /// Anyone who knows the URL.
    None,
    /// HTTP Basic authentication.
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
    /// A static key in a header or query parameter.
    ApiKey {
        /// Header or query parameter.
        #[serde(rename = "in")]
        location: ApiKeyLocation,
        /// The header's or parameter's name.
        name: String,
        /// The key.
        key: String,
    },
    /// An HMAC of the raw body in a header.
    Hmac {
        /// The header carrying the signature.
        header: String,
        /// The hash.
        algorithm: HmacAlgorithm,
        /// How the signature is written.
        encoding: HmacEncoding,
        /// Text before the signature, such as `sha256=`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prefix: Option<String>,
        /// The shared secret (its UTF-8 bytes are the HMAC key).
        secret: String,
    },
    /// Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
    StandardWebhooks {
        /// The `whsec_…` secret.
        secret: String,
        /// Seconds a timestamp may be off.
        #[serde(default = "default_tolerance")]
        tolerance_secs: u32,
    },
    /// GitHub (`X-Hub-Signature-256`, `X-GitHub-Delivery`).
    Github {
        /// The webhook's secret.
        secret: String,
    },
    /// Stripe (`Stripe-Signature`; the event's `id` is its delivery id).
    Stripe {
        /// The endpoint's `whsec_…` signing secret.
        secret: String,
        /// Seconds a timestamp may be old.
        #[serde(default = "default_tolerance")]
        tolerance_secs: u32,
    },
    /// Shopify (`X-Shopify-Hmac-Sha256`, `X-Shopify-Webhook-Id`).
    Shopify {
        /// The app's client secret.
        secret: String,
    },
}

fn default_tolerance() -> u32 {
    DEFAULT_TOLERANCE_SECS
}

/// The mask credentials are shown as.
pub const MASK: &str = crate::credential_headers::MASK;

impl SourceAuth {
    /// The mode's name, as the API spells it.
    pub fn mode(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Basic { .. } => "basic",
            Self::ApiKey { .. } => "api_key",
            Self::Hmac { .. } => "hmac",
            Self::StandardWebhooks { .. } => "standard_webhooks",
            Self::Github { .. } => "github",
            Self::Stripe { .. } => "stripe",
            Self::Shopify { .. } => "shopify",
        }
    }

    /// The credentials, for reading or replacing in place.
    fn credentials_mut(&mut self) -> Vec<&mut String> {
        match self {
            Self::None => vec![],
            Self::Basic { password, .. } => vec![password],
            Self::ApiKey { key, .. } => vec![key],
            Self::Hmac { secret, .. }
            | Self::StandardWebhooks { secret, .. }
            | Self::Github { secret }
            | Self::Stripe { secret, .. }
            | Self::Shopify { secret } => vec![secret],
        }
    }

    /// The same settings with every credential replaced by [`MASK`], for showing.
    pub fn masked(&self) -> Self {
        let mut out = self.clone();
        for c in out.credentials_mut() {
            *c = MASK.to_owned();
        }
        out
    }

    /// Keeps `stored`'s credentials where this (new) value sends back [`MASK`] in the
    /// same mode, so an update that echoes a masked response does not overwrite them.
    pub fn unmask(mut self, stored: &Self) -> Self {
        if self.mode() == stored.mode() {
            let mut old = stored.clone();
            for (new, old) in self
                .credentials_mut()
                .into_iter()
                .zip(old.credentials_mut())
            {
                if new == MASK {
                    new.clone_from(old);
                }
            }
        }
        self
    }

    /// The seconds a timestamped scheme's timestamps may be off, if it has them.
    pub fn tolerance_secs(&self) -> Option<u32> {
        match self {
            Self::StandardWebhooks { tolerance_secs, .. } | Self::Stripe { tolerance_secs, .. } => {
                Some(*tolerance_secs)
            }
            _ => None,
        }
    }

    /// Checks every field: names are header tokens, credentials 1 to
    /// [`MAX_CREDENTIAL`] bytes and not the mask, tolerances 1 s to 1 day, a Standard
    /// Webhooks secret decodes.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let mut copy = self.clone();
        for c in copy.credentials_mut() {
            if c.is_empty() || c == MASK {
                return Err(ValidationError::Empty {
                    what: "auth credential (password, key or secret)",
                });
            }
            if c.len() > MAX_CREDENTIAL {
                return Err(ValidationError::TooLong {
                    what: "auth credential",
                    max: MAX_CREDENTIAL,
                });
            }
        }
        match self {
            Self::Basic { username, .. }
                if username.is_empty() || username.contains(':') || username.len() > 256 =>
            {
                return Err(ValidationError::BadCharacters {
                    what: "auth.username",
                    value: username.clone(),
                    allowed: "1 to 256 bytes without ':'",
                });
            }
            Self::ApiKey { name, location, .. } => match location {
                ApiKeyLocation::Header => check_header_name("auth.name", name)?,
                ApiKeyLocation::Query => {
                    if name.is_empty() || name.len() > 128 {
                        return Err(ValidationError::Empty {
                            what: "auth.name (1 to 128 bytes)",
                        });
                    }
                }
            },
            Self::Hmac { header, prefix, .. } => {
                check_header_name("auth.header", header)?;
                if prefix.as_ref().is_some_and(|p| p.len() > 64) {
                    return Err(ValidationError::TooLong {
                        what: "auth.prefix",
                        max: 64,
                    });
                }
            }
            Self::StandardWebhooks { secret, .. }
                if super::verify::standard_key(secret).is_none() =>
            {
                return Err(ValidationError::BadCharacters {
                    what: "auth.secret",
                    value: MASK.to_owned(),
                    allowed: "a Standard Webhooks secret: `whsec_` and base64",
                });
            }
            _ => {}
        }
        if let Some(t) = self.tolerance_secs() {
            if !(1..=86_400).contains(&t) {
                return Err(ValidationError::OutOfRange {
                    what: "auth.tolerance_secs",
                    min: 1,
                    max: 86_400,
                });
            }
        }
        Ok(())
    }
}

/// Checks that `name` is an HTTP header name (a token of at most 128 bytes).
pub(crate) fn check_header_name(what: &'static str, name: &str) -> Result<(), ValidationError> {
    if name.is_empty() || name.len() > 128 || http::HeaderName::from_bytes(name.as_bytes()).is_err()
    {
        return Err(ValidationError::BadCharacters {
            what,
            value: name.to_owned(),
            allowed: "an HTTP header name of at most 128 bytes",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_masked_and_a_masked_echo_keeps_them() {
        let stored = SourceAuth::Basic {
            username: "u".into(),
            password: "hunter2".into(),
        };
        let shown = stored.masked();
        assert!(!format!("{shown:?}").contains("hunter2"));
        assert_eq!(shown.clone().unmask(&stored), stored);
        let other = SourceAuth::Github {
            secret: MASK.into(),
        };
        assert!(
            other.unmask(&stored).validate().is_err(),
            "a mask is no secret in another mode"
        );
    }

    #[test]
    fn the_wire_form_is_tagged_by_mode() {
        let auth: SourceAuth = serde_json::from_value(serde_json::json!({
            "mode": "hmac", "header": "X-Sig", "algorithm": "sha1", "encoding": "base64", "secret": "s"
        }))
        .unwrap();
        assert!(auth.validate().is_ok());
        let stripe: SourceAuth =
            serde_json::from_value(serde_json::json!({"mode": "stripe", "secret": "whsec_x"}))
                .unwrap();
        assert_eq!(stripe.tolerance_secs(), Some(DEFAULT_TOLERANCE_SECS));
        assert!(serde_json::from_value::<SourceAuth>(serde_json::json!({"mode": "nope"})).is_err());
        let bad = SourceAuth::StandardWebhooks {
            secret: "whsec_!!".into(),
            tolerance_secs: 300,
        };
        assert!(bad.validate().is_err());
    }
}
