//! Verifying an inbound request against its source's [`SourceAuth`]: pure, constant
//! time in the credentials (`subtle` for keys and passwords, `hmac`'s `verify_slice`
//! for signatures), over the request's original bytes.

use std::time::Duration;

use base64::engine::general_purpose::{STANDARD as BASE64, STANDARD_NO_PAD as BASE64_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use subtle::ConstantTimeEq;

use super::auth::{ApiKeyLocation, HmacAlgorithm, HmacEncoding, SourceAuth};
use crate::signing::{SignatureError, Verifier};
use crate::Secret;

/// What verification looks at: the request's headers, its query string (without
/// `?`) and its body exactly as received.
#[derive(Debug, Clone, Copy)]
pub struct IncomingRequest<'a> {
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The query string, if any.
    pub query: Option<&'a str>,
    /// The raw body.
    pub body: &'a [u8],
    /// The time to check timestamps against, in Unix seconds.
    pub now: i64,
}

/// A request that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The sender's delivery id, where the scheme has one (`webhook-id`,
    /// `X-GitHub-Delivery`, the Stripe event's `id`, `X-Shopify-Webhook-Id`): what
    /// duplicates are recognised by.
    pub delivery_id: Option<String>,
}

/// Why a request did not verify. The ingest answers every one with a bare 401; the
/// reason goes only to the source's request log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// A header or parameter the scheme needs is absent or not text.
    #[error("missing or unreadable {0}")]
    Missing(&'static str),
    /// The credentials or signature do not match.
    #[error("credentials or signature do not match")]
    Mismatch,
    /// The signed timestamp is outside the tolerance (stale or replayed).
    #[error("timestamp outside the tolerance of {0} s")]
    Stale(u32),
}

/// Longest sender delivery id kept for deduplication.
const MAX_DELIVERY_ID: usize = 200;

/// Verifies `req` against `auth`.
pub fn verify(auth: &SourceAuth, req: &IncomingRequest<'_>) -> Result<Verified, Rejection> {
    let none = Verified { delivery_id: None };
    match auth {
        SourceAuth::None => Ok(none),
        SourceAuth::Basic { username, password } => {
            let value =
                header(req.headers, "authorization").ok_or(Rejection::Missing("Authorization"))?;
            let (scheme, b64) = value.split_once(' ').ok_or(Rejection::Mismatch)?;
            if !scheme.eq_ignore_ascii_case("basic") {
                return Err(Rejection::Mismatch);
            }
            let given = BASE64.decode(b64.trim()).map_err(|_| Rejection::Mismatch)?;
            let expected = format!("{username}:{password}");
            equal(&given, expected.as_bytes())
                .then_some(none)
                .ok_or(Rejection::Mismatch)
        }
        SourceAuth::ApiKey {
            location,
            name,
            key,
        } => {
            let given = match location {
                ApiKeyLocation::Header => header(req.headers, name).map(str::to_owned),
                ApiKeyLocation::Query => req.query.and_then(|q| {
                    form_urlencoded::parse(q.as_bytes())
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.into_owned())
                }),
            }
            .ok_or(Rejection::Missing("API key"))?;
            equal(given.as_bytes(), key.as_bytes())
                .then_some(none)
                .ok_or(Rejection::Mismatch)
        }
        SourceAuth::Hmac {
            header: name,
            algorithm,
            encoding,
            prefix,
            secret,
        } => {
            let signed = BodyHmac {
                header: name,
                prefix: prefix.as_deref(),
                algorithm: *algorithm,
                encoding: *encoding,
            };
            signed.check(secret, req)?;
            Ok(none)
        }
        SourceAuth::Github { secret } => {
            let signed = BodyHmac {
                header: "x-hub-signature-256",
                prefix: Some("sha256="),
                algorithm: HmacAlgorithm::Sha256,
                encoding: HmacEncoding::Hex,
            };
            signed.check(secret, req)?;
            Ok(delivered(header(req.headers, "x-github-delivery")))
        }
        SourceAuth::Shopify { secret } => {
            let signed = BodyHmac {
                header: "x-shopify-hmac-sha256",
                prefix: None,
                algorithm: HmacAlgorithm::Sha256,
                encoding: HmacEncoding::Base64,
            };
            signed.check(secret, req)?;
            Ok(delivered(header(req.headers, "x-shopify-webhook-id")))
        }
        SourceAuth::Stripe {
            secret,
            tolerance_secs,
        } => verify_stripe(secret, *tolerance_secs, req),
        SourceAuth::StandardWebhooks {
            secret,
            tolerance_secs,
        } => {
            let key = standard_key(secret).ok_or(Rejection::Mismatch)?;
            let id = header(req.headers, "webhook-id").ok_or(Rejection::Missing("webhook-id"))?;
            let ts = header(req.headers, "webhook-timestamp")
                .ok_or(Rejection::Missing("webhook-timestamp"))?;
            let sig = header(req.headers, "webhook-signature")
                .ok_or(Rejection::Missing("webhook-signature"))?;
            Verifier::new(vec![key])
                .with_tolerance(Duration::from_secs(u64::from(*tolerance_secs)))
                .verify_at(id, ts, sig, req.body, req.now)
                .map_err(|e| match e {
                    SignatureError::TimestampOutOfTolerance { .. } => {
                        Rejection::Stale(*tolerance_secs)
                    }
                    SignatureError::MissingHeader(h) => Rejection::Missing(h),
                    _ => Rejection::Mismatch,
                })?;
            Ok(delivered(Some(id)))
        }
    }
}

