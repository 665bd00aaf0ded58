//! Inbound webhooks: *sources*, the verified front doors (`POST /in/{source_id}`) that
//! take other services' webhooks in and feed them to the same fan-out as published
//! events.
//!
//! A [`Source`] names how a request is authenticated ([`SourceAuth`]: none, basic,
//! API key, a generic HMAC, or a preset for Standard Webhooks, GitHub, Stripe or
//! Shopify), how its event type is chosen ([`EventTypeRule`]) and its object type.
//! Verification ([`verify`]) and body conversion ([`convert_body`]) are pure functions
//! of the request's bytes, so the API and its tests run the same code.

mod auth;
mod body;
mod verify;

pub use auth::{ApiKeyLocation, HmacAlgorithm, HmacEncoding, SourceAuth, DEFAULT_TOLERANCE_SECS};
pub use body::{convert_body, BodyError, BodyKind, Converted};
pub use verify::{verify, IncomingRequest, Rejection, Verified};

use std::fmt;

use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::{AppId, EventType, ObjectType, ValidationError};

/// Prefix of every source id.
pub const SOURCE_ID_PREFIX: &str = "src_";
/// Longest source name, in bytes.
pub const MAX_SOURCE_NAME: usize = 256;

/// A source's id: `src_` and 128 random bits as 32 hex digits. It is part of the
/// public ingest URL, so it is unguessable (not time-ordered like other ids).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SourceId(String);

