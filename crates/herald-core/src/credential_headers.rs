//! Custom headers that carry credentials: the one list of them. Their values are
//! stored sealed (herald-store) and masked in every API response (herald-api); a
//! masked value sent back unchanged keeps the stored one.

use std::collections::BTreeMap;

/// What a value is masked as.
pub const MASK: &str = "***";

/// Exact names (lower case) that carry credentials.
const NAMES: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

/// Words that make any header name credential-bearing (`X-Api-Key`, `X-Auth-Token`,
/// `X-Client-Secret`, `X-Session-Id`, `X-Password`, `X-Signature`, …). Broad on
/// purpose: sealing and masking a harmless header costs little, leaking a token much.
const WORDS: &[&str] = &[
    "auth",
    "cookie",
    "token",
    "secret",
    "key",
    "password",
    "passwd",
    "credential",
    "session",
    "signature",
];

/// Whether a header named `name` (any case) carries a credential.
pub fn is_credential_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    NAMES.contains(&name.as_str()) || WORDS.iter().any(|w| name.contains(w))
}

/// What the API shows of header `name`'s `value`: the value itself, or for a
/// credential-bearing header the mask (keeping an `Authorization` scheme:
/// `Bearer ***`).
pub fn masked_header_value(name: &str, value: &str) -> String {
    if !is_credential_header(name) {
        return value.to_owned();
    }
    let lower = name.to_ascii_lowercase();
    match value.split_once(' ') {
        Some((scheme, _)) if lower.ends_with("authorization") && is_token68ish(scheme) => {
            format!("{scheme} {MASK}")
        }
        _ => MASK.to_owned(),
    }
}

/// An auth scheme: a short token of letters, digits and `-`.
fn is_token68ish(s: &str) -> bool {
    !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Headers as shown by the API: credential-bearing values masked.
pub fn masked_headers(headers: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    headers
        .iter()
        .map(|(name, value)| (name.clone(), masked_header_value(name, value)))
        .collect()
}

/// `new` headers with each credential value that is exactly the mask of the stored
/// value of the same header in `old` replaced by that stored value: a client that
/// sends back the headers it read does not overwrite its credentials with `***`.
pub fn unmask_headers(
    new: &BTreeMap<String, String>,
    old: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    new.iter()
        .map(|(name, value)| {
            let stored = old.get(name).filter(|stored| {
                is_credential_header(name) && masked_header_value(name, stored) == *value
            });
            (name.clone(), stored.unwrap_or(value).clone())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_headers_are_named_once() {
        for name in [
            "Authorization",
            "cookie",
            "X-Api-Key",
            "x-auth-token",
            "X-Client-Secret",
            "Api-Key",
            "X-Session-Id",
            "X-Hub-Signature",
            "X-Password",
        ] {
            assert!(is_credential_header(name), "{name}");
        }
        for name in ["X-Team", "Accept-Language", "X-Request-Id", "User-Agent"] {
            assert!(!is_credential_header(name), "{name}");
        }
    }

    #[test]
    fn masks_keep_only_the_auth_scheme() {
        assert_eq!(
            masked_header_value("Authorization", "Bearer t0k3n"),
            "Bearer ***"
        );
        assert_eq!(
            masked_header_value("authorization", "Basic dXNlcjpwdw=="),
            "Basic ***"
        );
        assert_eq!(masked_header_value("Authorization", "t0k3n"), "***");
        assert_eq!(masked_header_value("X-Api-Key", "Bearer k"), "***");
        assert_eq!(masked_header_value("Cookie", "a=b; c=d"), "***");
        assert_eq!(masked_header_value("X-Team", "billing"), "billing");
    }

    #[test]
    fn a_mask_sent_back_keeps_the_stored_value_and_a_new_value_replaces_it() {
        let old = BTreeMap::from([
            ("Authorization".to_owned(), "Bearer old".to_owned()),
            ("X-Api-Key".to_owned(), "k1".to_owned()),
        ]);
        let new = BTreeMap::from([
            ("Authorization".to_owned(), "Bearer ***".to_owned()),
            ("X-Api-Key".to_owned(), "k2".to_owned()),
            ("X-Team".to_owned(), "***".to_owned()),
        ]);
        let merged = unmask_headers(&new, &old);
        assert_eq!(merged["Authorization"], "Bearer old");
        assert_eq!(merged["X-Api-Key"], "k2");
        assert_eq!(merged["X-Team"], "***", "not a credential: taken as given");
    }
}
