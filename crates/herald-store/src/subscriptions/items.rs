//! The subscriptions table's layout: its keys and the items of subscriptions, routes
//! and each app's routing version. The only place the table's keys are spelled out.
//!
//! | item | `pk` | `sk` | attributes |
//! | --- | --- | --- | --- |
//! | subscription | `A#{app}` | `S#{id}` | the whole [`Subscription`], with its `version`, secrets sealed |
//! | route | `R#{app}#{event type}`, or `R#{app}#*` for every type | `{id}` | the [`Route`], secrets sealed |
//! | routing version | `A#{app}` | `V` | `version` (number) |
//! | rate schedule of a rate-limited webhook | `L#{app}#{id}` | `L` | `end` (number: µs since the epoch) |
//! | event type of the app's catalog | `A#{app}` | `T#{type}` | name, description, JSON Schema (text), times |
//! | count of the app's catalog | `A#{app}` | `TC` | `n` (number) |
//!
//! App ids and event types cannot contain `#`, and event types cannot be `*`, so the
//! keys of different apps and types never meet.

use aws_sdk_dynamodb::types::AttributeValue;
use herald_core::{AppId, EventType, Subscription, SubscriptionId};
use herald_seal::SealingKey;

use super::sealing::seal_item;

use crate::{to_item, Item, ItemKind, PkSk, StoreError};

/// Sort key prefix of subscription items in their app's partition.
pub(super) const SUBSCRIPTION_PREFIX: &str = "S#";
/// Sort key prefix of event-type catalog entries in their app's partition.
pub(super) const TYPE_PREFIX: &str = "T#";
/// The attribute holding a subscription's or an app's version.
pub(super) const VERSION: &str = "version";

impl PkSk {
    /// The partition of an app's subscriptions and its routing version.
    pub(super) fn app_partition(app: &AppId) -> String {
        format!("A#{app}")
    }

    /// A subscription, in its app's partition.
    pub(super) fn subscription(app: &AppId, id: &SubscriptionId) -> Self {
        Self {
            pk: Self::app_partition(app),
            sk: format!("{SUBSCRIPTION_PREFIX}{id}"),
        }
    }

    /// The app's routing version, bumped by every change of its routes.
    pub(super) fn routing_version(app: &AppId) -> Self {
        Self {
            pk: Self::app_partition(app),
            sk: "V".to_owned(),
        }
    }

    /// A rate-limited webhook's schedule: the end of its reserved delivery slots. A
    /// partition of its own, so a busy webhook's reservations load no other key.
    pub(super) fn rate_schedule(app: &AppId, id: &SubscriptionId) -> Self {
        Self {
            pk: format!("L#{app}#{id}"),
            sk: "L".to_owned(),
        }
    }

    /// The partition of the routes of one event type (`None`: of webhooks taking every
    /// type).
    pub(super) fn route_partition(app: &AppId, event_type: Option<&EventType>) -> String {
        match event_type {
            Some(t) => format!("R#{app}#{t}"),
            None => format!("R#{app}#*"),
        }
    }

    /// One webhook's route for one event type (`None`: every type).
    pub(super) fn route(app: &AppId, event_type: Option<&EventType>, id: &SubscriptionId) -> Self {
        Self {
            pk: Self::route_partition(app, event_type),
            sk: id.to_string(),
        }
    }

    /// An entry of an app's event-type catalog.
    pub(super) fn event_type(app: &AppId, name: &EventType) -> Self {
        Self {
            pk: Self::app_partition(app),
            sk: format!("{TYPE_PREFIX}{name}"),
        }
    }

    /// The count of an app's catalog entries.
    pub(super) fn event_type_count(app: &AppId) -> Self {
        Self {
            pk: Self::app_partition(app),
            sk: "TC".to_owned(),
        }
    }
}

/// The id a subscription item's sort key names, if it is one.
pub(super) fn id_of_sort_key(sk: &str) -> Option<SubscriptionId> {
    sk.strip_prefix(SUBSCRIPTION_PREFIX)
        .filter(|id| !id.is_empty())
        .map(SubscriptionId::new)
}

