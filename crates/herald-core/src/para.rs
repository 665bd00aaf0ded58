//! Para's webhook format: the payload and signature Para's own dispatcher sends, so
//! that receivers written for Para take Herald's deliveries unchanged.
//!
//! As read in Erudika/para: `Webhook.buildPayloadAsJSON` builds the payload,
//! a `HashMap` of `appid`, `event`, `items` (the objects, a list even for one) and
//! `timestamp` (milliseconds) written by Jackson without indentation (its hash order
//! puts the keys in that order); `Utils.hmacSHA256` signs that JSON string, keyed with
//! the UTF-8 bytes of the webhook's secret, as standard base64 with padding; and
//! `River.processWebhookPayload` POSTs it with `X-Webhook-Signature` and
//! `X-Para-Event` (the event name), as the body (`application/json`) or, when the
//! webhook's `urlEncoded` is set, as `payload=` and the JSON URL-encoded
//! (`application/x-www-form-urlencoded`; [`crate::format::form_body`]). The signature is
//! over the JSON either way, never over the form body.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use serde::Serialize;

use crate::actor::{Actor, Changes};
use crate::event::{AppId, Event, EventData, EventType};
use crate::signing::{Secret, SignatureError, SigningKey};

/// The signature header: standard base64 of HMAC-SHA256 over the payload JSON.
pub const HEADER_SIGNATURE: &str = "x-webhook-signature";
/// The event header: the event's type (Para's DAO method or custom event name).
pub const HEADER_EVENT: &str = "x-para-event";

/// Para's payload, borrowing from the event, in the order Para's `HashMap` writes its
/// four keys, then Herald's additions when the event has them.
#[derive(Serialize)]
struct Payload<'a> {
    appid: &'a AppId,
    event: &'a EventType,
    items: Items<'a>,
    timestamp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    actor: Option<&'a Actor>,
    #[serde(skip_serializing_if = "Option::is_none")]
    changes: Option<&'a Changes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'a str>,
}

/// `items`: the data as it is when it is a list, else a list of the data alone (as
/// Para wraps one object in `Collections.singletonList`).
enum Items<'a> {
    List(&'a EventData),
    One(&'a EventData),
}

impl Serialize for Items<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::List(data) => data.serialize(s),
            Self::One(data) => std::slice::from_ref(*data).serialize(s),
        }
    }
}

/// The payload JSON of `event` in Para's format: the bytes sent (or URL-encoded in the
/// form body) and signed. The same for every delivery and retry of the event.
pub fn payload_of(event: &Event) -> Bytes {
    let items = if event.data.as_json().trim_start().starts_with('[') {
        Items::List(&event.data)
    } else {
        Items::One(&event.data)
    };
    let payload = Payload {
        appid: &event.app_id,
        event: &event.event_type,
        items,
        timestamp: event.timestamp.timestamp_millis(),
        actor: event.actor.as_ref(),
        changes: event.changes.as_ref(),
        source: event.source.as_deref(),
    };
    // Strings, numbers and JSON text always serialize.
    Bytes::from(serde_json::to_vec(&payload).expect("a Para payload serializes"))
}

/// The HMAC key of `secret` as Para keys it: the secret's text (`whsec_…`, as Herald
/// shows it) in UTF-8, the string a Para receiver is configured with.
pub fn key_of(secret: &Secret) -> SigningKey {
    SigningKey::from_key_bytes(secret.expose().as_bytes())
}

/// The `X-Webhook-Signature` value of `payload`: `Base64(HmacSHA256(payload, secret))`.
pub fn signature(key: &SigningKey, payload: &[u8]) -> String {
    BASE64.encode(key.digest(payload))
}

/// The `X-Webhook-Signature` of `payload` with `secret` ([`key_of`], [`signature`]).
pub fn sign(secret: &Secret, payload: &[u8]) -> String {
    signature(&key_of(secret), payload)
}

