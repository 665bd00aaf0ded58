//! How a webhook's deliveries are shaped: the payload format (the Standard Webhooks
//! envelope, or what Para's dispatcher sends) and the content type (JSON, or the JSON
//! in a form field `payload=`), and the body of an event in each shape, built once per
//! (event, shape) and shared by every delivery in that shape.

use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::envelope::Envelope;
use crate::event::{Event, EventType};
use crate::para;

/// What a webhook's payload looks like and how it is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadFormat {
    /// The Standard Webhooks envelope (`id`, `type`, `object_type`, `timestamp`,
    /// `data`), signed in `webhook-signature`.
    #[default]
    Standard,
    /// What Para's webhook dispatcher sends (`appid`, `event`, `items`, `timestamp`),
    /// signed in `X-Webhook-Signature` ([`crate::para`]).
    Para,
}

impl PayloadFormat {
    /// The content type a webhook of this format gets when none is given: JSON for the
    /// standard format, the form for Para's (its documented default, `urlEncoded: true`).
    pub fn default_content_type(self) -> ContentType {
        match self {
            Self::Standard => ContentType::Json,
            Self::Para => ContentType::Form,
        }
    }

    /// Whether this is the default, standard format (left out of stored items).
    pub fn is_standard(&self) -> bool {
        *self == Self::Standard
    }
}

/// How the payload travels in the request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContentType {
    /// The payload is the body: `application/json`.
    #[default]
    Json,
    /// The body is `payload=` and the payload URL-encoded:
    /// `application/x-www-form-urlencoded` (Para's `urlEncoded`, GitHub's form
    /// content type).
    Form,
}

impl ContentType {
    /// The `Content-Type` header value.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Form => "application/x-www-form-urlencoded",
        }
    }

    /// Whether this is the default, JSON (left out of stored items).
    pub fn is_json(&self) -> bool {
        *self == Self::Json
    }
}

/// The names of an enum's values as the API spells them: `NAMES`, `as_str`, `Display`
/// and `FromStr` (whose error names the field and the values it takes).
macro_rules! named {
    ($ty:ident, $field:literal, $($variant:ident = $name:literal),+) => {
        impl $ty {
            /// Every value, as the API spells them.
            pub const NAMES: [&'static str; [$($name),+].len()] = [$($name),+];

            /// The value's name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name),+
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $ty {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok(Self::$variant),)+
                    other => Err(format!(
                        "{} must be {}, not {other:?}",
                        $field,
                        Self::NAMES.map(|n| format!("{n:?}")).join(" or ")
                    )),
                }
            }
        }
    };
}

named!(
    PayloadFormat,
    "format",
    Standard = "standard",
    Para = "para"
);
named!(ContentType, "content_type", Json = "json", Form = "form");

/// `payload=` and `json` URL-encoded as Java's `URLEncoder.encode(s, "UTF-8")` does
/// (Para's `Utils.urlEncode`): `a`–`z`, `A`–`Z`, `0`–`9`, `.`, `-`, `*` and `_` as
/// they are, a space as `+`, every other byte as `%XX` (upper-case hex).
pub fn form_body(json: &[u8]) -> Bytes {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = Vec::with_capacity(8 + json.len() + json.len() / 2);
    out.extend_from_slice(b"payload=");
    for &b in json {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'*' | b'_' => out.push(b),
            b' ' => out.push(b'+'),
            _ => out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]),
        }
    }
    Bytes::from(out)
}

/// What a Para-format body adds: the payload JSON Para signs (inside the form body,
/// when the body is a form) and the event name of `X-Para-Event`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParaParts {
    /// The payload JSON: the bytes `X-Webhook-Signature` signs.
    pub payload: Bytes,
    /// The `X-Para-Event` header.
    pub event: EventType,
}

/// The body of one delivery: the bytes sent and, for Para's format, what it signs.
/// Cloning one shares its bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Body {
    /// The request body, exactly as sent.
    pub sent: Bytes,
    /// Para's format only.
    pub para: Option<ParaParts>,
}

impl From<Bytes> for Body {
    /// A standard-format body: the bytes sent are the bytes signed.
    fn from(sent: Bytes) -> Self {
        Self { sent, para: None }
    }
}

impl Body {
    /// The body of `event` in `format` and `content_type`.
    pub fn of(event: &Event, format: PayloadFormat, content_type: ContentType) -> Self {
        match format {
            PayloadFormat::Standard => {
                let json = Envelope::body_of(event);
                match content_type {
                    ContentType::Json => Self::from(json),
                    ContentType::Form => Self::from(form_body(&json)),
                }
            }
            PayloadFormat::Para => {
                let payload = para::payload_of(event);
                let sent = match content_type {
                    ContentType::Json => payload.clone(),
                    ContentType::Form => form_body(&payload),
                };
                Self {
                    sent,
                    para: Some(ParaParts {
                        payload,
                        event: event.event_type.clone(),
                    }),
                }
            }
        }
    }
}

