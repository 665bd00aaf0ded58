//! Apps (tenants) and their API keys in DynamoDB.
//!
//! One table, three kinds of item:
//! - `pk = "apps"`, `sk = "app#<id>"`: the app (one partition lists them all, for admins);
//! - `pk = "app#<id>"`, `sk = "key#<key id>"`: a key's metadata (never the key itself);
//! - `pk = "keyhash#<sha256 of the key>"`, `sk = "key"`: the lookup used to authenticate.
//!
//! Keys are 32 random bytes; only their SHA-256 is stored (a slow hash adds nothing to
//! a secret of that entropy), so a key is shown once, when it is created.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use herald_core::AppId;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{
    decode_cursor, decode_items, encode_cursor, from_item, on_condition, to_item, Item, ItemKind,
    Page, StoreError, MAX_PAGE_SIZE,
};

/// Prefix of every Herald API key.
pub const KEY_PREFIX: &str = "hk_";

/// An app (tenant).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct App {
    /// The app's id, chosen by the admin or generated.
    pub id: AppId,
    /// A display name.
    pub name: String,
    /// When the app was created.
    pub created_at: DateTime<Utc>,
}

/// An API key's metadata; the key itself is never stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    /// The key's id (`key_` and 32 hex digits), used to revoke it.
    pub id: String,
    /// The app the key acts for.
    pub app_id: AppId,
    /// The first characters of the key, to tell keys apart.
    pub prefix: String,
    /// When the key was created.
    pub created_at: DateTime<Utc>,
}

/// A freshly created key: shown to its owner once.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// The key's metadata, as stored.
    pub key: ApiKey,
    /// The key itself (`hk_...`); only its hash is stored.
    pub secret: String,
}

/// The partition that holds every app.
const APPS_PARTITION: &str = "apps";
/// Sort key prefix of app items.
const APP_PREFIX: &str = "app#";
/// Sort key prefix of key metadata items.
const KEY_ITEM_PREFIX: &str = "key#";

/// The table's key (`pk`, `sk`) of each kind of item: the only place it is spelled out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Key {
    pk: String,
    sk: String,
}

impl Key {
    /// An app, in the partition of all apps.
    fn app(id: &AppId) -> Self {
        Self {
            pk: APPS_PARTITION.to_owned(),
            sk: format!("{APP_PREFIX}{id}"),
        }
    }

    /// The partition of an app's keys.
    fn keys_partition(app: &AppId) -> String {
        format!("app#{app}")
    }

    /// A key's metadata, in its app's partition.
    fn key_meta(app: &AppId, key_id: &str) -> Self {
        Self {
            pk: Self::keys_partition(app),
            sk: format!("{KEY_ITEM_PREFIX}{key_id}"),
        }
    }

    /// The lookup of a key by the SHA-256 of its secret.
    fn key_lookup(hash: &str) -> Self {
        Self {
            pk: format!("keyhash#{hash}"),
            sk: "key".to_owned(),
        }
    }

    /// The key as the attribute map of a `GetItem`, `DeleteItem` or start key.
    fn into_item(self) -> Item {
        HashMap::from([
            ("pk".to_owned(), AttributeValue::S(self.pk)),
            ("sk".to_owned(), AttributeValue::S(self.sk)),
        ])
    }
}

/// The item of an app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct AppItem {
    #[serde(flatten)]
    key: Key,
    app_id: AppId,
    name: String,
    created_at: DateTime<Utc>,
}

