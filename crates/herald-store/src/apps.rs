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

use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use herald_core::AppId;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Page, StoreError, MAX_PAGE_SIZE};

/// Prefix of every Herald API key.
pub const KEY_PREFIX: &str = "hk_";

/// An app (tenant).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct App {
    pub id: AppId,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// An API key's metadata; the key itself is never stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: String,
    pub app_id: AppId,
    /// The first characters of the key, to tell keys apart.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
}

/// A freshly created key: shown to its owner once.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub key: ApiKey,
    pub secret: String,
}

fn hash_key(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn get_s(item: &HashMap<String, AttributeValue>, k: &str) -> Result<String, StoreError> {
    item.get(k)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .ok_or_else(|| StoreError::Corrupt(format!("missing attribute {k}")))
}

fn get_time(item: &HashMap<String, AttributeValue>, k: &str) -> Result<DateTime<Utc>, StoreError> {
    get_s(item, k)?
        .parse()
        .map_err(|e| StoreError::Corrupt(format!("{k}: {e}")))
}

fn app_from(item: &HashMap<String, AttributeValue>) -> Result<App, StoreError> {
    Ok(App {
        id: AppId::parse(&get_s(item, "app_id")?)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        name: get_s(item, "name")?,
        created_at: get_time(item, "created_at")?,
    })
}

fn key_from(item: &HashMap<String, AttributeValue>) -> Result<ApiKey, StoreError> {
    Ok(ApiKey {
        id: get_s(item, "key_id")?,
        app_id: AppId::parse(&get_s(item, "app_id")?)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        prefix: get_s(item, "prefix")?,
        created_at: get_time(item, "created_at")?,
    })
}

/// Apps and API keys.
#[derive(Clone, Debug)]
pub struct AppStore {
    client: Client,
    table: String,
}

impl AppStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Creates an app; `AppExists` if the id is taken.
    pub async fn create_app(&self, id: &AppId, name: &str) -> Result<App, StoreError> {
        let app = App {
            id: id.clone(),
            name: name.to_owned(),
            created_at: Utc::now(),
        };
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s("apps"))
            .item("sk", s(format!("app#{id}")))
            .item("app_id", s(id.as_str()))
            .item("name", s(name))
            .item("created_at", s(app.created_at.to_rfc3339()))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| {
                crate::on_condition(e, "PutItem", || {
                    StoreError::Conflict(format!("app {id} already exists"))
                })
            })?;
        Ok(app)
    }

    pub async fn get_app(&self, id: &AppId) -> Result<Option<App>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s("apps"))
            .key("sk", s(format!("app#{id}")))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        out.item.as_ref().map(app_from).transpose()
    }

    /// A page of apps in id order.
    pub async fn list_apps(
        &self,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<App>, StoreError> {
        let (items, next) = self.query_prefix("apps", "app#", limit, cursor).await?;
        Ok(Page {
            items: items.iter().map(app_from).collect::<Result<_, _>>()?,
            next_cursor: next,
        })
    }

    /// Deletes an app and every key of it (its subscriptions are the caller's to delete).
    pub async fn delete_app(&self, id: &AppId) -> Result<(), StoreError> {
        if self.get_app(id).await?.is_none() {
            return Err(StoreError::Missing(format!("app {id}")));
        }
        loop {
            let page = self.list_keys(id, MAX_PAGE_SIZE, None).await?;
            if page.items.is_empty() {
                break;
            }
            for key in page.items {
                self.delete_key(id, &key.id).await?;
            }
        }
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s("apps"))
            .key("sk", s(format!("app#{id}")))
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
            id: format!("key_{}", uuid_simple()),
            app_id: app.clone(),
            prefix: secret[..KEY_PREFIX.len() + 6].to_owned(),
            created_at: Utc::now(),
        };
        let hash = hash_key(&secret);
        let meta = Put::builder()
            .table_name(&self.table)
            .item("pk", s(format!("app#{app}")))
            .item("sk", s(format!("key#{}", key.id)))
            .item("key_id", s(&key.id))
            .item("app_id", s(app.as_str()))
            .item("prefix", s(&key.prefix))
            .item("key_hash", s(&hash))
            .item("created_at", s(key.created_at.to_rfc3339()))
            .build()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let lookup = Put::builder()
            .table_name(&self.table)
            .item("pk", s(format!("keyhash#{hash}")))
            .item("sk", s("key"))
            .item("key_id", s(&key.id))
            .item("app_id", s(app.as_str()))
            .item("prefix", s(&key.prefix))
            .item("created_at", s(key.created_at.to_rfc3339()))
            .build()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(meta).build())
            .transact_items(TransactWriteItem::builder().put(lookup).build())
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
        let (items, next) = self
            .query_prefix(&format!("app#{app}"), "key#", limit, cursor)
            .await?;
        Ok(Page {
            items: items.iter().map(key_from).collect::<Result<_, _>>()?,
            next_cursor: next,
        })
    }

    /// Revokes a key; `false` if the app has no such key.
    pub async fn delete_key(&self, app: &AppId, key_id: &str) -> Result<bool, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(format!("app#{app}")))
            .key("sk", s(format!("key#{key_id}")))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        let Some(item) = out.item else {
            return Ok(false);
        };
        let hash = get_s(&item, "key_hash")?;
        let delete = |pk: String, sk: String| {
            Delete::builder()
                .table_name(&self.table)
                .key("pk", s(pk))
                .key("sk", s(sk))
                .build()
                .map_err(|e| StoreError::Corrupt(e.to_string()))
        };
        self.client
            .transact_write_items()
            .transact_items(
                TransactWriteItem::builder()
                    .delete(delete(format!("app#{app}"), format!("key#{key_id}"))?)
                    .build(),
            )
            .transact_items(
                TransactWriteItem::builder()
                    .delete(delete(format!("keyhash#{hash}"), "key".into())?)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| StoreError::dynamo("TransactWriteItems", e))?;
        Ok(true)
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
            .key("pk", s(format!("keyhash#{}", hash_key(secret))))
            .key("sk", s("key"))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        out.item.as_ref().map(key_from).transpose()
    }

    async fn query_prefix(
        &self,
        pk: &str,
        sk_prefix: &str,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<(Vec<HashMap<String, AttributeValue>>, Option<String>), StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":prefix", s(sk_prefix))
            .limit(limit.clamp(1, MAX_PAGE_SIZE));
        if let Some(cursor) = cursor {
            let sk = crate::decode_cursor(cursor)?;
            if !sk.starts_with(sk_prefix) {
                return Err(StoreError::BadCursor);
            }
            query = query
                .exclusive_start_key("pk", s(pk))
                .exclusive_start_key("sk", s(sk));
        }
        let out = query
            .send()
            .await
            .map_err(|e| StoreError::dynamo("Query", e))?;
        let next = out.last_evaluated_key.and_then(|k| {
            k.get("sk")
                .and_then(|v| v.as_s().ok())
                .map(|sk| B64.encode(sk))
        });
        Ok((out.items.unwrap_or_default(), next))
    }
}

fn uuid_simple() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