/// Verifies a Para-format delivery as Para's documentation tells its receivers to: the
/// payload is the `payload` field of the body, URL-decoded, when `content_type` is the
/// form (`application/x-www-form-urlencoded`), else the body itself; the
/// `X-Webhook-Signature` value `signature` must be `Base64(HmacSHA256(payload, secret))`
/// for one of `secrets` (compared in constant time). Returns the index of the secret
/// that signed and the payload. Para's format signs no timestamp: a receiver guards
/// against replays by deduplicating on `webhook-id`.
///
/// # Errors
///
/// [`SignatureError::MissingHeader`] without a signature,
/// [`SignatureError::NoFormPayload`] for a form body without `payload`, and
/// [`SignatureError::NoMatchingParaSignature`] when no secret made the signature.
pub fn verify(
    secrets: &[Secret],
    content_type: &str,
    signature: &str,
    body: &[u8],
) -> Result<(usize, Vec<u8>), SignatureError> {
    use subtle::ConstantTimeEq;
    let signature = signature.trim();
    if signature.is_empty() {
        return Err(SignatureError::MissingHeader(HEADER_SIGNATURE));
    }
    let form = content_type
        .trim()
        .to_ascii_lowercase()
        .starts_with(crate::ContentType::Form.mime());
    let payload = if form {
        form_urlencoded::parse(body)
            .find(|(name, _)| name == "payload")
            .map(|(_, value)| value.into_owned().into_bytes())
            .ok_or(SignatureError::NoFormPayload)?
    } else {
        body.to_vec()
    };
    let given = BASE64
        .decode(signature)
        .map_err(|_| SignatureError::NoMatchingParaSignature)?;
    secrets
        .iter()
        .position(|secret| bool::from(key_of(secret).digest(&payload).ct_eq(given.as_slice())))
        .map(|index| (index, payload))
        .ok_or(SignatureError::NoMatchingParaSignature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventId, ObjectType};
    use chrono::TimeZone;

    fn event(data: serde_json::Value) -> Event {
        let mut e = Event::new(
            AppId::parse("scoold").unwrap(),
            EventType::parse("update").unwrap(),
            ObjectType::parse("tag").unwrap(),
            data,
        );
        e.id = EventId::parse("evt_1").unwrap();
        e.timestamp = chrono::Utc.timestamp_millis_opt(1_561_644_548_430).unwrap();
        e
    }

    /// The request in Para's documentation (Erudika/paraio.org,
    /// src/monolite/partials/011-webhooks.md): `Content-Length: 327` and this body.
    const DOCUMENTED: &str = r#"{"appid":"scoold","event":"update","items":[{"id":"tag:acpi","timestamp":1486848081865,"type":"tag","appid":"scoold","updated":1561644547996,"name":"ParaObject tag:acpi","votes":2,"version":0,"stored":true,"indexed":true,"cached":true,"tag":"acpi","count":1,"objectURI":"/tags/acpi","plural":"tags"}],"timestamp":1561644548430}"#;

    #[test]
    fn the_payload_is_byte_for_byte_the_one_paras_documentation_shows() {
        // The item's text as published (key order kept, as data travels).
        let item =
            &DOCUMENTED[DOCUMENTED.find("[{").unwrap() + 1..DOCUMENTED.find("}]").unwrap() + 1];
        let mut one = event(serde_json::Value::Null);
        one.data = serde_json::from_str(item).unwrap();
        assert_eq!(&payload_of(&one)[..], DOCUMENTED.as_bytes());
        assert_eq!(DOCUMENTED.len(), 327);
        let mut list = one.clone();
        list.data = serde_json::from_str(&format!(" [{item}]")).unwrap();
        assert_eq!(&payload_of(&list)[..], DOCUMENTED.as_bytes());
    }

    #[test]
    fn actor_and_changes_follow_paras_four_keys() {
        let e = event(serde_json::json!({"id": "t"})).with_context(
            Some(Actor::new("u_1".into(), Some("user".into()), Some("Ada".into())).unwrap()),
            crate::Changes::from_json(&serde_json::json!({"count": [0, 1]})).unwrap(),
        );
        assert_eq!(
            std::str::from_utf8(&payload_of(&e)).unwrap(),
            r#"{"appid":"scoold","event":"update","items":[{"id":"t"}],"timestamp":1561644548430,"actor":{"id":"u_1","type":"user","name":"Ada"},"changes":{"count":[0,1]}}"#
        );
    }

    #[test]
    fn deliveries_verify_in_both_content_types_and_changes_do_not() {
        let (secret, other) = (Secret::generate(), Secret::generate());
        let payload = payload_of(&event(serde_json::json!({"name": "Ada & Bob = 100%"})));
        let signature = sign(&secret, &payload);
        let json = "application/json";
        let form = "application/x-www-form-urlencoded";
        let form_body = crate::format::form_body(&payload);
        for (content_type, body) in [(json, &payload[..]), (form, &form_body[..])] {
            let keys = [other.clone(), secret.clone()];
            assert_eq!(
                verify(&keys, content_type, &signature, body),
                Ok((1, payload.to_vec())),
                "{content_type}"
            );
            assert_eq!(
                verify(&keys[..1], content_type, &signature, body),
                Err(SignatureError::NoMatchingParaSignature)
            );
            let mut changed = body.to_vec();
            let last = changed.len() - 2;
            changed[last] ^= 1;
            assert!(verify(&keys, content_type, &signature, &changed).is_err());
            assert_eq!(
                verify(&keys, content_type, " ", body),
                Err(SignatureError::MissingHeader(HEADER_SIGNATURE))
            );
        }
        assert_eq!(
            verify(&[secret], form, &signature, b"other=1"),
            Err(SignatureError::NoFormPayload)
        );
    }

    #[test]
    fn an_inbound_events_source_comes_last() {
        let mut e = event(serde_json::json!({"id": "t"}));
        e.source = Some("src_9".into());
        assert_eq!(
            std::str::from_utf8(&payload_of(&e)).unwrap(),
            r#"{"appid":"scoold","event":"update","items":[{"id":"t"}],"timestamp":1561644548430,"source":"src_9"}"#
        );
    }

    #[test]
    fn the_signature_is_javas_hmac_sha256_in_base64() {
        // Computed independently with Python, as Para's Utils.hmacSHA256 does in Java
        // (the key and message as UTF-8, the tag in standard base64 with padding):
        //   base64.b64encode(hmac.new(secret.encode(), payload.encode(), sha256).digest())
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            secret.expose(),
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "the text a receiver holds"
        );
        assert_eq!(
            sign(&secret, DOCUMENTED.as_bytes()),
            "yDddb7G/WcrVy45fX3VH7VkGW+pqthJfzE0Ou6Ue+Es="
        );
        assert_eq!(
            sign(
                &secret,
                br#"{"appid":"shop","event":"create","items":[{}],"timestamp":0}"#
            ),
            "W6KG6w8tlzv4gXKnPJvSa236nVWX8ElAqa8Vc9UjKhY="
        );
    }
}
