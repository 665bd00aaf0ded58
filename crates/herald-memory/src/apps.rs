//! Apps and their API keys in memory, with the DynamoDB store's rules: a deleted app
//! leaves a tombstone (its id is never reused), keys are kept as their hash only, and a
//! key authenticates only while its app is live.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::Utc;
use herald_core::AppId;
use herald_store::{
    hash_key, mint_key, ApiKey, App, AppStorage, ItemKind, NewKey, Page, StoreError, KEY_PREFIX,
};

use crate::lock;
use crate::page::page;

#[derive(Default)]
struct Apps {
    /// Every app ever created; `false`: deleted (a tombstone).
    apps: BTreeMap<AppId, (App, bool)>,
    /// Keys by hash.
    keys: BTreeMap<String, ApiKey>,
}

/// Apps and keys in memory.
#[derive(Default)]
pub struct MemoryApps {
    state: Mutex<Apps>,
}

impl Apps {
    fn is_live(&self, id: &AppId) -> bool {
        self.apps.get(id).is_some_and(|(_, live)| *live)
    }
}

#[async_trait]
impl AppStorage for MemoryApps {
    async fn create_app(&self, id: &AppId, name: &str) -> Result<App, StoreError> {
        let mut state = lock(&self.state);
        if state.apps.contains_key(id) {
            return Err(StoreError::already_exists(ItemKind::App, id));
        }
        let app = App {
            id: id.clone(),
            name: name.to_owned(),
            created_at: Utc::now(),
        };
        state.apps.insert(id.clone(), (app.clone(), true));
        Ok(app)
    }

    async fn get_app(&self, id: &AppId) -> Result<Option<App>, StoreError> {
        let state = lock(&self.state);
        Ok(state
            .apps
            .get(id)
            .filter(|(_, live)| *live)
            .map(|(app, _)| app.clone()))
    }

    async fn list_apps(&self, limit: i32, cursor: Option<&str>) -> Result<Page<App>, StoreError> {
        let state = lock(&self.state);
        page(
            "apps",
            state
                .apps
                .iter()
                .filter(|(_, (_, live))| *live)
                .map(|(id, (app, _))| (id.to_string(), app.clone())),
            limit,
            cursor,
        )
    }

    async fn delete_app(&self, id: &AppId) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        match state.apps.get_mut(id) {
            Some((_, live)) if *live => *live = false,
            _ => return Err(StoreError::not_found(ItemKind::App, id)),
        }
        state.keys.retain(|_, key| &key.app_id != id);
        Ok(())
    }

    async fn create_key(&self, app: &AppId) -> Result<NewKey, StoreError> {
        let mut state = lock(&self.state);
        if !state.is_live(app) {
            return Err(StoreError::not_found(ItemKind::App, app));
        }
        let (new_key, hash) = mint_key(app);
        state.keys.insert(hash, new_key.key.clone());
        Ok(new_key)
    }

    async fn list_keys(
        &self,
        app: &AppId,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<ApiKey>, StoreError> {
        let state = lock(&self.state);
        let mut keys: Vec<(String, ApiKey)> = state
            .keys
            .values()
            .filter(|k| &k.app_id == app)
            .map(|k| (k.id.clone(), k.clone()))
            .collect();
        keys.sort_by(|a, b| a.0.cmp(&b.0));
        page(&format!("keys|{app}"), keys, limit, cursor)
    }

    async fn delete_key(&self, app: &AppId, key_id: &str) -> Result<bool, StoreError> {
        let mut state = lock(&self.state);
        let before = state.keys.len();
        state
            .keys
            .retain(|_, k| !(&k.app_id == app && k.id == key_id));
        Ok(state.keys.len() < before)
    }

    async fn authenticate(&self, secret: &str) -> Result<Option<ApiKey>, StoreError> {
        if !secret.starts_with(KEY_PREFIX) || secret.len() > 128 {
            return Ok(None);
        }
        let state = lock(&self.state);
        Ok(state
            .keys
            .get(&hash_key(secret))
            .filter(|k| state.is_live(&k.app_id))
            .cloned())
    }

    async fn key_is_live(&self, app: &AppId, key_id: &str) -> Result<bool, StoreError> {
        let state = lock(&self.state);
        Ok(state.is_live(app)
            && state
                .keys
                .values()
                .any(|k| &k.app_id == app && k.id == key_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_work_while_their_app_lives_and_ids_are_never_reused() {
        let apps = MemoryApps::default();
        let shop = AppId::parse("shop").unwrap();
        apps.create_app(&shop, "Shop").await.unwrap();
        let key = apps.create_key(&shop).await.unwrap();
        let found = apps.authenticate(&key.secret).await.unwrap().unwrap();
        assert_eq!(found.id, key.key.id);
        assert!(apps.key_is_live(&shop, &key.key.id).await.unwrap());
        assert_eq!(apps.authenticate("hk_nope").await.unwrap(), None);

        apps.delete_app(&shop).await.unwrap();
        assert_eq!(apps.authenticate(&key.secret).await.unwrap(), None);
        assert!(matches!(
            apps.create_app(&shop, "Again").await,
            Err(StoreError::AlreadyExists { .. })
        ));
        assert!(matches!(
            apps.create_key(&shop).await,
            Err(StoreError::NotFound { .. })
        ));
        assert!(apps.list_apps(10, None).await.unwrap().items.is_empty());
    }
}