impl From<&App> for AppItem {
    fn from(app: &App) -> Self {
        Self {
            key: Key::app(&app.id),
            app_id: app.id.clone(),
            name: app.name.clone(),
            created_at: app.created_at,
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
struct KeyFields {
    key_id: String,
    app_id: AppId,
    prefix: String,
    created_at: DateTime<Utc>,
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
struct KeyItem {
    #[serde(flatten)]
    key: Key,
    #[serde(flatten)]
    fields: KeyFields,
    key_hash: String,
}

/// The item that authenticates a key: found by the hash of the presented secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct KeyLookupItem {
    #[serde(flatten)]
    key: Key,
    #[serde(flatten)]
    fields: KeyFields,
}

fn hash_key(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Apps and API keys.
#[derive(Clone, Debug)]
pub struct AppStore {
    client: Client,
    table: String,
}

impl AppStore {
    /// A store on the apps table `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Creates an app; `AlreadyExists` if the id is taken.
    pub async fn create_app(&self, id: &AppId, name: &str) -> Result<App, StoreError> {
        let app = App {
            id: id.clone(),
            name: name.to_owned(),
            created_at: Utc::now(),
        };
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(ItemKind::App, &AppItem::from(&app))?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| {
                on_condition(e, "PutItem", || {
                    StoreError::already_exists(ItemKind::App, id)
                })
            })?;
        Ok(app)
    }

    /// One app, or `None`.
    pub async fn get_app(&self, id: &AppId) -> Result<Option<App>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Key::app(id).into_item()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        out.item
            .map(|item| from_item::<AppItem>(ItemKind::App, item).map(App::from))
            .transpose()
    }

    /// A page of apps in id order.
    pub async fn list_apps(
        &self,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<App>, StoreError> {
        let (items, next_cursor) = self
            .prefix_page(APPS_PARTITION, APP_PREFIX, limit, cursor)
            .await?;
        let items = decode_items::<AppItem>(ItemKind::App, Some(items))?;
        Ok(Page {
            items: items.into_iter().map(App::from).collect(),
            next_cursor,
        })
    }

    /// Deletes an app and every key of it (its subscriptions are the caller's to
    /// delete); `NotFound` if there is no such app.
    pub async fn delete_app(&self, id: &AppId) -> Result<(), StoreError> {
        if self.get_app(id).await?.is_none() {
            return Err(StoreError::not_found(ItemKind::App, id));
        }
        let keys = self
            .prefix_query(&Key::keys_partition(id), KEY_ITEM_PREFIX)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| StoreError::dynamo("Query", e))?;
        for item in keys {
            self.delete_key_items(from_item(ItemKind::ApiKey, item)?)
                .await?;
        }
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Key::app(id).into_item()))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("DeleteItem", e))?;
        Ok(())
    }

    /// Creates a key for an app; the secret is returned once and only its hash stored.
    pub async fn create_key(&self, app: &AppId) -> Result<NewKey, StoreError> {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let secret = format!("{KEY_PREFIX}{}", B64.encode(bytes));
        let key = ApiKey {
            id: herald_core::new_id("key_"),
            app_id: app.clone(),
            prefix: secret[..KEY_PREFIX.len() + 6].to_owned(),
            created_at: Utc::now(),
        };
        let hash = hash_key(&secret);
        let meta = KeyItem {
            key: Key::key_meta(app, &key.id),
            fields: KeyFields::from(&key),
            key_hash: hash.clone(),
        };
        let lookup = KeyLookupItem {
            key: Key::key_lookup(&hash),
            fields: KeyFields::from(&key),
        };
        let put = |item: Item| {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .build()
                .map_err(|e| StoreError::unwritable(ItemKind::ApiKey, e))?;
            Ok::<_, StoreError>(TransactWriteItem::builder().put(put).build())
        };
        self.client
            .transact_write_items()
            .transact_items(put(to_item(ItemKind::ApiKey, &meta)?)?)
            .transact_items(put(to_item(ItemKind::ApiKey, &lookup)?)?)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("TransactWriteItems", e))?;
        Ok(NewKey { key, secret })
    }

    /// A page of an app's keys (metadata only).
    pub async fn list_keys(
        &self,
        app: &AppId,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<ApiKey>, StoreError> {
        let (items, next_cursor) = self
            .prefix_page(&Key::keys_partition(app), KEY_ITEM_PREFIX, limit, cursor)
            .await?;
        let items = decode_items::<KeyItem>(ItemKind::ApiKey, Some(items))?;
        Ok(Page {
            items: items.into_iter().map(|i| i.fields.into()).collect(),
            next_cursor,
        })
    }

    /// Revokes a key; `false` if the app has no such key.
    pub async fn delete_key(&self, app: &AppId, key_id: &str) -> Result<bool, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Key::key_meta(app, key_id).into_item()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        let Some(item) = out.item else {
            return Ok(false);
        };
        self.delete_key_items(from_item(ItemKind::ApiKey, item)?)
            .await?;
        Ok(true)
    }

    /// Deletes a key's metadata and its lookup in one transaction.
    async fn delete_key_items(&self, meta: KeyItem) -> Result<(), StoreError> {
        let delete = |key: Key| {
            let delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key.into_item()))
                .build()
                .map_err(|e| StoreError::unwritable(ItemKind::ApiKey, e))?;
            Ok::<_, StoreError>(TransactWriteItem::builder().delete(delete).build())
        };
        self.client
            .transact_write_items()
            .transact_items(delete(meta.key)?)
            .transact_items(delete(Key::key_lookup(&meta.key_hash))?)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("TransactWriteItems", e))?;
        Ok(())
    }

    /// The key a presented secret belongs to, if any.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<ApiKey>, StoreError> {
        if !secret.starts_with(KEY_PREFIX) || secret.len() > 128 {
            return Ok(None);
        }
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Key::key_lookup(&hash_key(secret)).into_item()))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        out.item
            .map(|item| from_item::<KeyLookupItem>(ItemKind::ApiKey, item).map(|i| i.fields.into()))
            .transpose()
    }

    /// The `Query` for the items of partition `pk` whose sort key starts with
    /// `sk_prefix`, in sort key order.
    fn prefix_query(&self, pk: &str, sk_prefix: &str) -> QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
            .expression_attribute_values(":prefix", AttributeValue::S(sk_prefix.to_owned()))
    }

    /// One page of [`Self::prefix_query`]; the cursor carries the last sort key.
    async fn prefix_page(
        &self,
        pk: &str,
        sk_prefix: &str,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<(Vec<Item>, Option<String>), StoreError> {
        let start = match cursor {
            None => None,
            Some(cursor) => {
                let sk = decode_cursor(cursor)?;
                if !sk.starts_with(sk_prefix) {
                    return Err(StoreError::BadCursor);
                }
                let pk = pk.to_owned();
                Some(Key { pk, sk }.into_item())
            }
        };
        let out = self
            .prefix_query(pk, sk_prefix)
            .limit(limit.clamp(1, MAX_PAGE_SIZE))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("Query", e))?;
        let next = out.last_evaluated_key.and_then(|k| {
            k.get("sk")
                .and_then(|v| v.as_s().ok())
                .map(|sk| encode_cursor(sk))
        });
        Ok((out.items.unwrap_or_default(), next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            key: Key::key_meta(&app, &key.id),
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
            key: Key::key_lookup("ab12"),
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

    #[test]
    fn keys_are_hashed_deterministically_and_differ() {
        assert_eq!(hash_key("hk_a"), hash_key("hk_a"));
        assert_ne!(hash_key("hk_a"), hash_key("hk_b"));
        assert_eq!(hash_key("hk_a").len(), 64);
    }
}
