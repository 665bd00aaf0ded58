//! An app's callback secrets (`herald_core::CallbackSecrets`) in the subscriptions
//! table: one item per app, `A#{app}` / `CB`, sealed as a webhook's secrets are
//! (under `{app}/callback`). Not a subscription: listings and counts read only `S#`
//! items, and no route points at it.

use aws_sdk_dynamodb::types::AttributeValue;
use herald_core::{AppId, CallbackSecrets, Secret, SubscriptionId, CALLBACK_ID};

use super::items::VERSION;
use super::writes::backoff;
use super::{sealing, SubscriptionStore, CHANGE_ATTEMPTS, KIND};
use crate::{from_item, to_item, PkSk, StoreError};

impl PkSk {
    /// An app's callback secrets, in its app's partition.
    fn callback(app: &AppId) -> Self {
        Self {
            pk: Self::app_partition(app),
            sk: "CB".to_owned(),
        }
    }
}

impl SubscriptionStore {
    /// The app's callback secrets, or `None` when it never rotated one in.
    pub async fn callback_secrets(
        &self,
        app: &AppId,
    ) -> Result<Option<CallbackSecrets>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(PkSk::callback(app).into_item()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        match out.item {
            Some(mut item) => {
                sealing::open_item(&mut item, &self.sealer).await?;
                Ok(Some(from_item(KIND, item)?))
            }
            None => Ok(None),
        }
    }

    /// Gives the app a new callback secret (the first, or a rotation: the previous
    /// one keeps signing for `window`), in a write guarded by the item's version and
    /// retried from a fresh read. Returns the new secret and the secrets as stored.
    pub async fn rotate_callback_secret(
        &self,
        app: &AppId,
        now: chrono::DateTime<chrono::Utc>,
        window: chrono::Duration,
    ) -> Result<(Secret, CallbackSecrets), StoreError> {
        for _ in 0..CHANGE_ATTEMPTS {
            let current = self.callback_secrets(app).await?;
            let (next, secret) = CallbackSecrets::rotated(current.as_ref(), app, now, window);
            let mut item = to_item(KIND, &next)?;
            sealing::seal_item(&mut item, &self.sealing_key().await?)?;
            item.extend(PkSk::callback(app).into_item());
            let put = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item));
            let put = match &current {
                None => put.condition_expression("attribute_not_exists(pk)"),
                Some(c) => put
                    .condition_expression("#v = :v")
                    .expression_attribute_names("#v", VERSION)
                    .expression_attribute_values(":v", AttributeValue::N(c.version.to_string())),
            };
            match put.send().await {
                Ok(_) => return Ok((secret, next)),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
                {
                    backoff().await;
                }
                Err(e) => return Err(StoreError::dynamo("PutItem", e)),
            }
        }
        Err(StoreError::Changed {
            kind: KIND,
            id: SubscriptionId::new(CALLBACK_ID).to_string(),
        })
    }
}
