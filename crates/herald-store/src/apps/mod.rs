//! Apps (tenants) and their API keys in DynamoDB.
//!
//! One table, three kinds of item:
//! - `pk = "apps"`, `sk = "app#<id>"`: the app (one partition lists them all, for admins);
//! - `pk = "app#<id>"`, `sk = "key#<key id>"`: a key's metadata (never the key itself);
//! - `pk = "keyhash#<sha256 of the key>"`, `sk = "key"`: the lookup used to authenticate.
//!
//! Keys are 32 random bytes; only their SHA-256 is stored (a slow hash adds nothing to
//! a secret of that entropy), so a key is shown once, when it is created.
//!
//! Deleting an app leaves a tombstone (the app item with `deleted_at`): its id is never
//! reused, so a new tenant can never see what the old one left behind (delivery history
//! that has not expired yet), no key can be created for it, and a key is accepted only
//! while its app exists.

mod items;

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Delete, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use herald_core::AppId;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use items::{
    AppItem, KeyFields, KeyItem, KeyLookupItem, APPS_PARTITION, APP_PREFIX, KEY_ITEM_PREFIX,
};

use crate::{
    decode_cursor, decode_items, encode_cursor, from_item, on_condition, to_item,
    transaction_lost_race, Item, ItemKind, Page, PkSk, StoreError, MAX_PAGE_SIZE,
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

/// The hex SHA-256 of a key: what is stored, and looked up to authenticate.
pub fn hash_key(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new key of `app` (32 random bytes) and its [`hash_key`]: what every app store
/// keeps of it.
pub fn mint_key(app: &AppId) -> (NewKey, String) {
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
    (NewKey { key, secret }, hash)
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

    /// Creates an app; `AlreadyExists` if the id is taken, or was taken by an app that
    /// has been deleted since (ids are never reused).
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

    /// One app, or `None` (also for a deleted one).
    pub async fn get_app(&self, id: &AppId) -> Result<Option<App>, StoreError> {
        self.live_app(id, true).await
    }

    /// The app's item unless it is missing or a tombstone; `consistent` for a strongly
    /// consistent read.
    async fn live_app(&self, id: &AppId, consistent: bool) -> Result<Option<App>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(PkSk::app(id).into_item()))
            .consistent_read(consistent)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let item: AppItem = from_item(ItemKind::App, item)?;
        Ok(item.deleted_at.is_none().then(|| App::from(item)))
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
        // A page may come back short of tombstones; the cursor still moves on.
        Ok(Page {
            items: items
                .into_iter()
                .filter(|item| item.deleted_at.is_none())
                .map(App::from)
                .collect(),
            next_cursor,
        })
    }

    /// Deletes an app: first it becomes a tombstone (no key can be created for it from
    /// then on, and its keys stop working), then every key of it is deleted. Its
    /// subscriptions are the caller's to delete. `NotFound` if there is no such app (or
    /// it was deleted already).
    pub async fn delete_app(&self, id: &AppId) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(PkSk::app(id).into_item()))
            .update_expression("SET deleted_at = :now")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(deleted_at)")
            .expression_attribute_values(
                ":now",
                AttributeValue::S(Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
            )
            .send()
            .await
            .map_err(|e| {
                on_condition(e, "UpdateItem", || StoreError::not_found(ItemKind::App, id))
            })?;
        let keys = self
            .prefix_query(&PkSk::keys_partition(id), KEY_ITEM_PREFIX)
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
        Ok(())
    }

    /// Creates a key for an app; the secret is returned once and only its hash stored.
    /// `NotFound` if the app does not exist or has been deleted (checked in the same
    /// transaction, so a key cannot slip in while the app is being deleted).
    pub async fn create_key(&self, app: &AppId) -> Result<NewKey, StoreError> {
        let (new_key, hash) = mint_key(app);
        let NewKey { key, secret } = new_key;
        let meta = KeyItem {
            key: PkSk::key_meta(app, &key.id),
            fields: KeyFields::from(&key),
            key_hash: hash.clone(),
        };
        let lookup = KeyLookupItem {
            key: PkSk::key_lookup(&hash),
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
        let app_is_live = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(PkSk::app(app).into_item()))
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(deleted_at)")
            .build()
            .map_err(|e| StoreError::unwritable(ItemKind::ApiKey, e))?;
        self.client
            .transact_write_items()
            .transact_items(
                TransactWriteItem::builder()
                    .condition_check(app_is_live)
                    .build(),
            )
            .transact_items(put(to_item(ItemKind::ApiKey, &meta)?)?)
            .transact_items(put(to_item(ItemKind::ApiKey, &lookup)?)?)
            .send()
            .await
            .map_err(|e| {
                if transaction_lost_race(&e) {
                    StoreError::not_found(ItemKind::App, app)
                } else {
                    StoreError::dynamo("TransactWriteItems", e)
                }
            })?;
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
            .prefix_page(&PkSk::keys_partition(app), KEY_ITEM_PREFIX, limit, cursor)
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
            .set_key(Some(PkSk::key_meta(app, key_id).into_item()))
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
        let delete = |key: PkSk| {
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
            .transact_items(delete(PkSk::key_lookup(&meta.key_hash))?)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("TransactWriteItems", e))?;
        Ok(())
    }

    /// The key a presented secret belongs to, if any, and only while its app exists:
    /// a key of a deleted app authenticates nothing, even before its deletion finished.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<ApiKey>, StoreError> {
        if !secret.starts_with(KEY_PREFIX) || secret.len() > 128 {
            return Ok(None);
        }
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(PkSk::key_lookup(&hash_key(secret)).into_item()))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let key: ApiKey = from_item::<KeyLookupItem>(ItemKind::ApiKey, item)?
            .fields
            .into();
        Ok(self.live_app(&key.app_id, false).await?.map(|_| key))
    }

    /// Whether `app` still has the key `key_id` and is itself live: how a session made
    /// with that key (the web console's) learns that the key was revoked or the app
    /// deleted. The key itself is not needed, only its id.
    pub async fn key_is_live(&self, app: &AppId, key_id: &str) -> Result<bool, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(PkSk::key_meta(app, key_id).into_item()))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        if out.item.is_none() {
            return Ok(false);
        }
        Ok(self.live_app(app, false).await?.is_some())
    }

    /// The `Query` for the items of partition `pk` whose sort key starts with
    /// `sk_prefix`, in sort key order.
    fn prefix_query(&self, pk: &str, sk_prefix: &str) -> QueryFluentBuilder {
        crate::prefix_query(&self.client, &self.table, pk, sk_prefix)
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
                Some(PkSk { pk, sk }.into_item())
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

    #[test]
    fn keys_are_hashed_deterministically_and_differ() {
        assert_eq!(hash_key("hk_a"), hash_key("hk_a"));
        assert_ne!(hash_key("hk_a"), hash_key("hk_b"));
        assert_eq!(hash_key("hk_a").len(), 64);
    }
}
