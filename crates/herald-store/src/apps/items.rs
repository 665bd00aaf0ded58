//! The apps table's layout: its keys and the typed items of apps and API keys.

use chrono::{DateTime, Utc};
use herald_core::AppId;
use serde::{Deserialize, Serialize};

use super::{ApiKey, App};
use crate::PkSk;

/// The partition that holds every app.
pub(super) const APPS_PARTITION: &str = "apps";
/// Sort key prefix of app items.
pub(super) const APP_PREFIX: &str = "app#";
/// Sort key prefix of key metadata items.
pub(super) const KEY_ITEM_PREFIX: &str = "key#";

/// The apps table's key of each kind of item: the only place it is spelled out.
impl PkSk {
    /// An app, in the partition of all apps.
    pub(super) fn app(id: &AppId) -> Self {
        Self {
            pk: APPS_PARTITION.to_owned(),
            sk: format!("{APP_PREFIX}{id}"),
        }
    }

    /// The partition of an app's keys.
    pub(super) fn keys_partition(app: &AppId) -> String {
        format!("app#{app}")
    }

    /// A key's metadata, in its app's partition.
    pub(super) fn key_meta(app: &AppId, key_id: &str) -> Self {
        Self {
            pk: Self::keys_partition(app),
            sk: format!("{KEY_ITEM_PREFIX}{key_id}"),
        }
    }

    /// The lookup of a key by the SHA-256 of its secret.
    pub(super) fn key_lookup(hash: &str) -> Self {
        Self {
            pk: format!("keyhash#{hash}"),
            sk: "key".to_owned(),
        }
    }
}

/// The item of an app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct AppItem {
    #[serde(flatten)]
    pub(super) key: PkSk,
    pub(super) app_id: AppId,
    pub(super) name: String,
    pub(super) created_at: DateTime<Utc>,
    /// Set when the app was deleted: the item stays as a tombstone, so the id is never
    /// given to another tenant, and keys of the deleted app stop working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) deleted_at: Option<DateTime<Utc>>,
}

impl From<&App> for AppItem {
    fn from(app: &App) -> Self {
        Self {
            key: PkSk::app(&app.id),
            app_id: app.id.clone(),
            name: app.name.clone(),
            created_at: app.created_at,
            deleted_at: None,
        }
    }
}

impl From<AppItem> for App {
    fn from(item: AppItem) -> Self {
        Self {
            id: item.app_id,
            name: item.name,
            created_at: item.created_at,
        }
    }
}

/// The attributes of a key that both its items carry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct KeyFields {
    pub(super) key_id: String,
    pub(super) app_id: AppId,
    pub(super) prefix: String,
    pub(super) created_at: DateTime<Utc>,
}

impl From<&ApiKey> for KeyFields {
    fn from(key: &ApiKey) -> Self {
        Self {
            key_id: key.id.clone(),
            app_id: key.app_id.clone(),
            prefix: key.prefix.clone(),
            created_at: key.created_at,
        }
    }
}

impl From<KeyFields> for ApiKey {
    fn from(f: KeyFields) -> Self {
        Self {
            id: f.key_id,
            app_id: f.app_id,
            prefix: f.prefix,
            created_at: f.created_at,
        }
    }
}

/// The item of a key's metadata, listed under its app; it names the lookup item by
/// `key_hash` so that revoking the key deletes both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct KeyItem {
    #[serde(flatten)]
    pub(super) key: PkSk,
    #[serde(flatten)]
    pub(super) fields: KeyFields,
    pub(super) key_hash: String,
}

/// The item that authenticates a key: found by the hash of the presented secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct KeyLookupItem {
    #[serde(flatten)]
    pub(super) key: PkSk,
    #[serde(flatten)]
    pub(super) fields: KeyFields,
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use aws_sdk_dynamodb::types::AttributeValue;

    use super::*;
    use crate::{from_item, to_item, Item, ItemKind, StoreError};

    fn names(item: &Item) -> Vec<&str> {
        let mut names: Vec<&str> = item.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    #[test]
    fn app_items_keep_their_layout_and_round_trip() {
        let app = App {
            id: AppId::parse("shop").unwrap(),
            name: "The shop".into(),
            created_at: Utc::now(),
        };
        let item = to_item(ItemKind::App, &AppItem::from(&app)).unwrap();
        assert_eq!(names(&item), ["app_id", "created_at", "name", "pk", "sk"]);
        assert_eq!(item["pk"], AttributeValue::S("apps".into()));
        assert_eq!(item["sk"], AttributeValue::S("app#shop".into()));
        let back: AppItem = from_item(ItemKind::App, item).unwrap();
        assert_eq!(App::from(back), app);
    }

    #[test]
    fn key_items_keep_their_layout_and_round_trip() {
        let app = AppId::parse("shop").unwrap();
        let key = ApiKey {
            id: "key_1".into(),
            app_id: app.clone(),
            prefix: "hk_abcdef".into(),
            created_at: Utc::now(),
        };
        let meta = KeyItem {
            key: PkSk::key_meta(&app, &key.id),
            fields: KeyFields::from(&key),
            key_hash: "ab12".into(),
        };
        let item = to_item(ItemKind::ApiKey, &meta).unwrap();
        assert_eq!(
            names(&item),
            [
                "app_id",
                "created_at",
                "key_hash",
                "key_id",
                "pk",
                "prefix",
                "sk"
            ]
        );
        assert_eq!(item["pk"], AttributeValue::S("app#shop".into()));
        assert_eq!(item["sk"], AttributeValue::S("key#key_1".into()));
        let back: KeyItem = from_item(ItemKind::ApiKey, item).unwrap();
        assert_eq!(back, meta);

        let lookup = KeyLookupItem {
            key: PkSk::key_lookup("ab12"),
            fields: KeyFields::from(&key),
        };
        let item = to_item(ItemKind::ApiKey, &lookup).unwrap();
        assert_eq!(
            names(&item),
            ["app_id", "created_at", "key_id", "pk", "prefix", "sk"]
        );
        assert_eq!(item["pk"], AttributeValue::S("keyhash#ab12".into()));
        assert_eq!(item["sk"], AttributeValue::S("key".into()));
        let back: KeyLookupItem = from_item(ItemKind::ApiKey, item).unwrap();
        assert_eq!(ApiKey::from(back.fields), key);
    }

    #[test]
    fn items_written_before_serde_dynamo_still_decode() {
        // Earlier versions wrote timestamps with `to_rfc3339` (`+00:00`, not `Z`).
        let created_at = Utc::now();
        let s = |v: &str| AttributeValue::S(v.to_owned());
        let item: Item = HashMap::from([
            ("pk".to_owned(), s("apps")),
            ("sk".to_owned(), s("app#shop")),
            ("app_id".to_owned(), s("shop")),
            ("name".to_owned(), s("The shop")),
            ("created_at".to_owned(), s(&created_at.to_rfc3339())),
        ]);
        let app = App::from(from_item::<AppItem>(ItemKind::App, item).unwrap());
        assert_eq!(app.created_at, created_at);
        let broken: Item = HashMap::from([("pk".to_owned(), s("apps"))]);
        let err = from_item::<AppItem>(ItemKind::App, broken).unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Corrupt {
                    kind: ItemKind::App,
                    ..
                }
            ),
            "{err}"
        );
    }
}