/// An HMAC of the raw body in one header: the generic mode, GitHub's and Shopify's.
struct BodyHmac<'a> {
    header: &'a str,
    prefix: Option<&'a str>,
    algorithm: HmacAlgorithm,
    encoding: HmacEncoding,
}

impl BodyHmac<'_> {
    fn check(&self, secret: &str, req: &IncomingRequest<'_>) -> Result<(), Rejection> {
        let value =
            header(req.headers, self.header).ok_or(Rejection::Missing("signature header"))?;
        let value = match self.prefix {
            Some(p) => value.strip_prefix(p).ok_or(Rejection::Mismatch)?,
            None => value,
        };
        let signature = decode(value.trim(), self.encoding).ok_or(Rejection::Mismatch)?;
        check_hmac(self.algorithm, secret.as_bytes(), &[req.body], &signature)
    }
}

/// The key of a Standard Webhooks secret (`whsec_` and base64), if it is one.
pub(crate) fn standard_key(secret: &str) -> Option<Secret> {
    Secret::parse(secret).ok()
}

/// Stripe's scheme: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=…]` over `{t}.{body}`
/// with HMAC-SHA256 keyed by the whole `whsec_…` text; the event's `id` is the
/// delivery id.
fn verify_stripe(
    secret: &str,
    tolerance: u32,
    req: &IncomingRequest<'_>,
) -> Result<Verified, Rejection> {
    let value =
        header(req.headers, "stripe-signature").ok_or(Rejection::Missing("Stripe-Signature"))?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for item in value.split(',') {
        match item.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", s)) => signatures.extend(decode(s, HmacEncoding::Hex)),
            _ => {}
        }
    }
    let t = timestamp.ok_or(Rejection::Missing("Stripe-Signature timestamp"))?;
    let signed_prefix = format!("{t}.");
    let matched = signatures.iter().any(|s| {
        check_hmac(
            HmacAlgorithm::Sha256,
            secret.as_bytes(),
            &[signed_prefix.as_bytes(), req.body],
            s,
        )
        .is_ok()
    });
    if !matched {
        return Err(Rejection::Mismatch);
    }
    if req.now.saturating_sub(t).unsigned_abs() > u64::from(tolerance) {
        return Err(Rejection::Stale(tolerance));
    }
    let id = serde_json::from_slice::<serde_json::Value>(req.body)
        .ok()
        .and_then(|v| v.get("id").and_then(|id| id.as_str()).map(str::to_owned));
    Ok(delivered(id.as_deref()))
}

