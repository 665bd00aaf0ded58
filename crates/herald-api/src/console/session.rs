//! The console's sessions: a signed cookie holding who signed in (an app and the id of
//! the key used, or the operator), when the session ends and a random nonce; never the
//! key itself. The CSRF token of a session is derived from its nonce.
//!
//! A cookie value is `v1.<payload>.<tag>`: the payload is base64url JSON, the tag the
//! base64url HMAC-SHA256 of `v1.<payload>` under the session key
//! (`HERALD_CONSOLE_SESSION_KEY`, or a random per-process key when unset).

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// The name of the session cookie.
pub const COOKIE: &str = "herald_session";
/// How long a session lasts after sign-in.
pub const LIFETIME: TimeDelta = TimeDelta::hours(12);
/// The version prefix of cookie values.
const VERSION: &str = "v1";

/// The key that signs session cookies and derives CSRF tokens.
pub struct SessionKey {
    key: [u8; 32],
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(hidden)")
    }
}

impl SessionKey {
    /// The key from `HERALD_CONSOLE_SESSION_KEY` (hashed to 32 bytes), or a random one
    /// with a warning: sessions then end with the process and do not span processes.
    pub fn from_config(configured: Option<&str>) -> Self {
        match configured {
            Some(text) => Self {
                key: Sha256::digest(text.as_bytes()).into(),
            },
            None => {
                tracing::warn!(
                    "HERALD_CONSOLE_SESSION_KEY is not set: console sessions are signed with a \
                     random key of this process, so they end when it stops and do not span \
                     processes (Lambda instances)"
                );
                Self::random()
            }
        }
    }

    /// A random key.
    pub fn random() -> Self {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Self { key }
    }

    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("any key length");
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// The cookie value of `session`.
    pub fn seal(&self, session: &Session) -> String {
        let json = serde_json::to_vec(session).expect("a session serializes");
        let signed = format!("{VERSION}.{}", B64.encode(json));
        let tag = self.mac(&[b"session", signed.as_bytes()]);
        format!("{signed}.{}", B64.encode(tag))
    }

    /// The session a cookie value holds, if its tag is right and it has not expired.
    pub fn open(&self, value: &str, now: DateTime<Utc>) -> Option<Session> {
        let (signed, tag) = value.rsplit_once('.')?;
        let payload = signed.strip_prefix(VERSION)?.strip_prefix('.')?;
        let tag = B64.decode(tag).ok()?;
        let expected = self.mac(&[b"session", signed.as_bytes()]);
        if !bool::from(expected.as_slice().ct_eq(&tag)) {
            return None;
        }
        let session: Session = serde_json::from_slice(&B64.decode(payload).ok()?).ok()?;
        (session.expires_at > now.timestamp()).then_some(session)
    }

    /// The CSRF token of `session`: bound to its nonce, so to this sign-in only.
    pub fn csrf_token(&self, session: &Session) -> String {
        B64.encode(self.mac(&[b"csrf", session.nonce.as_bytes()]))
    }

    /// Whether `token` is `session`'s CSRF token (compared in constant time).
    pub fn csrf_ok(&self, session: &Session, token: &str) -> bool {
        let expected = self.csrf_token(session);
        bool::from(expected.as_bytes().ct_eq(token.as_bytes()))
    }

    /// What an operator session holds of the admin key: a tag of it under this key, so
    /// a changed admin key ends operator sessions without the cookie holding the key.
    pub fn admin_tag(&self, admin_key: &str) -> String {
        B64.encode(&self.mac(&[b"admin", admin_key.as_bytes()])[..16])
    }
}

/// Who a session is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Role {
    /// A tenant, signed in with one of its app's keys.
    App {
        /// The app.
        app: String,
        /// The id of the key used (checked to exist on every request).
        key_id: String,
    },
    /// The operator, signed in with the admin key.
    Operator {
        /// [`SessionKey::admin_tag`] of the admin key used.
        admin_tag: String,
    },
}

/// A signed-in session, as the cookie holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Who signed in.
    #[serde(flatten)]
    pub role: Role,
    /// When the session ends (Unix seconds).
    pub expires_at: i64,
    /// Random, per sign-in: the CSRF token derives from it.
    pub nonce: String,
}

impl Session {
    /// A session for `role` starting `now`.
    pub fn new(role: Role, now: DateTime<Utc>) -> Self {
        let mut nonce = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        Self {
            role,
            expires_at: (now + LIFETIME).timestamp(),
            nonce: B64.encode(nonce),
        }
    }
}

/// The `Set-Cookie` value that stores `value` (or, with `None`, clears the cookie).
pub fn set_cookie(value: Option<&str>, secure: bool) -> String {
    let mut cookie = cookie::Cookie::build((COOKIE, value.unwrap_or("").to_owned()))
        .path("/console")
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .secure(secure);
    cookie = match value {
        Some(_) => cookie.max_age(cookie::time::Duration::seconds(LIFETIME.num_seconds())),
        None => cookie.max_age(cookie::time::Duration::ZERO),
    };
    cookie.build().to_string()
}

/// The session cookie's value among a request's `Cookie` headers.
pub fn cookie_value<'a>(headers: impl Iterator<Item = &'a str>) -> Option<String> {
    headers
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == COOKIE)
        .map(|c| c.value().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app_session() -> Session {
        Session::new(
            Role::App {
                app: "shop".into(),
                key_id: "key_1".into(),
            },
            Utc::now(),
        )
    }

    #[test]
    fn a_sealed_session_opens_until_it_expires_and_not_once_changed() {
        let key = SessionKey::random();
        let s = app_session();
        let value = key.seal(&s);
        assert!(!value.contains("hk_"), "never the key: {value}");
        assert_eq!(key.open(&value, Utc::now()), Some(s.clone()));
        assert_eq!(key.open(&value, Utc::now() + LIFETIME), None, "expired");
        assert_eq!(SessionKey::random().open(&value, Utc::now()), None);
        // Another payload under the same tag: refused.
        let (signed, tag) = value.rsplit_once('.').unwrap();
        let mut forged = s.clone();
        forged.role = Role::App {
            app: "other".into(),
            key_id: "key_1".into(),
        };
        let other = key.seal(&forged);
        let (other_signed, _) = other.rsplit_once('.').unwrap();
        assert_eq!(key.open(&format!("{other_signed}.{tag}"), Utc::now()), None);
        assert_eq!(key.open(signed, Utc::now()), None);
        assert_eq!(key.open("garbage", Utc::now()), None);
    }

    #[test]
    fn csrf_tokens_are_per_session() {
        let key = SessionKey::from_config(Some("0123456789abcdef0123456789abcdef"));
        let (a, b) = (app_session(), app_session());
        let token = key.csrf_token(&a);
        assert!(key.csrf_ok(&a, &token));
        assert!(!key.csrf_ok(&b, &token));
        assert!(!key.csrf_ok(&a, ""));
    }

    #[test]
    fn the_cookie_has_its_flags() {
        let set = set_cookie(Some("v"), true);
        for flag in [
            "herald_session=v",
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
            "Path=/console",
            "Max-Age=43200",
        ] {
            assert!(set.contains(flag), "{set}");
        }
        assert!(!set_cookie(Some("v"), false).contains("Secure"));
        assert!(set_cookie(None, true).contains("Max-Age=0"));
        assert_eq!(
            cookie_value(["a=b; herald_session=xyz"].into_iter()),
            Some("xyz".into())
        );
    }
}