/// A value encoded with `serde_dynamo`, its secrets sealed with `seal` (and its key
/// attributes added).
fn sealed<T: serde::Serialize>(
    value: &T,
    key: PkSk,
    seal: &SealingKey,
) -> Result<Item, StoreError> {
    let mut item = to_item(ItemKind::Subscription, value)?;
    seal_item(&mut item, seal)?;
    item.extend(key.into_item());
    Ok(item)
}

/// The item of a subscription: the serialized [`Subscription`] under its key, its
/// secrets sealed.
pub(super) fn subscription_item(sub: &Subscription, seal: &SealingKey) -> Result<Item, StoreError> {
    sealed(sub, PkSk::subscription(&sub.app_id, &sub.id), seal)
}

/// The route items of a subscription, one per event type it takes, secrets sealed.
pub(super) fn route_items(
    sub: &Subscription,
    seal: &SealingKey,
) -> Result<Vec<(PkSk, Item)>, StoreError> {
    let route = sub.route();
    sub.events
        .route_types()
        .into_iter()
        .map(|t| {
            let key = PkSk::route(&sub.app_id, t, &sub.id);
            Ok((key.clone(), sealed(&route, key, seal)?))
        })
        .collect()
}

/// The route keys of a subscription, one per event type it takes.
pub(super) fn route_keys(sub: &Subscription) -> Vec<PkSk> {
    sub.events
        .route_types()
        .into_iter()
        .map(|t| PkSk::route(&sub.app_id, t, &sub.id))
        .collect()
}

/// The items `subs` are stored as, for bulk loads with `BatchWriteItem` (the bench):
/// each subscription item, its routes, and each app's routing version item (at 1).
pub(super) fn bulk_items(
    subs: &[Subscription],
    seal: &SealingKey,
) -> Result<Vec<Item>, StoreError> {
    let mut items = Vec::new();
    let mut apps = std::collections::BTreeSet::new();
    for sub in subs {
        items.push(subscription_item(sub, seal)?);
        items.extend(route_items(sub, seal)?.into_iter().map(|(_, item)| item));
        apps.insert(sub.app_id.clone());
    }
    for app in apps {
        let mut item = PkSk::routing_version(&app).into_item();
        item.insert(VERSION.to_owned(), number(1));
        items.push(item);
    }
    Ok(items)
}

/// A number attribute.
pub(super) fn number(n: u64) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

/// Reads a number attribute of an item.
pub(super) fn read_number(item: &Item, name: &str) -> Option<u64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

