//! Subscriptions in DynamoDB, with their routes: what delivery needs, reachable by
//! (app, event type), so that finding the webhooks of an event reads only those.
//!
//! The table (keys `pk`/`sk`) holds four kinds of item, laid out in [`items`]: the
//! subscription (`A#{app}` / `S#{id}`), one route per event type it takes
//! (`R#{app}#{type}` or `R#{app}#*` / `{id}`), and the app's routing version
//! (`A#{app}` / `V`); a rate-limited webhook also has its schedule of delivery slots
//! (`L#{app}#{id}`, [`rates`]). How writes keep them consistent is in [`writes`]; the
//! reads are in [`reads`]. Signing secrets and credential header values are sealed at rest
//! ([`sealing`]).

mod callback;
mod catalog;
mod items;
mod rates;
mod reads;
mod sealing;
mod writes;

use std::collections::BTreeMap;

use aws_sdk_dynamodb::Client;
use herald_core::{
    ContentType, EventFilter, ObjectTypeFilter, PayloadFormat, RateLimit, Subscription,
};
use herald_seal::Sealer;
use serde::de::DeserializeOwned;

use crate::{from_item, Item, ItemKind, StoreError};

pub use catalog::{EventTypeChanges, EventTypeEntry};
pub use writes::CHANGE_ATTEMPTS;

const KIND: ItemKind = ItemKind::Subscription;

/// What a PATCH changes; `None` leaves an attribute as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubscriptionChanges {
    /// A new URL.
    pub url: Option<String>,
    /// A new event filter.
    pub events: Option<EventFilter>,
    /// A new object-type filter.
    pub object_types: Option<ObjectTypeFilter>,
    /// A new description.
    pub description: Option<String>,
    /// A new payload filter (`Some(None)`: none).
    pub filter: Option<Option<herald_core::PayloadFilter>>,
    /// New custom headers (replacing all of them; a credential value sent back as
    /// the API masked it keeps the stored value).
    pub headers: Option<BTreeMap<String, String>>,
    /// Enabled (which also clears the failure count and the disabled reason) or
    /// disabled.
    pub active: Option<bool>,
    /// A new rate limit (`Some(None)`: none).
    pub rate_limit: Option<Option<RateLimit>>,
    /// A new payload format.
    pub format: Option<PayloadFormat>,
    /// A new content type.
    pub content_type: Option<ContentType>,
    /// Ordered delivery on or off.
    pub ordered: Option<bool>,
}

impl SubscriptionChanges {
    /// Applies the changes to `sub` and stamps `updated_at`.
    pub fn apply_to(&self, sub: &mut Subscription) {
        if let Some(url) = &self.url {
            sub.url.clone_from(url);
        }
        if let Some(events) = &self.events {
            sub.events = events.clone();
        }
        if let Some(types) = &self.object_types {
            sub.object_types = types.clone();
        }
        if let Some(description) = &self.description {
            sub.description.clone_from(description);
        }
        if let Some(headers) = &self.headers {
            sub.headers = herald_core::credential_headers::unmask_headers(headers, &sub.headers);
        }
        if let Some(limit) = self.rate_limit {
            sub.rate_limit = limit;
        }
        if let Some(filter) = &self.filter {
            sub.filter.clone_from(filter);
        }
        if let Some(format) = self.format {
            sub.format = format;
        }
        if let Some(content_type) = self.content_type {
            sub.content_type = content_type;
        }
        if let Some(ordered) = self.ordered {
            sub.ordered = ordered;
        }
        match self.active {
            Some(true) => {
                sub.active = true;
                sub.consecutive_failures = 0;
                sub.disabled_reason = None;
            }
            Some(false) => sub.active = false,
            None => {}
        }
        sub.updated_at = chrono::Utc::now();
    }
}

/// Subscriptions and their routes in DynamoDB, their secrets sealed with `sealer`.
#[derive(Clone, Debug)]
pub struct SubscriptionStore {
    client: Client,
    table: String,
    sealer: Sealer,
}

impl SubscriptionStore {
    /// A store on the subscriptions table `table`, sealing and opening secrets with
    /// `sealer`.
    pub fn new(client: Client, table: impl Into<String>, sealer: Sealer) -> Self {
        Self {
            client,
            table: table.into(),
            sealer,
        }
    }

    /// The items `subs` are stored as (subscription items, routes, and each app's
    /// routing version item), secrets sealed, for loading many at once with
    /// `BatchWriteItem` where one transaction per webhook would be slow (the bench).
    /// Not for live tables: it bypasses the version conditions.
    pub async fn bulk_items(
        &self,
        subs: &[Subscription],
    ) -> Result<
        Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>>,
        StoreError,
    > {
        items::bulk_items(subs, &self.sealing_key().await?)
    }

    /// The data key to seal this change's items with.
    async fn sealing_key(&self) -> Result<herald_seal::SealingKey, StoreError> {
        self.sealer
            .sealing_key()
            .await
            .map_err(|e| StoreError::Keys {
                message: e.to_string(),
            })
    }

    /// A stored subscription or route item, its secrets opened.
    async fn decode<T: DeserializeOwned>(&self, mut item: Item) -> Result<T, StoreError> {
        sealing::open_item(&mut item, &self.sealer).await?;
        from_item(KIND, item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::AppId;

    #[test]
    fn changes_touch_only_what_they_name_and_enabling_clears_health() {
        let mut sub = Subscription::new(
            AppId::parse("app").unwrap(),
            "https://example.com",
            EventFilter::parse(&["update"]).unwrap(),
            ObjectTypeFilter::All,
        );
        sub.active = false;
        sub.consecutive_failures = 4;
        sub.disabled_reason = Some("too many failures".into());
        let before = sub.clone();
        SubscriptionChanges {
            description: Some("d".into()),
            ..SubscriptionChanges::default()
        }
        .apply_to(&mut sub);
        assert_eq!(sub.description, "d");
        assert_eq!((sub.url.as_str(), sub.active), (before.url.as_str(), false));
        SubscriptionChanges {
            active: Some(true),
            ..SubscriptionChanges::default()
        }
        .apply_to(&mut sub);
        assert!(sub.active);
        assert_eq!((sub.consecutive_failures, sub.disabled_reason), (0, None));
    }
}
