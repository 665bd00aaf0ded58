//! Reads of the subscriptions table: one subscription, an app's subscriptions (its
//! `A#{app}` partition, `begins_with(sk, "S#")`), the routes of one event type, and an
//! app's routing version.

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, Select};
use herald_core::endpoint::route_lookup;
use herald_core::{AppId, Event, EventType, Route, Subscription, SubscriptionId};

use super::items::{id_of_sort_key, read_number, SUBSCRIPTION_PREFIX, VERSION};
use super::SubscriptionStore;
use crate::{decode_cursor, encode_cursor, Item, Page, PkSk, StoreError, MAX_PAGE_SIZE};

impl SubscriptionStore {
    /// One subscription of one app, or `None` (a strongly consistent `GetItem`).
    /// Another app's id is simply not found.
    pub async fn get(
        &self,
        app: &AppId,
        id: &SubscriptionId,
    ) -> Result<Option<Subscription>, StoreError> {
        match self.get_item(PkSk::subscription(app, id), true).await? {
            Some(item) => Ok(Some(self.decode(item).await?)),
            None => Ok(None),
        }
    }

    /// The item at `key`, if there is one: a `GetItem`, strongly consistent when
    /// `consistent`.
    pub(super) async fn get_item(
        &self,
        key: PkSk,
        consistent: bool,
    ) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key.into_item()))
            .consistent_read(consistent)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        Ok(out.item)
    }

    /// A page of an app's subscriptions in id order (ids are time-ordered, so oldest
    /// first). `limit` is clamped to 1..=250; pass the previous page's cursor to go on.
    pub async fn list(
        &self,
        app: &AppId,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<Subscription>, StoreError> {
        let start = cursor
            .map(|c| {
                let id = SubscriptionId::new(decode_cursor(c)?);
                Ok::<_, StoreError>(PkSk::subscription(app, &id).into_item())
            })
            .transpose()?;
        let out = self
            .query_app(app)
            .limit(limit.clamp(1, MAX_PAGE_SIZE))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("Query", e))?;
        let mut items = Vec::new();
        for item in out.items.unwrap_or_default() {
            items.push(self.decode(item).await?);
        }
        let next_cursor = out.last_evaluated_key.and_then(|key| match key.get("sk") {
            Some(AttributeValue::S(sk)) => id_of_sort_key(sk).map(|id| encode_cursor(id.as_str())),
            _ => None,
        });
        Ok(Page { items, next_cursor })
    }

    /// Every subscription of an app: one `Query`, followed through its pages.
    pub async fn for_app(&self, app: &AppId) -> Result<Vec<Subscription>, StoreError> {
        let items: Vec<_> = self
            .query_app(app)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| StoreError::dynamo("Query", e))?;
        let mut subs = Vec::with_capacity(items.len());
        for item in items {
            subs.push(self.decode(item).await?);
        }
        Ok(subs)
    }

    /// How many subscriptions an app has: a `Query` that counts, reading no attributes
    /// back (each page still costs the read units of the items it passes over).
    pub async fn count(&self, app: &AppId) -> Result<usize, StoreError> {
        let pages: Vec<_> = self
            .query_app(app)
            .select(Select::Count)
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| StoreError::dynamo("Query", e))?;
        Ok(pages.iter().map(|page| page.count().max(0) as usize).sum())
    }

    /// The `Query` for an app's subscriptions, in id order.
    fn query_app(&self, app: &AppId) -> QueryFluentBuilder {
        crate::prefix_query(
            &self.client,
            &self.table,
            &PkSk::app_partition(app),
            SUBSCRIPTION_PREFIX,
        )
    }

    /// The routes of the webhooks of `app` that take `event_type`: those listing it
    /// and those taking every type (two strongly consistent `Query`s, each followed
    /// through its pages), active or not, whatever their object-type filter (the
    /// caller applies it: [`Route::filters_admit`]). Reads only those webhooks' route
    /// items, however many other webhooks the app has.
    pub async fn routes(
        &self,
        app: &AppId,
        event_type: &EventType,
    ) -> Result<Vec<Route>, StoreError> {
        let mut routes = Vec::new();
        for partition in route_lookup(event_type).map(|t| PkSk::route_partition(app, t)) {
            let items: Vec<_> = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", AttributeValue::S(partition))
                .consistent_read(true)
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| StoreError::dynamo("Query", e))?;
            for item in items {
                routes.push(self.decode(item).await?);
            }
        }
        Ok(routes)
    }

    /// The app's routing version: a number every routing change of the app moves on
    /// (0 before the first). One eventually consistent `GetItem` (0.5 read units): a
    /// cache of the app's routes that was loaded at this version is current.
    pub async fn routing_version(&self, app: &AppId) -> Result<u64, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(PkSk::routing_version(app).into_item()))
            .projection_expression("#v")
            .expression_attribute_names("#v", VERSION)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        Ok(out
            .item
            .as_ref()
            .and_then(|item| read_number(item, VERSION))
            .unwrap_or(0))
    }

    /// The routes of the webhooks that want `event`: active, and both filters admit it.
    pub async fn matching(&self, event: &Event) -> Result<Vec<Route>, StoreError> {
        let mut routes = self.routes(&event.app_id, &event.event_type).await?;
        routes.retain(|r| r.matches(event));
        Ok(routes)
    }
}
