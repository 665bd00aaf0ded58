//! Secrets at rest: signing secrets and credential-bearing header values are sealed in
//! every item of the subscriptions table, masked in every API response, sent in full
//! to the receiver; a tampered or foreign sealed value is an error, never a wrong
//! secret; the KMS provider works against the emulator's KMS.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use herald_core::{AppId, EventFilter, ObjectTypeFilter, Secret, Subscription, Verifier};
use herald_seal::{Envelope, KmsKeys, LocalKeys, SealError, Sealer};
use herald_store::{StoreError, SubscriptionStore};
use herald_testing::{aws, wait_until, ApiServer, Receiver, Stack, Worker};
use serde_json::{json, Value};

const TOKEN: &str = "t0k3n-never-stored-in-plaintext";
const API_KEY: &str = "k3y-never-stored-in-plaintext";

type Item = HashMap<String, AttributeValue>;

/// Every item of the stack's subscriptions table, as stored.
async fn raw_items(stack: &Stack) -> Vec<Item> {
    aws_sdk_dynamodb::Client::new(&aws().await)
        .scan()
        .table_name(stack.subscriptions_table())
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .unwrap()
}

/// The items holding a webhook's secrets: its subscription item and its routes.
fn with_secrets(items: &[Item]) -> Vec<&Item> {
    items.iter().filter(|i| i.contains_key("secrets")).collect()
}

/// The base64 body of a `whsec_` secret: what would show if it were stored.
fn body(secret: &str) -> &str {
    secret.trim_start_matches("whsec_")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn secrets_and_credential_headers_are_sealed_at_rest_masked_in_responses_and_sent_in_full() {
    let stack = Stack::deploy("secrets-at-rest").unwrap();
    let api = ApiServer::start(&stack, &[]).await.unwrap();
    let key = api.app_with_key("shop").await;
    let key = Some(key.as_str());
    let receiver = Receiver::ok().await;
    let masked = json!({"Authorization": "Bearer ***", "X-Api-Key": "***", "X-Team": "billing"});

    let (s, created) = api
        .call(
            "POST",
            "/v1/webhooks",
            key,
            Some(json!({
                "url": receiver.url(),
                "events": ["update"],
                "headers": {"Authorization": format!("Bearer {TOKEN}"), "X-Api-Key": API_KEY, "X-Team": "billing"},
            })),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["headers"], masked, "create masks");
    let first = created["secret"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/webhooks/{id}");

    let (_, got) = api.call("GET", &path, key, None).await;
    assert_eq!(got["headers"], masked, "get masks");
    let (_, listed) = api.call("GET", "/v1/webhooks", key, None).await;
    assert_eq!(listed["data"][0]["headers"], masked, "list masks");
    let (s, patched) = api
        .call("PATCH", &path, key, Some(json!({"description": "d"})))
        .await;
    assert_eq!(s, 200, "{patched}");
    assert_eq!(patched["headers"], masked, "PATCH masks");
    // Sending back what was read (masks included) with one plain change keeps the
    // stored credentials.
    let mut headers = got["headers"].clone();
    headers["X-Team"] = json!("ops");
    let (s, patched) = api
        .call("PATCH", &path, key, Some(json!({"headers": headers})))
        .await;
    assert_eq!(s, 200, "{patched}");
    assert_eq!(patched["headers"]["X-Team"], "ops");
    assert_eq!(patched["headers"]["Authorization"], "Bearer ***");
    for response in [&got, &listed, &patched] {
        let text = response.to_string();
        assert!(!text.contains(TOKEN) && !text.contains(API_KEY), "{text}");
        assert!(
            !text.contains(body(&first)),
            "no secret after creation: {text}"
        );
    }

    let (s, rotated) = api
        .call("POST", &format!("{path}/secret/rotate"), key, None)
        .await;
    assert_eq!(s, 200, "{rotated}");
    let second = rotated["secret"].as_str().unwrap().to_owned();

    // As stored: the subscription item and its route hold both secrets and both
    // credentials sealed; the rest is as before.
    let items = raw_items(&stack).await;
    let sealed = with_secrets(&items);
    assert_eq!(sealed.len(), 2, "the webhook and its one route: {items:?}");
    for item in sealed {
        let text = format!("{item:?}");
        for plain in [TOKEN, API_KEY, body(&first), body(&second)] {
            assert!(!text.contains(plain), "{plain} stored in plaintext: {text}");
        }
        let secrets = item["secrets"].as_l().unwrap();
        assert_eq!(secrets.len(), 2, "current and previous");
        for s in secrets {
            assert!(s.as_s().unwrap().starts_with("hs1:"));
        }
        let headers = item["headers"].as_m().unwrap();
        assert!(headers["Authorization"].as_s().unwrap().starts_with("hs1:"));
        assert!(headers["X-Api-Key"].as_s().unwrap().starts_with("hs1:"));
        assert_eq!(headers["X-Team"].as_s().unwrap(), "ops", "not a credential");
    }

    // The receiver gets the credentials in full and verifies with either secret shown.
    let _worker = Worker::spawn(&stack, &[]).unwrap();
    let (s, _) = api
        .call(
            "POST",
            "/v1/events",
            key,
            Some(json!({"type": "update", "object_type": "user", "data": {"n": 1}})),
        )
        .await;
    assert_eq!(s, 202);
    assert!(wait_until(Duration::from_secs(60), || async { receiver.count() == 1 }).await);
    let delivery = receiver.received()[0].clone();
    assert_eq!(delivery.header("authorization"), format!("Bearer {TOKEN}"));
    assert_eq!(delivery.header("x-api-key"), API_KEY);
    assert_eq!(delivery.header("x-team"), "ops");
    for secret in [&first, &second] {
        Verifier::new(vec![Secret::parse(secret).unwrap()])
            .verify(
                delivery.header("webhook-id"),
                delivery.header("webhook-timestamp"),
                delivery.header("webhook-signature"),
                &delivery.body,
            )
            .expect("a secret shown by the API verifies the delivery");
    }
}

/// Replaces attribute `secrets[0]` of the item at (`pk`, `sk`).
async fn put_secret(stack: &Stack, item: &Item, value: AttributeValue) {
    aws_sdk_dynamodb::Client::new(&aws().await)
        .update_item()
        .table_name(stack.subscriptions_table())
        .key("pk", item["pk"].clone())
        .key("sk", item["sk"].clone())
        .update_expression("SET secrets[0] = :v")
        .expression_attribute_values(":v", value)
        .send()
        .await
        .unwrap();
}

/// The subscription item (not a route) of webhook `sub`.
fn subscription_item<'a>(items: &'a [Item], sub: &Subscription) -> &'a Item {
    items
        .iter()
        .find(|i| i["sk"].as_s().ok() == Some(&format!("S#{}", sub.id)))
        .expect("the subscription item")
}