/// What the routes of a subscription become when it changes from `before` to `after`:
/// keys to delete and items to put. Empty when no route changes.
pub(super) fn route_changes(
    before: Option<&Subscription>,
    after: Option<&Subscription>,
    seal: &SealingKey,
) -> Result<(Vec<PkSk>, Vec<Item>), StoreError> {
    let old = before.map(route_keys).unwrap_or_default();
    let new = after
        .map(|a| route_items(a, seal))
        .transpose()?
        .unwrap_or_default();
    let unchanged_route = match (before, after) {
        (Some(b), Some(a)) => b.route() == a.route(),
        _ => false,
    };
    let deletes = old
        .into_iter()
        .filter(|k| !new.iter().any(|(n, _)| n == k))
        .collect();
    let old_keys = before.map(route_keys).unwrap_or_default();
    let puts = new
        .into_iter()
        .filter(|(k, _)| !(unchanged_route && old_keys.contains(k)))
        .map(|(_, item)| item)
        .collect();
    Ok((deletes, puts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::from_item;
    use crate::subscriptions::sealing::open_item;
    use herald_core::{EventFilter, ObjectTypeFilter, Route};
    use herald_seal::{LocalKeys, Sealer};

    /// A sealer and its sealing key.
    async fn keys() -> (Sealer, SealingKey) {
        let sealer = Sealer::new(LocalKeys::generate());
        let key = sealer.sealing_key().await.unwrap();
        (sealer, key)
    }

    fn sub(types: &[&str]) -> Subscription {
        Subscription::new(
            AppId::parse("shop").unwrap(),
            "https://example.com/hook",
            EventFilter::parse(types).unwrap(),
            ObjectTypeFilter::parse(&["user"]).unwrap(),
        )
    }

    #[tokio::test]
    async fn subscriptions_convert_to_items_and_back() {
        let (sealer, seal) = keys().await;
        let s = sub(&["update"]);
        let mut item = subscription_item(&s, &seal).unwrap();
        assert_eq!(item["pk"], AttributeValue::S("A#shop".into()));
        assert_eq!(item["sk"], AttributeValue::S(format!("S#{}", s.id)));
        assert!(!format!("{item:?}").contains(&s.secrets[0].expose()));
        open_item(&mut item, &sealer).await.unwrap();
        let back: Subscription = from_item(ItemKind::Subscription, item).unwrap();
        assert_eq!(back, s);
        assert_eq!(id_of_sort_key(&format!("S#{}", s.id)), Some(s.id.clone()));
        assert_eq!(id_of_sort_key("V"), None);
    }

    #[tokio::test]
    async fn a_webhook_has_one_route_per_event_type_or_one_for_every_type() {
        let (sealer, seal) = keys().await;
        let s = sub(&["create", "update"]);
        let items = route_items(&s, &seal).unwrap();
        let pks: Vec<_> = items.iter().map(|(k, _)| k.pk.clone()).collect();
        assert_eq!(pks, ["R#shop#create", "R#shop#update"]);
        let mut item = items[0].1.clone();
        open_item(&mut item, &sealer).await.unwrap();
        let route: Route = from_item(ItemKind::Subscription, item).unwrap();
        assert_eq!(route, s.route());
        let all = sub(&["*"]);
        assert_eq!(route_keys(&all)[0].pk, "R#shop#*");
        assert_eq!(route_keys(&all)[0].sk, all.id.to_string());
    }

    #[tokio::test]
    async fn route_changes_move_routes_and_skip_unchanged_ones() {
        let (_, seal) = keys().await;
        let before = sub(&["create", "update"]);
        // A description changes no route.
        let mut after = before.clone();
        after.description = "new".into();
        let (deletes, puts) = route_changes(Some(&before), Some(&after), &seal).unwrap();
        assert!(deletes.is_empty() && puts.is_empty());
        // New types: the dropped one is deleted, the new one put.
        after.events = EventFilter::parse(&["update", "delete"]).unwrap();
        let (deletes, puts) = route_changes(Some(&before), Some(&after), &seal).unwrap();
        assert_eq!(deletes.len(), 1);
        assert_eq!(deletes[0].pk, "R#shop#create");
        // Both remaining routes are written: a route carries the filter.
        let put_pks: Vec<_> = puts.iter().map(|i| i["pk"].clone()).collect();
        assert_eq!(
            put_pks,
            [
                AttributeValue::S("R#shop#delete".into()),
                AttributeValue::S("R#shop#update".into())
            ]
        );
        // A new URL rewrites every route, and moves none.
        let mut moved = before.clone();
        moved.url = "https://example.com/other".into();
        let (deletes, puts) = route_changes(Some(&before), Some(&moved), &seal).unwrap();
        assert_eq!((deletes.len(), puts.len()), (0, 2));
        // So does a new rate limit: the consumer reads it from the routes.
        let mut limited = before.clone();
        limited.rate_limit = Some(herald_core::RateLimit::new(5).unwrap());
        let (deletes, puts) = route_changes(Some(&before), Some(&limited), &seal).unwrap();
        assert_eq!((deletes.len(), puts.len()), (0, 2));
        // And a new format or content type.
        let mut para = before.clone();
        para.format = herald_core::PayloadFormat::Para;
        let (deletes, puts) = route_changes(Some(&before), Some(&para), &seal).unwrap();
        assert_eq!((deletes.len(), puts.len()), (0, 2));
        let mut form = before.clone();
        form.content_type = herald_core::ContentType::Form;
        let (deletes, puts) = route_changes(Some(&before), Some(&form), &seal).unwrap();
        assert_eq!((deletes.len(), puts.len()), (0, 2));
        // Delete removes them all.
        let (deletes, puts) = route_changes(Some(&before), None, &seal).unwrap();
        assert_eq!((deletes.len(), puts.len()), (2, 0));
    }

    /// Data keys shaped as KMS gives them: a key ARN and a 184-byte encrypted blob.
    struct KmsShaped;

    #[async_trait::async_trait]
    impl herald_seal::KeyProvider for KmsShaped {
        async fn generate_data_key(&self) -> Result<herald_seal::DataKey, herald_seal::SealError> {
            Ok(herald_seal::DataKey {
                key_id:
                    "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
                        .into(),
                encrypted: vec![7; 184],
                plaintext: zeroize::Zeroizing::new([9; 32]),
            })
        }
        async fn decrypt_data_key(
            &self,
            _: &str,
            _: &[u8],
        ) -> Result<herald_seal::KeyBytes, herald_seal::SealError> {
            Ok(zeroize::Zeroizing::new([9; 32]))
        }
    }

    #[tokio::test]
    async fn a_sealed_route_item_stays_small() {
        let mut s = sub(&["update"]);
        s.url = "https://hooks.example.com/0".into();
        let plain = crate::item_size(&route_items_unsealed(&s));
        let (_, local) = keys().await;
        let kms = Sealer::new(KmsShaped).sealing_key().await.unwrap();
        let sealed_local = crate::item_size(&route_items(&s, &local).unwrap()[0].1);
        let sealed_kms = crate::item_size(&route_items(&s, &kms).unwrap()[0].1);
        println!("route item: {plain} B plain, {sealed_local} B sealed locally, {sealed_kms} B under KMS");
        assert!(sealed_local < plain + 250, "{sealed_local}");
        assert!(sealed_kms < plain + 500, "{sealed_kms}");
        // A Para form route adds its two attributes, and nothing else.
        let mut para = s.clone();
        para.format = herald_core::PayloadFormat::Para;
        para.content_type = herald_core::ContentType::Form;
        let para_plain = crate::item_size(&route_items_unsealed(&para));
        println!("Para form route item: {para_plain} B plain");
        assert_eq!(
            para_plain - plain,
            "format".len() + "para".len() + "content_type".len() + "form".len()
        );
    }

    #[tokio::test]
    async fn a_route_carries_its_payload_filter_through_its_item() {
        let (sealer, seal) = keys().await;
        let mut s = sub(&["update"]);
        let before = s.clone();
        let plain = crate::item_size(&route_items_unsealed(&s));
        let filter = serde_json::json!({"any": [
            {"path": "/data/amount", "eq": 12.5},
            {"path": "/data/n", "in": [1, -2, null, true, "x"]},
            {"path": "/actor/id", "prefix": "admin_"},
            {"path": "/data/a~1b", "exists": false}
        ]});
        s.filter = Some(herald_core::PayloadFilter::parse(&filter).unwrap());
        let (key, mut item) = route_items(&s, &seal).unwrap().remove(0);
        assert_eq!(key.pk, "R#shop#update");
        open_item(&mut item, &sealer).await.unwrap();
        let route: Route = from_item(ItemKind::Subscription, item).unwrap();
        assert_eq!(route.filter, s.filter);
        assert_eq!(route.filter.unwrap().to_value(), filter);
        let with_filter = crate::item_size(&route_items_unsealed(&s));
        println!(
            "route item: {plain} B, with a {} B filter {with_filter} B",
            filter.to_string().len()
        );
        assert!(
            with_filter - plain <= filter.to_string().len() + 16,
            "{with_filter} vs {plain}"
        );
        // A new filter rewrites the routes, and moves none.
        let (deletes, puts) = route_changes(Some(&before), Some(&s), &seal).unwrap();
        assert_eq!((deletes.len(), puts.len()), (0, 1));
    }

    /// A route item as it would be without sealing, for comparison.
    fn route_items_unsealed(s: &Subscription) -> Item {
        let mut item = crate::to_item(ItemKind::Subscription, &s.route()).unwrap();
        item.extend(PkSk::route(&s.app_id, s.events.route_types()[0], &s.id).into_item());
        item
    }
}
