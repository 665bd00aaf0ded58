//! Secrets sealed at rest in subscription and route items: every signing secret
//! (`secrets`, current and previous) and the value of every credential-bearing custom
//! header (`headers`, [`is_credential_header`]) is stored as a `herald-seal` sealed
//! string, bound to its webhook and field (`{app}/{id}/secret`,
//! `{app}/{id}/header/{name}`), so a value copied into another webhook or field does
//! not open. Nothing else in the items changes. Items are sealed right before they are
//! written and opened right after they are read, on the raw attribute maps, so the
//! domain types never see a sealed value.

use aws_sdk_dynamodb::types::AttributeValue;
use herald_core::is_credential_header;
use herald_seal::{SealError, Sealer, SealingKey};

use super::KIND;
use crate::{Item, StoreError};

const SECRETS: &str = "secrets";
const HEADERS: &str = "headers";

/// The webhook an item belongs to, as `{app}/{id}`: the start of every context.
fn owner(item: &Item) -> Result<String, StoreError> {
    let text = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| StoreError::corrupt(KIND, format!("no {name} to seal under")))
    };
    Ok(format!("{}/{}", text("app_id")?, text("id")?))
}

fn secret_context(owner: &str) -> String {
    format!("{owner}/secret")
}

fn header_context(owner: &str, name: &str) -> String {
    format!("{owner}/header/{}", name.to_ascii_lowercase())
}

/// The sealed fields of an item: (context, value) for each, mutable in place.
fn sealed_fields<'a>(
    item: &'a mut Item,
    owner: &str,
) -> Result<Vec<(String, &'a mut String)>, StoreError> {
    let mut fields = Vec::new();
    for (name, value) in item.iter_mut() {
        match (name.as_str(), value) {
            (SECRETS, AttributeValue::L(list)) => {
                for v in list {
                    match v {
                        AttributeValue::S(s) => fields.push((secret_context(owner), s)),
                        _ => return Err(StoreError::corrupt(KIND, "a secret is not a string")),
                    }
                }
            }
            (HEADERS, AttributeValue::M(map)) => {
                for (header, v) in map.iter_mut() {
                    if !is_credential_header(header) {
                        continue;
                    }
                    match v {
                        AttributeValue::S(s) => fields.push((header_context(owner, header), s)),
                        _ => return Err(StoreError::corrupt(KIND, "a header is not a string")),
                    }
                }
            }
            _ => {}
        }
    }
    Ok(fields)
}

/// Seals the secrets and credential header values of a subscription or route item.
pub(super) fn seal_item(item: &mut Item, key: &SealingKey) -> Result<(), StoreError> {
    let owner = owner(item)?;
    for (context, value) in sealed_fields(item, &owner)? {
        *value = key.seal(value, &context);
    }
    Ok(())
}

/// Opens what [`seal_item`] sealed. A value that is not sealed, was changed, or was
/// sealed for another webhook or field makes the item corrupt: never a wrong secret.
pub(super) async fn open_item(item: &mut Item, sealer: &Sealer) -> Result<(), StoreError> {
    let owner = owner(item)?;
    for (context, value) in sealed_fields(item, &owner)? {
        *value = sealer
            .open(value, &context)
            .await
            .map_err(|e| seal_error(e, &context))?;
    }
    Ok(())
}

/// A sealing failure as a store error: the key service's trouble is retryable, a
/// value that does not open is a corrupt item.
pub(super) fn seal_error(e: SealError, context: &str) -> StoreError {
    if e.is_transient() {
        StoreError::Keys {
            message: e.to_string(),
        }
    } else {
        let field = context.rsplit_once('/').map_or(context, |(_, f)| f);
        let field = if context.contains("/header/") {
            format!("header {field}")
        } else {
            "secret".to_owned()
        };
        StoreError::corrupt(KIND, format!("{field}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_seal::LocalKeys;
    use std::collections::HashMap;

    fn item() -> Item {
        let s = |v: &str| AttributeValue::S(v.to_owned());
        HashMap::from([
            ("app_id".to_owned(), s("shop")),
            ("id".to_owned(), s("sub_1")),
            ("url".to_owned(), s("https://example.com")),
            (
                "secrets".to_owned(),
                AttributeValue::L(vec![s("whsec_new"), s("whsec_old")]),
            ),
            (
                "headers".to_owned(),
                AttributeValue::M(HashMap::from([
                    ("Authorization".to_owned(), s("Bearer t0k3n")),
                    ("X-Team".to_owned(), s("billing")),
                ])),
            ),
        ])
    }

    fn text(item: &Item) -> String {
        format!("{item:?}")
    }

    #[tokio::test]
    async fn secrets_and_credential_headers_are_sealed_and_open_again() {
        let sealer = Sealer::new(LocalKeys::generate());
        let key = sealer.sealing_key().await.unwrap();
        let plain = item();
        let mut sealed = plain.clone();
        seal_item(&mut sealed, &key).unwrap();
        let t = text(&sealed);
        for secret in ["whsec_new", "whsec_old", "t0k3n"] {
            assert!(!t.contains(secret), "{secret} in {t}");
        }
        assert!(t.contains("billing") && t.contains("https://example.com"));
        open_item(&mut sealed, &sealer).await.unwrap();
        assert_eq!(sealed, plain);
    }

    #[tokio::test]
    async fn a_tampered_moved_or_unsealed_value_is_an_error() {
        let sealer = Sealer::new(LocalKeys::generate());
        let key = sealer.sealing_key().await.unwrap();
        let mut sealed = item();
        seal_item(&mut sealed, &key).unwrap();

        // The current secret swapped with the other webhook's: does not open.
        let mut moved = sealed.clone();
        moved.insert("id".into(), AttributeValue::S("sub_2".into()));
        let err = open_item(&mut moved, &sealer).await.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");

        // The header's sealed value put in as a secret: does not open.
        let mut swapped = sealed.clone();
        let auth = match &sealed["headers"] {
            AttributeValue::M(m) => m["Authorization"].clone(),
            _ => unreachable!(),
        };
        if let Some(AttributeValue::L(list)) = swapped.get_mut("secrets") {
            list[0] = auth;
        }
        let err = open_item(&mut swapped, &sealer).await.unwrap_err();
        assert!(err.to_string().contains("secret"), "{err}");

        // A plaintext secret where a sealed one belongs: refused, not used.
        let mut plain = item();
        let err = open_item(&mut plain, &sealer).await.unwrap_err();
        assert!(err.to_string().contains("not a sealed value"), "{err}");
    }
}