fn is_corrupt(r: Result<Option<Subscription>, StoreError>) -> bool {
    matches!(r, Err(StoreError::Corrupt { .. }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tampered_moved_or_foreign_sealed_secret_is_an_error_never_a_wrong_secret() {
    let stack = Stack::deploy("secrets-tamper").unwrap();
    let dynamo = aws_sdk_dynamodb::Client::new(&aws().await);
    let store = SubscriptionStore::new(
        dynamo.clone(),
        stack.subscriptions_table(),
        stack.sealer().unwrap(),
    );
    let app = AppId::parse("shop").unwrap();
    let new_sub = || {
        Subscription::new(
            app.clone(),
            "https://example.com/hook",
            EventFilter::parse(&["update"]).unwrap(),
            ObjectTypeFilter::All,
        )
    };
    let (a, b) = (new_sub(), new_sub());
    store.create(&a).await.unwrap();
    store.create(&b).await.unwrap();
    assert_eq!(
        store.get(&app, &a.id).await.unwrap().unwrap().secrets,
        a.secrets
    );

    // Another master key: nothing opens.
    let foreign = SubscriptionStore::new(
        dynamo.clone(),
        stack.subscriptions_table(),
        Sealer::new(LocalKeys::generate()),
    );
    let err = foreign.get(&app, &a.id).await.unwrap_err();
    assert!(err.to_string().contains("does not hold"), "{err}");

    // B's sealed secret copied into A: sealed for another webhook, does not open.
    let items = raw_items(&stack).await;
    let b_secret = subscription_item(&items, &b)["secrets"].as_l().unwrap()[0].clone();
    put_secret(&stack, subscription_item(&items, &a), b_secret).await;
    assert!(is_corrupt(store.get(&app, &a.id).await));

    // One character of A's own sealed secret changed: does not open.
    let own = subscription_item(&items, &a)["secrets"].as_l().unwrap()[0]
        .as_s()
        .unwrap()
        .clone();
    let last = own.chars().last().unwrap();
    let flipped = format!(
        "{}{}",
        &own[..own.len() - 1],
        if last == 'A' { 'B' } else { 'A' }
    );
    put_secret(
        &stack,
        subscription_item(&items, &a),
        AttributeValue::S(flipped),
    )
    .await;
    let err = store.get(&app, &a.id).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("does not open"), "{err}");

    // A plaintext secret where a sealed one belongs: refused, not used.
    put_secret(
        &stack,
        subscription_item(&items, &a),
        AttributeValue::S(a.secrets[0].expose()),
    )
    .await;
    assert!(is_corrupt(store.get(&app, &a.id).await));
    // B is untouched throughout.
    assert_eq!(
        store.get(&app, &b.id).await.unwrap().unwrap().secrets,
        b.secrets
    );
}

/// A KMS key in the emulator; its ARN.
async fn kms_key() -> (aws_sdk_kms::Client, String) {
    let kms = aws_sdk_kms::Client::new(&aws().await);
    let key = kms
        .create_key()
        .description("herald test: sealed webhook secrets")
        .send()
        .await
        .unwrap();
    let arn = key.key_metadata.unwrap().arn.unwrap();
    (kms, arn)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_kms_provider_seals_under_one_data_key_and_opens_in_another_process() {
    let (kms, arn) = kms_key().await;
    let sealer = Sealer::new(KmsKeys::new(kms.clone(), &arn));
    let a = sealer.seal("whsec_a", "shop/sub_1/secret").await.unwrap();
    let b = sealer.seal("whsec_b", "shop/sub_1/secret").await.unwrap();
    let (ea, eb) = (Envelope::parse(&a).unwrap(), Envelope::parse(&b).unwrap());
    assert_eq!(ea.key_id, arn, "the key id is stored beside the ciphertext");
    assert_eq!(
        ea.encrypted_key, eb.encrypted_key,
        "one data key per process"
    );
    assert_eq!(
        sealer.open(&a, "shop/sub_1/secret").await.unwrap(),
        "whsec_a"
    );

    // Another process: Decrypt of the data key through KMS.
    let other = Sealer::new(KmsKeys::new(kms.clone(), &arn));
    assert_eq!(
        other.open(&b, "shop/sub_1/secret").await.unwrap(),
        "whsec_b"
    );
    assert_eq!(
        other.open(&b, "shop/sub_2/secret").await,
        Err(SealError::Tampered),
        "another webhook's context"
    );
    // A changed encrypted data key does not decrypt.
    let mut changed = eb.clone();
    changed.encrypted_key[40] ^= 1;
    let err = Sealer::new(KmsKeys::new(kms, &arn))
        .open(&changed.to_text(), "shop/sub_1/secret")
        .await
        .unwrap_err();
    assert!(
        matches!(err, SealError::Tampered | SealError::Provider(_)),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_api_seals_under_kms_when_given_a_kms_key() {
    let stack = Stack::deploy("secrets-kms").unwrap();
    let (kms, arn) = kms_key().await;
    let api = ApiServer::start(
        &stack,
        &[("HERALD_KMS_KEY_ID", &arn), ("HERALD_SEAL_KEY_FILE", "")],
    )
    .await
    .unwrap();
    let key = api.app_with_key("shop").await;
    let (s, created) = api
        .call(
            "POST",
            "/v1/webhooks",
            Some(&key),
            Some(json!({"url": "http://127.0.0.1:9/a", "events": ["*"]})),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let items = raw_items(&stack).await;
    for item in with_secrets(&items) {
        let sealed = item["secrets"].as_l().unwrap()[0].as_s().unwrap();
        assert_eq!(Envelope::parse(sealed).unwrap().key_id, arn);
    }
    let store = SubscriptionStore::new(
        aws_sdk_dynamodb::Client::new(&aws().await),
        stack.subscriptions_table(),
        Sealer::new(KmsKeys::new(kms, &arn)),
    );
    let id = herald_core::SubscriptionId::new(created["id"].as_str().unwrap());
    let sub = store
        .get(&AppId::parse("shop").unwrap(), &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        Value::String(sub.secrets[0].expose()),
        created["secret"],
        "opened under KMS, it is the secret shown at creation"
    );
}