/// A header's value as text.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok()
}

/// A delivery id, if present, not empty and not too long.
fn delivered(id: Option<&str>) -> Verified {
    Verified {
        delivery_id: id
            .map(str::trim)
            .filter(|id| !id.is_empty() && id.len() <= MAX_DELIVERY_ID)
            .map(str::to_owned),
    }
}

/// Constant-time equality (the lengths may leak; the contents do not).
fn equal(a: &[u8], b: &[u8]) -> bool {
    bool::from(a.ct_eq(b))
}

fn decode(text: &str, encoding: HmacEncoding) -> Option<Vec<u8>> {
    match encoding {
        HmacEncoding::Hex => hex::decode(text).ok(),
        HmacEncoding::Base64 => BASE64
            .decode(text)
            .or_else(|_| BASE64_NO_PAD.decode(text))
            .ok(),
    }
}

/// Checks `signature` against the HMAC of `parts` (concatenated) under `key`, with
/// `hmac`'s constant-time `verify_slice`.
fn check_hmac(
    algorithm: HmacAlgorithm,
    key: &[u8],
    parts: &[&[u8]],
    signature: &[u8],
) -> Result<(), Rejection> {
    fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]], signature: &[u8]) -> bool {
        let Ok(mut mac) = <M as hmac::digest::KeyInit>::new_from_slice(key) else {
            return false;
        };
        for p in parts {
            mac.update(p);
        }
        mac.verify_slice(signature).is_ok()
    }
    let ok = match algorithm {
        HmacAlgorithm::Sha256 => run::<Hmac<sha2::Sha256>>(key, parts, signature),
        HmacAlgorithm::Sha1 => run::<Hmac<sha1::Sha1>>(key, parts, signature),
    };
    ok.then_some(()).ok_or(Rejection::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An HMAC made with the `hmac` crate directly, as a sender would.
    fn mac256(key: &[u8], msg: &[u8]) -> Vec<u8> {
        let mut m = <Hmac<sha2::Sha256> as hmac::digest::KeyInit>::new_from_slice(key).unwrap();
        m.update(msg);
        m.finalize().into_bytes().to_vec()
    }

    fn req<'a>(headers: &'a HeaderMap, body: &'a [u8], now: i64) -> IncomingRequest<'a> {
        IncomingRequest {
            headers,
            query: None,
            body,
            now,
        }
    }

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn github_signatures_verify_and_changed_bodies_do_not() {
        let auth = SourceAuth::Github {
            secret: "It's a Secret to Everybody".into(),
        };
        // GitHub's documented test vector.
        let h = headers(&[
            (
                "x-hub-signature-256",
                "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17".into(),
            ),
            ("x-github-delivery", "d-1".into()),
        ]);
        let ok = verify(&auth, &req(&h, b"Hello, World!", 0)).unwrap();
        assert_eq!(ok.delivery_id.as_deref(), Some("d-1"));
        assert_eq!(
            verify(&auth, &req(&h, b"Hello, World?", 0)),
            Err(Rejection::Mismatch)
        );
        assert!(matches!(
            verify(&auth, &req(&HeaderMap::new(), b"", 0)),
            Err(Rejection::Missing(_))
        ));
    }

    #[test]
    fn stripe_checks_the_signature_then_the_timestamp() {
        let secret = "whsec_test";
        let auth = SourceAuth::Stripe {
            secret: secret.into(),
            tolerance_secs: 300,
        };
        let body = br#"{"id":"evt_1","type":"invoice.paid"}"#;
        let sig = hex::encode(mac256(
            secret.as_bytes(),
            &[b"1000.".as_slice(), body].concat(),
        ));
        let h = headers(&[("stripe-signature", format!("t=1000,v1=deadbeef,v1={sig}"))]);
        assert_eq!(
            verify(&auth, &req(&h, body, 1100))
                .unwrap()
                .delivery_id
                .as_deref(),
            Some("evt_1")
        );
        assert_eq!(
            verify(&auth, &req(&h, body, 1400)),
            Err(Rejection::Stale(300))
        );
        assert_eq!(
            verify(&auth, &req(&h, b"{}", 1100)),
            Err(Rejection::Mismatch)
        );
    }

    #[test]
    fn shopify_and_generic_hmac_in_both_encodings_and_sha1() {
        let body = b"{\"a\":1}";
        let b64 = BASE64.encode(mac256(b"shh", body));
        let h = headers(&[
            ("x-shopify-hmac-sha256", b64.clone()),
            ("x-shopify-webhook-id", "w1".into()),
        ]);
        let shopify = SourceAuth::Shopify {
            secret: "shh".into(),
        };
        assert_eq!(
            verify(&shopify, &req(&h, body, 0))
                .unwrap()
                .delivery_id
                .as_deref(),
            Some("w1")
        );

        let mut m = <Hmac<sha1::Sha1> as hmac::digest::KeyInit>::new_from_slice(b"shh").unwrap();
        m.update(body);
        let sha1 = hex::encode(m.finalize().into_bytes());
        let auth = SourceAuth::Hmac {
            header: "x-sig".into(),
            algorithm: HmacAlgorithm::Sha1,
            encoding: HmacEncoding::Hex,
            prefix: Some("sha1=".into()),
            secret: "shh".into(),
        };
        let h = headers(&[("x-sig", format!("sha1={sha1}"))]);
        assert!(verify(&auth, &req(&h, body, 0)).is_ok());
        let h = headers(&[("x-sig", sha1)]);
        assert_eq!(
            verify(&auth, &req(&h, body, 0)),
            Err(Rejection::Mismatch),
            "the prefix is required"
        );
    }

    #[test]
    fn basic_and_api_keys_compare_whole_values() {
        let auth = SourceAuth::Basic {
            username: "u".into(),
            password: "p".into(),
        };
        let h = headers(&[("authorization", format!("Basic {}", BASE64.encode("u:p")))]);
        assert!(verify(&auth, &req(&h, b"", 0)).is_ok());
        let h = headers(&[("authorization", format!("Basic {}", BASE64.encode("u:px")))]);
        assert_eq!(verify(&auth, &req(&h, b"", 0)), Err(Rejection::Mismatch));

        let auth = SourceAuth::ApiKey {
            location: ApiKeyLocation::Query,
            name: "key".into(),
            key: "k 1".into(),
        };
        let h = HeaderMap::new();
        let r = IncomingRequest {
            headers: &h,
            query: Some("a=b&key=k%201"),
            body: b"",
            now: 0,
        };
        assert!(verify(&auth, &r).is_ok());
        let r = IncomingRequest {
            query: Some("key=k"),
            ..r
        };
        assert_eq!(verify(&auth, &r), Err(Rejection::Mismatch));
    }

    #[test]
    fn standard_webhooks_reuse_the_signing_verifier() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let auth = SourceAuth::StandardWebhooks {
            secret: secret.into(),
            tolerance_secs: 300,
        };
        let body = br#"{"test": 2432232314}"#;
        let h = headers(&[
            ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek".into()),
            ("webhook-timestamp", "1614265330".into()),
            (
                "webhook-signature",
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=".into(),
            ),
        ]);
        let ok = verify(&auth, &req(&h, body, 1614265330)).unwrap();
        assert_eq!(
            ok.delivery_id.as_deref(),
            Some("msg_p5jXN8AQM9LWM0D4loKWxJek")
        );
        assert_eq!(
            verify(&auth, &req(&h, body, 1614265330 + 301)),
            Err(Rejection::Stale(300))
        );
    }
}