/// The bodies of one event, each built the first time a delivery in its shape needs it
/// and shared by the others: an event fanned out to a thousand standard JSON webhooks
/// and one Para webhook builds two bodies.
#[derive(Debug, Default)]
pub struct Bodies {
    built: [Option<Body>; 4],
}

impl Bodies {
    /// The body of `event` in `format` and `content_type` (the same event every call).
    pub fn get(&mut self, event: &Event, format: PayloadFormat, content_type: ContentType) -> Body {
        let slot = match (format, content_type) {
            (PayloadFormat::Standard, ContentType::Json) => 0,
            (PayloadFormat::Standard, ContentType::Form) => 1,
            (PayloadFormat::Para, ContentType::Json) => 2,
            (PayloadFormat::Para, ContentType::Form) => 3,
        };
        self.built[slot]
            .get_or_insert_with(|| Body::of(event, format, content_type))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{AppId, ObjectType};

    #[test]
    fn the_form_body_encodes_as_javas_url_encoder() {
        // Expected values computed independently with Python:
        //   "payload=" + urllib.parse.quote_plus(s, safe="*").replace("~", "%7E")
        // (Java's URLEncoder keeps a-zA-Z0-9 . - * _, and encodes '~', which Python keeps).
        for (json, expected) in [
            (r#"{"a":1}"#, "payload=%7B%22a%22%3A1%7D"),
            (
                r#"{"name":"Ada Lovelace","url":"https://x.io/a?b=c&d=e~f"}"#,
                "payload=%7B%22name%22%3A%22Ada+Lovelace%22%2C%22url%22%3A%22https%3A%2F%2Fx.io%2Fa%3Fb%3Dc%26d%3De%7Ef%22%7D",
            ),
            ("a.b-c*d_e+f", "payload=a.b-c*d_e%2Bf"),
            ("é☃🦀\n", "payload=%C3%A9%E2%98%83%F0%9F%A6%80%0A"),
            ("", "payload="),
        ] {
            assert_eq!(&form_body(json.as_bytes())[..], expected.as_bytes(), "{json}");
        }
    }

    #[test]
    fn formats_and_content_types_read_and_print_as_the_api_spells_them() {
        for name in PayloadFormat::NAMES {
            assert_eq!(name.parse::<PayloadFormat>().unwrap().to_string(), name);
        }
        for name in ContentType::NAMES {
            assert_eq!(name.parse::<ContentType>().unwrap().to_string(), name);
        }
        assert!("Para".parse::<PayloadFormat>().is_err());
        assert!("xml".parse::<ContentType>().is_err());
        assert_eq!(PayloadFormat::default(), PayloadFormat::Standard);
        assert_eq!(
            PayloadFormat::Para.default_content_type(),
            ContentType::Form
        );
        assert_eq!(
            PayloadFormat::Standard.default_content_type(),
            ContentType::Json
        );
        assert_eq!(
            ContentType::Form.mime(),
            "application/x-www-form-urlencoded"
        );
    }

    #[test]
    fn each_shape_has_its_body_built_once() {
        let event = Event::new(
            AppId::parse("shop").unwrap(),
            EventType::parse("update").unwrap(),
            ObjectType::parse("user").unwrap(),
            serde_json::json!({"id": "42", "name": "Ada Lovelace"}),
        );
        let json = Body::of(&event, PayloadFormat::Standard, ContentType::Json);
        assert_eq!(json.sent, Envelope::body_of(&event));
        assert_eq!(json.para, None);
        let form = Body::of(&event, PayloadFormat::Standard, ContentType::Form);
        assert_eq!(form.sent, form_body(&json.sent));
        let para_json = Body::of(&event, PayloadFormat::Para, ContentType::Json);
        let parts = para_json.para.clone().unwrap();
        assert_eq!(para_json.sent, parts.payload);
        assert_eq!(parts.event.as_str(), "update");
        let para_form = Body::of(&event, PayloadFormat::Para, ContentType::Form);
        assert_eq!(para_form.sent, form_body(&parts.payload));
        assert_eq!(para_form.para.unwrap().payload, parts.payload);

        let mut bodies = Bodies::default();
        let first = bodies.get(&event, PayloadFormat::Standard, ContentType::Json);
        let again = bodies.get(&event, PayloadFormat::Standard, ContentType::Json);
        assert_eq!(first, json);
        assert_eq!(
            first.sent.as_ptr(),
            again.sent.as_ptr(),
            "the same bytes, shared"
        );
        assert_eq!(
            bodies
                .get(&event, PayloadFormat::Para, ContentType::Form)
                .sent,
            form_body(&parts.payload)
        );
    }
}