impl SourceId {
    /// A fresh id from the operating system's random source.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(format!("{SOURCE_ID_PREFIX}{}", hex::encode(bytes)))
    }

    /// An id from outside (a URL path): `src_` and 32 lowercase hex digits, or `None`.
    pub fn parse(s: &str) -> Option<Self> {
        let hex = s.strip_prefix(SOURCE_ID_PREFIX)?;
        (hex.len() == 32 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| Self(s.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How the event type of an inbound request is chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "snake_case", deny_unknown_fields)]
pub enum EventTypeRule {
    /// Always this type.
    Fixed {
        /// The type.
        value: EventType,
    },
    /// The value of a request header, such as `X-GitHub-Event`.
    Header {
        /// The header's name.
        name: String,
    },
    /// A string in the JSON body (after conversion) at an RFC 6901 pointer, such as
    /// `/type`.
    JsonPointer {
        /// The pointer.
        pointer: String,
    },
}

impl EventTypeRule {
    /// The rule a preset implies when none is given: `X-GitHub-Event`, `X-Shopify-Topic`,
    /// or the body's `/type` (Stripe, Standard Webhooks); `None` for the other modes.
    pub fn default_for(auth: &SourceAuth) -> Option<Self> {
        match auth {
            SourceAuth::Github { .. } => Some(Self::Header {
                name: "x-github-event".into(),
            }),
            SourceAuth::Shopify { .. } => Some(Self::Header {
                name: "x-shopify-topic".into(),
            }),
            SourceAuth::Stripe { .. } | SourceAuth::StandardWebhooks { .. } => {
                Some(Self::JsonPointer {
                    pointer: "/type".into(),
                })
            }
            _ => None,
        }
    }

    /// Checks the rule's own fields.
    pub fn validate(&self) -> Result<(), ValidationError> {
        match self {
            Self::Fixed { .. } => Ok(()),
            Self::Header { name } => auth::check_header_name("event_type.name", name),
            Self::JsonPointer { pointer } => {
                if pointer.is_empty() || !pointer.starts_with('/') || pointer.len() > 256 {
                    return Err(ValidationError::BadCharacters {
                        what: "event_type.pointer",
                        value: pointer.clone(),
                        allowed: "a JSON pointer starting with '/', at most 256 bytes",
                    });
                }
                Ok(())
            }
        }
    }

    /// The event type of a request with `headers` and converted `data`: the chosen
    /// value with `/`, `-` and spaces turned into `.` or `_` (Shopify's
    /// `orders/create` becomes `orders.create`), or `None` when absent or still not a
    /// valid type.
    pub fn pick(&self, headers: &http::HeaderMap, data: &serde_json::Value) -> Option<EventType> {
        let raw = match self {
            Self::Fixed { value } => return Some(value.clone()),
            Self::Header { name } => headers.get(name.as_str())?.to_str().ok()?.to_owned(),
            Self::JsonPointer { pointer } => data.pointer(pointer)?.as_str()?.to_owned(),
        };
        let mapped: String = raw
            .trim()
            .chars()
            .map(|c| match c {
                '/' | ':' => '.',
                '-' | ' ' => '_',
                c => c,
            })
            .collect();
        EventType::parse(&mapped)
            .ok()
            .filter(|t| !t.is_operational())
    }
}

/// An inbound source of one app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// Its id, the last segment of its ingest URL.
    pub id: SourceId,
    /// The app whose webhooks its events go to.
    pub app_id: AppId,
    /// A name for people.
    pub name: String,
    /// How requests are authenticated (credentials included: never shown).
    pub auth: SourceAuth,
    /// How the event type is chosen.
    pub event_type: EventTypeRule,
    /// The object type of its events.
    pub object_type: ObjectType,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

impl Source {
    /// A new source with a fresh id; `event_type` defaults to the preset's rule.
    pub fn new(
        app_id: AppId,
        name: impl Into<String>,
        auth: SourceAuth,
        event_type: Option<EventTypeRule>,
        object_type: ObjectType,
    ) -> Result<Self, ValidationError> {
        let now = Utc::now();
        let event_type = match event_type.or_else(|| EventTypeRule::default_for(&auth)) {
            Some(rule) => rule,
            None => {
                return Err(ValidationError::Empty {
                    what: "event_type (required for this auth mode)",
                })
            }
        };
        let source = Self {
            id: SourceId::generate(),
            app_id,
            name: name.into(),
            auth,
            event_type,
            object_type,
            created_at: now,
            updated_at: now,
        };
        source.validate()?;
        Ok(source)
    }

    /// Checks every field.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.name.trim().is_empty() {
            return Err(ValidationError::Empty { what: "name" });
        }
        if self.name.len() > MAX_SOURCE_NAME {
            return Err(ValidationError::TooLong {
                what: "name",
                max: MAX_SOURCE_NAME,
            });
        }
        self.auth.validate()?;
        self.event_type.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_random_128_bit_hex_and_parse_back() {
        let (a, b) = (SourceId::generate(), SourceId::generate());
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 4 + 32);
        assert_eq!(SourceId::parse(a.as_str()), Some(a));
        for bad in [
            "",
            "src_",
            "src_XYZ",
            "sub_0123456789abcdef0123456789abcdef",
            "src_0123456789ABCDEF0123456789abcdef",
        ] {
            assert_eq!(SourceId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn presets_choose_their_event_type_and_values_are_mapped_to_valid_types() {
        let github = SourceAuth::Github { secret: "s".into() };
        let rule = EventTypeRule::default_for(&github).unwrap();
        let mut headers = http::HeaderMap::new();
        headers.insert("x-github-event", "pull_request".parse().unwrap());
        assert_eq!(
            rule.pick(&headers, &serde_json::Value::Null)
                .unwrap()
                .as_str(),
            "pull_request"
        );

        let shopify =
            EventTypeRule::default_for(&SourceAuth::Shopify { secret: "s".into() }).unwrap();
        headers.insert("x-shopify-topic", "orders/create".parse().unwrap());
        assert_eq!(
            shopify
                .pick(&headers, &serde_json::Value::Null)
                .unwrap()
                .as_str(),
            "orders.create"
        );

        let pointer = EventTypeRule::JsonPointer {
            pointer: "/type".into(),
        };
        let data = serde_json::json!({"type": "invoice.paid"});
        assert_eq!(
            pointer.pick(&headers, &data).unwrap().as_str(),
            "invoice.paid"
        );
        assert_eq!(
            pointer.pick(&headers, &serde_json::json!({"type": 3})),
            None
        );
        assert_eq!(
            pointer.pick(&headers, &serde_json::json!({"type": "herald.x"})),
            None,
            "operational types are Herald's own"
        );
        assert!(EventTypeRule::default_for(&SourceAuth::None).is_none());
    }

    #[test]
    fn a_source_needs_a_name_and_an_event_type_rule() {
        let app = AppId::parse("shop").unwrap();
        let object = ObjectType::parse("inbound").unwrap();
        assert!(Source::new(app.clone(), "", SourceAuth::None, None, object.clone()).is_err());
        assert!(Source::new(app.clone(), "n", SourceAuth::None, None, object.clone()).is_err());
        let s = Source::new(
            app,
            "gh",
            SourceAuth::Github { secret: "s".into() },
            None,
            object,
        )
        .unwrap();
        assert!(s.id.as_str().starts_with("src_"));
    }
}

/// No body, header or query makes verification or conversion panic.
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn auths() -> Vec<SourceAuth> {
        vec![
            SourceAuth::None,
            SourceAuth::Basic {
                username: "u".into(),
                password: "p".into(),
            },
            SourceAuth::ApiKey {
                location: ApiKeyLocation::Header,
                name: "x-key".into(),
                key: "k".into(),
            },
            SourceAuth::ApiKey {
                location: ApiKeyLocation::Query,
                name: "key".into(),
                key: "k".into(),
            },
            SourceAuth::Hmac {
                header: "x-sig".into(),
                algorithm: HmacAlgorithm::Sha1,
                encoding: HmacEncoding::Base64,
                prefix: Some("sha1=".into()),
                secret: "s".into(),
            },
            SourceAuth::StandardWebhooks {
                secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
                tolerance_secs: 300,
            },
            SourceAuth::Github { secret: "s".into() },
            SourceAuth::Stripe {
                secret: "whsec_s".into(),
                tolerance_secs: 300,
            },
            SourceAuth::Shopify { secret: "s".into() },
        ]
    }

    const NAMES: [&str; 12] = [
        "authorization",
        "x-key",
        "x-sig",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "x-hub-signature-256",
        "x-github-delivery",
        "stripe-signature",
        "x-shopify-hmac-sha256",
        "x-shopify-webhook-id",
        "content-type",
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn nothing_panics(
            body in proptest::collection::vec(any::<u8>(), 0..512),
            values in proptest::collection::vec((0..NAMES.len(), proptest::collection::vec(any::<u8>(), 0..64)), 0..8),
            query in proptest::option::of(".{0,64}"),
            content_type in proptest::option::of(prop_oneof![
                Just("application/json".to_owned()), Just("text/xml".to_owned()),
                Just("application/x-www-form-urlencoded".to_owned()),
                Just("multipart/form-data; boundary=b".to_owned()), ".{0,40}",
            ]),
            now in any::<i64>(),
        ) {
            let mut headers = http::HeaderMap::new();
            for (i, v) in &values {
                if let Ok(v) = http::HeaderValue::from_bytes(v) {
                    headers.append(NAMES[*i], v);
                }
            }
            let req = IncomingRequest { headers: &headers, query: query.as_deref(), body: &body, now };
            for auth in auths() {
                let _ = verify(&auth, &req);
            }
            if let Ok(c) = convert_body(content_type.as_deref(), Some("f"), &body) {
                let _ = EventTypeRule::JsonPointer { pointer: "/type".into() }.pick(&headers, &c.data);
            }
            let mut xml = b"<a x='1'>".to_vec();
            xml.extend_from_slice(&body);
            let _ = convert_body(Some("application/xml"), None, &xml);
            let mut multipart = b"--b\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n".to_vec();
            multipart.extend_from_slice(&body);
            let _ = convert_body(Some("multipart/form-data; boundary=b"), None, &multipart);
        }
    }
}
